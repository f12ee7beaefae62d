#include <stdarg.h>
#include <string.h>

#include "html.h"

static const char head[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<meta name=\"robots\" content=\"noindex\">\n"
    "<link rel=\"icon\" href=\"data:,\">\n"
    "<title>";

static const char style[] =
    "</title>\n"
    "<style>\n"
    "body{margin:0;background:#f8f8f8;color:#1d1c1d;"
    "font:16px/1.5 -apple-system,BlinkMacSystemFont,\"Segoe UI\",Roboto,"
    "Helvetica,Arial,sans-serif}\n"
    "main{max-width:32rem;margin:12vh auto;padding:2rem 1.5rem;"
    "background:#fff;border:1px solid #ddd;border-radius:8px}\n"
    "h1{font-size:1.5rem;line-height:1.25;margin:0 0 1rem}\n"
    "p{margin:0 0 1rem}\n"
    "a{color:#0b5394}\n"
    ".button{display:inline-block;padding:.6rem 1.1rem;border-radius:4px;"
    "background:#4a154b;color:#fff;font-weight:600;text-decoration:none}\n"
    ".small{font-size:.875rem;color:#454245}\n"
    ".slack{display:inline-flex;align-items:center;gap:.75rem;height:3rem;"
    "padding:0 1.5rem;border:1px solid #ddd;border-radius:4px;background:#fff;"
    "color:#1d1c1d;font-weight:700;font-size:1rem;text-decoration:none}\n"
    ".slack:hover,.slack:focus{border-color:#1264a3;"
    "box-shadow:0 0 0 1px #1264a3}\n"
    "@media (max-width:34rem){main{margin:0;border:0;border-radius:0;"
    "min-height:100vh;box-sizing:border-box}}\n"
    "</style>\n"
    "</head>\n"
    "<body>\n"
    "<main>\n"
    "<h1>";

static const char tail[] = "</main>\n"
			   "</body>\n"
			   "</html>\n";

int
html_escape(struct buf *b, const char *s)
{
	const char *run = s, *e;

	for (; *s != '\0'; s++) {
		switch (*s) {
		case '&':
			e = "&amp;";
			break;
		case '<':
			e = "&lt;";
			break;
		case '>':
			e = "&gt;";
			break;
		case '"':
			e = "&quot;";
			break;
		case '\'':
			e = "&#39;";
			break;
		default:
			continue;
		}
		if (buf_add(b, run, (size_t)(s - run)) == -1 ||
		    buf_puts(b, e) == -1)
			return -1;
		run = s + 1;
	}
	return buf_add(b, run, (size_t)(s - run));
}

int
html_page(struct buf *b, const char *title, const char *tmpl, ...)
{
	va_list ap;
	int rc;

	va_start(ap, tmpl);
	rc = html_vpage(b, title, tmpl, ap);
	va_end(ap);
	return rc;
}

int
html_vpage(struct buf *b, const char *title, const char *tmpl, va_list ap)
{
	const char *p, *run, *arg;
	int rc = 0;

	if (buf_puts(b, head) == -1 || html_escape(b, title) == -1 ||
	    buf_puts(b, style) == -1 || html_escape(b, title) == -1 ||
	    buf_puts(b, "</h1>\n") == -1)
		return -1;
	for (p = run = tmpl; *p != '\0' && rc == 0; p++) {
		if (*p != '%' || (p[1] != 's' && p[1] != '%'))
			continue;
		rc = buf_add(b, run, (size_t)(p - run));
		if (rc == 0 && p[1] == '%')
			rc = buf_putc(b, '%');
		else if (rc == 0) {
			arg = va_arg(ap, const char *);
			rc = html_escape(b, arg != NULL ? arg : "");
		}
		run = ++p + 1;
	}
	if (rc == 0)
		rc = buf_puts(b, run);
	if (rc == 0)
		rc = buf_puts(b, tail);
	return rc;
}
