/* The PostgreSQL backend, for several web hosts sharing one database.
 * libpq is loaded with dlopen() (db_pg_load: at start-up when the
 * configured database is PostgreSQL, else by the first connection), so
 * that a SQLite deployment never maps it: the programs link neither it nor
 * anything it pulls in (Kerberos, LDAP, OpenSSL). */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "backend.h"
#include "installation.h"
#include "store.h"
#include "util.h"

#define PG_VERSION 1 /* the schema version this build creates */
#define LIBPQ      "libpq.so.5"

/* The libpq functions we use, resolved once (pthread_once) and read-only
 * after that, whichever worker got there first. */
static struct {
	int loaded; /* 1 ok, -1 cannot load, -2 a function missing */
	__typeof__(PQconnectdbParams) *connectdbparams;
	__typeof__(PQstatus) *status;
	__typeof__(PQerrorMessage) *errormessage;
	__typeof__(PQfinish) *finish;
	__typeof__(PQreset) *reset;
	__typeof__(PQexecParams) *execparams;
	__typeof__(PQexec) *exec;
	__typeof__(PQresultStatus) *resultstatus;
	__typeof__(PQresultErrorField) *resulterrorfield;
	__typeof__(PQntuples) *ntuples;
	__typeof__(PQnfields) *nfields;
	__typeof__(PQgetvalue) *getvalue;
	__typeof__(PQgetisnull) *getisnull;
	__typeof__(PQclear) *clear;
	__typeof__(PQcmdTuples) *cmdtuples;
	__typeof__(PQsetNoticeProcessor) *setnoticeprocessor;
	__typeof__(PQsocket) *socket;
	__typeof__(PQconsumeInput) *consumeinput;
} pq;

static void
load_once(void)
{
	static const struct dl_sym syms[] = {
		{ "PQconnectdbParams", (void **)&pq.connectdbparams },
		{ "PQstatus", (void **)&pq.status },
		{ "PQerrorMessage", (void **)&pq.errormessage },
		{ "PQfinish", (void **)&pq.finish },
		{ "PQreset", (void **)&pq.reset },
		{ "PQexecParams", (void **)&pq.execparams },
		{ "PQexec", (void **)&pq.exec },
		{ "PQresultStatus", (void **)&pq.resultstatus },
		{ "PQresultErrorField", (void **)&pq.resulterrorfield },
		{ "PQntuples", (void **)&pq.ntuples },
		{ "PQnfields", (void **)&pq.nfields },
		{ "PQgetvalue", (void **)&pq.getvalue },
		{ "PQgetisnull", (void **)&pq.getisnull },
		{ "PQclear", (void **)&pq.clear },
		{ "PQcmdTuples", (void **)&pq.cmdtuples },
		{ "PQsetNoticeProcessor", (void **)&pq.setnoticeprocessor },
		{ "PQsocket", (void **)&pq.socket },
		{ "PQconsumeInput", (void **)&pq.consumeinput },
	};
	const char *missing;

	pq.loaded = dl_load(LIBPQ, syms, sizeof(syms) / sizeof(syms[0]),
			&missing) != NULL
	    ? 1
	    : missing != NULL ? -2
			      : -1;
}

int
db_pg_load(char *err, size_t errlen)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, load_once);
	if (pq.loaded == -2)
		snprintf(err, errlen,
		    "PostgreSQL: " LIBPQ " lacks a function we need");
	else if (pq.loaded == -1)
		snprintf(err, errlen,
		    "PostgreSQL: cannot load " LIBPQ
		    " (apt-get install libpq5)");
	return pq.loaded == 1 ? 0 : -1;
}

/* The connection behind struct db's h. */
struct pgc {
	PGconn *c;
	int tx;        /* inside BEGIN … COMMIT */
	char msg[512]; /* pg_errmsg's answer */
};
#define P(db) ((struct pgc *)(db)->h)
#define C(db) (P(db) != NULL ? P(db)->c : NULL)

/* Connects to uri. Unless the URI says otherwise, a server that does not
 * answer is given up after 5 s (connecting) or 10 s (unacknowledged data):
 * values in the URI override these, which come before it. */
static PGconn *
connect_uri(const char *uri)
{
	static const char *const keys[] = { "connect_timeout",
		"tcp_user_timeout", "dbname", NULL };
	const char *vals[] = { "5", "10000", uri, NULL };

	return pq.connectdbparams(keys, vals, 1);
}

/* The last error, on one line. libpq's messages name the host, port and
 * user, never the password. */
static const char *
pg_errmsg(struct db *db)
{
	char *msg, *p, *q;

	if (db == NULL || C(db) == NULL)
		return "not connected";
	msg = P(db)->msg;
	snprintf(msg, sizeof(P(db)->msg), "%s", pq.errormessage(C(db)));
	/* One line, single spaces. */
	for (p = q = msg; *p != '\0'; p++) {
		char ch = *p == '\n' || *p == '\r' || *p == '\t' ? ' ' : *p;

		if (ch == ' ' && (q == msg || q[-1] == ' '))
			continue;
		*q++ = ch;
	}
	while (q > msg && q[-1] == ' ')
		q--;
	*q = '\0';
	return msg[0] != '\0' ? msg : "PostgreSQL error";
}

