/* One grant from Slack, as the installation tables hold it. All strings
 * are owned (NULL when Slack sent nothing); tokens are secrets. */
#ifndef INSTALLATION_H
#define INSTALLATION_H

#include <stdint.h>

struct installation {
	char *app_id;
	char *enterprise_id, *enterprise_name, *enterprise_url;
	char *team_id, *team_name;
	char *bot_token, *bot_id, *bot_user_id, *bot_scopes, *bot_refresh_token;
	int64_t bot_expires_at; /* Unix seconds; 0: does not expire */
	char *user_id, *user_token, *user_scopes, *user_refresh_token;
	int64_t user_expires_at; /* Unix seconds; 0: does not expire */
	char *webhook_url, *webhook_channel, *webhook_channel_id,
	    *webhook_configuration_url;
	int is_enterprise_install;
	char *token_type;
	char *oauth_response;     /* the whole oauth.v2.access answer */
	char *auth_test_response; /* the whole auth.test answer, if any */
	char *installed_at;       /* as stored; set when read back */
};

/* Wipes and frees every field, leaving the struct zeroed. */
void installation_free(struct installation *);

/* The columns of the installation tables, in the one order both backends
 * bind and read them: a row read with INSTALLATION_COLS has column c at
 * index c (ICOL_CLIENT_ID's place holding the row id, not read back), and
 * an INSERT binds, in this order, the columns its table has. The SQL text
 * stays with each backend. */
enum icol {
	ICOL_CLIENT_ID,
	ICOL_APP_ID,
	ICOL_ENTERPRISE_ID,
	ICOL_ENTERPRISE_NAME,
	ICOL_ENTERPRISE_URL,
	ICOL_TEAM_ID,
	ICOL_TEAM_NAME,
	ICOL_BOT_TOKEN,
	ICOL_BOT_ID,
	ICOL_BOT_USER_ID,
	ICOL_BOT_SCOPES,
	ICOL_BOT_REFRESH_TOKEN,
	ICOL_BOT_EXPIRES_AT,
	ICOL_USER_ID,
	ICOL_USER_TOKEN,
	ICOL_USER_SCOPES,
	ICOL_USER_REFRESH_TOKEN,
	ICOL_USER_EXPIRES_AT,
	ICOL_WEBHOOK_URL,
	ICOL_WEBHOOK_CHANNEL,
	ICOL_WEBHOOK_CHANNEL_ID,
	ICOL_WEBHOOK_CONFIGURATION_URL,
	ICOL_IS_ENTERPRISE_INSTALL,
	ICOL_TOKEN_TYPE,
	ICOL_INSTALLED_AT,
	ICOL_OAUTH_RESPONSE,
	ICOL_AUTH_TEST_RESPONSE,
	ICOL__MAX
};

enum itable { ITABLE_INSTALLATIONS, ITABLE_BOTS };

/* The value column c of table t gets for in: 0 when t has no such column;
 * else 1 with either *isnum set and *num the number, or *text (NULL for
 * SQL NULL; pointing into in, client_id or stamp). */
int installation_col(const struct installation *in, enum itable t, enum icol c,
    const char *client_id, const char *stamp, const char **text, int64_t *num,
    int *isnum);

/* Sets column c of in from the row read: a copy of text (NULL for SQL
 * NULL) for a text column, num (0 for NULL) for a number or a flag. 0, or
 * -1 when out of memory. */
int installation_set_col(
    struct installation *in, enum icol c, const char *text, int64_t num);

#endif
