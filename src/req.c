#include <stdlib.h>
#include <string.h>

#include "lim.h"
#include "req.h"
#include "util.h"

static const struct {
	const char *name;
	size_t max; /* bytes of the decoded value */
} qkeys[REQ_KEY__MAX] = {
	[REQ_CODE] = { "code", LIM_CODE },
	[REQ_STATE] = { "state", LIM_STATE },
	[REQ_ERROR] = { "error", LIM_ERROR },
	[REQ_TEAM] = { "team", LIM_TEAM + 64 },
};

const char *
req_key_name(enum req_key k)
{
	return qkeys[k].name;
}

/* Walks the query: every pair must decode, whether known or not. */
static enum req_err
parse_query(struct req *r, const char *q, unsigned keys)
{
	char name[32], val[LIM_QUERY + 1];
	const char *p = q, *amp, *eq;
	size_t n, pairs = 0;
	long kn, vn;
	int k;

	if (strlen(q) > LIM_QUERY)
		return REQ_ERR_TOOBIG;
	for (; *p != '\0'; p = *amp ? amp + 1 : amp) {
		amp = p + strcspn(p, "&");
		if (amp == p)
			continue;
		if (++pairs > LIM_PARAMS)
			return REQ_ERR_TOOBIG;
		n = (size_t)(amp - p);
		eq = memchr(p, '=', n);
		kn = pct_decode(p, eq ? (size_t)(eq - p) : n, val, sizeof(val));
		if (kn < 0)
			return REQ_ERR_ENCODING;
		/* Keys longer than any we know are decoded and dropped. */
		if ((size_t)kn < sizeof(name))
			memcpy(name, val, (size_t)kn + 1);
		else
			name[0] = '\0';
		vn = eq ? pct_decode(
			      eq + 1, (size_t)(amp - eq - 1), val, sizeof(val))
			: pct_decode("", 0, val, sizeof(val));
		if (vn < 0)
			return REQ_ERR_ENCODING;
		for (k = 0; k < REQ_KEY__MAX; k++)
			if ((keys & 1u << k) &&
			    strcmp(name, qkeys[k].name) == 0)
				break;
		if (k == REQ_KEY__MAX)
			continue;
		if (r->q[k] != NULL)
			return REQ_ERR_REPEATED;
		if ((size_t)vn > qkeys[k].max)
			return REQ_ERR_TOOBIG;
		if ((r->q[k] = strdup(val)) == NULL)
			return REQ_ERR_NOMEM;
		explicit_bzero(val, (size_t)vn);
	}
	return REQ_OK;
}

/* Finds cookie name in an RFC 6265 Cookie header ("a=b; c=d"). */
static void
parse_cookie(struct req *r, const char *h, const char *name)
{
	size_t nlen = strlen(name), vlen;
	const char *p = h, *end, *v;

	if (strlen(h) > LIM_COOKIE_HEADER) {
		r->cookie_bad = 1;
		return;
	}
	while (*p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ';')
			p++;
		end = p + strcspn(p, ";");
		if ((size_t)(end - p) > nlen && strncmp(p, name, nlen) == 0 &&
		    p[nlen] == '=') {
			v = p + nlen + 1;
			vlen = (size_t)(end - v);
			while (vlen > 0 &&
			    (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
				vlen--;
			if (r->cookie != NULL || vlen > LIM_STATE) {
				r->cookie_bad = 1;
				free_secret(r->cookie);
				r->cookie = NULL;
				return;
			}
			if ((r->cookie = strndup(v, vlen)) == NULL) {
				r->cookie_bad = 1;
				return;
			}
		}
		p = end;
	}
}

enum req_err
req_parse(struct req *r, const char *method, const char *query,
    const char *cookie_header, const char *cookie_name, unsigned keys)
{
	memset(r, 0, sizeof(*r));
	if (method != NULL && strcmp(method, "GET") == 0)
		r->method = REQ_GET;
	else if (method != NULL && strcmp(method, "HEAD") == 0)
		r->method = REQ_HEAD;
	else
		r->method = REQ_OTHER;
	if (cookie_header != NULL && cookie_name != NULL)
		parse_cookie(r, cookie_header, cookie_name);
	return query != NULL ? parse_query(r, query, keys) : REQ_OK;
}

void
req_free(struct req *r)
{
	int k;

	for (k = 0; k < REQ_KEY__MAX; k++) {
		free_secret(r->q[k]);
		r->q[k] = NULL;
	}
	free_secret(r->cookie);
	r->cookie = NULL;
}
