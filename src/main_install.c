/* slack-install: the install endpoint, as CGI or FastCGI. */
#include "handlers.h"
#include "serve.h"

int
main(void)
{
	return serve("slack-install", handle_install);
}
