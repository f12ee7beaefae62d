/* Slack's Web API: the only code that uses libcurl and cJSON. Everything
 * Slack sends is untrusted: capped, type-checked, copied out. */
#ifndef SLACK_H
#define SLACK_H

#include <stddef.h>
#include <stdint.h>

struct conf;
struct installation;

enum slack_res {
	SLACK_OK,
	SLACK_BAD_CODE, /* invalid_code, code_already_used, invalid_grant */
	SLACK_CONFIG,   /* our credentials or configuration were refused */
	SLACK_FAIL,     /* anything else: ok:false, transport, HTTP, JSON */
};

/* Once per process, before any worker starts. 0 or -1. */
int slack_init(void);
void slack_cleanup(void);

/* An HTTP handle (libcurl's), for one worker at a time; every call below
 * takes one. NULL when out of memory. */
void *slack_http_new(void);
void slack_http_free(void *http);

/* Exchanges code at oauth.v2.access (HTTP Basic client credentials) and
 * fills in. why gets Slack's error code or what went wrong, never a
 * secret. */
enum slack_res slack_oauth_access(void *http, const struct conf *,
    const char *code, struct installation *in, char *why, size_t whylen);

/* Calls auth.test with the bot token and sets in->bot_id (and, for an
 * org-wide install, in->enterprise_url). 0, or -1 with why set. */
int slack_auth_test(void *http, const struct conf *, struct installation *in,
    char *why, size_t whylen);

/* Maps an oauth.v2.access answer (untrusted JSON text) into in, with
 * expiries counted from now. Exposed for tests. */
enum slack_res slack_parse_access(const char *json, size_t len, int64_t now,
    struct installation *in, char *why, size_t whylen);

/* Maps an auth.test answer into in. 0 or -1. Exposed for tests. */
int slack_parse_auth_test(const char *json, size_t len, struct installation *in,
    char *why, size_t whylen);

/* A token rotated by oauth.v2.access with grant_type=refresh_token. */
struct refreshed {
	char *token, *refresh_token, *scope; /* owned; secrets */
	int64_t expires_at;                  /* Unix seconds */
	char *json;                          /* Slack's whole answer */
};

/* Spends refresh_token for a new pair. type is "bot" or "user": an answer
 * for the other kind is refused, as the Python SDK does. */
enum slack_res
slack_refresh(void *http, const struct conf *, const char *refresh_token,
    const char *type, struct refreshed *out, char *why, size_t whylen);
enum slack_res slack_parse_refresh(const char *json, size_t len, int64_t now,
    const char *type, struct refreshed *out, char *why, size_t whylen);
void slack_refreshed_free(struct refreshed *);

/* auth.revoke for token. Returns 0 when the token is revoked now or was
 * already dead (invalid_auth, token_revoked, token_expired,
 * account_inactive), else -1 with why set. */
int slack_revoke(void *http, const struct conf *, const char *token, char *why,
    size_t whylen);

/* Classifies an oauth.v2.access error code. */
enum slack_res slack_classify(const char *error);

#endif
