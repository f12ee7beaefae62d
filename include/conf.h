/* Settings: request parameters > process environment > config file >
 * defaults, validated as a whole. Never read from HTTP_* variables. */
#ifndef CONF_H
#define CONF_H

#include <stddef.h>
#include <stdint.h>

enum conf_key {
	CONF_CLIENT_ID,
	CONF_CLIENT_SECRET,
	CONF_SIGNING_SECRET,
	CONF_SCOPES,
	CONF_USER_SCOPES,
	CONF_REDIRECT_URI,
	CONF_DB,
	CONF_STATE_TTL,
	CONF_DIRECT_INSTALL,
	CONF_SUCCESS_URL,
	CONF_FAILURE_URL,
	CONF_INSTALL_URL,
	CONF_STATE_COOKIE,
	CONF_AUTHORIZE_URL,
	CONF_API_URL,
	CONF_HTTP_TIMEOUT,
	CONF_HTTPS_PROXY,
	CONF_APP_NAME,
	CONF_CONCURRENCY, /* read at start only: never from a request */
	CONF__MAX
};

/* What a program cannot do without. */
#define CONF_NEED_SCOPES  0x01 /* the install endpoint */
#define CONF_NEED_SECRET  0x02 /* the redirect endpoint, the admin command */
#define CONF_NEED_SIGNING 0x04 /* the events endpoint */

struct conf {
	char *v[CONF__MAX]; /* validated; NULL when unset */
	char *mem;          /* the block that holds the values */
	size_t memlen;
	int64_t ttl;  /* SLACK_STATE_TTL */
	long timeout; /* SLACK_HTTP_TIMEOUT */
	int direct;   /* SLACK_DIRECT_INSTALL */
};

/* Looks a name up among the request's parameters; NULL when absent. */
typedef const char *(*conf_param_fn)(void *ctx, const char *name);

/* Fills c from param (may be NULL), the process environment, the config
 * file and the defaults (SLACK_OAUTH_CONCURRENCY never from param). Safe
 * to call from several workers at once. Returns 0, or -1 with err naming the
 * first bad key, or the file and line, never a value; c then still holds every
 * value that was valid. Always conf_free c afterwards. */
int conf_load(struct conf *c, conf_param_fn param, void *ctx, int need,
    char *err, size_t errlen);

/* The config file conf_load reads: SLACK_OAUTH_CONFIG (from param, else
 * the environment) when set, else the first that exists of
 * ~/.config/slack-oauth/slack-oauth.conf (home: HOME, else the password
 * database's entry for the effective uid) and SYSCONFDIR/slack-oauth.conf.
 * why says which and why, for `slack-oauth check`. */
const char *conf_file(conf_param_fn param, void *ctx, char *why, size_t whylen);

/* Wipes and frees what conf_load copied. */
void conf_free(struct conf *);

/* The name of a key, "SLACK_CLIENT_ID" for CONF_CLIENT_ID. */
const char *conf_name(enum conf_key);

/* Validators, exposed for tests: 1 if s is acceptable, else 0. */
int conf_valid_scopes(const char *s);
int conf_valid_page_url(const char *s);  /* http(s) URL or "/path" */
int conf_valid_slack_url(const char *s); /* https, or http on loopback */
int conf_valid_cookie_name(const char *s);

/* Parses config file text (untrusted) into vals[CONF__MAX] (owned copies).
 * Returns 0, or -1 with err "<path>:<line>: <problem>". */
int conf_parse_file(const char *path, const char *text, size_t len,
    char *vals[CONF__MAX], char *err, size_t errlen);

#endif
