#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "buf.h"
#include "conf.h"
#include "installation.h"
#include "lim.h"
#include "slack.h"
#include "util.h"

#define USER_AGENT "slack-oauth-fcgi/1.0"

/* curl_global_init is not thread-safe everywhere: once, before any
 * worker starts. Each worker then has its own handle, which keeps its
 * connections to Slack warm from one request to the next. */
int
slack_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void
slack_cleanup(void)
{
	curl_global_cleanup();
}

void *
slack_http_new(void)
{
	return curl_easy_init();
}

void
slack_http_free(void *http)
{
	curl_easy_cleanup(http);
}

struct sink {
	struct buf *b;
	int over; /* the answer passed the buffer's cap */
};

/* The write callback: keeps at most LIM_SLACK_BODY bytes, then fails the
 * transfer. */
static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;

	if ((n != 0 && size > (size_t)-1 / n) ||
	    buf_add(s->b, p, size * n) == -1) {
		s->over = 1;
		return 0;
	}
	return size * n;
}

/* POSTs form to {SLACK_API_URL}method. With bearer, sends it as a Bearer
 * token; else HTTP Basic client credentials. Returns 0 with the body in
 * out, or -1 with why set. */
static int
post(CURL *curl, const struct conf *c, const char *method, const char *form,
    const char *bearer, struct buf *out, char *why, size_t whylen)
{
	struct curl_slist *hdrs = NULL;
	struct buf url, auth;
	struct sink sink = { out, 0 };
	const char *api = c->v[CONF_API_URL];
	long status = 0;
	CURLcode cc;
	int rc = -1;

	buf_init(&url, LIM_CONF_VALUE + 64);
	buf_init(&auth, 1024);
	if (buf_puts(&url, api) == -1 ||
	    (api[strlen(api) - 1] != '/' && buf_putc(&url, '/') == -1) ||
	    buf_puts(&url, method) == -1) {
		snprintf(why, whylen, "%s: URL too long", method);
		goto out;
	}
	curl_easy_setopt(curl, CURLOPT_URL, buf_str(&url));
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR,
	    strncmp(api, "https:", 6) == 0 ? "https" : "http");
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(curl, CURLOPT_PROXY,
	    c->v[CONF_HTTPS_PROXY] != NULL ? c->v[CONF_HTTPS_PROXY] : "");
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT, c->timeout);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, c->timeout);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, USER_AGENT);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, form);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
	if (bearer != NULL) {
		if (buf_puts(&auth, "Authorization: Bearer ") == -1 ||
		    buf_puts(&auth, bearer) == -1 ||
		    (hdrs = curl_slist_append(NULL, buf_str(&auth))) == NULL) {
			snprintf(why, whylen, "%s: out of memory", method);
			goto out;
		}
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_NONE);
		curl_easy_setopt(curl, CURLOPT_USERNAME, NULL);
		curl_easy_setopt(curl, CURLOPT_PASSWORD, NULL);
	} else {
		curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(curl, CURLOPT_USERNAME, c->v[CONF_CLIENT_ID]);
		curl_easy_setopt(
		    curl, CURLOPT_PASSWORD, c->v[CONF_CLIENT_SECRET]);
	}

	cc = curl_easy_perform(curl);
	if (cc == CURLE_WRITE_ERROR && sink.over) {
		snprintf(why, whylen, "%s: answer over %d bytes", method,
		    LIM_SLACK_BODY);
		goto out;
	}
	if (cc != CURLE_OK) {
		snprintf(why, whylen, "%s: %s", method, curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		snprintf(why, whylen, "%s: HTTP %ld", method, status);
		goto out;
	}
	rc = 0;
out:
	/* The handle keeps copies of the options; drop the secret ones. */
	curl_easy_setopt(curl, CURLOPT_PASSWORD, "");
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, NULL);
	curl_slist_free_all(hdrs);
	buf_wipe(&auth);
	buf_free(&url);
	return rc;
}

