#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "db.h"
#include "lim.h"
#include "log.h"
#include "serve.h"
#include "util.h"
#include "watch.h"

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

static const char *
fcgi_param(void *arg, const char *name)
{
	return FCGX_GetParam(name, ((FCGX_Request *)arg)->envp);
}

const char *
ctx_var(struct ctx *c, const char *name)
{
	return c->param(c->pctx, name);
}

/* Bytes of a CGI request's body read so far, for drain(). */
static unsigned long long cgi_read;

static size_t
cgi_get(void *unused, char *p, size_t n)
{
	size_t got = fread(p, 1, n, stdin);

	(void)unused;
	cgi_read += got;
	return got;
}

/* Reads what is left of a CGI request's body (up to LIM_DRAIN bytes) after
 * the answer: a program that exits with its body unread can have its
 * answer lost, the web server's write to it failing (mod_cgid resets the
 * socket both share, fcgiwrap gives up once the pipe is full). */
static void
drain(void)
{
	const char *cl = getenv("CONTENT_LENGTH");
	long long n;
	char buf[16384];
	size_t want;

	if (cl == NULL || num_parse(cl, 1, (long long)1 << 62, &n) == -1)
		return;
	if (n > LIM_DRAIN)
		n = LIM_DRAIN;
	while (cgi_read < (unsigned long long)n) {
		want = (size_t)((unsigned long long)n - cgi_read);
		if (cgi_get(NULL, buf,
			want < sizeof(buf) ? want : sizeof(buf)) == 0)
			break;
	}
	explicit_bzero(buf, sizeof(buf));
}

/* FCGX_GetStr returns fewer bytes than asked only at the end. */
static size_t
fcgi_get(void *arg, char *p, size_t n)
{
	int r = FCGX_GetStr(
	    p, n > INT_MAX ? INT_MAX : (int)n, ((FCGX_Request *)arg)->in);

	return r > 0 ? (size_t)r : 0;
}

size_t
ctx_read(struct ctx *c, char *p, size_t n)
{
	return c->get(c->pctx, p, n);
}

/* Writes the response: as CGI to stdout, as FastCGI to the request. */
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
	return FCGX_PutStr(p, (int)n, ((FCGX_Request *)arg)->out) == (int)n
	    ? 0
	    : -1;
}

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

/* How a request is read and answered: as CGI or as FastCGI. */
struct io {
	conf_param_fn param;
	size_t (*get)(void *, char *, size_t);
	put_fn put;
};
static const struct io cgi_io = { cgi_param, cgi_get, cgi_put };
static const struct io fcgi_io = { fcgi_param, fcgi_get, fcgi_put };

/* Serves one request on worker w: the handler, the answer, the log line.
 * arg is the FastCGI request, NULL as CGI. */
static void
one(struct worker *w, handler_fn h, const struct io *io, void *arg)
{
	struct ctx c;
	const char *method;
	char status[64], len[21];
	size_t n;
	double t0 = now_ms();

	watch_poll();
	memset(&c, 0, sizeof(c));
	c.w = w;
	c.param = io->param;
	c.get = io->get;
	c.pctx = arg;
	c.outcome = "ok";
	c.resp = w->resp;
	h(&c);
	/* RFC 3875 4.3.2: no body for HEAD, whatever the status. */
	if ((method = io->param(arg, "REQUEST_METHOD")) != NULL &&
	    strcmp(method, "HEAD") == 0)
		c.resp.no_body = 1;
	n = status_line(status, c.resp.status);
	/* The length, as GET would have it (RFC 9110 8.6), also spares the
	 * web server a chunked answer. */
	dec_str(c.resp.body.len, len);
	resp_header(&c.resp, "Content-Length", len);
	if (io->put(arg, status, n) == 0 &&
	    io->put(arg, c.resp.head.p, c.resp.head.len) == 0 &&
	    io->put(arg, "\r\n", 2) == 0 && !c.resp.no_body &&
	    c.resp.body.len > 0)
		io->put(arg, c.resp.body.p, c.resp.body.len);
	log_request(c.outcome, c.resp.status, c.team, c.enterprise,
	    now_ms() - t0, c.detail);
	w->resp = c.resp;
	resp_recycle(&w->resp);
}

static void
worker_init(struct worker *w)
{
	memset(w, 0, sizeof(*w));
	resp_init(&w->resp);
}

static void
worker_free(struct worker *w)
{
	db_drop(&w->db);
	if (w->http != NULL)
		w->http_free(w->http);
	db_keyfile_free(&w->key);
	resp_free(&w->resp);
}

/* Set before the workers start: the handler. Then shared by them: how
 * many requests are in hand, how many workers still run, and whether the
 * process is stopping. */
static handler_fn handler;
static atomic_int busy, running, stopping;

/* One FastCGI worker: its own request, connection and buffers, until
 * accept fails or the process stops. FCGX_Accept_r is multi-thread safe
 * (fcgiapp.h) and reads a connection's parameters before it returns, so
 * the workers accept side by side: a client that stalls mid-request
 * holds only the worker that took it. */