/* Notices ("relation already exists, skipping") would go to stderr. */
static void
quiet(void *arg, const char *message)
{
	(void)arg, (void)message;
}

/* Before a statement outside a transaction: a connection the server
 * closed while it was idle (a restart says so with a message, then EOF)
 * is readable; libpq then learns that it is gone, and it is made again
 * here, before anything is sent. */
static void
revive(struct db *db)
{
	struct pollfd pfd = { .events = POLLIN };

	if (P(db)->tx)
		return;
	if (pq.status(C(db)) == CONNECTION_OK &&
	    (pfd.fd = pq.socket(C(db))) >= 0 && poll(&pfd, 1, 0) == 1)
		pq.consumeinput(C(db));
	if (pq.status(C(db)) != CONNECTION_OK)
		pq.reset(C(db));
}

/* Runs sql with n text parameters (NULL for SQL NULL). Returns the result
 * when its status is PGRES_COMMAND_OK or PGRES_TUPLES_OK, else NULL with
 * *rc DB_BUSY (connection lost, lock or serialization trouble: worth a
 * retry later) or DB_ERR. A statement is sent once: one whose answer was
 * lost may have run (a state recorded as used), so it is never sent again;
 * a connection found broken before a send is made again first (a FastCGI
 * process outlives a server restart), one lost in a transaction fails it. */
static PGresult *
run(struct db *db, const char *sql, int n, const char *const *params, int *rc)
{
	PGresult *r;
	ExecStatusType st;
	const char *code;

	revive(db);
	if (pq.status(C(db)) != CONNECTION_OK) {
		*rc = DB_BUSY;
		return NULL;
	}
	r = pq.execparams(C(db), sql, n, NULL, params, NULL, NULL, 0);
	st = r != NULL ? pq.resultstatus(r) : PGRES_FATAL_ERROR;
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		*rc = DB_OK;
		return r;
	}
	code = r != NULL ? pq.resulterrorfield(r, PG_DIAG_SQLSTATE) : NULL;
	/* 40001 serialization, 40P01 deadlock, 55P03 lock timeout, 57014
	 * statement timeout, 53xxx resources; a lost connection. */
	*rc = pq.status(C(db)) != CONNECTION_OK ||
		(code != NULL &&
		    (strncmp(code, "40", 2) == 0 ||
			strcmp(code, "55P03") == 0 ||
			strcmp(code, "57014") == 0 ||
			strncmp(code, "53", 2) == 0))
	    ? DB_BUSY
	    : DB_ERR;
	pq.clear(r);
	return NULL;
}

/* Runs a statement whose result is not needed. */
static int
exec(struct db *db, const char *sql, int n, const char *const *params)
{
	PGresult *r;
	int rc;

	if ((r = run(db, sql, n, params, &rc)) != NULL)
		pq.clear(r);
	return rc;
}

/* A number as libpq prints it; 0 for anything else (an empty count). */
static long long
pg_int(const char *s)
{
	long long v;

	return num_parse(
		   s, -9223372036854775807LL, 9223372036854775807LL, &v) == 0
	    ? v
	    : 0;
}

/* Runs a statement, returning the number of rows it changed, or <0. */
static long
changed(struct db *db, const char *sql, int n, const char *const *params)
{
	PGresult *r;
	long k;
	int rc;

	if ((r = run(db, sql, n, params, &rc)) == NULL)
		return rc;
	k = (long)pg_int(pq.cmdtuples(r));
	pq.clear(r);
	return k;
}

/* Runs a query of one number, returning it, or DB_ERR/DB_BUSY. */
static long
number(struct db *db, const char *sql, int n, const char *const *params)
{
	PGresult *r;
	long v;
	int rc;

	if ((r = run(db, sql, n, params, &rc)) == NULL)
		return rc;
	v = pq.ntuples(r) == 1 ? (long)pg_int(pq.getvalue(r, 0, 0)) : DB_ERR;
	pq.clear(r);
	return v;
}

static char *
val(PGresult *r, int row, int col)
{
	return pq.getisnull(r, row, col) ? NULL
					 : strdup(pq.getvalue(r, row, col));
}

static int64_t
num(PGresult *r, int row, int col)
{
	return pq.getisnull(r, row, col)
	    ? 0
	    : (int64_t)pg_int(pq.getvalue(r, row, col));
}

static void
fmt_i64(char *buf, size_t len, int64_t v)
{
	snprintf(buf, len, "%lld", (long long)v);
}

static int
begin(struct db *db)
{
	int rc = exec(db, "BEGIN", 0, NULL);

	P(db)->tx = rc == DB_OK;
	return rc;
}

static void
rollback(struct db *db)
{
	P(db)->tx = 0;
	if (pq.status(C(db)) == CONNECTION_OK)
		exec(db, "ROLLBACK", 0, NULL);
}

