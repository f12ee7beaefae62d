#include <stdio.h>
#include <string.h>

#include "lim.h"
#include "resp.h"
#include "util.h"

static const char common[] =
    "Cache-Control: no-store\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Content-Security-Policy: default-src 'none'; "
    "img-src https://platform.slack-edge.com; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'\r\n";

void
resp_init(struct resp *r)
{
	r->status = 200;
	r->no_body = 0;
	buf_init(&r->head, LIM_HEADERS);
	buf_init(&r->body, LIM_PAGE);
	buf_puts(&r->head, common);
}

void
resp_reset(struct resp *r)
{
	buf_reset(&r->head);
	buf_reset(&r->body);
	buf_puts(&r->head, common);
}

void
resp_recycle(struct resp *r)
{
	if (r->head.p != NULL)
		explicit_bzero(r->head.p, r->head.len);
	resp_reset(r);
	r->status = 200;
	r->no_body = 0;
}

void
resp_free(struct resp *r)
{
	/* Headers may carry a state cookie; pages never carry secrets. */
	buf_wipe(&r->head);
	buf_free(&r->body);
}

int
resp_header(struct resp *r, const char *name, const char *value)
{
	const char *p;
	size_t mark = r->head.len;

	if (*name == '\0')
		return -1;
	for (p = name; *p != '\0'; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			(*p >= '0' && *p <= '9') || *p == '-'))
			return -1;
	for (p = value; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return -1;
	if (buf_puts(&r->head, name) == -1 ||
	    buf_add(&r->head, ": ", 2) == -1 ||
	    buf_puts(&r->head, value) == -1 ||
	    buf_add(&r->head, "\r\n", 2) == -1) {
		r->head.len = mark;
		r->head.p[mark] = '\0';
		return -1;
	}
	return 0;
}

int
resp_cookie(struct resp *r, const char *name, const char *value, long maxage)
{
	struct buf v;
	char age[21];
	int rc;

	buf_init(&v, LIM_HEADERS);
	dec_str(value != NULL && maxage > 0 ? (unsigned long)maxage : 0, age);
	rc = buf_puts(&v, name) | buf_putc(&v, '=') |
	    buf_puts(&v, value != NULL ? value : "") |
	    buf_puts(&v, "; Path=/; Max-Age=") | buf_puts(&v, age) |
	    buf_puts(&v, "; HttpOnly; Secure; SameSite=Lax");
	if (rc == 0)
		rc = resp_header(r, "Set-Cookie", buf_str(&v));
	buf_wipe(&v);
	return rc;
}

int
resp_redirect(struct resp *r, const char *location)
{
	r->status = 302;
	buf_reset(&r->body);
	return resp_header(r, "Location", location);
}

const char *
resp_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 302:
		return "Found";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 405:
		return "Method Not Allowed";
	case 411:
		return "Length Required";
	case 413:
		return "Content Too Large";
	case 500:
		return "Internal Server Error";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	default:
		return "Unknown";
	}
}
