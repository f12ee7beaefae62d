/* struct installation, shared by the backends and the Slack client. */
#include <stdlib.h>
#include <string.h>

#include "installation.h"
#include "util.h"

void
installation_free(struct installation *in)
{
	char **s[] = { &in->app_id, &in->enterprise_id, &in->enterprise_name,
		&in->enterprise_url, &in->team_id, &in->team_name,
		&in->bot_token, &in->bot_id, &in->bot_user_id, &in->bot_scopes,
		&in->bot_refresh_token, &in->user_id, &in->user_token,
		&in->user_scopes, &in->user_refresh_token, &in->webhook_url,
		&in->webhook_channel, &in->webhook_channel_id,
		&in->webhook_configuration_url, &in->token_type,
		&in->oauth_response, &in->auth_test_response,
		&in->installed_at };
	size_t i;

	for (i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		free_secret(*s[i]);
	memset(in, 0, sizeof(*in));
}
