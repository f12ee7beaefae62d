#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "conf.h"
#include "db.h"
#include "handlers.h"
#include "lim.h"
#include "page.h"
#include "sha256.h"
#include "store.h"
#include "util.h"

/* 400 for what Slack would never send. */
static void
bad_request(struct ctx *c, const char *why)
{
	c->outcome = "bad_request";
	ctx_detail(c, why);
	page(c, 400, "Bad request", "<p>This is not a Slack event.</p>\n");
}

/* 200 for what we do not act on: the outcome is its type (escaped in the
 * log like every value), or "ignored" when it has none. */
static void
ignore(struct ctx *c, const char *type)
{
	c->outcome = "ignored";
	if (type != NULL && *type != '\0') {
		snprintf(c->what, sizeof(c->what), "%s", type);
		c->outcome = c->what;
	}
	ctx_detail(c, "ignored: not app_uninstalled or tokens_revoked");
}

/* 401: nothing else is looked at. */
static void
unauthorized(struct ctx *c, const char *outcome, const char *why)
{
	c->outcome = outcome;
	ctx_detail(c, why);
	page(c, 401, "Unauthorized",
	    "<p>This request is not signed by Slack.</p>\n");
}

/* Reads exactly CONTENT_LENGTH bytes into body, refusing more than the cap
 * before reading any. 0, or -1 with the answer made. */
static int
read_body(struct ctx *c, struct buf *body)
{
	const char *cl = ctx_var(c, "CONTENT_LENGTH");
	char chunk[16384];
	long long n;
	size_t want, got;

	if (cl == NULL || *cl == '\0') {
		c->outcome = "bad_request";
		ctx_detail(c, "no Content-Length");
		page(c, 411, "Length required",
		    "<p>This address needs the length of the request.</p>\n");
		return -1;
	}
	/* Digits past what a long long holds are too large, not wrong. */
	if (cl[strspn(cl, "0123456789")] != '\0') {
		bad_request(c, "Content-Length is not a number");
		return -1;
	}
	if (num_parse(cl, 0, LIM_EVENT_BODY, &n) == -1) {
		c->outcome = "bad_request";
		ctx_detail(c, "body over 1 MiB");
		page(c, 413, "Request too large",
		    "<p>The request is larger than any Slack event.</p>\n");
		return -1;
	}
	buf_init(body, LIM_EVENT_BODY);
	while (body->len < (size_t)n) {
		want = (size_t)n - body->len;
		if ((got = ctx_read(c, chunk,
			 want < sizeof(chunk) ? want : sizeof(chunk))) == 0)
			break;
		if (buf_add(body, chunk, got) == -1) {
			explicit_bzero(chunk, sizeof(chunk));
			page_unavailable(c, 0, "out of memory");
			return -1;
		}
	}
	explicit_bzero(chunk, sizeof(chunk));
	if (body->len < (size_t)n) {
		bad_request(c, "body shorter than its Content-Length");
		return -1;
	}
	return 0;
}

/* Slack's v0 signature: X-Slack-Signature is "v0=" and the hex HMAC-SHA256
 * under the signing secret of "v0:<X-Slack-Request-Timestamp>:<body>", and
 * the timestamp within LIM_EVENT_SKEW seconds of now. 0, or -1 with the
 * 401 made. */
static int
verify(struct ctx *c, const char *secret, const struct buf *body, int64_t *ts)
{
	const char *t = ctx_var(c, "HTTP_X_SLACK_REQUEST_TIMESTAMP");
	const char *sig = ctx_var(c, "HTTP_X_SLACK_SIGNATURE");
	unsigned char mac[SHA256_LEN];
	char want[3 + 2 * SHA256_LEN + 1];
	long long v;
	int64_t now = now_unix();
	int ok;

	if (t == NULL || num_parse(t, 0, 9999999999LL, &v) == -1) {
		unauthorized(c, "stale_timestamp",
		    t == NULL ? "no X-Slack-Request-Timestamp"
			      : "X-Slack-Request-Timestamp is not a time");
		return -1;
	}
	if (v < now - LIM_EVENT_SKEW || v > now + LIM_EVENT_SKEW) {
		unauthorized(c, "stale_timestamp",
		    "X-Slack-Request-Timestamp more than 300 s from now");
		return -1;
	}
	if (sig == NULL) {
		unauthorized(c, "bad_signature", "no X-Slack-Signature");
		return -1;
	}
	const struct iov_part parts[] = { { "v0:", 3 }, { t, strlen(t) },
		{ ":", 1 }, { buf_str(body), body->len } };
	hmac_sha256((const unsigned char *)secret, strlen(secret), parts,
	    sizeof(parts) / sizeof(parts[0]), mac);
	memcpy(want, "v0=", 3);
	hex_encode(mac, sizeof(mac), want + 3);
	ok = ct_streq(sig, want);
	explicit_bzero(mac, sizeof(mac));
	explicit_bzero(want, sizeof(want));
	if (!ok) {
		unauthorized(
		    c, "bad_signature", "X-Slack-Signature does not match");
		return -1;
	}
	*ts = v;
	return 0;
}