enum slack_res
slack_classify(const char *e)
{
	static const char *const bad_code[] = { "invalid_code",
		"code_already_used", "invalid_grant", NULL };
	static const char *const config[] = { "bad_client_secret",
		"invalid_client_id", "bad_redirect_uri",
		"oauth_authorization_url_mismatch", "no_scopes", NULL };
	size_t i;

	for (i = 0; bad_code[i] != NULL; i++)
		if (strcmp(e, bad_code[i]) == 0)
			return SLACK_BAD_CODE;
	for (i = 0; config[i] != NULL; i++)
		if (strcmp(e, config[i]) == 0)
			return SLACK_CONFIG;
	return SLACK_FAIL;
}

/* Copies member name of o, which must be a string when present, into *dst.
 * Returns 0 (absent or null leaves *dst NULL) or -1 on a wrong type. */
static int
get_str(const cJSON *o, const char *name, char **dst)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (v == NULL || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v) || v->valuestring == NULL ||
	    (*dst = strdup(v->valuestring)) == NULL)
		return -1;
	return 0;
}

/* An object member that must be an object (or null/absent: *dst NULL). */
static int
get_obj(const cJSON *o, const char *name, const cJSON **dst)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	*dst = NULL;
	if (v == NULL || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsObject(v))
		return -1;
	*dst = v;
	return 0;
}

/* expires_in, when present, as an absolute Unix time in *at. */
static int
get_expiry(const cJSON *o, int64_t now, int64_t *at)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "expires_in");

	*at = 0;
	if (v == NULL || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e9)
		return -1;
	*at = now + (int64_t)v->valuedouble;
	return 0;
}

static int
get_bool(const cJSON *o, const char *name, int *dst)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	*dst = 0;
	if (v == NULL || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsBool(v))
		return -1;
	*dst = cJSON_IsTrue(v);
	return 0;
}

/* The shapes of the values we keep and send on (a token goes out as a
 * header line; an id into a URL and the log). */
enum shape { SH_ID, SH_TOKEN, SH_TYPE, SH_SCOPES, SH_URL, SH_NAME };

static int
shaped(const char *s, enum shape sh)
{
	switch (sh) {
	case SH_ID:
		return *s == '\0' || is_token_ascii(s, LIM_SLACK_ID);
	case SH_TOKEN:
		return is_token_ascii(s, LIM_SLACK_TOKEN);
	case SH_TYPE:
		return *s == '\0' || is_token_ascii(s, 32);
	case SH_SCOPES:
		return *s == '\0' || is_token_ascii(s, LIM_SLACK_SCOPES);
	case SH_URL:
		return *s == '\0' ||
		    (strncmp(s, "https://", 8) == 0 &&
			is_token_ascii(s, LIM_CONF_VALUE));
	case SH_NAME:
		return *s == '\0' || is_utf8_text(s, (size_t)-1);
	}
	return 0;
}

/* The first field of in not of its shape, or NULL. */
static const char *
misshapen(const struct installation *in)
{
#define F(field, sh)                                                           \
	{                                                                      \
		offsetof(struct installation, field), sh, #field               \
	}
	static const struct {
		size_t off;
		enum shape sh;
		const char *name;
	} f[] = {
		F(app_id, SH_ID),
		F(enterprise_id, SH_ID),
		F(enterprise_name, SH_NAME),
		F(enterprise_url, SH_URL),
		F(team_id, SH_ID),
		F(team_name, SH_NAME),
		F(bot_token, SH_TOKEN),
		F(bot_id, SH_ID),
		F(bot_user_id, SH_ID),
		F(bot_scopes, SH_SCOPES),
		F(bot_refresh_token, SH_TOKEN),
		F(user_id, SH_ID),
		F(user_token, SH_TOKEN),
		F(user_scopes, SH_SCOPES),
		F(user_refresh_token, SH_TOKEN),
		F(webhook_url, SH_URL),
		F(webhook_channel, SH_NAME),
		F(webhook_channel_id, SH_ID),
		F(webhook_configuration_url, SH_URL),
		F(token_type, SH_TYPE),
	};
#undef F
	const char *v;
	size_t i;

	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if ((v = *(char *const *)((const char *)in + f[i].off)) !=
			NULL &&
		    !shaped(v, f[i].sh))
			return f[i].name;
	return NULL;
}

/* Slack's answer as cJSON, or NULL: also for a \u0000 escape, which would
 * cut a value short unseen, and for nesting deeper than any answer. */
