/* bench/hello_cgi.c: the CGI floor. A trivial CGI program (libc only). */
#include <unistd.h>

int
main(void)
{
	static const char page[] = "Status: 200 OK\r\n"
				   "Content-Type: text/plain\r\n"
				   "\r\n"
				   "hello\n";

	return write(1, page, sizeof(page) - 1) == (ssize_t)(sizeof(page) - 1)
	    ? 0
	    : 1;
}
