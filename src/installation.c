/* struct installation, shared by the backends and the Slack client. */
#include <stddef.h>
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

/* How a column's value is kept. */
enum ikind {
	IK_NONE,    /* not a column of this table */
	IK_TEXT,    /* as it is, NULL for NULL */
	IK_KEY,     /* '' for NULL: the SDK's rule for ids */
	IK_BOT_KEY, /* '' for NULL when there is a bot token, else NULL */
	IK_EXPIRY,  /* Unix seconds; NULL for a token that does not expire */
	IK_BOOL,    /* 0 or 1 */
	IK_CLIENT,  /* the client id, given apart */
	IK_STAMP,   /* installed_at, given apart */
};

#define F(field) offsetof(struct installation, field)
static const struct {
	size_t off;
	enum ikind kind[2]; /* in slack_installations, in slack_bots */
} cols[ICOL__MAX] = {
	[ICOL_CLIENT_ID] = { 0, { IK_CLIENT, IK_CLIENT } },
	[ICOL_APP_ID] = { F(app_id), { IK_TEXT, IK_TEXT } },
	[ICOL_ENTERPRISE_ID] = { F(enterprise_id), { IK_KEY, IK_KEY } },
	[ICOL_ENTERPRISE_NAME] = { F(enterprise_name), { IK_TEXT, IK_TEXT } },
	[ICOL_ENTERPRISE_URL] = { F(enterprise_url), { IK_TEXT, IK_NONE } },
	[ICOL_TEAM_ID] = { F(team_id), { IK_KEY, IK_KEY } },
	[ICOL_TEAM_NAME] = { F(team_name), { IK_TEXT, IK_TEXT } },
	[ICOL_BOT_TOKEN] = { F(bot_token), { IK_TEXT, IK_TEXT } },
	[ICOL_BOT_ID] = { F(bot_id), { IK_BOT_KEY, IK_KEY } },
	[ICOL_BOT_USER_ID] = { F(bot_user_id), { IK_TEXT, IK_KEY } },
	[ICOL_BOT_SCOPES] = { F(bot_scopes), { IK_TEXT, IK_TEXT } },
	[ICOL_BOT_REFRESH_TOKEN] = { F(bot_refresh_token),
	    { IK_TEXT, IK_TEXT } },
	[ICOL_BOT_EXPIRES_AT] = { F(bot_expires_at), { IK_EXPIRY, IK_EXPIRY } },
	[ICOL_USER_ID] = { F(user_id), { IK_KEY, IK_NONE } },
	[ICOL_USER_TOKEN] = { F(user_token), { IK_TEXT, IK_NONE } },
	[ICOL_USER_SCOPES] = { F(user_scopes), { IK_TEXT, IK_NONE } },
	[ICOL_USER_REFRESH_TOKEN] = { F(user_refresh_token),
	    { IK_TEXT, IK_NONE } },
	[ICOL_USER_EXPIRES_AT] = { F(user_expires_at), { IK_EXPIRY, IK_NONE } },
	[ICOL_WEBHOOK_URL] = { F(webhook_url), { IK_TEXT, IK_NONE } },
	[ICOL_WEBHOOK_CHANNEL] = { F(webhook_channel), { IK_TEXT, IK_NONE } },
	[ICOL_WEBHOOK_CHANNEL_ID] = { F(webhook_channel_id),
	    { IK_TEXT, IK_NONE } },
	[ICOL_WEBHOOK_CONFIGURATION_URL] = { F(webhook_configuration_url),
	    { IK_TEXT, IK_NONE } },
	[ICOL_IS_ENTERPRISE_INSTALL] = { F(is_enterprise_install),
	    { IK_BOOL, IK_BOOL } },
	[ICOL_TOKEN_TYPE] = { F(token_type), { IK_TEXT, IK_NONE } },
	[ICOL_INSTALLED_AT] = { F(installed_at), { IK_STAMP, IK_STAMP } },
	[ICOL_OAUTH_RESPONSE] = { F(oauth_response), { IK_TEXT, IK_NONE } },
	[ICOL_AUTH_TEST_RESPONSE] = { F(auth_test_response),
	    { IK_TEXT, IK_NONE } },
};
#undef F

#define STR(in, c) (*(char *const *)((const char *)(in) + cols[c].off))

int
installation_col(const struct installation *in, enum itable t, enum icol c,
    const char *client_id, const char *stamp, const char **text, int64_t *num,
    int *isnum)
{
	const char *s;

	*isnum = 0;
	*text = NULL;
	switch (cols[c].kind[t]) {
	case IK_NONE:
		return 0;
	case IK_CLIENT:
		*text = client_id;
		break;
	case IK_STAMP:
		*text = stamp;
		break;
	case IK_TEXT:
		*text = STR(in, c);
		break;
	case IK_BOT_KEY:
		if (in->bot_token == NULL)
			break;
		/* FALLTHROUGH */
	case IK_KEY:
		*text = (s = STR(in, c)) != NULL ? s : "";
		break;
	case IK_EXPIRY:
		*num = *(const int64_t *)((const char *)in + cols[c].off);
		*isnum = *num > 0;
		break;
	case IK_BOOL:
		*num = *(const int *)((const char *)in + cols[c].off) ? 1 : 0;
		*isnum = 1;
		break;
	}
	return 1;
}

int
installation_set_col(
    struct installation *in, enum icol c, const char *text, int64_t num)
{
	char *p = (char *)in + cols[c].off;

	switch (cols[c].kind[ITABLE_INSTALLATIONS]) {
	case IK_NONE:
	case IK_CLIENT:
		return 0;
	case IK_EXPIRY:
		*(int64_t *)p = num;
		return 0;
	case IK_BOOL:
		*(int *)p = num != 0;
		return 0;
	default:
		free_secret(*(char **)p);
		*(char **)p = NULL;
		return text != NULL && (*(char **)p = strdup(text)) == NULL ? -1
									    : 0;
	}
}