static cJSON *
parse(const char *json, size_t len)
{
	if (!json_is_plain(json, len, LIM_JSON_DEPTH))
		return NULL;
	return cJSON_ParseWithLength(json, len);
}

enum slack_res
slack_parse_access(const char *json, size_t len, int64_t now,
    struct installation *in, char *why, size_t whylen)
{
	const cJSON *ok, *team, *ent, *user, *hook, *err;
	cJSON *root;
	enum slack_res res = SLACK_FAIL;
	const char *what = "not JSON (without \\u0000, nested 64 deep at most)";
	char shape[64];

	memset(in, 0, sizeof(*in));
	if ((root = parse(json, len)) == NULL || !cJSON_IsObject(root))
		goto fail;
	what = "no boolean \"ok\"";
	if (!cJSON_IsBool(ok = cJSON_GetObjectItemCaseSensitive(root, "ok")))
		goto fail;
	if (!cJSON_IsTrue(ok)) {
		err = cJSON_GetObjectItemCaseSensitive(root, "error");
		if (!cJSON_IsString(err) || err->valuestring == NULL) {
			what = "ok:false without an error";
			goto fail;
		}
		snprintf(why, whylen, "oauth.v2.access: %s", err->valuestring);
		res = slack_classify(err->valuestring);
		goto out;
	}

	what = "a field of the wrong type";
	if (get_obj(root, "team", &team) || get_obj(root, "enterprise", &ent) ||
	    get_obj(root, "authed_user", &user) ||
	    get_obj(root, "incoming_webhook", &hook))
		goto fail;
	if (get_str(root, "app_id", &in->app_id) ||
	    get_str(root, "access_token", &in->bot_token) ||
	    get_str(root, "token_type", &in->token_type) ||
	    get_str(root, "bot_user_id", &in->bot_user_id) ||
	    get_bool(root, "is_enterprise_install", &in->is_enterprise_install))
		goto fail;
	if (in->bot_token != NULL &&
	    (get_str(root, "scope", &in->bot_scopes) ||
		get_str(root, "refresh_token", &in->bot_refresh_token) ||
		get_expiry(root, now, &in->bot_expires_at)))
		goto fail;
	if (team != NULL &&
	    (get_str(team, "id", &in->team_id) ||
		get_str(team, "name", &in->team_name)))
		goto fail;
	if (ent != NULL &&
	    (get_str(ent, "id", &in->enterprise_id) ||
		get_str(ent, "name", &in->enterprise_name)))
		goto fail;
	if (user != NULL &&
	    (get_str(user, "id", &in->user_id) ||
		get_str(user, "access_token", &in->user_token) ||
		get_str(user, "scope", &in->user_scopes) ||
		get_str(user, "refresh_token", &in->user_refresh_token) ||
		get_expiry(user, now, &in->user_expires_at)))
		goto fail;
	if (hook != NULL &&
	    (get_str(hook, "url", &in->webhook_url) ||
		get_str(hook, "channel", &in->webhook_channel) ||
		get_str(hook, "channel_id", &in->webhook_channel_id) ||
		get_str(
		    hook, "configuration_url", &in->webhook_configuration_url)))
		goto fail;

	what = "no app_id";
	if (in->app_id == NULL || *in->app_id == '\0')
		goto fail;
	what = "neither a team nor an enterprise id";
	if ((in->team_id == NULL || *in->team_id == '\0') &&
	    (in->enterprise_id == NULL || *in->enterprise_id == '\0'))
		goto fail;
	what = "no access token";
	if (in->bot_token == NULL && in->user_token == NULL)
		goto fail;
	if ((what = misshapen(in)) != NULL) {
		snprintf(shape, sizeof(shape), "a malformed %s", what);
		what = shape;
		goto fail;
	}
	if ((in->oauth_response = strndup(json, len)) == NULL) {
		what = "out of memory";
		goto fail;
	}
	res = SLACK_OK;
	goto out;
fail:
	snprintf(why, whylen, "oauth.v2.access: unexpected answer: %s", what);
	res = SLACK_FAIL;
out:
	if (res != SLACK_OK)
		installation_free(in);
	cJSON_Delete(root);
	return res;
}

