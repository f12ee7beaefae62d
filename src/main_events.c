/* slack-events: the Events API endpoint, as CGI or FastCGI. */
#include "handlers.h"
#include "serve.h"

int
main(void)
{
	return serve("slack-events", handle_events);
}
