/* The request, parsed strictly once from untrusted CGI/FastCGI variables. */
#ifndef REQ_H
#define REQ_H

enum req_method { REQ_GET, REQ_HEAD, REQ_OTHER };

/* The query keys a handler may know. */
enum req_key { REQ_CODE, REQ_STATE, REQ_ERROR, REQ_TEAM, REQ_KEY__MAX };
#define REQ_KEYS_INSTALL  (1u << REQ_TEAM)
#define REQ_KEYS_REDIRECT (1u << REQ_CODE | 1u << REQ_STATE | 1u << REQ_ERROR)

enum req_err {
	REQ_OK,
	REQ_ERR_TOOBIG, /* query, a value or the parameter count over its cap */
	REQ_ERR_ENCODING, /* bad %-escape, NUL or control byte */
	REQ_ERR_REPEATED, /* a known key given twice */
	REQ_ERR_NOMEM,
};

struct req {
	enum req_method method;
	char *q[REQ_KEY__MAX]; /* decoded values of known keys; NULL if absent */
	char *cookie;          /* the state cookie's value; NULL if absent */
	int cookie_bad; /* the cookie was repeated, too long or the header too
			   big */
};

/* Parses method, query (may be NULL) and the Cookie header (may be NULL),
 * keeping the keys in the mask and the cookie named cookie_name. Returns
 * REQ_OK or the first problem; r is always safe to req_free. */
enum req_err req_parse(struct req *r, const char *method, const char *query,
    const char *cookie_header, const char *cookie_name, unsigned keys);

/* Frees what req_parse kept, wiping it. */
void req_free(struct req *);

const char *req_key_name(enum req_key);

#endif