int
slack_parse_auth_test(const char *json, size_t len, struct installation *in,
    char *why, size_t whylen)
{
	const cJSON *ok, *err;
	cJSON *root;
	char *bot_id = NULL, *url = NULL;
	int rc = -1;

	if ((root = parse(json, len)) == NULL ||
	    !cJSON_IsBool(ok = cJSON_GetObjectItemCaseSensitive(root, "ok"))) {
		snprintf(why, whylen, "auth.test: unexpected answer");
		goto out;
	}
	if (!cJSON_IsTrue(ok)) {
		err = cJSON_GetObjectItemCaseSensitive(root, "error");
		snprintf(why, whylen, "auth.test: %s",
		    cJSON_IsString(err) && err->valuestring != NULL
			? err->valuestring
			: "ok:false");
		goto out;
	}
	if (get_str(root, "bot_id", &bot_id) || get_str(root, "url", &url) ||
	    bot_id == NULL) {
		snprintf(
		    why, whylen, "auth.test: unexpected answer: no bot_id");
		goto out;
	}
	if (!shaped(bot_id, SH_ID) || (url != NULL && !shaped(url, SH_URL))) {
		snprintf(why, whylen,
		    "auth.test: unexpected answer: a malformed %s",
		    shaped(bot_id, SH_ID) ? "url" : "bot_id");
		goto out;
	}
	free(in->bot_id);
	in->bot_id = bot_id;
	bot_id = NULL;
	if (in->is_enterprise_install && url != NULL) {
		free(in->enterprise_url);
		in->enterprise_url = url;
		url = NULL;
	}
	free(in->auth_test_response);
	in->auth_test_response = strndup(json, len);
	rc = 0;
out:
	free(bot_id);
	free(url);
	cJSON_Delete(root);
	return rc;
}

enum slack_res
slack_oauth_access(void *http, const struct conf *c, const char *code,
    struct installation *in, char *why, size_t whylen)
{
	struct buf form, body;
	enum slack_res res = SLACK_FAIL;

	memset(in, 0, sizeof(*in));
	buf_init(&form, LIM_CODE * 3 + LIM_CONF_VALUE * 3 + 64);
	buf_init(&body, LIM_SLACK_BODY);
	if (buf_puts(&form, "code=") == -1 || pct_encode(&form, code) == -1 ||
	    (c->v[CONF_REDIRECT_URI] != NULL &&
		(buf_puts(&form, "&redirect_uri=") == -1 ||
		    pct_encode(&form, c->v[CONF_REDIRECT_URI]) == -1))) {
		snprintf(why, whylen, "oauth.v2.access: request too long");
		goto out;
	}
	if (post(http, c, "oauth.v2.access", buf_str(&form), NULL, &body, why,
		whylen) == 0)
		res = slack_parse_access(
		    buf_str(&body), body.len, now_unix(), in, why, whylen);
out:
	buf_wipe(&form);
	buf_wipe(&body);
	return res;
}

int
slack_auth_test(void *http, const struct conf *c, struct installation *in,
    char *why, size_t whylen)
{
	struct buf body;
	int rc = -1;

	buf_init(&body, LIM_SLACK_BODY);
	if (post(http, c, "auth.test", "", in->bot_token, &body, why, whylen) ==
	    0)
		rc = slack_parse_auth_test(
		    buf_str(&body), body.len, in, why, whylen);
	buf_wipe(&body);
	return rc;
}

void
slack_refreshed_free(struct refreshed *r)
{
	free_secret(r->token);
	free_secret(r->refresh_token);
	free_secret(r->scope);
	free_secret(r->json);
	memset(r, 0, sizeof(*r));
}

enum slack_res
slack_parse_refresh(const char *json, size_t len, int64_t now, const char *type,
    struct refreshed *out, char *why, size_t whylen)
{
	const cJSON *ok, *err;
	cJSON *root;
	char *tt = NULL;
	enum slack_res res = SLACK_FAIL;