static int
commit(struct db *db)
{
	int rc = exec(db, "COMMIT", 0, NULL);

	if (rc != DB_OK)
		rollback(db);
	P(db)->tx = 0;
	return rc;
}

/* Schema version 1, as SQLite's with PostgreSQL's types: ids bigserial,
 * expiries bigint Unix seconds, is_enterprise_install boolean, installed_at
 * timestamp (UTC). */
static const char schema_v1[] =
    "CREATE TABLE IF NOT EXISTS slack_installations ("
    " id bigserial primary key,"
    " client_id text not null,"
    " app_id text not null,"
    " enterprise_id text not null default '',"
    " enterprise_name text,"
    " enterprise_url text,"
    " team_id text not null default '',"
    " team_name text,"
    " bot_token text,"
    " bot_id text,"
    " bot_user_id text,"
    " bot_scopes text,"
    " bot_refresh_token text,"
    " bot_token_expires_at bigint,"
    " user_id text not null,"
    " user_token text,"
    " user_scopes text,"
    " user_refresh_token text,"
    " user_token_expires_at bigint,"
    " incoming_webhook_url text,"
    " incoming_webhook_channel text,"
    " incoming_webhook_channel_id text,"
    " incoming_webhook_configuration_url text,"
    " is_enterprise_install boolean not null default false,"
    " token_type text,"
    " installed_at timestamp not null default (now() at time zone 'utc'),"
    " oauth_response text,"
    " auth_test_response text);"
    "CREATE INDEX IF NOT EXISTS slack_installations_idx ON slack_installations"
    " (client_id, enterprise_id, team_id, user_id, installed_at);"
    "CREATE TABLE IF NOT EXISTS slack_bots ("
    " id bigserial primary key,"
    " client_id text not null,"
    " app_id text not null,"
    " enterprise_id text not null default '',"
    " enterprise_name text,"
    " team_id text not null default '',"
    " team_name text,"
    " bot_token text not null,"
    " bot_id text not null,"
    " bot_user_id text not null,"
    " bot_scopes text,"
    " bot_refresh_token text,"
    " bot_token_expires_at bigint,"
    " is_enterprise_install boolean not null default false,"
    " installed_at timestamp not null default (now() at time zone 'utc'));"
    "CREATE INDEX IF NOT EXISTS slack_bots_idx ON slack_bots"
    " (client_id, enterprise_id, team_id, installed_at);"
    "CREATE TABLE IF NOT EXISTS slack_oauth_keys ("
    " id integer primary key check (id = 1),"
    " key bytea not null,"
    " created_at bigint not null);"
    "CREATE TABLE IF NOT EXISTS slack_oauth_states ("
    " hash bytea primary key,"
    " expires_at bigint not null);"
    "CREATE INDEX IF NOT EXISTS slack_oauth_states_expiry"
    " ON slack_oauth_states (expires_at);"
    "CREATE TABLE IF NOT EXISTS slack_oauth_locks ("
    " name text primary key,"
    " expires_at bigint not null);"
    "CREATE TABLE IF NOT EXISTS slack_oauth_meta ("
    " id integer primary key check (id = 1),"
    " version integer not null);";

/* Any constant: the advisory lock that serializes schema creation. */
#define SCHEMA_LOCK "7410203112"

static int
version(struct db *db, int *v)
{
	PGresult *r;
	int rc;

	*v = 0;
	if ((r = run(db,
		 "SELECT CASE WHEN to_regclass('slack_oauth_meta') IS NULL "
		 "THEN 0 ELSE 1 END",
		 0, NULL, &rc)) == NULL)
		return rc;
	rc = num(r, 0, 0) == 1;
	pq.clear(r);
	if (!rc)
		return DB_OK;
	if ((r = run(db, "SELECT version FROM slack_oauth_meta WHERE id = 1", 0,
		 NULL, &rc)) == NULL)
		return rc;
	if (pq.ntuples(r) == 1)
		*v = (int)num(r, 0, 0);
	pq.clear(r);
	return DB_OK;
}

