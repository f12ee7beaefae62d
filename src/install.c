#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "conf.h"
#include "db.h"
#include "handlers.h"
#include "lim.h"
#include "page.h"
#include "req.h"
#include "state.h"
#include "util.h"

/* The "Add to Slack" button in Slack's style, drawn here rather than
 * loaded, so that it shows offline and behind blockers: the mark's four
 * colours as rounded bars and dots, then the words. */
static const char install_page[] =
    "<p>Connect %s to your Slack workspace. Slack will ask you to pick "
    "a workspace and to approve what it may do there.</p>\n"
    "<p><a class=\"slack\" href=\"%s\">"
    "<svg aria-hidden=\"true\" viewBox=\"0 0 24 24\" width=\"20\" "
    "height=\"20\" fill=\"none\" stroke-width=\"3\" "
    "stroke-linecap=\"round\">"
    "<path stroke=\"#36C5F0\" d=\"M3.5 9.5h5M8.5 3.5h0\"/>"
    "<path stroke=\"#2EB67D\" d=\"M14.5 3.5v5M20.5 8.5h0\"/>"
    "<path stroke=\"#ECB22E\" d=\"M15.5 14.5h5M15.5 20.5h0\"/>"
    "<path stroke=\"#E01E5A\" d=\"M9.5 15.5v5M3.5 15.5h0\"/>"
    "</svg>Add to Slack</a></p>\n"
    "<p class=\"small\">This link can be used once, within %s.</p>\n";

/* ^[TE][A-Z0-9]{2,20}$ */
static int
team_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 3 || n > LIM_TEAM || (s[0] != 'T' && s[0] != 'E'))
		return 0;
	return strspn(s + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == n - 1;
}

/* Appends "&name=" and value percent-encoded. */
static int
add_param(struct buf *u, const char *name, const char *value)
{
	if (value == NULL)
		return 0;
	if (buf_putc(u,
		u->len == 0 || strchr(buf_str(u), '?') == NULL ? '?' : '&') ||
	    buf_puts(u, name) || buf_putc(u, '=') || pct_encode(u, value))
		return -1;
	return 0;
}

void
handle_install(struct ctx *c)
{
	struct conf conf;
	struct req req;
	struct buf url;
	struct db *db;
	char err[512], state[STATE_CHARS + 1], minutes[32];
	char title[4 * LIM_APP_NAME + 16];
	unsigned char key[32];
	const char *team, *unit, *name;
	size_t n;
	enum req_err rerr;
	enum state_res sr;
	int confrc, rc;

	buf_init(&url, LIM_HEADERS - 512);
	state[0] = '\0';
	confrc = conf_load(
	    &conf, c->param, c->pctx, CONF_NEED_SCOPES, err, sizeof(err));
	rerr = req_parse(&req, ctx_var(c, "REQUEST_METHOD"),
	    ctx_var(c, "QUERY_STRING"), NULL, NULL, REQ_KEYS_INSTALL);

	if (req.method == REQ_OTHER) {
		page_method(c, "GET, HEAD");
		goto out;
	}
	if (confrc == -1) {
		page_not_configured(c, err);
		goto out;
	}
	team = req.q[REQ_TEAM];
	if (team != NULL && *team == '\0')
		team = NULL;
	if (rerr != REQ_OK || (team != NULL && !team_ok(team))) {
		c->outcome = "invalid_request";
		ctx_detail(c,
		    rerr == REQ_ERR_REPEATED ? "repeated query key"
			: rerr != REQ_OK     ? "malformed query"
					     : "team is not a Slack id");
		page(c, 400, "Bad request",
		    "<p>This installation link is malformed.</p>\n"
		    "<p><a class=\"button\" href=\"%s\">Start again</a></p>\n",
		    conf.v[CONF_INSTALL_URL]);
		goto out;
	}

	/* Signing needs only the key: from its sidecar file when there is
	 * one (no database opened), else from the database. */
	if (db_key_peek(&c->w->key, conf.v[CONF_DB], key) == 0)
		sr = state_sign(
		    key, sizeof(key), conf.v[CONF_CLIENT_ID], conf.ttl, state);
	else if ((db = db_get(&c->w->db, conf.v[CONF_DB], &rc, err,
		      sizeof(err))) == NULL) {
		page_unavailable(c, rc == DB_BUSY, err);
		goto out;
	} else if ((sr = state_issue(db, conf.v[CONF_CLIENT_ID], conf.ttl,
			state)) != STATE_OK) {
		page_unavailable(c, sr == STATE_BUSY, db_errmsg(db));
		goto out;
	}
	if (sr != STATE_OK) {
		page_unavailable(c, 0, "cannot sign a state");
		goto out;
	}

	buf_puts(&url, conf.v[CONF_AUTHORIZE_URL]);
	if (add_param(&url, "client_id", conf.v[CONF_CLIENT_ID]) ||
	    add_param(&url, "scope", conf.v[CONF_SCOPES]) ||
	    add_param(&url, "user_scope", conf.v[CONF_USER_SCOPES]) ||
	    add_param(&url, "redirect_uri", conf.v[CONF_REDIRECT_URI]) ||
	    add_param(&url, "state", state) || add_param(&url, "team", team)) {
		page_unavailable(c, 0, "authorize URL too long");
		goto out;
	}
	if (resp_cookie(
		&c->resp, conf.v[CONF_STATE_COOKIE], state, (long)conf.ttl)) {
		page_unavailable(c, 0, "cannot set the state cookie");
		goto out;
	}
	if (conf.direct) {
		if (resp_redirect(&c->resp, buf_str(&url)) == -1) {
			resp_reset(&c->resp);
			page_unavailable(
			    c, 0, "authorize URL refused as a header");
		}
		goto out;
	}
	/* "10 minutes", "90 seconds", "1 second" */
	if (conf.ttl % 60 == 0 && conf.ttl >= 120) {
		n = dec_str((unsigned long long)conf.ttl / 60, minutes);
		unit = " minutes";
	} else {
		n = dec_str((unsigned long long)conf.ttl, minutes);
		unit = conf.ttl == 1 ? " second" : " seconds";
	}
	memcpy(minutes + n, unit, strlen(unit) + 1);
	name =
	    conf.v[CONF_APP_NAME] != NULL ? conf.v[CONF_APP_NAME] : "this app";
	snprintf(title, sizeof(title), "Add %s to Slack", name);
	page(c, 200, title, install_page, name, buf_str(&url), minutes);
out:
	explicit_bzero(key, sizeof(key));
	explicit_bzero(state, sizeof(state));
	buf_wipe(&url);
	req_free(&req);
	conf_free(&conf);
}
