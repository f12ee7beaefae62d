/* The one-time state. A state is self-verifying: base64url of
 *   version (1) | nonce (32 random bytes) | expiry (8, big-endian Unix s) |
 *   HMAC-SHA-256 (32) over client_id, NUL, and the 41 bytes before it,
 * under a key kept in the database. Issuing writes nothing; consuming
 * records a hash of the state until it expires, so that it passes once. */
#ifndef STATE_H
#define STATE_H

#include <stddef.h>
#include <stdint.h>

struct db;

#define STATE_RAW   73
#define STATE_CHARS 98 /* B64URL_LEN(STATE_RAW) */

enum state_res {
	STATE_OK,      /* issued, or consumed now */
	STATE_INVALID, /* malformed, forged, expired or already used */
	STATE_ERR,     /* database error */
	STATE_BUSY,    /* database locked past the busy timeout */
};

/* Issues a state for client_id valid for ttl seconds into out. */
enum state_res state_issue(
    struct db *, const char *client_id, int64_t ttl, char out[STATE_CHARS + 1]);

/* The same with the key in hand (see db_key_peek). */
enum state_res state_sign(const unsigned char *key, size_t keylen,
    const char *client_id, int64_t ttl, char out[STATE_CHARS + 1]);

/* Returns 1 if s (untrusted) has the shape of an issued state. */
int state_shape_ok(const char *s);

/* Checks s (untrusted) and consumes it atomically: of any number of
 * concurrent calls with the same valid state, exactly one gets STATE_OK. */
enum state_res
state_consume(struct db *, const char *client_id, const char *s, int64_t now);

/* Deletes the records of used states that have expired. Returns the number
 * deleted, or -1. */
long state_purge(struct db *, int64_t now);

#endif