static int
migrate(struct db *db, char *err, size_t errlen)
{
	unsigned char key[32];
	char hex[65], now[24];
	const char *p[2];
	int rc, v;

	if ((rc = begin(db)) != DB_OK ||
	    (rc = exec(db, "SELECT pg_advisory_xact_lock(" SCHEMA_LOCK ")", 0,
		 NULL)) != DB_OK ||
	    (rc = version(db, &v)) != DB_OK)
		goto fail;
	if (v > PG_VERSION) {
		rollback(db);
		snprintf(err, errlen,
		    "PostgreSQL: schema version %d is newer than "
		    "this program's %d",
		    v, PG_VERSION);
		return DB_ERR;
	}
	if (v < 1) {
		/* Several statements: the simple query protocol. */
		PGresult *r = pq.exec(C(db), schema_v1);

		rc = r != NULL && pq.resultstatus(r) == PGRES_COMMAND_OK
		    ? DB_OK
		    : DB_ERR;
		pq.clear(r);
		if (rc != DB_OK)
			goto fail;
		if (rand_bytes(key, sizeof(key)) == -1) {
			rc = DB_ERR;
			goto fail;
		}
		hex_encode(key, sizeof(key), hex);
		explicit_bzero(key, sizeof(key));
		fmt_i64(now, sizeof(now), now_unix());
		p[0] = hex, p[1] = now;
		rc = exec(db,
		    "INSERT INTO slack_oauth_keys (id, key, created_at) "
		    "VALUES (1, decode($1, 'hex'), $2) ON CONFLICT DO NOTHING",
		    2, p);
		explicit_bzero(hex, sizeof(hex));
		if (rc != DB_OK ||
		    (rc = exec(db,
			 "INSERT INTO slack_oauth_meta (id, "
			 "version) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET version = 1",
			 0, NULL)) != DB_OK)
			goto fail;
	}
	if ((rc = commit(db)) != DB_OK)
		goto fail;
	return DB_OK;
fail:
	snprintf(
	    err, errlen, "PostgreSQL: creating the schema: %s", pg_errmsg(db));
	rollback(db);
	return rc == DB_OK ? DB_ERR : rc;
}

static int
pg_open(struct db *db, char *err, size_t errlen)
{
	int rc, v;

	if (db_pg_load(err, errlen) == -1)
		return DB_ERR;
	if ((db->h = calloc(1, sizeof(struct pgc))) == NULL ||
	    (P(db)->c = connect_uri(db->target)) == NULL) {
		snprintf(err, errlen, "PostgreSQL: out of memory");
		return DB_ERR;
	}
	if (pq.status(C(db)) != CONNECTION_OK) {
		snprintf(err, errlen, "PostgreSQL: %s", pg_errmsg(db));
		return DB_BUSY; /* down or unreachable: 503, try again */
	}
	pq.setnoticeprocessor(C(db), quiet, NULL);
	if ((rc = version(db, &v)) != DB_OK) {
		snprintf(err, errlen, "PostgreSQL: %s", pg_errmsg(db));
		return rc;
	}
	return v == PG_VERSION ? DB_OK : migrate(db, err, errlen);
}

static void
pg_close(struct db *db)
{
	if (C(db) != NULL)
		pq.finish(C(db));
	free(db->h);
	db->h = NULL;
}

static void
pg_busy_timeout(struct db *db, int ms)
{
	char v[24];
	const char *p[1] = { v };

	snprintf(v, sizeof(v), "%dms", ms);
	exec(db, "SELECT set_config('lock_timeout', $1, false)", 1, p);
}

static int
pg_inspect(const char *target, struct db_info *info, char *err, size_t errlen)
{
	struct db db = { .target = (char *)target };
	int rc;

	memset(info, 0, sizeof(*info));
	info->current = PG_VERSION;
	if (db_pg_load(err, errlen) == -1)
		return DB_ERR;
	if ((db.h = calloc(1, sizeof(struct pgc))) == NULL)
		return DB_ERR;
	if ((P(&db)->c = connect_uri(target)) == NULL ||
	    pq.status(C(&db)) != CONNECTION_OK) {
		snprintf(err, errlen, "PostgreSQL: %s", pg_errmsg(&db));
		pg_close(&db);
		return DB_ERR;
	}
	pq.setnoticeprocessor(C(&db), quiet, NULL);
	if ((rc = version(&db, &info->version)) != DB_OK)
		snprintf(err, errlen, "PostgreSQL: %s", pg_errmsg(&db));
	info->intact = 1;
	pg_close(&db);
	return rc;
}

static int
pg_state_key(struct db *db, unsigned char key[32])
{
	PGresult *r;
	int rc;

	if ((r = run(db,
		 "SELECT encode(key, 'hex') FROM slack_oauth_keys "
		 "WHERE id = 1",
		 0, NULL, &rc)) == NULL)
		return rc;
	rc =
	    pq.ntuples(r) == 1 && hex_decode(pq.getvalue(r, 0, 0), key, 32) == 0
	    ? DB_OK
	    : DB_ERR;
	pq.clear(r);
	return rc;
}

static int
pg_state_use(struct db *db, const unsigned char hash[32], int64_t expires_at,
    int64_t now)
{
	char hex[65], exp[24], nw[24];
	const char *p[3] = { hex, exp, nw };
	long n;

	hex_encode(hash, 32, hex);
	fmt_i64(exp, sizeof(exp), expires_at);
	fmt_i64(nw, sizeof(nw), now);
	/* One statement: exactly one of any number of concurrent requests,
	 * on any host, inserts the row. */
	n = changed(db,
	    "WITH gone AS (DELETE FROM slack_oauth_states "
	    "WHERE expires_at <= $3) INSERT INTO slack_oauth_states (hash, "
	    "expires_at) VALUES (decode($1, 'hex'), $2) ON CONFLICT DO NOTHING",
	    3, p);
	return n < 0 ? (int)n : n == 1;
}

