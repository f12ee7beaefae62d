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

#endif
