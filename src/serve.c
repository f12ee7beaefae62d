#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcgiapp.h>

#include "db.h"
#include "log.h"
#include "serve.h"
#include "util.h"
#include "watch.h"

/* libfcgi, loaded only when the program runs as FastCGI: a CGI run, one
 * process per request, is spared mapping and relocating it. */
#define LIBFCGI "libfcgi.so.0"
static struct {
	__typeof__(FCGX_Init) *init;
	__typeof__(FCGX_InitRequest) *init_request;
	__typeof__(FCGX_Accept_r) *accept;
	__typeof__(FCGX_Finish_r) *finish;
	__typeof__(FCGX_Free) *free;
	__typeof__(FCGX_PutStr) *put_str;
	__typeof__(FCGX_GetParam) *get_param;
} fcgi;

static int
fcgi_load(void)
{
	static const struct dl_sym syms[] = {
		{ "FCGX_Init", (void **)&fcgi.init },
		{ "FCGX_InitRequest", (void **)&fcgi.init_request },
		{ "FCGX_Accept_r", (void **)&fcgi.accept },
		{ "FCGX_Finish_r", (void **)&fcgi.finish },
		{ "FCGX_Free", (void **)&fcgi.free },
		{ "FCGX_PutStr", (void **)&fcgi.put_str },
		{ "FCGX_GetParam", (void **)&fcgi.get_param },
	};
	const char *missing;

	return dl_load(LIBFCGI, syms, sizeof(syms) / sizeof(syms[0]),
		   &missing) != NULL
	    ? 0
	    : -1;
}

/* libfcgi's own test (FCGX_IsCGI): FastCGI when fd 0 is a socket without
 * a peer, the listening socket a FastCGI server is started with. */
static int
is_fastcgi(void)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);

	errno = 0;
	return getpeername(0, (struct sockaddr *)&sa, &len) == -1 &&
	    errno == ENOTCONN;
}

static const char *
cgi_param(void *unused, const char *name)
{
	(void)unused;
	return getenv(name);
}

/* A FastCGI request's parameters. Settings are looked up a dozen times a
 * request: the SLACK_* ones are collected in one pass over envp. */
struct fparams {
	FCGX_Request *rq;
	const char *slack[32]; /* "SLACK_…=value" entries of envp */
	int n;
	int all; /* 0: more than fit; look them up in envp */
};

static void
fparams_collect(struct fparams *f)
{
	char **e;

	f->n = 0;
	f->all = 1;
	for (e = f->rq->envp; *e != NULL; e++)
		if (strncmp(*e, "SLACK_", 6) == 0) {
			if (f->n == 32)
				f->all = 0;
			else
				f->slack[f->n++] = *e;
		}
}

static const char *
fcgi_param(void *arg, const char *name)
{
	struct fparams *f = arg;
	size_t len;
	int i;

	if (strncmp(name, "SLACK_", 6) != 0 || !f->all)
		return fcgi.get_param(name, f->rq->envp);
	len = strlen(name);
	for (i = 0; i < f->n; i++)
		if (strncmp(f->slack[i], name, len) == 0 &&
		    f->slack[i][len] == '=')
			return f->slack[i] + len + 1;
	return NULL;
}

const char *
ctx_var(struct ctx *c, const char *name)
{
	return c->param(c->pctx, name);
}

/* Writes the response as CGI: a Status header, the headers, the body. */
typedef int (*put_fn)(void *, const char *, size_t);

static int
cgi_put(void *unused, const char *p, size_t n)
{
	(void)unused;
	return fwrite(p, 1, n, stdout) == n ? 0 : -1;
}

static int
fcgi_put(void *arg, const char *p, size_t n)
{
	struct fparams *f = arg;

	return fcgi.put_str(p, (int)n, f->rq->out) == (int)n ? 0 : -1;
}

/* The response of the request being served: its buffers serve request
 * after request. */
static struct resp kept;

/* "Status: 200 OK\r\n" into out; returns its length. */
static size_t
status_line(char out[64], int status)
{
	const char *reason = resp_reason(status);
	size_t n = 8, r = strlen(reason);

	memcpy(out, "Status: ", 8);
	n += dec_str((unsigned)status, out + n);
	out[n++] = ' ';
	memcpy(out + n, reason, r);
	memcpy(out + n + r, "\r\n", 3);
	return n + r + 2;
}

static void
one(handler_fn h, conf_param_fn param, void *pctx, put_fn put, void *out)
{
	struct ctx c;
	const char *method;
	char status[64], len[21];
	size_t n;
	double t0 = now_ms();

	watch_poll();
	memset(&c, 0, sizeof(c));
	c.param = param;
	c.pctx = pctx;
	c.outcome = "ok";
	if (kept.head.max == 0)
		resp_init(&kept);
	c.resp = kept;
	h(&c);
	/* RFC 3875 4.3.2: no body for HEAD, whatever the status. */
	if ((method = param(pctx, "REQUEST_METHOD")) != NULL &&
	    strcmp(method, "HEAD") == 0)
		c.resp.no_body = 1;
	n = status_line(status, c.resp.status);
	/* The length, as GET would have it (RFC 9110 8.6), also spares the
	 * web server a chunked answer. */
	dec_str(c.resp.body.len, len);
	resp_header(&c.resp, "Content-Length", len);
	if (put(out, status, n) == 0 &&
	    put(out, c.resp.head.p, c.resp.head.len) == 0 &&
	    put(out, "\r\n", 2) == 0 && !c.resp.no_body && c.resp.body.len > 0)
		put(out, c.resp.body.p, c.resp.body.len);
	log_request(c.outcome, c.resp.status, c.team, c.enterprise,
	    now_ms() - t0, c.detail);
	kept = c.resp;
	resp_recycle(&kept);
}

int
serve(const char *prog, handler_fn h)
{
	FCGX_Request rq;
	struct fparams f = { &rq, { NULL }, 0, 1 };

	log_init(prog);
	umask(077); /* the database and its journals: 0600 */
	signal(SIGPIPE, SIG_IGN);

	if (!is_fastcgi()) {
		one(h, cgi_param, NULL, cgi_put, NULL);
		fflush(stdout);
		resp_free(&kept);
		db_release();
		return 0;
	}
	if (fcgi_load() == -1) {
		log_warn(
		    "cannot load " LIBFCGI " (apt-get install libfcgi0ldbl)");
		return 1;
	}
	if (fcgi.init() != 0 || fcgi.init_request(&rq, 0, 0) != 0) {
		log_warn("cannot start FastCGI");
		return 1;
	}
	watch_init();
	while (fcgi.accept(&rq) >= 0) {
		fparams_collect(&f);
		one(h, fcgi_param, &f, fcgi_put, &f);
		fcgi.finish(&rq);
	}
	fcgi.free(&rq, 1);
	resp_free(&kept);
	db_release();
	return 0;
}