static long
pg_state_purge(struct db *db, int64_t now)
{
	char nw[24];
	const char *p[1] = { nw };
	long n;

	fmt_i64(nw, sizeof(nw), now);
	n = changed(
	    db, "DELETE FROM slack_oauth_states WHERE expires_at <= $1", 1, p);
	return n < 0 ? -1 : n;
}

static const char *
or_empty(const char *s)
{
	return s != NULL ? s : "";
}

/* Appends a row to slack_installations or slack_bots, its columns bound
 * in enum icol's order. */
static int
put_row(struct db *db, enum itable t, const char *client_id,
    const struct installation *in, const char *stamp)
{
	char nums[ICOL__MAX][24];
	const char *p[ICOL__MAX], *text;
	int64_t num;
	int c, n = 0, isnum;

	for (c = 0; c < ICOL__MAX; c++) {
		if (!installation_col(
			in, t, c, client_id, stamp, &text, &num, &isnum))
			continue;
		if (isnum) {
			fmt_i64(nums[n], sizeof(nums[n]), num);
			text = nums[n];
		}
		p[n++] = text;
	}
	if (t == ITABLE_BOTS)
		return exec(db,
		    "INSERT INTO slack_bots (client_id, app_id, "
		    "enterprise_id, enterprise_name, team_id, team_name, "
		    "bot_token, bot_id, bot_user_id, bot_scopes, "
		    "bot_refresh_token, bot_token_expires_at, "
		    "is_enterprise_install, installed_at) VALUES "
		    "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
		    "$13::int::boolean, $14::timestamp)",
		    n, p);
	return exec(db,
	    "INSERT INTO slack_installations (client_id, app_id, "
	    "enterprise_id, enterprise_name, enterprise_url, team_id, team_name, "
	    "bot_token, bot_id, bot_user_id, bot_scopes, bot_refresh_token, "
	    "bot_token_expires_at, user_id, user_token, user_scopes, "
	    "user_refresh_token, user_token_expires_at, incoming_webhook_url, "
	    "incoming_webhook_channel, incoming_webhook_channel_id, "
	    "incoming_webhook_configuration_url, is_enterprise_install, token_type, "
	    "installed_at, oauth_response, auth_test_response) VALUES ($1, $2, $3, "
	    "$4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, "
	    "$19, $20, $21, $22, $23::int::boolean, $24, $25::timestamp, $26, "
	    "$27)",
	    n, p);
}

static int
pg_put(struct db *db, const char *client_id, const struct installation *in,
    const char *stamp)
{
	int rc;

	if ((rc = begin(db)) != DB_OK)
		return rc;
	if ((rc = put_row(db, ITABLE_INSTALLATIONS, client_id, in, stamp)) !=
		DB_OK ||
	    (in->bot_token != NULL &&
		(rc = put_row(db, ITABLE_BOTS, client_id, in, stamp)) !=
		    DB_OK)) {
		rollback(db);
		return rc;
	}
	return commit(db);
}

#define STAMP "to_char(installed_at, 'YYYY-MM-DD HH24:MI:SS.US')"
#define INSTALLATION_COLS                                                            \
	"id, app_id, enterprise_id, enterprise_name, enterprise_url, team_id, "      \
	"team_name, bot_token, bot_id, bot_user_id, bot_scopes, bot_refresh_token, " \
	"bot_token_expires_at, user_id, user_token, user_scopes, "                   \
	"user_refresh_token, user_token_expires_at, incoming_webhook_url, "          \
	"incoming_webhook_channel, incoming_webhook_channel_id, "                    \
	"incoming_webhook_configuration_url, is_enterprise_install::int, "           \
	"token_type, " STAMP
#define KEY                                                                    \
	"client_id = $1 AND team_id = $3 AND ($2::text IS NULL OR enterprise_id = $2)"
#define NEWEST " ORDER BY installed_at DESC, id DESC LIMIT 1"

/* Reads a row of INSTALLATION_COLS (and, when the query has them, the two
 * answers after it) into in, column c at index c. */
static void
read_installation(PGresult *r, int row, struct installation *in)
{
	int c, n = pq.nfields(r);

	memset(in, 0, sizeof(*in));
	for (c = 1; c < n && c < ICOL__MAX; c++)
		installation_set_col(in, c,
		    pq.getisnull(r, row, c) ? NULL : pq.getvalue(r, row, c),
		    num(r, row, c));
}

static int
pg_list(struct db *db, const char *client_id,
    int (*fn)(void *, const struct installation *), void *arg)
{
	struct installation in;
	const char *p[1] = { client_id };
	PGresult *r;
	int rc, i, n;

	if ((r = run(db,
		 "SELECT DISTINCT ON (enterprise_id, team_id) " INSTALLATION_COLS
		 " FROM slack_installations WHERE client_id = $1 "
		 "ORDER BY enterprise_id, team_id, installed_at DESC, id DESC",
		 1, p, &rc)) == NULL)
		return rc;
	n = pq.ntuples(r);
	for (i = 0; i < n; i++) {
		read_installation(r, i, &in);
		rc = fn(arg, &in);
		installation_free(&in);
		if (rc != 0)
			break;
	}
	pq.clear(r);
	return DB_OK;
}

