/* bench/hello_fcgi.c: the FastCGI floor. A trivial libfcgi program that
 * answers every request with a tiny page, as cheaply as libfcgi allows. */
#include <fcgiapp.h>

int
main(void)
{
	static const char page[] = "Status: 200 OK\r\n"
				   "Content-Type: text/plain\r\n"
				   "\r\n"
				   "hello\n";
	FCGX_Request rq;

	if (FCGX_Init() != 0 || FCGX_InitRequest(&rq, 0, 0) != 0)
		return 1;
	while (FCGX_Accept_r(&rq) >= 0) {
		FCGX_PutStr(page, sizeof(page) - 1, rq.out);
		FCGX_Finish_r(&rq);
	}
	return 0;
}
