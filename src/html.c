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
    "font:16px/1.5 system-ui,sans-serif}\n"
    "main{max-width:32rem;margin:10vh auto;padding:1.5rem;background:#fff;"
    "border:1px solid #ddd;border-radius:8px}\n"
    "h1{font-size:1.5rem;line-height:1.25;margin:0 0 1rem}\n"
    "a{color:#0b5394}\n"
    ".button,.slack{display:inline-block;padding:.6rem 1.2rem;"
    "border-radius:4px;background:#4a154b;color:#fff;font-weight:700;"
    "text-decoration:none}\n"
    ".slack{background:#fff;color:#1d1c1d;border:1px solid #bbb}\n"
    ".slack svg{vertical-align:-4px;margin-right:.6rem}\n"
    ".small{font-size:.875rem;color:#454245}\n"
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
	const char *e;
	size_t n;

	for (;;) {
		n = strcspn(s, "&<>\"'");
		if (buf_add(b, s, n) == -1)
			return -1;
		switch (s[n]) {
		case '\0':
			return 0;
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
		default:
			e = "&#39;";
			break;
		}
		if (buf_puts(b, e) == -1)
			return -1;
		s += n + 1;
	}
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

	if (buf_add(b, head, sizeof(head) - 1) == -1 ||
	    html_escape(b, title) == -1 ||
	    buf_add(b, style, sizeof(style) - 1) == -1 ||
	    html_escape(b, title) == -1 || buf_puts(b, "</h1>\n") == -1)
		return -1;
	for (run = tmpl; rc == 0 && (p = strchr(run, '%')) != NULL;) {
		if (p[1] == 's') {
			arg = va_arg(ap, const char *);
			if ((rc = buf_add(b, run, (size_t)(p - run))) == 0)
				rc = html_escape(b, arg != NULL ? arg : "");
			run = p + 2;
		} else { /* "%%" is one '%', and a lone '%' itself */
			rc = buf_add(b, run, (size_t)(p + 1 - run));
			run = p + (p[1] == '%' ? 2 : 1);
		}
	}
	if (rc == 0)
		rc = buf_puts(b, run);
	if (rc == 0)
		rc = buf_add(b, tail, sizeof(tail) - 1);
	return rc;
}
