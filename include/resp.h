/* The response, built in memory and written once by serve(). */
#ifndef RESP_H
#define RESP_H

#include "buf.h"

struct resp {
	int status;
	struct buf head; /* "Name: value\r\n" lines */
	struct buf body;
	int no_body; /* HEAD: headers only */
};

/* An empty 200 carrying the headers every response has. */
void resp_init(struct resp *);
void resp_free(struct resp *);

/* Adds a header. Refuses (-1, nothing added) a value holding CR, LF or NUL
 * or any control byte, and a name that is not a token. */
int resp_header(struct resp *, const char *name, const char *value);

/* Set-Cookie: name=value; Path=/; Max-Age=maxage; HttpOnly; Secure;
 * SameSite=Lax. A NULL value clears the cookie (empty value, Max-Age=0). */
int
resp_cookie(struct resp *, const char *name, const char *value, long maxage);

/* 302 to location, which comes from configuration only. */
int resp_redirect(struct resp *, const char *location);

/* Discards headers and body added so far, keeping the common ones. */
void resp_reset(struct resp *);

/* Makes a used response an empty 200 again, its memory kept for the next
 * request and the old headers wiped. */
void resp_recycle(struct resp *);

/* The reason phrase of a status we use. */
const char *resp_reason(int status);

#endif
