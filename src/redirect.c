#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "conf.h"
#include "db.h"
#include "handlers.h"
#include "installation.h"
#include "lim.h"
#include "log.h"
#include "page.h"
#include "req.h"
#include "slack.h"
#include "state.h"
#include "store.h"
#include "util.h"

/* The outcomes of the redirect endpoint. Each maps to one reason, one
 * status and one page. */
enum herr {
	HERR_CANCELLED, /* error=access_denied */
	HERR_BADREQ,    /* malformed query, missing code */
	HERR_STATE, /* state missing, forged, expired, used, not the cookie's */
	HERR_CODE,  /* Slack refused the code */
	HERR_SLACK_PARAM, /* error=<anything else> */
	HERR_SLACK_OTHER, /* the same, not of the shape of Slack's codes */
	HERR_UPSTREAM,    /* Slack failed or answered nonsense */
	HERR_INTERNAL,    /* configuration refused by Slack, storage failure */
	HERR_BUSY,        /* database locked past the busy timeout */
	HERR__MAX
};

static const struct {
	const char *reason;
	int status;
	const char *title;
	const char *text;
} herrs[HERR__MAX] = {
	[HERR_CANCELLED] = { "access_denied", 200, "Installation cancelled",
	    "<p>You cancelled the installation, so nothing was installed.</p>\n" },
	[HERR_BADREQ] = { "invalid_request", 400, "Bad request",
	    "<p>The address Slack sent you back with is incomplete or "
	    "malformed.</p>\n" },
	[HERR_STATE] = { "invalid_state", 400,
	    "This link has expired or was already used",
	    "<p>Each installation link works once, in the browser that started "
	    "it, for a limited time.</p>\n" },
	[HERR_CODE] = { "invalid_code", 400,
	    "Slack did not accept the authorization",
	    "<p>The authorization has expired or was already used.</p>\n" },
	[HERR_SLACK_PARAM] = { "slack_error", 400, "Slack reported an error",
	    "<p>Slack ended the installation with the error <code>%s</code>.</p>\n" },
	[HERR_SLACK_OTHER] = { "slack_error", 400, "Slack reported an error",
	    "<p>Slack ended the installation with an error.</p>\n" },
	[HERR_UPSTREAM] = { "slack_error", 502,
	    "Slack could not complete the installation",
	    "<p>Slack did not answer as expected. Nothing was installed; "
	    "please try again in a moment.</p>\n" },
	[HERR_INTERNAL] = { "server_error", 500, "Something went wrong",
	    "<p>The server could not complete the installation. The administrator "
	    "can find the reason in the web server's error log.</p>\n" },
	[HERR_BUSY] = { "server_error", 503, "Busy, please try again",
	    "<p>The server is busy. Please try again in a few seconds.</p>\n" },
};

static const char start_again[] =
    "<p><a class=\"button\" href=\"%s\">Start again</a></p>\n";

/* Appends error=<reason> to the configured failure URL, before any
 * fragment. */
static int
failure_url(struct buf *u, const char *base, const char *reason)
{
	size_t n = strcspn(base, "#");
	char last = n > 0 ? base[n - 1] : '\0';

	if (buf_add(u, base, n) == -1)
		return -1;
	if (last != '?' && last != '&' &&
	    buf_putc(u, memchr(base, '?', n) != NULL ? '&' : '?') == -1)
		return -1;
	if (buf_puts(u, "error=") == -1 || buf_puts(u, reason) == -1 ||
	    buf_puts(u, base + n) == -1)
		return -1;
	return 0;
}

/* [a-z_]{1,64}: the shape of Slack's error codes. */
static int
is_error_code(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= 64 &&
	    strspn(s, "abcdefghijklmnopqrstuvwxyz_") == n;
}

static void
fail(struct ctx *c, const struct conf *conf, enum herr e, const char *detail,
    const char *arg)
{
	struct buf u;
	char text[1024];

	/* Slack's error codes are [a-z_]; anything else in the query is
	 * someone's text, not shown on our page (the reason is the same). */
	if (e == HERR_SLACK_PARAM && !is_error_code(arg))
		e = HERR_SLACK_OTHER;
	c->outcome = herrs[e].reason;
	if (detail != NULL)
		ctx_detail(c, detail);
	/* After a failure other than a busy database, the next request opens
	 * the database afresh: the file may have been repaired or replaced. */
	if (e == HERR_INTERNAL)
		db_drop(&c->w->db);
	if (conf->v[CONF_FAILURE_URL] != NULL) {
		buf_init(&u, LIM_HEADERS - 512);
		if (failure_url(
			&u, conf->v[CONF_FAILURE_URL], herrs[e].reason) == 0 &&
		    resp_redirect(&c->resp, buf_str(&u)) == 0) {
			buf_free(&u);
			return;
		}
		buf_free(&u);
	}
	if (e == HERR_BUSY)
		resp_header(&c->resp, "Retry-After", LIM_RETRY_AFTER);
	/* Both fixed strings: the text, then the link. */
	snprintf(text, sizeof(text), "%s%s", herrs[e].text, start_again);
	if (e == HERR_SLACK_PARAM)
		page(c, herrs[e].status, herrs[e].title, text, arg,
		    conf->v[CONF_INSTALL_URL]);
	else
		page(c, herrs[e].status, herrs[e].title, text,
		    conf->v[CONF_INSTALL_URL]);
}