/* Runs a query of (text, bigint) for one row into *s and *t: 1 found,
 * 0 none, <0 error. */
static int
one_pair(struct db *db, const char *sql, int n, const char *const *p, int col,
    char **s, int64_t *t)
{
	PGresult *r;
	int rc;

	*s = NULL;
	*t = 0;
	if ((r = run(db, sql, n, p, &rc)) == NULL)
		return rc;
	rc = 0;
	if (pq.ntuples(r) == 1 && !pq.getisnull(r, 0, col)) {
		*s = val(r, 0, col);
		*t = num(r, 0, col + 1);
		rc = *s != NULL ? 1 : DB_ERR;
	}
	pq.clear(r);
	return rc;
}

static int
pg_token(struct db *db, const char *client_id, const struct inst_key *k,
    const char *user_id, char **token, int64_t *expires_at)
{
	const char *p[4] = { client_id, k->enterprise_id, k->team_id, user_id };

	if (user_id == NULL)
		return one_pair(db,
		    "SELECT bot_token, bot_token_expires_at FROM "
		    "slack_bots WHERE " KEY NEWEST,
		    3, p, 0, token, expires_at);
	return one_pair(db,
	    "SELECT user_token, user_token_expires_at FROM "
	    "slack_installations WHERE " KEY " AND user_id = $4" NEWEST,
	    4, p, 0, token, expires_at);
}

static int
pg_due(struct db *db, const char *client_id, int64_t deadline,
    struct due **list, size_t *n)
{
	static const char *const sql[2] = {
		"SELECT enterprise_id, team_id, NULL, bot_refresh_token FROM "
		"(SELECT DISTINCT ON (enterprise_id, team_id) * FROM slack_bots "
		"WHERE client_id = $1 ORDER BY enterprise_id, team_id, "
		"installed_at DESC, id DESC) b WHERE bot_refresh_token IS NOT NULL "
		"AND bot_token_expires_at <= $2",
		"SELECT enterprise_id, team_id, user_id, user_refresh_token FROM "
		"(SELECT DISTINCT ON (enterprise_id, team_id, user_id) * FROM "
		"slack_installations WHERE client_id = $1 ORDER BY enterprise_id, "
		"team_id, user_id, installed_at DESC, id DESC) i WHERE "
		"user_refresh_token IS NOT NULL AND user_token_expires_at <= $2",
	};
	char dl[24];
	const char *p[2] = { client_id, dl };
	struct due *l = NULL, *nl;
	size_t cnt = 0;
	PGresult *r;
	int rc, i, row, rows;

	fmt_i64(dl, sizeof(dl), deadline);
	for (i = 0; i < 2; i++) {
		if ((r = run(db, sql[i], 2, p, &rc)) == NULL) {
			store_due_free(l, cnt);
			return rc;
		}
		rows = pq.ntuples(r);
		for (row = 0; row < rows; row++) {
			if ((nl = realloc(l, (cnt + 1) * sizeof(*l))) == NULL) {
				pq.clear(r);
				store_due_free(l, cnt);
				return DB_ERR;
			}
			l = nl;
			l[cnt].enterprise_id = val(r, row, 0);
			l[cnt].team_id = val(r, row, 1);
			l[cnt].user_id = val(r, row, 2);
			l[cnt].refresh_token = val(r, row, 3);
			cnt++;
		}
		pq.clear(r);
	}
	*list = l;
	*n = cnt;
	return DB_OK;
}

static int
pg_refresh_token(struct db *db, const char *client_id, const struct due *d,
    char **refresh_token, int64_t *expires_at)
{
	const char *p[4] = { client_id, or_empty(d->enterprise_id),
		or_empty(d->team_id), d->user_id };

	if (d->user_id == NULL)
		return one_pair(db,
		    "SELECT bot_refresh_token, bot_token_expires_at "
		    "FROM slack_bots WHERE " KEY NEWEST,
		    3, p, 0, refresh_token, expires_at);
	return one_pair(db,
	    "SELECT user_refresh_token, user_token_expires_at "
	    "FROM slack_installations WHERE " KEY " AND user_id = $4" NEWEST,
	    4, p, 0, refresh_token, expires_at);
}

#define COPY_HEAD                                                              \
	"client_id, app_id, enterprise_id, enterprise_name, enterprise_url, "  \
	"team_id, team_name, "
#define COPY_TAIL                                                              \
	"incoming_webhook_url, incoming_webhook_channel, "                     \
	"incoming_webhook_channel_id, incoming_webhook_configuration_url, "    \
	"is_enterprise_install, token_type, installed_at, oauth_response, "    \
	"auth_test_response"

