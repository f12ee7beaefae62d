/*
 * bench/fake_slack.c: a minimal, fast fake of Slack's Web API for the
 * benchmark (tests/fake_slack.py is the faithful one, for the tests).
 *
 *   POST /api/oauth.v2.access   any code: a fixed bot-shaped answer
 *                               (the access token numbered, so each differs)
 *   POST /api/auth.test         any token: the bot's identity
 *   anything else               404 {"ok":false,"error":"unknown_method"}
 *
 * HTTP/1.1 with keep-alive, epoll, one thread per -t (SO_REUSEPORT).
 * Listens on 127.0.0.1 only.
 * Usage: fake_slack [-p PORT] [-t THREADS] [-l MS]
 * Prints "port N" on stdout once it listens (PORT 0: any free port).
 *
 * -l MS: Slack's latency.  Each request is answered MS milliseconds after it
 * was read, without holding anything else: its connection waits in its
 * thread's queue (constant latency, so the queue is in due order) and the
 * thread's epoll_wait wakes for the head of it; other connections are read
 * and answered meanwhile.  A waiting connection is not read (one request at
 * a time on it, as libcurl sends them); waits cost a queue link each.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/epoll.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define BUFSZ 16384

struct conn {
	int fd;
	int waiting;       /* in the wait queue (-l), its answer held */
	long long due;     /* CLOCK_MONOTONIC ns when the answer goes */
	struct conn *next; /* in the wait queue */
	size_t in_len;
	size_t out_len, out_off;
	char in[BUFSZ];
	char out[BUFSZ];
};

/* A thread's connections waiting out the latency, oldest first. */
struct waitq {
	struct conn *head, *tail;
};

static atomic_ulong counter;
static int port;
static long long latency_ns; /* -l, in ns; 0: answer at once */

static long long
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static const char access_fmt[] =
    "{\"ok\":true,\"app_id\":\"A0APP0001\",\"authed_user\":{\"id\":\"U0HUMAN01\"},"
    "\"scope\":\"chat:write,commands\",\"token_type\":\"bot\","
    "\"access_token\":\"xoxb-1000000001-%012lu-benchbenchbenchbenchbench\","
    "\"bot_user_id\":\"U0BOT0001\","
    "\"team\":{\"id\":\"T0TEAM001\",\"name\":\"Example Team\"},"
    "\"enterprise\":null,\"is_enterprise_install\":false}";
static const char auth_test[] =
    "{\"ok\":true,\"url\":\"https://example.slack.com/\",\"team\":\"Example Team\","
    "\"user\":\"examplebot\",\"team_id\":\"T0TEAM001\",\"user_id\":\"U0BOT0001\","
    "\"bot_id\":\"B0BOT0001\",\"is_enterprise_install\":false}";
static const char unknown[] = "{\"ok\":false,\"error\":\"unknown_method\"}";

static const char *
find_header(const char *h, const char *end, const char *name)
{
	size_t n = strlen(name);
	const char *p;

	for (p = h; p < end;) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			break;
		if ((size_t)(eol - p) > n && strncasecmp(p, name, n) == 0 &&
		    p[n] == ':')
			return p + n + 1;
		p = eol + 1;
	}
	return NULL;
}

static void
respond(struct conn *c, int status, const char *body, size_t blen)
{
	int n = snprintf(c->out + c->out_len, BUFSZ - c->out_len,
	    "HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=utf-8\r\n"
	    "Content-Length: %zu\r\n\r\n",
	    status, status == 200 ? "OK" : "Not Found", blen);

	if (n < 0 || (size_t)n + blen > BUFSZ - c->out_len)
		return;
	c->out_len += (size_t)n;
	memcpy(c->out + c->out_len, body, blen);
	c->out_len += blen;
}

/* Answers the complete requests in c->in, at most max of them (0: all),
 * into c->out; returns how many, or -1 to close. */
static int
handle(struct conn *c, int max)
{
	char body[1024];
	size_t off = 0;
	int done = 0;

	while (max == 0 || done < max) {
		char *h = c->in + off, *end;
		const char *cl, *ex;
		size_t avail = c->in_len - off, hlen, blen = 0;

		end = memmem(h, avail, "\r\n\r\n", 4);
		if (end == NULL)
			break;
		hlen = (size_t)(end - h) + 4;
		if ((cl = find_header(h, end + 2, "Content-Length")) != NULL)
			blen = strtoul(cl, NULL, 10);
		if (hlen + blen > BUFSZ)
			return -1;
		if (hlen + blen > avail) {
			ex = find_header(h, end + 2, "Expect");
			if (ex != NULL &&
			    strncasecmp(ex + strspn(ex, " "), "100-continue",
				12) == 0 &&
			    avail == hlen) {
				static const char cont[] =
				    "HTTP/1.1 100 Continue\r\n\r\n";
				if (write(c->fd, cont, sizeof(cont) - 1) < 0)
					return -1;
			}
			break;
		}
		if (strncmp(h, "POST /api/oauth.v2.access ", 26) == 0 ||
		    strncmp(h, "GET /api/oauth.v2.access", 24) == 0) {
			int n = snprintf(body, sizeof(body), access_fmt,
			    (unsigned long)atomic_fetch_add(&counter, 1));
			respond(c, 200, body, (size_t)n);
		} else if (strncmp(h, "POST /api/auth.test ", 20) == 0 ||
		    strncmp(h, "GET /api/auth.test", 18) == 0)
			respond(c, 200, auth_test, sizeof(auth_test) - 1);
		else
			respond(c, 404, unknown, sizeof(unknown) - 1);
		off += hlen + blen;
		done++;
	}
	if (off > 0) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	return done;
}