static void *
worker_run(void *unused)
{
	struct worker w;
	FCGX_Request rq;

	(void)unused;
	worker_init(&w);
	if (FCGX_InitRequest(&rq, 0, 0) == 0) {
		while (!atomic_load(&stopping) && FCGX_Accept_r(&rq) >= 0) {
			atomic_fetch_add(&busy, 1);
			one(&w, handler, &fcgi_io, &rq);
			FCGX_Finish_r(&rq);
			atomic_fetch_sub(&busy, 1);
		}
		FCGX_Free(&rq, 1);
	}
	worker_free(&w);
	/* The last one out wakes serve(), which waits for a signal. */
	if (atomic_fetch_sub(&running, 1) == 1)
		kill(getpid(), SIGTERM);
	return NULL;
}

/* What a FastCGI process settles before its workers start: how many they
 * are, libpq when the database is PostgreSQL. 0, or -1 logged. */
static int
startup(int *nworkers)
{
	struct conf conf;
	char err[512];
	long long n;
	int rc = -1;

	/* conf_load keeps only values that passed their check, whatever
	 * else it found wrong (a request may still supply that). */
	conf_load(&conf, NULL, NULL, 0, err, sizeof(err));
	if (conf.v[CONF_CONCURRENCY] == NULL) {
		log_fatal("%s: invalid: want an integer from 1 to %d",
		    conf_name(CONF_CONCURRENCY), LIM_CONCURRENCY_MAX);
		goto out;
	}
	num_parse(conf.v[CONF_CONCURRENCY], 1, LIM_CONCURRENCY_MAX, &n);
	*nworkers = (int)n;
	if (conf.v[CONF_DB] != NULL && db_is_pg(conf.v[CONF_DB]) &&
	    db_pg_load(err, sizeof(err)) == -1)
		log_warn("%s", err); /* each request will say so too */
	rc = 0;
out:
	conf_free(&conf);
	return rc;
}

/* Starts n workers (the signals of stop blocked, as serve() left them) and
 * returns once one of them came and the requests in hand are answered.
 * Idle workers are left blocked in accept:
 * returning ends them, and the listening socket, which other processes
 * may share (spawn-fcgi -F), is not touched. 0, or 1 if none started. */
static int
run_workers(int n, const sigset_t *stop)
{
	pthread_t t;
	pthread_attr_t attr;
	int i, sig;
	struct timespec tick = { 0, 10 * 1000 * 1000 };

	/* A worker's own stack holds a request's buffers of a few KiB; 256 KiB
	 * leaves room for libcurl and SQLite, and 256 workers stay small. */
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	atomic_store(&running, n);
	for (i = 0; i < n && pthread_create(&t, &attr, worker_run, NULL) == 0;
	     i++)
		;
	pthread_attr_destroy(&attr);
	if (i < n) {
		log_warn("started %d of %d workers", i, n);
		if (atomic_fetch_sub(&running, n - i) == n - i)
			return 1; /* none runs */
	}
	sigwait(stop, &sig);
	atomic_store(&stopping, 1);
	while (atomic_load(&busy) > 0)
		nanosleep(&tick, NULL);
	return 0;
}

int
serve_main(const char *prog, handler_fn h, int argc, char **argv)
{
	if (argc > 1 && getenv("GATEWAY_INTERFACE") == NULL && !is_fastcgi()) {
		if (argc == 2 && strcmp(argv[1], "-V") == 0) {
			printf("%s %s\n", prog, VERSION);
			return 0;
		}
		fprintf(stderr,
		    "usage: %s [-V]\n(a CGI or FastCGI program: the web "
		    "server runs it)\n",
		    prog);
		return 2;
	}
	return serve(prog, h);
}

int
serve(const char *prog, handler_fn h)
{
	struct worker w;
	sigset_t stop;
	int n;

	log_init(prog);
	umask(077); /* the database and its journals: 0600 */
	signal(SIGPIPE, SIG_IGN);
	db_init();

	if (!is_fastcgi()) {
		worker_init(&w);
		one(&w, h, &cgi_io, NULL);
		fflush(stdout);
		drain();
		worker_free(&w);
		return 0;
	}
	/* From here on SIGTERM and SIGINT wait for run_workers' sigwait, which
	 * stops the process once the requests in hand are answered; the
	 * workers inherit the mask. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	if (startup(&n) == -1)
		return 1;
	if (FCGX_Init() != 0) {
		log_fatal("cannot start FastCGI");
		return 1;
	}
	watch_init();
	/* One malloc arena, not one per worker: workers mostly wait, and
	 * each arena would keep its own free memory (some 25 KiB a worker,
	 * measured with 32 at once). */
	mallopt(M_ARENA_MAX, 1);
	handler = h;
	return run_workers(n, &stop);
}
