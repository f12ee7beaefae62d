#include <sys/random.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "util.h"

int
ct_streq(const char *a, const char *b)
{
	size_t i, la = strlen(a), lb = strlen(b);
	unsigned char d = 0;

	if (la != lb)
		return 0;
	for (i = 0; i < la; i++)
		d |= (unsigned char)a[i] ^ (unsigned char)b[i];
	return d == 0;
}

/* Fills p with n bytes from the kernel's CSPRNG. 0 or -1. */
int
rand_bytes(void *p, size_t n)
{
	unsigned char *c = p;
	ssize_t r;

	while (n > 0) {
		if ((r = getrandom(c, n, 0)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t
b64url_encode(const unsigned char *in, size_t n, char *out)
{
	size_t i, o = 0;
	uint32_t v;

	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];
		out[o++] = b64url[v >> 18 & 63];
		out[o++] = b64url[v >> 12 & 63];
		out[o++] = b64url[v >> 6 & 63];
		out[o++] = b64url[v & 63];
	}
	if (n - i == 1) {
		v = (uint32_t)in[i] << 16;
		out[o++] = b64url[v >> 18 & 63];
		out[o++] = b64url[v >> 12 & 63];
	} else if (n - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64url[v >> 18 & 63];
		out[o++] = b64url[v >> 12 & 63];
		out[o++] = b64url[v >> 6 & 63];
	}
	out[o] = '\0';
	return o;
}

static int
b64url_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

long
b64url_decode(const char *s, unsigned char *out, size_t cap)
{
	size_t n = strlen(s), i, o = 0, need;
	uint32_t acc = 0;
	int bits = 0, v;

	if (n % 4 == 1)
		return -1;
	need = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
	if (need > cap)
		return -1;
	for (i = 0; i < n; i++) {
		if ((v = b64url_val(s[i])) < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
		return -1; /* non-canonical: leftover bits must be zero */
	return (long)o;
}

size_t
dec_str(unsigned long long v, char out[21])
{
	char t[21];
	size_t n = 0, i;

	do
		t[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	for (i = 0; i < n; i++)
		out[i] = t[n - 1 - i];
	out[n] = '\0';
	return n;
}

int
num_parse(const char *s, long long min, long long max, long long *out)
{
	long long v = 0;
	int neg = 0, d;

	if (*s == '-') {
		neg = 1;
		s++;
	}
	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		d = *s - '0';
		if (v > (9223372036854775807LL - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (neg)
		v = -v;
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

long
pct_decode(const char *s, size_t n, char *out, size_t cap)
{
	size_t i, o = 0;
	int hi, lo;
	unsigned char c;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c == '%') {
			if (n - i < 3 || (hi = hexval(s[i + 1])) < 0 ||
			    (lo = hexval(s[i + 2])) < 0)
				return -1;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+')
			c = ' ';
		if (c < 0x20 || c == 0x7f)
			return -1;
		if (o + 1 >= cap)
			return -1;
		out[o++] = (char)c;
	}
	if (cap == 0)
		return -1;
	out[o] = '\0';
	return (long)o;
}

void
hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int
hex_decode(const char *s, unsigned char *out, size_t n)
{
	size_t i;
	int hi, lo;

	if (strlen(s) != 2 * n)
		return -1;
	for (i = 0; i < n; i++) {
		if ((hi = hexval(s[2 * i])) < 0 ||
		    (lo = hexval(s[2 * i + 1])) < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

int
pct_encode(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	/* 1 for the unreserved characters of RFC 3986, kept as they are. */
	static const unsigned char keep[256] = {
		['-'] = 1,
		['.'] = 1,
		['_'] = 1,
		['~'] = 1,
		['0'] = 1,
		['1'] = 1,
		['2'] = 1,
		['3'] = 1,
		['4'] = 1,
		['5'] = 1,
		['6'] = 1,
		['7'] = 1,
		['8'] = 1,
		['9'] = 1,
		['A'] = 1,
		['B'] = 1,
		['C'] = 1,
		['D'] = 1,
		['E'] = 1,
		['F'] = 1,
		['G'] = 1,
		['H'] = 1,
		['I'] = 1,
		['J'] = 1,
		['K'] = 1,
		['L'] = 1,
		['M'] = 1,
		['N'] = 1,
		['O'] = 1,
		['P'] = 1,
		['Q'] = 1,
		['R'] = 1,
		['S'] = 1,
		['T'] = 1,
		['U'] = 1,
		['V'] = 1,
		['W'] = 1,
		['X'] = 1,
		['Y'] = 1,
		['Z'] = 1,
		['a'] = 1,
		['b'] = 1,
		['c'] = 1,
		['d'] = 1,
		['e'] = 1,
		['f'] = 1,
		['g'] = 1,
		['h'] = 1,
		['i'] = 1,
		['j'] = 1,
		['k'] = 1,
		['l'] = 1,
		['m'] = 1,
		['n'] = 1,
		['o'] = 1,
		['p'] = 1,
		['q'] = 1,
		['r'] = 1,
		['s'] = 1,
		['t'] = 1,
		['u'] = 1,
		['v'] = 1,
		['w'] = 1,
		['x'] = 1,
		['y'] = 1,
		['z'] = 1,
	};
	const char *run = s;
	unsigned char c;
	char e[3];

	/* Runs of kept characters are appended whole. */
	for (; *s != '\0'; s++) {
		c = (unsigned char)*s;
		if (keep[c])
			continue;
		e[0] = '%';
		e[1] = hex[c >> 4];
		e[2] = hex[c & 15];
		if (buf_add(b, run, (size_t)(s - run)) == -1 ||
		    buf_add(b, e, 3) == -1)
			return -1;
		run = s + 1;
	}
	return buf_add(b, run, (size_t)(s - run));
}

int
has_ctl(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

size_t
utf8_seq(const char *s, unsigned long *cp)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t more, i;

	if (*p < 0x80)
		*cp = *p, more = 0;
	else if (*p >= 0xc2 && *p <= 0xdf)
		*cp = *p & 0x1f, more = 1;
	else if (*p >= 0xe0 && *p <= 0xef)
		*cp = *p & 0x0f, more = 2;
	else if (*p >= 0xf0 && *p <= 0xf4)
		*cp = *p & 0x07, more = 3;
	else
		return 0;
	for (i = 1; i <= more; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		*cp = *cp << 6 | (p[i] & 0x3f);
	}
	/* Overlong three- and four-byte forms, surrogates, past U+10FFFF. */
	if ((more == 2 && (*cp < 0x800 || (*cp >= 0xd800 && *cp <= 0xdfff))) ||
	    (more == 3 && (*cp < 0x10000 || *cp > 0x10ffff)))
		return 0;
	return more + 1;
}

/* C0, DEL and C1. */
static int
is_control(unsigned long cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

int
is_utf8_text(const char *s, size_t max)
{
	unsigned long cp;
	size_t n, chars = 0;

	for (; *s != '\0'; s += n) {
		if ((n = utf8_seq(s, &cp)) == 0 || is_control(cp) ||
		    ++chars > max)
			return 0;
	}
	return chars > 0;
}

int
text_terminal(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	char esc[4] = { '\\', 'x', 0, 0 };
	unsigned long cp;
	size_t n;

	for (; *s != '\0'; s += n)
		if ((n = utf8_seq(s, &cp)) > 0 && !is_control(cp) &&
		    cp != '\\') {
			if (buf_add(b, s, n) == -1)
				return -1;
		} else {
			/* The first byte alone; what follows is looked at
			 * again. */
			n = 1;
			esc[2] = hex[(unsigned char)*s >> 4];
			esc[3] = hex[(unsigned char)*s & 15];
			if (buf_add(b, esc, 4) == -1)
				return -1;
		}
	return 0;
}

int
text_json(struct buf *b, const char *s)
{
	unsigned long cp;
	size_t n;

	for (; *s != '\0'; s += n)
		if ((n = utf8_seq(s, &cp)) > 0 &&
		    (cp < 0x20 || !is_control(cp))) {
			if (buf_add(b, s, n) == -1)
				return -1;
		} else {
			n = n > 0 ? n : 1;
			if (buf_puts(b, "\xef\xbf\xbd") == -1) /* U+FFFD */
				return -1;
		}
	return 0;
}

void
utf8_cut(const char *s, size_t max, char *out, size_t cap)
{
	unsigned long cp;
	size_t n, i = 0, chars = 0;

	while (s[i] != '\0' && chars < max && (n = utf8_seq(s + i, &cp)) > 0 &&
	    i + n + 4 <= cap)
		i += n, chars++;
	memcpy(out, s, i);
	if (s[i] != '\0' && i + 4 <= cap) /* "…" */
		memcpy(out + i, "\xe2\x80\xa6", 3), i += 3;
	out[i] = '\0';
}

int
json_is_plain(const char *p, size_t n, int max)
{
	int depth = 0, in_str = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (in_str) {
			if (p[i] == '\\') {
				if (n - i > 5 && p[i + 1] == 'u' &&
				    memcmp(p + i + 2, "0000", 4) == 0)
					return 0;
				i++;
			} else if (p[i] == '"')
				in_str = 0;
		} else if (p[i] == '"')
			in_str = 1;
		else if (p[i] == '{' || p[i] == '[') {
			if (++depth > max)
				return 0;
		} else if (p[i] == '}' || p[i] == ']')
			depth--;
	}
	return 1;
}

int
is_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s < 0x20 || *s >= 0x7f)
			return 0;
	return 1;
}

int
is_token_ascii(const char *s, size_t max)
{
	size_t n = 0;

	for (; *s != '\0'; s++, n++)
		if (*s <= 0x20 || *s >= 0x7f)
			return 0;
	return n >= 1 && n <= max;
}

int64_t
now_unix(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}

double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void
utc_stamp(char out[27])
{
	struct timespec ts;
	struct tm tm;
	char sec[20];
	long us;
	int i;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(sec, sizeof(sec), "%Y-%m-%d %H:%M:%S", &tm);
	memcpy(out, sec, 19);
	out[19] = '.';
	us = ts.tv_nsec / 1000;
	for (i = 25; i >= 20; i--) {
		out[i] = (char)('0' + us % 10);
		us /= 10;
	}
	out[26] = '\0';
}

char *
xstrdup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

void
free_secret(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void *
dl_load(
    const char *lib, const struct dl_sym *syms, size_t n, const char **missing)
{
	void *h;
	size_t i;

	*missing = NULL;
	if ((h = dlopen(lib, RTLD_NOW | RTLD_LOCAL)) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if ((*syms[i].fn = dlsym(h, syms[i].name)) == NULL) {
			*missing = syms[i].name;
			dlclose(h);
			return NULL;
		}
	return h;
}