/* Checks the state against the cookie, then consumes it. */
static enum state_res
take_state(struct db **slot, const struct conf *conf, const struct req *req,
    char *err, size_t errlen)
{
	const char *s = req->q[REQ_STATE];
	struct db *db;
	int rc;

	if (s == NULL || !state_shape_ok(s)) {
		snprintf(err, errlen, "state missing or malformed");
		return STATE_INVALID;
	}
	if (req->cookie == NULL || req->cookie_bad ||
	    !ct_streq(req->cookie, s)) {
		snprintf(err, errlen, "state does not match the cookie");
		return STATE_INVALID;
	}
	if ((db = db_get(slot, conf->v[CONF_DB], &rc, err, errlen)) == NULL)
		return rc == DB_BUSY ? STATE_BUSY : STATE_ERR;
	switch (state_consume(db, conf->v[CONF_CLIENT_ID], s, now_unix())) {
	case STATE_OK:
		return STATE_OK;
	case STATE_INVALID:
		snprintf(err, errlen, "state unknown, expired or already used");
		return STATE_INVALID;
	case STATE_BUSY:
		snprintf(err, errlen,
		    "consuming the state: database busy or "
		    "unreachable: %s",
		    db_errmsg(db));
		return STATE_BUSY;
	default:
		snprintf(err, errlen, "consuming the state: %s", db_errmsg(db));
		return STATE_ERR;
	}
}

/* The worker's HTTP handle, made by its first call to Slack. */
static void *
http_handle(struct worker *w)
{
	if (w->http == NULL && (w->http = slack_http_new()) != NULL)
		w->http_free = slack_http_free;
	return w->http;
}

/* Exchanges code at oauth.v2.access, then asks auth.test for the bot's
 * id, into in. 0, or -1 with the failure answered. */
static int
exchange(struct ctx *c, const struct conf *conf, const char *code,
    struct installation *in)
{
	char why[384];
	void *http;

	if ((http = http_handle(c->w)) == NULL) {
		fail(c, conf, HERR_INTERNAL, "out of memory", NULL);
		return -1;
	}
	switch (slack_oauth_access(http, conf, code, in, why, sizeof(why))) {
	case SLACK_OK:
		break;
	case SLACK_BAD_CODE:
		fail(c, conf, HERR_CODE, why, NULL);
		return -1;
	case SLACK_CONFIG:
		fail(c, conf, HERR_INTERNAL, why, NULL);
		return -1;
	default:
		fail(c, conf, HERR_UPSTREAM, why, NULL);
		return -1;
	}
	snprintf(
	    c->team, sizeof(c->team), "%s", in->team_id ? in->team_id : "");
	snprintf(c->enterprise, sizeof(c->enterprise), "%s",
	    in->enterprise_id ? in->enterprise_id : "");
	if (in->bot_token != NULL &&
	    slack_auth_test(http, conf, in, why, sizeof(why)) == -1)
		log_warn("team=%s enterprise=%s: %s; storing the installation "
			 "without bot_id",
		    c->team[0] ? c->team : "-",
		    c->enterprise[0] ? c->enterprise : "-", why);
	return 0;
}

/* Stores in, durably. 0, or -1 with the failure answered. */
static int
keep(struct ctx *c, const struct conf *conf, const struct installation *in)
{
	struct db *db;
	char err[512];
	int rc;

	if ((db = db_get(&c->w->db, conf->v[CONF_DB], &rc, err, sizeof(err))) ==
	    NULL) {
		fail(c, conf, rc == DB_BUSY ? HERR_BUSY : HERR_INTERNAL, err,
		    NULL);
		return -1;
	}
	if ((rc = store_put(db, conf->v[CONF_CLIENT_ID], in)) != DB_OK) {
		snprintf(err, sizeof(err), "storing the installation: %s%s",
		    rc == DB_BUSY ? "database busy or unreachable: " : "",
		    db_errmsg(db));
		fail(c, conf, rc == DB_BUSY ? HERR_BUSY : HERR_INTERNAL, err,
		    NULL);
		return -1;
	}
	return 0;
}