/* application/json, parameters allowed. */
static int
is_json_type(const char *t)
{
	size_t n;

	if (t == NULL)
		return 0;
	n = strcspn(t, ";");
	while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'))
		n--;
	return n == 16 && strncasecmp(t, "application/json", 16) == 0;
}

static const cJSON *
get(const cJSON *o, const char *key)
{
	return cJSON_GetObjectItemCaseSensitive(o, key);
}

/* A Slack id: 1 to 31 of [A-Z0-9]. */
static int
is_id(const cJSON *v)
{
	const char *s;
	size_t n;

	if (!cJSON_IsString(v) || (s = v->valuestring) == NULL)
		return 0;
	n = strlen(s);
	return n >= 1 && n < 32 &&
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == n;
}

/* The installation an event is about: authorizations[0] when there is
 * one, else the envelope. An org-wide installation is (enterprise, '').
 * 0, or -1 when its ids are missing or malformed. */
static int
event_installation(struct ctx *c, const cJSON *root)
{
	const cJSON *a = cJSON_GetArrayItem(get(root, "authorizations"), 0);
	const cJSON *src = cJSON_IsObject(a) ? a : root, *e, *t;
	int org = cJSON_IsTrue(get(src, "is_enterprise_install"));

	e = get(src, "enterprise_id");
	t = get(src, "team_id");
	if (is_id(e))
		snprintf(
		    c->enterprise, sizeof(c->enterprise), "%s", e->valuestring);
	else if (e != NULL && !cJSON_IsNull(e))
		return -1;
	if (org)
		return c->enterprise[0] != '\0' ? 0 : -1;
	if (!is_id(t))
		return -1;
	snprintf(c->team, sizeof(c->team), "%s", t->valuestring);
	return 0;
}

/* The user ids of tokens.oauth or tokens.bot: an array of ids, or absent.
 * Returns how many, with *ids pointing at them (into the JSON) unless ids
 * is NULL, or -1. */
static long
id_list(const cJSON *tokens, const char *key, const char ***ids)
{
	const cJSON *l = get(tokens, key), *v;
	long n = 0;

	if (ids != NULL)
		*ids = NULL;
	if (l == NULL || cJSON_IsNull(l))
		return 0;
	if (!cJSON_IsArray(l))
		return -1;
	for (v = l->child; v != NULL; v = v->next, n++)
		if (!is_id(v))
			return -1;
	if (ids == NULL || n == 0)
		return n;
	if ((*ids = calloc((size_t)n, sizeof(**ids))) == NULL)
		return -1;
	n = 0;
	for (v = l->child; v != NULL; v = v->next)
		(*ids)[n++] = v->valuestring;
	return n;
}

/* app_uninstalled and tokens_revoked: what they revoke goes, of the rows
 * installed up to the event's second (a reinstall after it stays). */
