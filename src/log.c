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

/* Appends s to line[*n..cap), escaping control bytes, bytes past ASCII,
 * quote and backslash, truncating with "..." when full. */
static void
put_escaped(char *line, size_t *n, size_t cap, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char c;

	for (; *s != '\0'; s++) {
		if (*n + 8 >= cap) {
			memcpy(line + *n, "...", 3);
			*n += 3;
			return;
		}
		c = (unsigned char)*s;
		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
			line[(*n)++] = '\\';
			line[(*n)++] = 'x';
			line[(*n)++] = hex[c >> 4];
			line[(*n)++] = hex[c & 15];
		} else
			line[(*n)++] = (char)c;
	}
}

static void
put_raw(char *line, size_t *n, size_t cap, const char *s)
{
	size_t k = strlen(s);

	if (k > cap - 8 - *n)
		k = cap - 8 - *n;
	memcpy(line + *n, s, k);
	*n += k;
}

static void
emit(char *line, size_t n)
{
	line[n++] = '\n';
	/* One write, so that concurrent processes do not interleave lines. */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}

void
log_request(const char *outcome, int status, const char *team,
    const char *enterprise, double ms, const char *detail)
{
	char line[1024], num[21];
	long long tenths = ms > 0 ? (long long)(ms * 10 + 0.5) : 0;
	size_t n = 0, cap = sizeof(line) - 1;

	put_raw(line, &n, cap, progname);
	put_raw(line, &n, cap, ": outcome=");
	put_escaped(line, &n, cap, outcome);
	put_raw(line, &n, cap, " status=");
	dec_str(status > 0 ? (unsigned)status : 0, num);
	put_raw(line, &n, cap, num);
	put_raw(line, &n, cap, " team=");
	put_escaped(line, &n, cap, team != NULL && *team ? team : "-");
	put_raw(line, &n, cap, " enterprise=");
	put_escaped(line, &n, cap,
	    enterprise != NULL && *enterprise ? enterprise : "-");
	put_raw(line, &n, cap, " ms=");
	dec_str((unsigned long long)tenths / 10, num);
	put_raw(line, &n, cap, num);
	num[0] = '.', num[1] = (char)('0' + tenths % 10), num[2] = '\0';
	put_raw(line, &n, cap, num);
	if (detail != NULL && *detail != '\0') {
		put_raw(line, &n, cap, " detail=\"");
		put_escaped(line, &n, cap, detail);
		put_raw(line, &n, cap, "\"");
	}
	emit(line, n);
}

static void
vlog(const char *kind, const char *fmt, va_list ap)
{
	char msg[768], line[1024];
	size_t n = 0, cap = sizeof(line) - 1;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	put_raw(line, &n, cap, progname);
	put_raw(line, &n, cap, kind);
	put_escaped(line, &n, cap, msg);
	emit(line, n);
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