static int
pg_refreshed(struct db *db, const char *client_id, const struct due *d,
    const char *token, const char *refresh_token, int64_t expires_at,
    const char *scope, const char *json, const char *stamp)
{
	char exp[24];
	const char *p[10] = { client_id, or_empty(d->enterprise_id),
		or_empty(d->team_id), token, refresh_token, exp, scope, stamp,
		json, d->user_id };
	long n;
	int rc;

	fmt_i64(exp, sizeof(exp), expires_at);
	if ((rc = begin(db)) != DB_OK)
		return rc;
	if (d->user_id == NULL) {
		n = changed(db,
		    "INSERT INTO slack_bots (client_id, app_id, "
		    "enterprise_id, enterprise_name, team_id, team_name, bot_token, "
		    "bot_id, bot_user_id, bot_scopes, bot_refresh_token, "
		    "bot_token_expires_at, is_enterprise_install, installed_at) "
		    "SELECT client_id, app_id, enterprise_id, enterprise_name, "
		    "team_id, team_name, $4, bot_id, bot_user_id, "
		    "coalesce($7, bot_scopes), $5, $6::bigint, is_enterprise_install, "
		    "$8::timestamp FROM slack_bots WHERE " KEY NEWEST,
		    8, p);
		if (n != 1)
			goto fail;
		n = changed(db,
		    "INSERT INTO slack_installations (" COPY_HEAD
		    "bot_token, bot_id, bot_user_id, bot_scopes, bot_refresh_token, "
		    "bot_token_expires_at, user_id, user_token, user_scopes, "
		    "user_refresh_token, user_token_expires_at, " COPY_TAIL
		    ") SELECT " COPY_HEAD
		    "$4, bot_id, bot_user_id, coalesce($7, bot_scopes), $5, "
		    "$6::bigint, user_id, user_token, user_scopes, user_refresh_token, "
		    "user_token_expires_at, incoming_webhook_url, "
		    "incoming_webhook_channel, incoming_webhook_channel_id, "
		    "incoming_webhook_configuration_url, is_enterprise_install, "
		    "token_type, $8::timestamp, $9, auth_test_response FROM "
		    "slack_installations WHERE " KEY NEWEST,
		    9, p);
	} else
		n = changed(db,
		    "INSERT INTO slack_installations (" COPY_HEAD
		    "bot_token, bot_id, bot_user_id, bot_scopes, bot_refresh_token, "
		    "bot_token_expires_at, user_id, user_token, user_scopes, "
		    "user_refresh_token, user_token_expires_at, " COPY_TAIL
		    ") SELECT " COPY_HEAD
		    "bot_token, bot_id, bot_user_id, bot_scopes, "
		    "bot_refresh_token, bot_token_expires_at, user_id, $4, "
		    "coalesce($7, user_scopes), $5, $6::bigint, incoming_webhook_url, "
		    "incoming_webhook_channel, incoming_webhook_channel_id, "
		    "incoming_webhook_configuration_url, is_enterprise_install, "
		    "token_type, $8::timestamp, $9, auth_test_response FROM "
		    "slack_installations WHERE " KEY
		    " AND user_id = $10" NEWEST,
		    10, p);
	if (n != 1)
		goto fail;
	return commit(db);
fail:
	rollback(db);
	return n < 0 ? (int)n : DB_ERR;
}

static int
pg_lock(struct db *db, const char *name, int64_t now, int64_t until)
{
	char nw[24], ut[24];
	const char *p[3] = { name, nw, ut };
	long n;
	int rc;

	fmt_i64(nw, sizeof(nw), now);
	fmt_i64(ut, sizeof(ut), until);
	if ((rc = begin(db)) != DB_OK)
		return rc;
	if ((rc = exec(db,
		 "DELETE FROM slack_oauth_locks WHERE name = $1 AND "
		 "expires_at <= $2",
		 2, p)) != DB_OK) {
		rollback(db);
		return rc;
	}
	const char *q[2] = { name, ut };
	if ((n = changed(db,
		 "INSERT INTO slack_oauth_locks (name, expires_at) "
		 "VALUES ($1, $2) ON CONFLICT DO NOTHING",
		 2, q)) < 0) {
		rollback(db);
		return (int)n;
	}
	if ((rc = commit(db)) != DB_OK)
		return rc;
	return n == 1;
}

static int
pg_unlock(struct db *db, const char *name)
{
	const char *p[1] = { name };

	return exec(db, "DELETE FROM slack_oauth_locks WHERE name = $1", 1, p);
}

