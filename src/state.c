#include <string.h>

#include "db.h"
#include "backend.h"
#include "sha256.h"
#include "state.h"
#include "util.h"

#define STATE_VERSION 1
#define OFF_NONCE     1
#define OFF_EXPIRY    33
#define OFF_MAC       41

/* The MAC of a state's first OFF_MAC bytes, bound to the client id. */
static void
mac(const unsigned char *key, size_t keylen, const char *client_id,
    const unsigned char raw[OFF_MAC], unsigned char out[SHA256_LEN])
{
	struct iov_part parts[3] = {
		{ client_id, strlen(client_id) },
		{ "", 1 },
		{ raw, OFF_MAC },
	};

	hmac_sha256(key, keylen, parts, 3, out);
}

static enum state_res
from_db(int rc)
{
	return rc == DB_BUSY ? STATE_BUSY : STATE_ERR;
}

enum state_res
state_sign(const unsigned char *key, size_t keylen, const char *client_id,
    int64_t ttl, char out[STATE_CHARS + 1])
{
	unsigned char raw[STATE_RAW];
	uint64_t exp = (uint64_t)(now_unix() + ttl);
	int i;

	raw[0] = STATE_VERSION;
	if (rand_bytes(raw + OFF_NONCE, 32) == -1)
		return STATE_ERR;
	for (i = 0; i < 8; i++)
		raw[OFF_EXPIRY + i] = (unsigned char)(exp >> (56 - 8 * i));
	mac(key, keylen, client_id, raw, raw + OFF_MAC);
	b64url_encode(raw, sizeof(raw), out);
	explicit_bzero(raw, sizeof(raw));
	return STATE_OK;
}

enum state_res
state_issue(struct db *db, const char *client_id, int64_t ttl,
    char out[STATE_CHARS + 1])
{
	const unsigned char *key;
	size_t keylen;
	int rc;

	if ((rc = db_state_key(db, &key, &keylen)) != DB_OK)
		return from_db(rc);
	return state_sign(key, keylen, client_id, ttl, out);
}

int
state_shape_ok(const char *s)
{
	size_t n = strlen(s);

	if (n != STATE_CHARS)
		return 0;
	return strspn(s,
		   "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		   "0123456789-_") == n;
}

enum state_res
state_consume(struct db *db, const char *client_id, const char *s, int64_t now)
{
	unsigned char raw[STATE_RAW], want[SHA256_LEN], hash[SHA256_LEN];
	const unsigned char *key;
	size_t keylen;
	uint64_t exp = 0;
	enum state_res res = STATE_INVALID;
	int i, rc;
	unsigned diff;

	if (!state_shape_ok(s) ||
	    b64url_decode(s, raw, sizeof(raw)) != STATE_RAW ||
	    raw[0] != STATE_VERSION)
		return STATE_INVALID;
	if ((rc = db_state_key(db, &key, &keylen)) != DB_OK)
		return from_db(rc);
	mac(key, keylen, client_id, raw, want);
	/* Constant-time, as ct_streq, over the binary MACs. */
	for (i = 0, diff = 0; i < SHA256_LEN; i++)
		diff |= want[i] ^ raw[OFF_MAC + i];
	if (diff != 0)
		goto out;
	for (i = 0; i < 8; i++)
		exp = exp << 8 | raw[OFF_EXPIRY + i];
	if (exp <= (uint64_t)now || exp > (uint64_t)INT64_MAX)
		goto out;

	sha256(s, STATE_CHARS, hash);
	switch (rc = db->be->state_use(db, hash, (int64_t)exp, now)) {
	case 1:
		res = STATE_OK;
		break;
	case 0:
		res = STATE_INVALID; /* used before */
		break;
	default:
		res = from_db(rc);
	}
out:
	explicit_bzero(raw, sizeof(raw));
	return res;
}

long
state_purge(struct db *db, int64_t now)
{
	return db->be->state_purge(db, now);
}
