/* slack-oauth-redirect: the redirect endpoint, as CGI or FastCGI. */
#include "handlers.h"
#include "serve.h"
#include "slack.h"

int
main(void)
{
	int rc;

	/* libcurl is initialised by the first request that reaches Slack. */
	rc = serve("slack-oauth-redirect", handle_redirect);
	slack_cleanup();
	return rc;
}
