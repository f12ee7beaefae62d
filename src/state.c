#include <string.h>

#include "db.h"
#include "dbi.h"
#include "sha256.h"
#include "state.h"
#include "util.h"

#define STATE_VERSION 1
#define OFF_NONCE 1
#define OFF_EXPIRY 33
#define OFF_MAC 41

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
state_issue(struct db *db, const char *client_id, int64_t ttl,
    char out[STATE_CHARS + 1])
{
	unsigned char raw[STATE_RAW];
	const unsigned char *key;
	size_t keylen;
	uint64_t exp = (uint64_t)(now_unix() + ttl);
	int i, rc;

	if ((rc = db_state_key(db, &key, &keylen)) != DB_OK)
		return from_db(rc);
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

int
state_shape_ok(const char *s)
{
	size_t n = strlen(s);

	if (n != STATE_CHARS)
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_") == n;
}

enum state_res
state_consume(struct db *db, const char *client_id, const char *s, int64_t now)
{
	unsigned char raw[STATE_RAW], want[SHA256_LEN], hash[SHA256_LEN];
	const unsigned char *key;
	size_t keylen;
	uint64_t exp = 0;
	sqlite3_stmt *st;
	enum state_res res = STATE_INVALID;
	int i, rc, used;

	if (!state_shape_ok(s) || b64url_decode(s, raw, sizeof(raw)) != STATE_RAW ||
	    raw[0] != STATE_VERSION)
		return STATE_INVALID;
	if ((rc = db_state_key(db, &key, &keylen)) != DB_OK)
		return from_db(rc);
	mac(key, keylen, client_id, raw, want);
	/* Constant-time, as ct_streq, over the binary MACs. */
	for (i = 0, used = 0; i < SHA256_LEN; i++)
		used |= want[i] ^ raw[OFF_MAC + i];
	if (used != 0)
		goto out;
	for (i = 0; i < 8; i++)
		exp = exp << 8 | raw[OFF_EXPIRY + i];
	if (exp <= (uint64_t)now || exp > (uint64_t)INT64_MAX)
		goto out;

	sha256(s, STATE_CHARS, hash);
	if ((rc = db_begin(db)) != DB_OK) {
		res = from_db(rc);
		goto out;
	}
	if ((st = db_stmt(db, STMT_STATE_PURGE)) == NULL ||
	    sqlite3_bind_int64(st, 1, now) != SQLITE_OK ||
	    (rc = db_rc(sqlite3_step(st))) != DB_OK)
		goto fail;
	if ((st = db_stmt(db, STMT_STATE_USE)) == NULL ||
	    sqlite3_bind_blob(st, 1, hash, sizeof(hash), SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, (int64_t)exp) != SQLITE_OK ||
	    (rc = db_rc(sqlite3_step(st))) != DB_OK)
		goto fail;
	used = sqlite3_changes(db->h) != 1;
	sqlite3_reset(st);
	if ((rc = db_commit(db)) != DB_OK) {
		res = from_db(rc);
		goto out;
	}
	res = used ? STATE_INVALID : STATE_OK;
	goto out;
fail:
	rc = db_rc(sqlite3_errcode(db->h));
	res = from_db(rc);
	db_rollback(db);
out:
	explicit_bzero(raw, sizeof(raw));
	return res;
}

long
state_purge(struct db *db, int64_t now)
{
	sqlite3_stmt *st;
	long n;

	if ((st = db_stmt(db, STMT_STATE_PURGE)) == NULL ||
	    sqlite3_bind_int64(st, 1, now) != SQLITE_OK ||
	    db_rc(sqlite3_step(st)) != DB_OK)
		return -1;
	n = (long)sqlite3_changes(db->h);
	sqlite3_reset(st);
	return n;
}
