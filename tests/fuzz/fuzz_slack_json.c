/* Slack's answers: oauth.v2.access (install and refresh) and auth.test. */
#include <string.h>

#include "fuzz.h"
#include "installation.h"
#include "slack.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct installation in;
	struct refreshed r;
	char why[384];
	const char *json = (const char *)data;

	if (slack_parse_access(json, size, 1000, &in, why, sizeof(why)) ==
	    SLACK_OK)
		in.is_enterprise_install = 1;
	slack_parse_auth_test(json, size, &in, why, sizeof(why));
	installation_free(&in);
	slack_parse_refresh(json, size, 1000, "bot", &r, why, sizeof(why));
	slack_refreshed_free(&r);
	slack_parse_refresh(json, size, 1000, "user", &r, why, sizeof(why));
	slack_refreshed_free(&r);
	return 0;
}
