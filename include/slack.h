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

/* Once per process, before any call. 0 or -1. */
int slack_init(void);
void slack_cleanup(void);

/* Exchanges code at oauth.v2.access (HTTP Basic client credentials) and
 * fills in. why gets Slack's error code or what went wrong, never a
 * secret. */
enum slack_res slack_oauth_access(const struct conf *, const char *code,
    struct installation *in, char *why, size_t whylen);

/* Calls auth.test with the bot token and sets in->bot_id (and, for an
 * org-wide install, in->enterprise_url). 0, or -1 with why set. */
int slack_auth_test(const struct conf *, struct installation *in, char *why,
    size_t whylen);

/* Maps an oauth.v2.access answer (untrusted JSON text) into in, with
 * expiries counted from now. Exposed for tests. */
enum slack_res slack_parse_access(const char *json, size_t len, int64_t now,
    struct installation *in, char *why, size_t whylen);

/* Maps an auth.test answer into in. 0 or -1. Exposed for tests. */
int slack_parse_auth_test(const char *json, size_t len,
    struct installation *in, char *why, size_t whylen);

/* Classifies an oauth.v2.access error code. */
enum slack_res slack_classify(const char *error);

#endif