	memset(out, 0, sizeof(*out));
	if ((root = parse(json, len)) == NULL ||
	    !cJSON_IsBool(ok = cJSON_GetObjectItemCaseSensitive(root, "ok"))) {
		snprintf(why, whylen,
		    "oauth.v2.access: unexpected answer: not JSON");
		goto out;
	}
	if (!cJSON_IsTrue(ok)) {
		err = cJSON_GetObjectItemCaseSensitive(root, "error");
		snprintf(why, whylen, "oauth.v2.access: %s",
		    cJSON_IsString(err) && err->valuestring != NULL
			? err->valuestring
			: "ok:false");
		res = cJSON_IsString(err) && err->valuestring != NULL
		    ? slack_classify(err->valuestring)
		    : SLACK_FAIL;
		goto out;
	}
	if (get_str(root, "token_type", &tt) ||
	    get_str(root, "access_token", &out->token) ||
	    get_str(root, "refresh_token", &out->refresh_token) ||
	    get_str(root, "scope", &out->scope) ||
	    get_expiry(root, now, &out->expires_at) || out->token == NULL ||
	    out->refresh_token == NULL || out->expires_at == 0) {
		snprintf(why, whylen,
		    "oauth.v2.access: unexpected answer: no token, "
		    "refresh_token and expires_in");
		goto out;
	}
	if (!shaped(out->token, SH_TOKEN) ||
	    !shaped(out->refresh_token, SH_TOKEN) ||
	    (out->scope != NULL && !shaped(out->scope, SH_SCOPES))) {
		snprintf(why, whylen,
		    "oauth.v2.access: unexpected answer: a malformed token, "
		    "refresh_token or scope");
		goto out;
	}
	if (tt == NULL || strcmp(tt, type) != 0) {
		snprintf(why, whylen,
		    "oauth.v2.access: answered a token_type other "
		    "than %s",
		    type);
		goto out;
	}
	if ((out->json = strndup(json, len)) == NULL)
		goto out;
	res = SLACK_OK;
out:
	if (res != SLACK_OK)
		slack_refreshed_free(out);
	free(tt);
	cJSON_Delete(root);
	return res;
}

enum slack_res
slack_refresh(void *http, const struct conf *c, const char *refresh_token,
    const char *type, struct refreshed *out, char *why, size_t whylen)
{
	struct buf form, body;
	enum slack_res res = SLACK_FAIL;

	memset(out, 0, sizeof(*out));
	buf_init(&form, 4096);
	buf_init(&body, LIM_SLACK_BODY);
	if (buf_puts(&form, "grant_type=refresh_token&refresh_token=") == -1 ||
	    pct_encode(&form, refresh_token) == -1) {
		snprintf(
		    why, whylen, "oauth.v2.access: refresh token too long");
		goto out;
	}
	if (post(http, c, "oauth.v2.access", buf_str(&form), NULL, &body, why,
		whylen) == 0)
		res = slack_parse_refresh(buf_str(&body), body.len, now_unix(),
		    type, out, why, whylen);
out:
	buf_wipe(&form);
	buf_wipe(&body);
	return res;
}

int
slack_revoke(void *http, const struct conf *c, const char *token, char *why,
    size_t whylen)
{
	static const char *const dead[] = { "invalid_auth", "token_revoked",
		"token_expired", "account_inactive", "not_authed", NULL };
	const cJSON *ok, *err;
	struct buf body;
	cJSON *root = NULL;
	int rc = -1;
	size_t i;

	buf_init(&body, LIM_SLACK_BODY);
	if (post(http, c, "auth.revoke", "", token, &body, why, whylen) == -1)
		goto out;
	if ((root = parse(buf_str(&body), body.len)) == NULL ||
	    !cJSON_IsBool(ok = cJSON_GetObjectItemCaseSensitive(root, "ok"))) {
		snprintf(why, whylen, "auth.revoke: unexpected answer");
		goto out;
	}
	if (cJSON_IsTrue(ok)) {
		rc = 0;
		goto out;
	}
	err = cJSON_GetObjectItemCaseSensitive(root, "error");
	if (!cJSON_IsString(err) || err->valuestring == NULL) {
		snprintf(why, whylen, "auth.revoke: ok:false");
		goto out;
	}
	snprintf(why, whylen, "auth.revoke: %s", err->valuestring);
	for (i = 0; dead[i] != NULL; i++)
		if (strcmp(err->valuestring, dead[i]) == 0)
			rc = 0;
out:
	cJSON_Delete(root);
	buf_wipe(&body);
	return rc;
}
