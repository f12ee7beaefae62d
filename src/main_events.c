/* slack-events: the Events API endpoint, as CGI or FastCGI. */
#include "handlers.h"
#include "serve.h"

int
main(int argc, char **argv)
{
	return serve_main("slack-events", handle_events, argc, argv);
}
