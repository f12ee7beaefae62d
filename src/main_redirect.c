/* slack-oauth-redirect: the redirect endpoint, as CGI or FastCGI. */
#include "handlers.h"
#include "log.h"
#include "serve.h"
#include "slack.h"

int
main(int argc, char **argv)
{
	int rc;

	/* libcurl's global state, before any worker starts. */
	if (slack_init() == -1) {
		log_init("slack-oauth-redirect");
		log_fatal("cannot initialise libcurl");
		return 1;
	}
	rc = serve_main("slack-oauth-redirect", handle_redirect, argc, argv);
	slack_cleanup();
	return rc;
}
