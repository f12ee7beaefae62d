/* Serving requests as CGI or FastCGI: the only code that includes libfcgi. */
#ifndef SERVE_H
#define SERVE_H

#include "conf.h"
#include "db.h"
#include "resp.h"

/* What one worker keeps from request to request. serve() owns one per
 * thread (one in all as CGI) and hands it to each request in struct ctx;
 * no other worker ever sees it. */
struct worker {
	struct db *db;         /* opened by the first request that needs it */
	struct db_keyfile key; /* the -key sidecar as last read */
	void *http;            /* a libcurl handle, made on first use */
	void (*http_free)(void *); /* set with http */
	struct resp resp;          /* buffers kept across requests */
};

/* What a handler gets for one request, and what serve() logs of it. */
struct ctx {
	struct worker *w;
	conf_param_fn param; /* the request's CGI/FastCGI variables */
	size_t (*get)(void *, char *, size_t); /* reads its body */
	void *pctx;                            /* for param and get */
	struct resp resp;
	const char *outcome; /* "ok" or a failure reason; a static string */
	char what[64];       /* or here: an outcome of the request's own */
	char team[32], enterprise[32];
	char detail[384]; /* why, for the log: never a secret */
};

typedef void (*handler_fn)(struct ctx *);

/* Answers requests with h until there are no more: one request as CGI, or,
 * when fd 0 is a listening socket, SLACK_OAUTH_CONCURRENCY FastCGI workers
 * (threads) that each accept and answer one request at a time. Everything
 * process-wide is settled before they start; after that only the config
 * file cache (conf.c, under its mutex) and the watch generation (watch.c,
 * atomic) change. h must be safe to run in several workers at once.
 * Returns the exit status. */
int serve(const char *prog, handler_fn h);

/* A program's main: serve() with h, unless it was started by hand with
 * -V, which prints the version and exits. Arguments are looked at only
 * outside a web server: a CGI run may be handed the words of a query that
 * holds no '=' as arguments (RFC 3875 4.4), and those must change
 * nothing. */
int serve_main(const char *prog, handler_fn h, int argc, char **argv);

/* Looks up a request variable, such as "QUERY_STRING". */
const char *ctx_var(struct ctx *, const char *name);

/* Reads up to n bytes of the request body into p (stdin as CGI, the
 * request's stream as FastCGI). Returns how many: fewer than n only when
 * the body ended. */
size_t ctx_read(struct ctx *, char *p, size_t n);

#endif