static void
succeed(struct ctx *c, const struct conf *conf, const struct installation *in)
{
	const char *name =
	    conf->v[CONF_APP_NAME] != NULL ? conf->v[CONF_APP_NAME] : "The app";
	struct buf a, b;
	char shown[4 * LIM_PAGE_NAME + 4];

	if (conf->v[CONF_SUCCESS_URL] != NULL) {
		resp_redirect(&c->resp, conf->v[CONF_SUCCESS_URL]);
		return;
	}
	buf_init(&a, 1024);
	buf_init(&b, 1024);
	if (in->is_enterprise_install || in->team_id == NULL ||
	    *in->team_id == '\0') {
		/* A name of any length is kept; the page shows its start. */
		utf8_cut(in->enterprise_name != NULL ? in->enterprise_name
						     : in->enterprise_id,
		    LIM_PAGE_NAME, shown, sizeof(shown));
		buf_puts(&a, "https://app.slack.com/manage/");
		buf_puts(&a, in->enterprise_id);
		buf_puts(&a, "/integrations/profile/");
		buf_puts(&a, in->app_id);
		buf_puts(&a, "/workspaces/add");
		page(c, 200, "Installation complete",
		    "<p>%s is installed in the <strong>%s</strong> "
		    "organization.</p>\n"
		    "<p>Next, choose the workspaces that may use it.</p>\n"
		    "<p><a class=\"button\" href=\"%s\">Add it to workspaces</a></p>\n",
		    name, shown, buf_str(&a));
	} else {
		buf_puts(&a, "slack://app?team=");
		buf_puts(&a, in->team_id);
		buf_puts(&a, "&id=");
		buf_puts(&a, in->app_id);
		buf_puts(&b, "https://app.slack.com/client/");
		buf_puts(&b, in->team_id);
		utf8_cut(in->team_name != NULL ? in->team_name : in->team_id,
		    LIM_PAGE_NAME, shown, sizeof(shown));
		page(c, 200, "Installation complete",
		    "<p>%s is installed in the <strong>%s</strong> workspace.</p>\n"
		    "<p><a class=\"button\" href=\"%s\">Open Slack</a></p>\n"
		    "<p class=\"small\">Or <a href=\"%s\">open Slack in your "
		    "browser</a>.</p>\n",
		    name, shown, buf_str(&a), buf_str(&b));
	}
	buf_free(&a);
	buf_free(&b);
}

void
handle_redirect(struct ctx *c)
{
	struct installation in;
	struct conf conf;
	struct req req;
	char err[512], why[384];
	const char *code, *error, *cookie;
	enum req_err rerr;
	enum state_res sr;
	int confrc;

	memset(&in, 0, sizeof(in));
	confrc = conf_load(
	    &conf, c->param, c->pctx, CONF_NEED_SECRET, err, sizeof(err));
	cookie = conf.v[CONF_STATE_COOKIE] != NULL ? conf.v[CONF_STATE_COOKIE]
						   : "slack-app-oauth-state";
	rerr = req_parse(&req, ctx_var(c, "REQUEST_METHOD"),
	    ctx_var(c, "QUERY_STRING"), ctx_var(c, "HTTP_COOKIE"), cookie,
	    REQ_KEYS_REDIRECT);

	if (req.method != REQ_GET) {
		page_method(c, "GET");
		goto out;
	}
	if (confrc == -1) {
		page_not_configured(c, err);
		goto out;
	}
	if (rerr != REQ_OK) {
		fail(c, &conf, HERR_BADREQ,
		    rerr == REQ_ERR_REPEATED     ? "repeated query key"
			: rerr == REQ_ERR_TOOBIG ? "query or value too long"
						 : "malformed query",
		    NULL);
		goto out;
	}

	/* Slack's error codes are printable ASCII ([a-z_]); anything else is
	 * a malformed query, and never reaches a page or a log line. */
	if ((error = req.q[REQ_ERROR]) != NULL && !is_ascii(error)) {
		fail(c, &conf, HERR_BADREQ, "error= is not printable ASCII",
		    NULL);
		goto out;
	}
	if (error != NULL) {
		sr = take_state(&c->w->db, &conf, &req, err, sizeof(err));
		snprintf(why, sizeof(why), "Slack returned error=%s%s", error,
		    sr == STATE_OK ? "" : "; the state was not consumed");
		fail(c, &conf,
		    strcmp(error, "access_denied") == 0 ? HERR_CANCELLED
							: HERR_SLACK_PARAM,
		    why, error);
		goto out;
	}

	if ((sr = take_state(&c->w->db, &conf, &req, err, sizeof(err))) !=
	    STATE_OK) {
		fail(c, &conf,
		    sr == STATE_INVALID    ? HERR_STATE
			: sr == STATE_BUSY ? HERR_BUSY
					   : HERR_INTERNAL,
		    err, NULL);
		goto out;
	}

	code = req.q[REQ_CODE];
	if (code == NULL || !is_token_ascii(code, LIM_CODE)) {
		fail(c, &conf, HERR_BADREQ, "code missing or malformed", NULL);
		goto out;
	}

	if (exchange(c, &conf, code, &in) == 0 && keep(c, &conf, &in) == 0)
		succeed(c, &conf, &in);
out:
	/* Every answer of this endpoint clears the state cookie. */
	resp_cookie(&c->resp, cookie, NULL, 0);
	installation_free(&in);
	req_free(&req);
	conf_free(&conf);
}
