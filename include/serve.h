/* Serving requests as CGI or FastCGI: the only code that includes libfcgi. */
#ifndef SERVE_H
#define SERVE_H

#include "conf.h"
#include "resp.h"

/* What a handler gets for one request, and what serve() logs of it. */
struct ctx {
	conf_param_fn param; /* the request's CGI/FastCGI variables */
	void *pctx;
	struct resp resp;
	const char *outcome; /* "ok" or a failure reason; a static string */
	char team[32], enterprise[32];
	char detail[384]; /* why, for the log: never a secret */
};

typedef void (*handler_fn)(struct ctx *);

/* Answers requests with h until there are no more: one request as CGI, or
 * a FastCGI accept loop when fd 0 is a listening socket. Returns the exit
 * status. */
int serve(const char *prog, handler_fn h);

/* Looks up a request variable, such as "QUERY_STRING". */
const char *ctx_var(struct ctx *, const char *name);

#endif
