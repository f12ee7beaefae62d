#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static const char *progname = "slack-oauth";

void
log_init(const char *prog)
{
	progname = prog;
}

/* A log line being built: at most LINE_MAX bytes and the newline. Once a
 * value did not fit, it ends with "..." and takes nothing more. */
#define LINE_MAX 1023
struct line {
	char p[LINE_MAX + 1];
	size_t n;
	int full;
};

/* Room for one more byte, keeping 3 for the "..." of a cut line. */
static int
room(struct line *l)
{
	if (l->full)
		return 0;
	if (l->n + 3 < LINE_MAX)
		return 1;
	memcpy(l->p + l->n, "...", 3);
	l->n += 3;
	l->full = 1;
	return 0;
}

/* Appends s, escaping control bytes, bytes past ASCII, quote and
 * backslash as \xNN (an escape is never cut). */
static void
put_escaped(struct line *l, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char c;

	for (; *s != '\0' && room(l); s++) {
		c = (unsigned char)*s;
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			l->p[l->n++] = (char)c;
			continue;
		}
		if (l->n + 4 + 3 > LINE_MAX) { /* no room for it and "..." */
			memcpy(l->p + l->n, "...", 3);
			l->n += 3;
			l->full = 1;
			return;
		}
		l->p[l->n++] = '\\';
		l->p[l->n++] = 'x';
		l->p[l->n++] = hex[c >> 4];
		l->p[l->n++] = hex[c & 15];
	}
}

static void
put_raw(struct line *l, const char *s)
{
	for (; *s != '\0' && room(l); s++)
		l->p[l->n++] = *s;
}

static void
emit(struct line *l)
{
	l->p[l->n++] = '\n';
	/* One write, so that concurrent processes do not interleave lines. */
	if (write(STDERR_FILENO, l->p, l->n) < 0)
		return;
}

void
log_request(const char *outcome, int status, const char *team,
    const char *enterprise, double ms, const char *detail)
{
	struct line l = { .n = 0 };
	char num[21];
	long long tenths = ms > 0 ? (long long)(ms * 10 + 0.5) : 0;

	put_raw(&l, progname);
	put_raw(&l, ": outcome=");
	put_escaped(&l, outcome);
	put_raw(&l, " status=");
	dec_str(status > 0 ? (unsigned)status : 0, num);
	put_raw(&l, num);
	put_raw(&l, " team=");
	put_escaped(&l, team != NULL && *team ? team : "-");
	put_raw(&l, " enterprise=");
	put_escaped(&l, enterprise != NULL && *enterprise ? enterprise : "-");
	put_raw(&l, " ms=");
	dec_str((unsigned long long)tenths / 10, num);
	put_raw(&l, num);
	num[0] = '.', num[1] = (char)('0' + tenths % 10), num[2] = '\0';
	put_raw(&l, num);
	if (detail != NULL && *detail != '\0') {
		put_raw(&l, " detail=\"");
		put_escaped(&l, detail);
		put_raw(&l, "\"");
	}
	emit(&l);
}

static void
vlog(const char *kind, const char *fmt, va_list ap)
{
	struct line l = { .n = 0 };
	char msg[768];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	put_raw(&l, progname);
	put_raw(&l, kind);
	put_escaped(&l, msg);
	emit(&l);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(": warning: ", fmt, ap);
	va_end(ap);
}

void
log_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(": not starting: ", fmt, ap);
	va_end(ap);
}