static void
revoke(struct ctx *c, const struct conf *conf, const cJSON *root,
    const cJSON *event, int uninstalled, int64_t ts)
{
	struct forget f = { 0 };
	struct inst_key k;
	struct db *db;
	const cJSON *tv = get(root, "event_time"), *tokens;
	const char **users = NULL;
	char err[512], before[32];
	long nusers = 0, nbots = 0;
	int64_t t = ts;
	time_t tt;
	struct tm tm;
	int rc;

	if (event_installation(c, root) == -1) {
		bad_request(c, "no team or enterprise id");
		return;
	}
	if (tv != NULL) {
		if (!cJSON_IsNumber(tv) || tv->valuedouble < 1 ||
		    tv->valuedouble > 1e11 ||
		    tv->valuedouble != (double)(int64_t)tv->valuedouble) {
			bad_request(c, "event_time is not a time");
			return;
		}
		t = (int64_t)tv->valuedouble;
	}
	if (!uninstalled) {
		tokens = get(event, "tokens");
		if ((tokens != NULL && !cJSON_IsObject(tokens)) ||
		    (nusers = id_list(tokens, "oauth", &users)) < 0 ||
		    (nbots = id_list(tokens, "bot", NULL)) < 0) {
			bad_request(c, "tokens is not lists of user ids");
			goto out;
		}
	}
	f.all = uninstalled;
	f.users = users;
	f.nusers = (size_t)nusers;
	f.bots = nbots > 0;
	tt = (time_t)(t + 1);
	gmtime_r(&tt, &tm);
	strftime(before, sizeof(before), "%Y-%m-%d %H:%M:%S", &tm);
	f.before = before;
	k.enterprise_id = c->enterprise;
	k.team_id = c->team;

	if ((db = db_get(&c->w->db, conf->v[CONF_DB], &rc, err, sizeof(err))) ==
	    NULL) {
		page_unavailable(c, rc == DB_BUSY, err);
		goto out;
	}
	/* Answered within Slack's 3 seconds, busy or not. */
	db_busy_timeout(db, LIM_EVENT_BUSY_MS);
	if ((rc = store_forget(db, conf->v[CONF_CLIENT_ID], &k, &f)) != DB_OK) {
		page_unavailable(c, rc == DB_BUSY, db_errmsg(db));
		goto out;
	}
	if (f.cleared > 0)
		snprintf(c->detail, sizeof(c->detail),
		    "deleted %ld row%s, took the bot token from %ld more",
		    f.deleted, f.deleted == 1 ? "" : "s", f.cleared);
	else
		snprintf(c->detail, sizeof(c->detail), "deleted %ld row%s",
		    f.deleted, f.deleted == 1 ? "" : "s");
out:
	free(users);
}

void
handle_events(struct ctx *c)
{
	struct conf conf;
	struct buf body;
	const cJSON *type, *event, *etype, *ch;
	cJSON *root = NULL;
	const char *method = ctx_var(c, "REQUEST_METHOD");
	char err[512];
	int64_t ts;
	int confrc;

	buf_init(&body, 0);
	confrc = conf_load(
	    &conf, c->param, c->pctx, CONF_NEED_SIGNING, err, sizeof(err));
	if (method == NULL || strcmp(method, "POST") != 0) {
		page_method(c, "POST");
		c->outcome = "bad_request";
		goto out;
	}
	if (confrc == -1) {
		page_not_configured(c, err);
		goto out;
	}
	if (read_body(c, &body) == -1 ||
	    verify(c, conf.v[CONF_SIGNING_SECRET], &body, &ts) == -1)
		goto out;
	/* Signed by Slack from here on. */
	if (!is_json_type(ctx_var(c, "CONTENT_TYPE"))) {
		bad_request(c, "Content-Type is not application/json");
		goto out;
	}
	/* buf_str: an empty body has no buffer. */
	if (memchr(buf_str(&body), '\0', body.len) != NULL ||
	    !json_is_plain(buf_str(&body), body.len, LIM_JSON_DEPTH) ||
	    (root = cJSON_ParseWithLengthOpts(
		 buf_str(&body), body.len + 1, NULL, 1)) == NULL ||
	    !cJSON_IsObject(root)) {
		bad_request(c,
		    "body is not a JSON object (of at most 64 "
		    "levels, without \\u0000)");
		goto out;
	}
	type = get(root, "type");
	if (cJSON_IsString(type) &&
	    strcmp(type->valuestring, "url_verification") == 0) {
		ch = get(root, "challenge");
		if (!cJSON_IsString(ch) || *ch->valuestring == '\0' ||
		    strlen(ch->valuestring) > LIM_CHALLENGE ||
		    !is_ascii(ch->valuestring)) {
			bad_request(c, "challenge is not printable ASCII");
			goto out;
		}
		c->outcome = "url_verification";
		resp_header(
		    &c->resp, "Content-Type", "text/plain; charset=utf-8");
		buf_puts(&c->resp.body, ch->valuestring);
		goto out;
	}
	event = get(root, "event");
	etype = get(event, "type");
	if (!cJSON_IsString(type) ||
	    strcmp(type->valuestring, "event_callback") != 0 ||
	    !cJSON_IsString(etype) || !cJSON_IsObject(event)) {
		/* The outcome names what came: another kind of envelope. */
		ignore(c,
		    cJSON_IsString(type) &&
			    strcmp(type->valuestring, "event_callback") != 0
			? type->valuestring
			: NULL);
	} else if (strcmp(etype->valuestring, "app_uninstalled") == 0) {
		c->outcome = "app_uninstalled";
		revoke(c, &conf, root, event, 1, ts);
	} else if (strcmp(etype->valuestring, "tokens_revoked") == 0) {
		c->outcome = "tokens_revoked";
		revoke(c, &conf, root, event, 0, ts);
	} else
		ignore(c, etype->valuestring);
out:
	cJSON_Delete(root);
	buf_wipe(&body);
	conf_free(&conf);
}
