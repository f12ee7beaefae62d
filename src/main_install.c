/* slack-install: the install endpoint, as CGI or FastCGI. */
#include "handlers.h"
#include "serve.h"

int
main(int argc, char **argv)
{
	return serve_main("slack-install", handle_install, argc, argv);
}
