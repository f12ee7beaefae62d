#include <stdarg.h>
#include <stdio.h>

#include "db.h"
#include "html.h"
#include "lim.h"
#include "page.h"

void
ctx_detail(struct ctx *c, const char *s)
{
	snprintf(c->detail, sizeof(c->detail), "%s", s);
}

void
page(struct ctx *c, int status, const char *title, const char *tmpl, ...)
{
	va_list ap;
	int rc;

	c->resp.status = status;
	buf_reset(&c->resp.body);
	resp_header(&c->resp, "Content-Type", "text/html; charset=utf-8");
	va_start(ap, tmpl);
	rc = html_vpage(&c->resp.body, title, tmpl, ap);
	va_end(ap);
	if (rc == -1) {
		buf_reset(&c->resp.body);
		html_page(
		    &c->resp.body, "Error", "<p>The page was too large.</p>\n");
	}
}

void
page_not_configured(struct ctx *c, const char *detail)
{
	c->outcome = "server_error";
	snprintf(c->detail, sizeof(c->detail), "not configured: %s", detail);
	page(c, 500, "This app is not configured",
	    "<p>The Slack installation for this site is not set up correctly. "
	    "The administrator can find the reason in the web server's error "
	    "log.</p>\n");
}

void
page_method(struct ctx *c, const char *allow)
{
	c->outcome = "invalid_request";
	ctx_detail(c, "method not allowed");
	resp_header(&c->resp, "Allow", allow);
	page(c, 405, "Method not allowed",
	    "<p>This address only answers %s requests.</p>\n", allow);
}

void
page_unavailable(struct ctx *c, int busy, const char *detail)
{
	c->outcome = "server_error";
	ctx_detail(c, detail);
	if (!busy)
		db_drop(&c->w->db); /* reopen afresh: it may be repaired */
	if (busy) {
		resp_header(&c->resp, "Retry-After", LIM_RETRY_AFTER);
		page(c, 503, "Busy, please try again",
		    "<p>The server is busy. Please try again in a few seconds.</p>\n");
		return;
	}
	page(c, 500, "Something went wrong",
	    "<p>The server could not complete the request. The administrator "
	    "can find the reason in the web server's error log.</p>\n");
}
