/* slack-oauth-redirect: the redirect endpoint, as CGI or FastCGI. */
#include "handlers.h"
#include "serve.h"
#include "slack.h"

int
main(void)
{
	int rc;

	if (slack_init() == -1)
		return 1;
	rc = serve("slack-oauth-redirect", handle_redirect);
	slack_cleanup();
	return rc;
}