static int
pg_tokens(struct db *db, const char *client_id, const struct inst_key *k,
    int64_t now, char ***tokens, size_t *n)
{
	char nw[24];
	const char *p[4] = { client_id, k->enterprise_id, k->team_id, nw };
	char **l = NULL, **nl;
	size_t cnt = 0;
	PGresult *r;
	int rc, i, rows;

	fmt_i64(nw, sizeof(nw), now);
	if ((r = run(db,
		 "SELECT bot_token FROM slack_bots WHERE " KEY " AND "
		 "(bot_token_expires_at IS NULL OR bot_token_expires_at > $4) UNION "
		 "SELECT user_token FROM slack_installations WHERE " KEY " AND "
		 "user_token IS NOT NULL AND (user_token_expires_at IS NULL OR "
		 "user_token_expires_at > $4)",
		 4, p, &rc)) == NULL)
		return rc;
	rows = pq.ntuples(r);
	for (i = 0; i < rows; i++) {
		if ((nl = realloc(l, (cnt + 1) * sizeof(*l))) == NULL) {
			pq.clear(r);
			store_tokens_free(l, cnt);
			return DB_ERR;
		}
		l = nl;
		l[cnt++] = val(r, i, 0);
	}
	pq.clear(r);
	*tokens = l;
	*n = cnt;
	return DB_OK;
}

/* $4: only rows installed before it (NULL: all); $5: the user. */
#define BEFORE " AND ($4::timestamp IS NULL OR installed_at < $4::timestamp)"

static long
pg_forget(struct db *db, enum forget_what what, const char *client_id,
    const struct inst_key *k, const char *before, const char *user_id)
{
	static const char *const sql[] = {
		[FORGET_BOTS] = "DELETE FROM slack_bots WHERE " KEY BEFORE,
		[FORGET_INSTALLATIONS] =
		    "DELETE FROM slack_installations WHERE " KEY BEFORE,
		[FORGET_USER] = "DELETE FROM slack_installations WHERE " KEY
				" AND user_id = $5" BEFORE,
		/* Slack's saved answer goes too: it holds the bot token. */
		[FORGET_BOT_COLUMNS] =
		    "UPDATE slack_installations SET bot_token = NULL, "
		    "bot_id = NULL, bot_user_id = NULL, bot_scopes = NULL, "
		    "bot_refresh_token = NULL, bot_token_expires_at = NULL, "
		    "oauth_response = NULL "
		    "WHERE " KEY " AND bot_token IS NOT NULL" BEFORE,
	};
	const char *p[5] = { client_id, k->enterprise_id, k->team_id, before,
		user_id };

	return changed(db, sql[what], user_id != NULL ? 5 : 4, p);
}

static int
pg_each(struct db *db, int bots,
    int (*fn)(void *, const char *client_id, const struct installation *),
    void *arg)
{
	struct installation in;
	PGresult *r;
	int rc, i, n, stop = 0;

	r = run(db,
	    bots
		? "SELECT client_id, app_id, enterprise_id, "
		  "enterprise_name, NULL, team_id, team_name, bot_token, bot_id, "
		  "bot_user_id, bot_scopes, bot_refresh_token, bot_token_expires_at, '', "
		  "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
		  "is_enterprise_install::int, NULL, " STAMP
		  ", NULL, NULL FROM slack_bots "
		  "ORDER BY id"
		: "SELECT client_id, app_id, enterprise_id, "
		  "enterprise_name, enterprise_url, team_id, team_name, bot_token, bot_id, "
		  "bot_user_id, bot_scopes, bot_refresh_token, bot_token_expires_at, "
		  "user_id, user_token, user_scopes, user_refresh_token, "
		  "user_token_expires_at, incoming_webhook_url, incoming_webhook_channel, "
		  "incoming_webhook_channel_id, incoming_webhook_configuration_url, "
		  "is_enterprise_install::int, token_type, " STAMP
		  ", oauth_response, "
		  "auth_test_response FROM slack_installations ORDER BY id",
	    0, NULL, &rc);
	if (r == NULL)
		return rc;
	n = pq.ntuples(r);
	for (i = 0; i < n && !stop; i++) {
		read_installation(r, i, &in);
		stop = fn(arg, pq.getvalue(r, i, 0), &in);
		installation_free(&in);
	}
	pq.clear(r);
	return stop ? DB_ERR : DB_OK;
}

static int
pg_put_row(struct db *db, int bots, const char *client_id,
    const struct installation *in)
{
	return put_row(db, bots ? ITABLE_BOTS : ITABLE_INSTALLATIONS, client_id,
	    in, in->installed_at);
}

static long
pg_rows(struct db *db)
{
	return number(db,
	    "SELECT (SELECT count(*) FROM slack_installations) + "
	    "(SELECT count(*) FROM slack_bots)",
	    0, NULL);
}

const struct backend backend_pg = {
	.name = "postgresql",
	.open = pg_open,
	.close = pg_close,
	.errmsg = pg_errmsg,
	.busy_timeout = pg_busy_timeout,
	.inspect = pg_inspect,
	.state_key = pg_state_key,
	.state_use = pg_state_use,
	.state_purge = pg_state_purge,
	.put = pg_put,
	.list = pg_list,
	.token = pg_token,
	.due = pg_due,
	.refresh_token = pg_refresh_token,
	.refreshed = pg_refreshed,
	.lock = pg_lock,
	.unlock = pg_unlock,
	.tokens = pg_tokens,
	.forget = pg_forget,
	.each = pg_each,
	.put_row = pg_put_row,
	.rows = pg_rows,
	.begin = begin,
	.commit = commit,
	.rollback = rollback,
};