static int
flush_out(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n =
		    write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
		if (n < 0)
			return errno == EAGAIN ? 1 : -1;
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	return 0;
}

static void
arm(int ep, struct conn *c, unsigned events)
{
	struct epoll_event ev;

	ev.events = events;
	ev.data.ptr = c;
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Answers what c->in holds: all of it at once or, with -l, its first
 * request, whose answer then waits in q (c not read meanwhile).  Returns -1
 * to close. */
static int
serve(int ep, struct waitq *q, struct conn *c)
{
	int n = handle(c, latency_ns > 0 ? 1 : 0), f;

	if (n < 0)
		return -1;
	if (latency_ns > 0 && n > 0) {
		c->waiting = 1;
		c->due = now_ns() + latency_ns;
		c->next = NULL;
		if (q->tail != NULL)
			q->tail->next = c;
		else
			q->head = c;
		q->tail = c;
		arm(ep, c, 0);
		return 0;
	}
	if ((f = flush_out(c)) == -1)
		return -1;
	arm(ep, c, EPOLLIN | (f ? EPOLLOUT : 0));
	return 0;
}

/* Closes c; a waiting c is freed when its turn in the queue comes. */
static void
drop(struct conn *c)
{
	close(c->fd);
	c->fd = -1;
	if (!c->waiting)
		free(c);
}

/* Sends the answers whose wait is over, then serves what their
 * connections sent meanwhile; returns epoll_wait's timeout for the next. */
static int
expire(int ep, struct waitq *q)
{
	long long now = now_ns();
	struct conn *c;

	while ((c = q->head) != NULL && c->due <= now) {
		q->head = c->next;
		if (q->head == NULL)
			q->tail = NULL;
		c->waiting = 0;
		if (c->fd < 0)
			free(c);
		else if (flush_out(c) == -1 || serve(ep, q, c) == -1)
			drop(c);
	}
	if (c == NULL)
		return -1;
	return (int)((c->due - now + 999999) / 1000000);
}

static int
listener(void)
{
	struct sockaddr_in a;
	int fd, one = 1;

	if ((fd = socket(
		 AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((unsigned short)port);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(fd, 1024) < 0)
		return -1;
	if (port == 0) {
		socklen_t l = sizeof(a);
		getsockname(fd, (struct sockaddr *)&a, &l);
		port = ntohs(a.sin_port);
	}
	return fd;
}

static void *
loop(void *arg)
{
	int lfd = (int)(long)arg, ep, one = 1, timeout = -1;
	struct epoll_event ev, evs[64];
	struct waitq q = { NULL, NULL };

	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return NULL;
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	for (;;) {
		int i, n = epoll_wait(ep, evs, 64, timeout);

		for (i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;

			if (c == NULL) {
				int fd;
				while (
				    (fd = accept4(lfd, NULL, NULL,
					 SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY,
					    &one, sizeof(one));
					if ((c = calloc(1, sizeof(*c))) ==
					    NULL) {
						close(fd);
						continue;
					}
					c->fd = fd;
					ev.events = EPOLLIN;
					ev.data.ptr = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			if (c->waiting) {
				/* Only EPOLLHUP/EPOLLERR come while waiting. */
				drop(c);
				continue;
			}
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
				ssize_t r;
				int closed = 0;

				for (;;) {
					r = read(c->fd, c->in + c->in_len,
					    BUFSZ - c->in_len);
					if (r > 0) {
						c->in_len += (size_t)r;
						if (c->in_len == BUFSZ)
							break;
						continue;
					}
					if (r == 0 || errno != EAGAIN)
						closed = 1;
					break;
				}
				if (serve(ep, &q, c) == -1 || closed)
					drop(c);
			} else if (evs[i].events & EPOLLOUT) {
				int f = flush_out(c);
				if (f == -1) {
					drop(c);
					continue;
				}
				arm(ep, c, EPOLLIN | (f ? EPOLLOUT : 0));
			}
		}
		timeout = expire(ep, &q);
	}
	return NULL;
}

/* Parses s as a decimal integer in [min, max], nothing around it. */
static int
number(const char *s, long min, long max, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

int
main(int argc, char **argv)
{
	int i, opt, threads = 1, lfd, ms = 0;
	pthread_t t;

	while ((opt = getopt(argc, argv, "p:t:l:")) != -1) {
		if (opt == 'p' && number(optarg, 0, 65535, &port) == 0)
			continue;
		else if (opt == 't' && number(optarg, 1, 64, &threads) == 0)
			continue;
		else if (opt == 'l' && number(optarg, 0, 600000, &ms) == 0)
			latency_ns = ms * 1000000LL;
		else {
			fprintf(stderr,
			    "usage: fake_slack [-p PORT] "
			    "[-t THREADS] [-l MS]\n");
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	if ((lfd = listener()) < 0) {
		perror("fake_slack: listen");
		return 1;
	}
	printf("port %d\n", port);
	fflush(stdout);
	for (i = 1; i < threads; i++) {
		int fd = listener();
		if (fd < 0 ||
		    pthread_create(&t, NULL, loop, (void *)(long)fd) != 0)
			return 1;
	}
	loop((void *)(long)lfd);
	return 0;
}
