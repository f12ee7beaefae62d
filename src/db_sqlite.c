/* The SQLite backend: the file, its pragmas, the versioned schema, the
 * table of every SQL statement, and the operations of backend.h. */
#include <sys/stat.h>

#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "backend.h"
#include "installation.h"
#include "lim.h"
#include "store.h"
#include "util.h"

#define SQ_VERSION 2 /* the schema version this build creates */

enum stmt {
	STMT_KEY_GET,
	STMT_KEY_PUT,
	STMT_STATE_USE,
	STMT_STATE_PURGE,
	STMT_INSTALLATION_PUT,
	STMT_BOT_PUT,
	STMT_LIST_LATEST,
	STMT_BOT_TOKEN,
	STMT_USER_TOKEN,
	STMT_DUE_BOTS,
	STMT_DUE_USERS,
	STMT_BOT_LATEST,
	STMT_USER_LATEST,
	STMT_BOT_COPY,
	STMT_INSTALLATION_COPY_BOT,
	STMT_INSTALLATION_COPY_USER,
	STMT_LOCK_EXPIRE,
	STMT_LOCK_TAKE,
	STMT_LOCK_DROP,
	STMT_REVOKE_BOT_TOKENS,
	STMT_REVOKE_USER_TOKENS,
	STMT_DELETE_INSTALLATIONS,
	STMT_DELETE_BOTS,
	STMT_DELETE_USER,
	STMT_CLEAR_BOT,
	STMT_EACH_INSTALLATION,
	STMT_EACH_BOT,
	STMT_ROWS,
	STMT_BEGIN,
	STMT_COMMIT,
	STMT_ROLLBACK,
	STMT_SYNC_FULL,
	STMT_SYNC_NORMAL,
	STMT__MAX
};

static int sq_begin(struct db *);
static int sq_begin_durable(struct db *);
static int sq_commit(struct db *);
static void sq_rollback(struct db *);
static sqlite3_stmt *sq_stmt(struct db *, enum stmt);

/* The connection behind struct db's h: one worker's, never shared. */
struct sq {
	sqlite3 *h;
	sqlite3_stmt *stmt[STMT__MAX]; /* prepared on first use */
	char err[256];                 /* the error a rollback cleared */
	int durable;                   /* the open transaction is durable */
};
#define Q(db) ((struct sq *)(db)->h)

/* The installation columns, in struct installation's order (store.c reads
 * them back in this order). */
#define INSTALLATION_COLS                                                            \
	"id, app_id, enterprise_id, enterprise_name, enterprise_url, team_id, "      \
	"team_name, bot_token, bot_id, bot_user_id, bot_scopes, bot_refresh_token, " \
	"bot_token_expires_at, user_id, user_token, user_scopes, "                   \
	"user_refresh_token, user_token_expires_at, incoming_webhook_url, "          \
	"incoming_webhook_channel, incoming_webhook_channel_id, "                    \
	"incoming_webhook_configuration_url, is_enterprise_install, token_type, "    \
	"installed_at"

/* An installation: ?2 an enterprise id, or NULL for "any" (a team id is
 * unique across Slack), ?3 a team id ('' for an org-wide install). */
#define KEY                                                                    \
	"client_id = ?1 AND team_id = ?3 AND (?2 IS NULL OR enterprise_id = ?2)"
#define NEWEST " ORDER BY installed_at DESC, id DESC LIMIT 1"
#define BEFORE " AND (?4 IS NULL OR installed_at < ?4)"

/* The columns a refresh copies unchanged into a new row. */
#define COPY_HEAD                                                              \
	"client_id, app_id, enterprise_id, enterprise_name, enterprise_url, "  \
	"team_id, team_name, "
#define COPY_TAIL                                                              \
	"incoming_webhook_url, incoming_webhook_channel, "                     \
	"incoming_webhook_channel_id, incoming_webhook_configuration_url, "    \
	"is_enterprise_install, token_type, installed_at, oauth_response, "    \
	"auth_test_response"

static const char *const stmts[STMT__MAX] = {
	[STMT_KEY_GET] = "SELECT key FROM slack_oauth_keys WHERE id = 1",
	[STMT_KEY_PUT] =
	    "INSERT OR IGNORE INTO slack_oauth_keys (id, key, created_at) "
	    "VALUES (1, ?1, ?2)",
	[STMT_STATE_USE] =
	    "INSERT OR IGNORE INTO slack_oauth_states (hash, expires_at) "
	    "VALUES (?1, ?2)",
	[STMT_STATE_PURGE] =
	    "DELETE FROM slack_oauth_states WHERE expires_at <= ?1",
	[STMT_INSTALLATION_PUT] =
	    "INSERT INTO slack_installations ("
	    "client_id, app_id, enterprise_id, enterprise_name, enterprise_url, "
	    "team_id, team_name, bot_token, bot_id, bot_user_id, bot_scopes, "
	    "bot_refresh_token, bot_token_expires_at, user_id, user_token, "
	    "user_scopes, user_refresh_token, user_token_expires_at, "
	    "incoming_webhook_url, incoming_webhook_channel, "
	    "incoming_webhook_channel_id, incoming_webhook_configuration_url, "
	    "is_enterprise_install, token_type, installed_at, oauth_response, "
	    "auth_test_response) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
	    "?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, "
	    "?25, ?26, ?27)",
	[STMT_BOT_PUT] =
	    "INSERT INTO slack_bots ("
	    "client_id, app_id, enterprise_id, enterprise_name, team_id, team_name, "
	    "bot_token, bot_id, bot_user_id, bot_scopes, bot_refresh_token, "
	    "bot_token_expires_at, is_enterprise_install, installed_at) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
	[STMT_LIST_LATEST] =
	    "SELECT " INSTALLATION_COLS " FROM slack_installations i "
	    "WHERE client_id = ?1 AND id = (SELECT j.id FROM slack_installations j "
	    "WHERE j.client_id = i.client_id AND j.enterprise_id = i.enterprise_id "
	    "AND j.team_id = i.team_id ORDER BY j.installed_at DESC, j.id DESC LIMIT 1) "
	    "ORDER BY enterprise_id, team_id",
	[STMT_BOT_TOKEN] =
	    "SELECT bot_token, bot_token_expires_at FROM slack_bots "
	    "WHERE " KEY NEWEST,
	[STMT_USER_TOKEN] =
	    "SELECT user_token, user_token_expires_at FROM "
	    "slack_installations WHERE " KEY " AND user_id = ?4" NEWEST,
	[STMT_DUE_BOTS] =
	    "SELECT enterprise_id, team_id, NULL, bot_refresh_token "
	    "FROM slack_bots b "
	    "WHERE client_id = ?1 AND id = (SELECT c.id FROM slack_bots c "
	    "WHERE c.client_id = b.client_id AND c.enterprise_id = b.enterprise_id "
	    "AND c.team_id = b.team_id ORDER BY c.installed_at DESC, c.id DESC LIMIT 1) "
	    "AND bot_refresh_token IS NOT NULL AND bot_token_expires_at <= ?2",
	[STMT_DUE_USERS] =
	    "SELECT enterprise_id, team_id, user_id, "
	    "user_refresh_token FROM "
	    "slack_installations i WHERE client_id = ?1 AND id = (SELECT j.id FROM "
	    "slack_installations j WHERE j.client_id = i.client_id AND "
	    "j.enterprise_id = i.enterprise_id AND j.team_id = i.team_id AND "
	    "j.user_id = i.user_id ORDER BY j.installed_at DESC, j.id DESC LIMIT 1) "
	    "AND user_refresh_token IS NOT NULL AND user_token_expires_at <= ?2",
	[STMT_BOT_LATEST] = "SELECT bot_refresh_token, bot_token_expires_at "
			    "FROM slack_bots WHERE " KEY NEWEST,
	[STMT_USER_LATEST] =
	    "SELECT user_refresh_token, user_token_expires_at "
	    "FROM slack_installations WHERE " KEY " AND user_id = ?4" NEWEST,
	[STMT_BOT_COPY] =
	    "INSERT INTO slack_bots (client_id, app_id, enterprise_id, "
	    "enterprise_name, team_id, team_name, bot_token, bot_id, bot_user_id, "
	    "bot_scopes, bot_refresh_token, bot_token_expires_at, "
	    "is_enterprise_install, installed_at) SELECT client_id, app_id, "
	    "enterprise_id, enterprise_name, team_id, team_name, ?4, bot_id, "
	    "bot_user_id, coalesce(?7, bot_scopes), ?5, ?6, is_enterprise_install, "
	    "?8 FROM slack_bots WHERE " KEY NEWEST,
	[STMT_INSTALLATION_COPY_BOT] =
	    "INSERT INTO slack_installations (" COPY_HEAD
	    "bot_token, bot_id, bot_user_id, bot_scopes, bot_refresh_token, "
	    "bot_token_expires_at, user_id, user_token, user_scopes, "
	    "user_refresh_token, user_token_expires_at, " COPY_TAIL
	    ") SELECT " COPY_HEAD
	    "?4, bot_id, bot_user_id, coalesce(?7, bot_scopes), ?5, ?6, "
	    "user_id, user_token, user_scopes, user_refresh_token, "
	    "user_token_expires_at, incoming_webhook_url, incoming_webhook_channel, "
	    "incoming_webhook_channel_id, incoming_webhook_configuration_url, "
	    "is_enterprise_install, token_type, ?8, ?9, auth_test_response "
	    "FROM slack_installations WHERE " KEY NEWEST,
	[STMT_INSTALLATION_COPY_USER] =
	    "INSERT INTO slack_installations (" COPY_HEAD
	    "bot_token, bot_id, bot_user_id, bot_scopes, bot_refresh_token, "
	    "bot_token_expires_at, user_id, user_token, user_scopes, "
	    "user_refresh_token, user_token_expires_at, " COPY_TAIL
	    ") SELECT " COPY_HEAD
	    "bot_token, bot_id, bot_user_id, bot_scopes, bot_refresh_token, "
	    "bot_token_expires_at, user_id, ?4, coalesce(?7, user_scopes), ?5, ?6, "
	    "incoming_webhook_url, incoming_webhook_channel, "
	    "incoming_webhook_channel_id, incoming_webhook_configuration_url, "
	    "is_enterprise_install, token_type, ?8, ?9, auth_test_response "
	    "FROM slack_installations WHERE " KEY " AND user_id = ?10" NEWEST,
	[STMT_LOCK_EXPIRE] =
	    "DELETE FROM slack_oauth_locks WHERE name = ?1 AND "
	    "expires_at <= ?2",
	[STMT_LOCK_TAKE] =
	    "INSERT OR IGNORE INTO slack_oauth_locks (name, expires_at) "
	    "VALUES (?1, ?2)",
	[STMT_LOCK_DROP] = "DELETE FROM slack_oauth_locks WHERE name = ?1",
	[STMT_REVOKE_BOT_TOKENS] =
	    "SELECT DISTINCT bot_token FROM slack_bots WHERE " KEY
	    " AND (bot_token_expires_at IS NULL OR bot_token_expires_at > ?4)",
	[STMT_REVOKE_USER_TOKENS] =
	    "SELECT DISTINCT user_token FROM "
	    "slack_installations WHERE " KEY " AND user_token IS NOT NULL AND "
	    "(user_token_expires_at IS NULL OR user_token_expires_at > ?4)",
	/* ?4: only rows installed before it (NULL: all); ?5: the user. */
	[STMT_DELETE_INSTALLATIONS] =
	    "DELETE FROM slack_installations WHERE " KEY BEFORE,
	[STMT_DELETE_BOTS] = "DELETE FROM slack_bots WHERE " KEY BEFORE,
	[STMT_DELETE_USER] = "DELETE FROM slack_installations WHERE " KEY
			     " AND user_id = ?5" BEFORE,
	/* Slack's saved answer goes too: it holds the bot token. */
	[STMT_CLEAR_BOT] =
	    "UPDATE slack_installations SET bot_token = NULL, bot_id = NULL, "
	    "bot_user_id = NULL, bot_scopes = NULL, bot_refresh_token = NULL, "
	    "bot_token_expires_at = NULL, oauth_response = NULL WHERE " KEY
	    " AND bot_token IS NOT NULL" BEFORE,
	/* Column 0 is the client id here, where INSTALLATION_COLS has id. */
	[STMT_EACH_INSTALLATION] =
	    "SELECT client_id, app_id, enterprise_id, "
	    "enterprise_name, enterprise_url, team_id, team_name, bot_token, bot_id, "
	    "bot_user_id, bot_scopes, bot_refresh_token, bot_token_expires_at, "
	    "user_id, user_token, user_scopes, user_refresh_token, "
	    "user_token_expires_at, incoming_webhook_url, incoming_webhook_channel, "
	    "incoming_webhook_channel_id, incoming_webhook_configuration_url, "
	    "is_enterprise_install, token_type, installed_at, oauth_response, "
	    "auth_test_response FROM slack_installations ORDER BY id",
	[STMT_EACH_BOT] =
	    "SELECT client_id, app_id, enterprise_id, enterprise_name, "
	    "NULL, team_id, team_name, bot_token, bot_id, bot_user_id, bot_scopes, "
	    "bot_refresh_token, bot_token_expires_at, '', NULL, NULL, NULL, NULL, "
	    "NULL, NULL, NULL, NULL, is_enterprise_install, NULL, installed_at, "
	    "NULL, NULL FROM slack_bots ORDER BY id",
	[STMT_BEGIN] = "BEGIN IMMEDIATE",
	[STMT_COMMIT] = "COMMIT",
	[STMT_ROLLBACK] = "ROLLBACK",
	[STMT_SYNC_FULL] = "PRAGMA synchronous = FULL",
	[STMT_SYNC_NORMAL] = "PRAGMA synchronous = NORMAL",
	[STMT_ROWS] = "SELECT (SELECT count(*) FROM slack_installations) + "
		      "(SELECT count(*) FROM slack_bots)",
};

/* Schema version 1. The two installation tables are the Python Slack SDK's
 * SQLite3InstallationStore tables, column for column, plus two nullable
 * columns of ours; IF NOT EXISTS lets us adopt tables the SDK made first. */
static const char schema_v1[] =
    "CREATE TABLE IF NOT EXISTS slack_installations ("
    " id integer primary key autoincrement,"
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
    " bot_token_expires_at datetime,"
    " user_id text not null,"
    " user_token text,"
    " user_scopes text,"
    " user_refresh_token text,"
    " user_token_expires_at datetime,"
    " incoming_webhook_url text,"
    " incoming_webhook_channel text,"
    " incoming_webhook_channel_id text,"
    " incoming_webhook_configuration_url text,"
    " is_enterprise_install boolean not null default 0,"
    " token_type text,"
    " installed_at datetime not null default current_timestamp);"
    "CREATE INDEX IF NOT EXISTS slack_installations_idx ON slack_installations"
    " (client_id, enterprise_id, team_id, user_id, installed_at);"
    "CREATE TABLE IF NOT EXISTS slack_bots ("
    " id integer primary key autoincrement,"
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
    " bot_token_expires_at datetime,"
    " is_enterprise_install boolean not null default 0,"
    " installed_at datetime not null default current_timestamp);"
    "CREATE INDEX IF NOT EXISTS slack_bots_idx ON slack_bots"
    " (client_id, enterprise_id, team_id, installed_at);"
    "CREATE TABLE IF NOT EXISTS slack_oauth_keys ("
    " id integer primary key check (id = 1),"
    " key blob not null,"
    " created_at integer not null);"
    "CREATE TABLE IF NOT EXISTS slack_oauth_states ("
    " hash blob primary key,"
    " expires_at integer not null) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS slack_oauth_states_expiry"
    " ON slack_oauth_states (expires_at);"
    "CREATE TABLE IF NOT EXISTS slack_oauth_locks ("
    " name text primary key,"
    " expires_at integer not null) WITHOUT ROWID;";

/* Version 2: used states keyed by (expires_at, hash). A state's expiry is
 * inside its signed bytes, so the pair is as unique as the hash; in expiry
 * order, new records go to the end of one B-tree, which the purge takes
 * from the start of, where version 1's random keys and expiry index wrote
 * two scattered pages a record. */
static const char schema_v2[] =
    "DROP INDEX IF EXISTS slack_oauth_states_expiry;"
    "ALTER TABLE slack_oauth_states RENAME TO slack_oauth_states_v1;"
    "CREATE TABLE slack_oauth_states ("
    " expires_at integer not null,"
    " hash blob not null,"
    " primary key (expires_at, hash)) WITHOUT ROWID;"
    "INSERT INTO slack_oauth_states (expires_at, hash)"
    " SELECT expires_at, hash FROM slack_oauth_states_v1;"
    "DROP TABLE slack_oauth_states_v1;";

/* Our own columns, added to SDK-made tables when missing. */
static const struct {
	const char *probe, *add;
} own_columns[] = {
	{ "SELECT oauth_response FROM slack_installations LIMIT 0",
	    "ALTER TABLE slack_installations ADD COLUMN oauth_response text" },
	{ "SELECT auth_test_response FROM slack_installations LIMIT 0",
	    "ALTER TABLE slack_installations ADD COLUMN auth_test_response text" },
};

static int
sq_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return DB_OK;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return DB_BUSY;
	default:
		return DB_ERR;
	}
}

static const char *
sq_errmsg(struct db *db)
{
	struct sq *q = db != NULL ? Q(db) : NULL;

	if (q == NULL || q->h == NULL)
		return "no database";
	/* A rollback resets SQLite's message to "not an error": keep the
	 * reason the transaction failed. */
	if (sqlite3_errcode(q->h) == SQLITE_OK && q->err[0] != '\0')
		return q->err;
	return sqlite3_errmsg(q->h);
}

static int
user_version(sqlite3 *h, int *v)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = sqlite3_prepare_v2(
		 h, "PRAGMA user_version", -1, &st, NULL)) == SQLITE_OK &&
	    (rc = sqlite3_step(st)) == SQLITE_ROW)
		*v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return sq_rc(rc);
}

/* Brings the schema to SQ_VERSION under one write lock, so that processes
 * starting together on a new file do it once. */
static int
migrate(struct db *db, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	unsigned char key[32];
	int v = 0, rc;
	size_t i;

	/* Changing the journal mode does not wait on the busy handler: retry
	 * while another process creates the file, up to the busy timeout. */
	for (i = 0;
	     (rc = sq_rc(sqlite3_exec(Q(db)->h, "PRAGMA journal_mode=WAL", NULL,
		  NULL, NULL))) == DB_BUSY &&
	     i < LIM_BUSY_MS / 10;
	     i++)
		usleep(10 * 1000);
	if (rc != DB_OK)
		goto fail;
	if ((rc = sq_begin_durable(db)) != DB_OK)
		goto fail;
	if ((rc = user_version(Q(db)->h, &v)) != DB_OK)
		goto rollback;
	if (v > SQ_VERSION) {
		snprintf(err, errlen,
		    "%s: schema version %d is newer than this "
		    "program's %d",
		    db->target, v, SQ_VERSION);
		sq_rollback(db);
		return DB_ERR;
	}
	if (v < 1) {
		if ((rc = sq_rc(sqlite3_exec(
			 Q(db)->h, schema_v1, NULL, NULL, NULL))) != DB_OK)
			goto rollback;
		for (i = 0; i < sizeof(own_columns) / sizeof(own_columns[0]);
		     i++) {
			if (sqlite3_prepare_v2(Q(db)->h, own_columns[i].probe,
				-1, &st, NULL) == SQLITE_OK) {
				sqlite3_finalize(st);
				st = NULL;
				continue;
			}
			if ((rc = sq_rc(sqlite3_exec(Q(db)->h,
				 own_columns[i].add, NULL, NULL, NULL))) !=
			    DB_OK)
				goto rollback;
		}
		if (rand_bytes(key, sizeof(key)) == -1) {
			rc = DB_ERR;
			goto rollback;
		}
		st = sq_stmt(db, STMT_KEY_PUT);
		if (st == NULL ||
		    sqlite3_bind_blob(
			st, 1, key, sizeof(key), SQLITE_TRANSIENT) ||
		    sqlite3_bind_int64(st, 2, now_unix()) ||
		    (rc = sq_rc(sqlite3_step(st))) != DB_OK) {
			rc = st == NULL ? DB_ERR
					: sq_rc(sqlite3_errcode(Q(db)->h));
			explicit_bzero(key, sizeof(key));
			goto rollback;
		}
		sqlite3_reset(st);
		explicit_bzero(key, sizeof(key));
	}
	if (v < 2 &&
	    (rc = sq_rc(sqlite3_exec(Q(db)->h, schema_v2, NULL, NULL, NULL))) !=
		DB_OK)
		goto rollback;
	/* Later versions: if (v < 3) { ... } */
	if ((rc = sq_rc(sqlite3_exec(Q(db)->h, "PRAGMA user_version = 2", NULL,
		 NULL, NULL))) != DB_OK)
		goto rollback;
	if ((rc = sq_commit(db)) != DB_OK)
		goto fail;
	return DB_OK;
rollback:
	snprintf(err, errlen, "%s: creating the schema: %s", db->target,
	    sqlite3_errmsg(Q(db)->h));
	sq_rollback(db);
	return rc == DB_OK ? DB_ERR : rc;
fail:
	snprintf(err, errlen, "%s: %s", db->target, sqlite3_errmsg(Q(db)->h));
	return rc;
}

/* Runs one of the prepared pragma or transaction statements. */
static int
step(struct db *db, enum stmt id)
{
	sqlite3_stmt *st;
	int rc;

	if ((st = sq_stmt(db, id)) == NULL)
		return sq_rc(sqlite3_errcode(Q(db)->h));
	if ((rc = sq_rc(sqlite3_step(st))) != DB_OK)
		snprintf(Q(db)->err, sizeof(Q(db)->err), "%s",
		    sqlite3_errmsg(Q(db)->h));
	sqlite3_reset(st);
	return rc;
}

void
db_sqlite_init(void)
{
	/* No page cache preallocated for each connection: SQLite's default,
	 * 20 pages (some 80 KiB) on a connection's first query, is most of
	 * what a FastCGI worker's connection would cost. Only before SQLite
	 * initialises: later it changes nothing. */
	sqlite3_config(SQLITE_CONFIG_PAGECACHE, NULL, 0, 0);
	sqlite3_initialize();
}

static int
sq_open(struct db *db, char *err, size_t errlen)
{
	struct sq *q;
	int v = 0, rc;

	if ((q = calloc(1, sizeof(*q))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return DB_ERR;
	}
	db->h = q;
	if (db_trust(db->target, err, errlen) == -1)
		return DB_ERR;
	/* The file and its -wal and -shm take the mode of a new file under the
	 * process umask; serve() and the admin command set 077. NOFOLLOW: a
	 * symbolic link put there after db_trust looked is not followed. */
	if (sqlite3_open_v2(db->target, &q->h,
		SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
		    SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
		NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", db->target,
		    q->h != NULL ? sqlite3_errmsg(q->h)
				 : sqlite3_errstr(SQLITE_CANTOPEN));
		return DB_ERR;
	}
	sqlite3_extended_result_codes(q->h, 1);
	sqlite3_busy_timeout(q->h, LIM_BUSY_MS);
	/* Keep the -wal and -shm files when the last connection closes: a CGI
	 * process would otherwise create and unlink them on every request. */
	sqlite3_file_control(
	    q->h, "main", SQLITE_FCNTL_PERSIST_WAL, &(int){ 1 });
	sqlite3_db_config(q->h, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	/* Transactions that only record states or leases sync lazily (WAL
	 * with synchronous=NORMAL: safe against crashes, and what a power cut
	 * may lose is harmless since Slack's codes are single-use); those that
	 * write installations commit under synchronous=FULL (sq_begin_durable).
	 * A small page cache (64 KiB a connection, a worker's) keeps a
	 * long-lived process's memory low. A WAL
	 * cut back below the 1000 pages it reaches between checkpoints would
	 * grow again each time, and a growing file costs every fdatasync its
	 * metadata: 8 MiB keeps it whole. */
	if ((rc = sq_rc(sqlite3_exec(q->h,
		 "PRAGMA synchronous = NORMAL; "
		 "PRAGMA cache_size = -16; PRAGMA journal_size_limit = 8388608",
		 NULL, NULL, NULL))) != DB_OK) {
		snprintf(
		    err, errlen, "%s: %s", db->target, sqlite3_errmsg(q->h));
		return rc;
	}
	if ((rc = user_version(q->h, &v)) != DB_OK) {
		snprintf(
		    err, errlen, "%s: %s", db->target, sqlite3_errmsg(q->h));
		return rc;
	}
	if (v != SQ_VERSION && (rc = migrate(db, err, errlen)) != DB_OK)
		return rc;
	return DB_OK;
}

static void
sq_close(struct db *db)
{
	struct sq *q = Q(db);
	int i;

	if (q == NULL)
		return;
	for (i = 0; i < STMT__MAX; i++)
		sqlite3_finalize(q->stmt[i]);
	sqlite3_close(q->h);
	free(q);
	db->h = NULL;
}

static sqlite3_stmt *
sq_stmt(struct db *db, enum stmt id)
{
	sqlite3_stmt *st = Q(db)->stmt[id];

	if (st == NULL) {
		if (sqlite3_prepare_v3(Q(db)->h, stmts[id], -1,
			SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
			return NULL;
		Q(db)->stmt[id] = st;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

static int
sq_state_key(struct db *db, unsigned char key[32])
{
	sqlite3_stmt *st;
	int rc;

	if ((st = sq_stmt(db, STMT_KEY_GET)) == NULL)
		return sq_rc(sqlite3_errcode(Q(db)->h));
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW || sqlite3_column_bytes(st, 0) != 32) {
		sqlite3_reset(st);
		return rc == SQLITE_ROW || rc == SQLITE_DONE ? DB_ERR
							     : sq_rc(rc);
	}
	memcpy(key, sqlite3_column_blob(st, 0), 32);
	sqlite3_reset(st);
	return DB_OK;
}

static int
sq_begin(struct db *db)
{
	return step(db, STMT_BEGIN);
}

/* A transaction that must survive a power cut once committed: it runs, and
 * so commits, under synchronous=FULL, which syncs the WAL (or the rollback
 * journal and the file) before COMMIT returns; NORMAL again after it. */
static int
sq_begin_durable(struct db *db)
{
	int rc;

	if ((rc = step(db, STMT_SYNC_FULL)) != DB_OK)
		return rc;
	Q(db)->durable = 1;
	if ((rc = step(db, STMT_BEGIN)) != DB_OK)
		sq_rollback(db);
	return rc;
}

static int
sq_commit(struct db *db)
{
	struct sq *q = Q(db);
	int rc;

	if ((rc = step(db, STMT_COMMIT)) != DB_OK) {
		sq_rollback(db);
		return rc;
	}
	if (q->durable)
		step(db, STMT_SYNC_NORMAL);
	q->durable = 0;
	return DB_OK;
}

static void
sq_rollback(struct db *db)
{
	struct sq *q = Q(db);

	if (sqlite3_errcode(q->h) != SQLITE_OK)
		snprintf(q->err, sizeof(q->err), "%s", sqlite3_errmsg(q->h));
	if (!sqlite3_get_autocommit(q->h))
		step(db, STMT_ROLLBACK);
	if (q->durable)
		step(db, STMT_SYNC_NORMAL);
	q->durable = 0;
}

static void
sq_busy_timeout(struct db *db, int ms)
{
	sqlite3_busy_timeout(Q(db)->h, ms);
}

static int
sq_inspect(const char *path, struct db_info *info, char *err, size_t errlen)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	const unsigned char *s;
	int rc = DB_ERR;

	memset(info, 0, sizeof(*info));
	info->current = SQ_VERSION;
	if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		goto out;
	sqlite3_busy_timeout(h, LIM_BUSY_MS);
	if (user_version(h, &info->version) != DB_OK)
		goto out;
	if (sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &st, NULL) !=
		SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		goto out;
	if ((s = sqlite3_column_text(st, 0)) != NULL)
		snprintf(info->journal, sizeof(info->journal), "%s",
		    (const char *)s);
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(h, "PRAGMA quick_check", -1, &st, NULL) !=
		SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		goto out;
	s = sqlite3_column_text(st, 0);
	info->intact = s != NULL && strcmp((const char *)s, "ok") == 0;
	rc = DB_OK;
out:
	if (rc != DB_OK)
		snprintf(err, errlen, "%s: %s", path,
		    h != NULL ? sqlite3_errmsg(h) : "cannot open");
	sqlite3_finalize(st);
	sqlite3_close(h);
	return rc;
}

static int
bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return s != NULL ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC)
			 : sqlite3_bind_null(st, i);
}

/* Expiry as Unix seconds, NULL for a token that does not expire. */
static int
bind_expiry(sqlite3_stmt *st, int i, int64_t t)
{
	return t > 0 ? sqlite3_bind_int64(st, i, t) : sqlite3_bind_null(st, i);
}

/* Binds the columns table t has of in, in enum icol's order, from ?1. */
static int
bind_row(sqlite3_stmt *st, enum itable t, const char *client_id,
    const struct installation *in, const char *stamp)
{
	const char *text;
	int64_t num;
	int c, i = 0, isnum, e = 0;

	for (c = 0; c < ICOL__MAX; c++) {
		if (!installation_col(
			in, t, c, client_id, stamp, &text, &num, &isnum))
			continue;
		i++;
		e |= isnum ? sqlite3_bind_int64(st, i, num)
			   : bind_text(st, i, text);
	}
	return e;
}

/* Appends a row to slack_installations or slack_bots. 0 or -1. */
static int
put_row(struct db *db, enum itable t, const char *client_id,
    const struct installation *in, const char *stamp)
{
	sqlite3_stmt *st;

	if ((st = sq_stmt(db,
		 t == ITABLE_BOTS ? STMT_BOT_PUT : STMT_INSTALLATION_PUT)) ==
		NULL ||
	    bind_row(st, t, client_id, in, stamp) != SQLITE_OK ||
	    sq_rc(sqlite3_step(st)) != DB_OK)
		return -1;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return 0;
}

static int
sq_put(struct db *db, const char *client_id, const struct installation *in,
    const char *stamp)
{
	int rc;

	if ((rc = sq_begin_durable(db)) != DB_OK)
		return rc;
	if (put_row(db, ITABLE_INSTALLATIONS, client_id, in, stamp) == -1 ||
	    (in->bot_token != NULL &&
		put_row(db, ITABLE_BOTS, client_id, in, stamp) == -1)) {
		rc = sq_rc(sqlite3_errcode(Q(db)->h));
		sq_rollback(db);
		return rc == DB_OK ? DB_ERR : rc;
	}
	return sq_commit(db);
}

/* Binds ?1 client_id, ?2 enterprise id (NULL: any), ?3 team id. */
static int
bind_key(sqlite3_stmt *st, const char *client_id, const struct inst_key *k)
{
	return bind_text(st, 1, client_id) |
	    bind_text(st, 2, k->enterprise_id) | bind_text(st, 3, k->team_id);
}

static char *
col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s != NULL ? strdup((const char *)s) : NULL;
}

/* Reads a row of INSTALLATION_COLS (and, when the statement has them, the
 * two answers after it) into in, column c at index c. */
static void
read_installation(sqlite3_stmt *st, struct installation *in)
{
	int c, n = sqlite3_column_count(st);

	memset(in, 0, sizeof(*in));
	for (c = 1; c < n && c < ICOL__MAX; c++)
		installation_set_col(in, c,
		    (const char *)sqlite3_column_text(st, c),
		    sqlite3_column_int64(st, c));
}

static int
sq_list(struct db *db, const char *client_id,
    int (*fn)(void *, const struct installation *), void *arg)
{
	struct installation in;
	sqlite3_stmt *st;
	int rc, stop = 0;

	if ((st = sq_stmt(db, STMT_LIST_LATEST)) == NULL ||
	    bind_text(st, 1, client_id) != SQLITE_OK)
		return DB_ERR;
	while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		read_installation(st, &in);
		stop = fn(arg, &in);
		installation_free(&in);
	}
	rc = stop ? DB_OK : sq_rc(rc);
	sqlite3_reset(st);
	return rc;
}

/* Steps st for one row of (text, integer) into *s and *t. */
static int
one_pair(sqlite3_stmt *st, char **s, int64_t *t)
{
	int rc = sqlite3_step(st);

	*s = NULL;
	*t = 0;
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		*s = col_dup(st, 0);
		*t = sqlite3_column_int64(st, 1);
		rc = *s != NULL ? 1 : DB_ERR;
	} else
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sq_rc(rc);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

static int
sq_token(struct db *db, const char *client_id, const struct inst_key *k,
    const char *user_id, char **token, int64_t *expires_at)
{
	sqlite3_stmt *st;

	st = sq_stmt(db, user_id != NULL ? STMT_USER_TOKEN : STMT_BOT_TOKEN);
	if (st == NULL || bind_key(st, client_id, k) != SQLITE_OK ||
	    (user_id != NULL && bind_text(st, 4, user_id) != SQLITE_OK))
		return DB_ERR;
	return one_pair(st, token, expires_at);
}

static int
sq_due(struct db *db, const char *client_id, int64_t deadline,
    struct due **list, size_t *n)
{
	static const enum stmt ids[2] = { STMT_DUE_BOTS, STMT_DUE_USERS };
	struct due *l = NULL, *nl;
	sqlite3_stmt *st;
	size_t cnt = 0, i;
	int rc = DB_OK;

	for (i = 0; i < 2 && rc == DB_OK; i++) {
		if ((st = sq_stmt(db, ids[i])) == NULL ||
		    bind_text(st, 1, client_id) != SQLITE_OK ||
		    sqlite3_bind_int64(st, 2, deadline) != SQLITE_OK)
			return DB_ERR;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if ((nl = realloc(l, (cnt + 1) * sizeof(*l))) == NULL) {
				rc = SQLITE_NOMEM;
				break;
			}
			l = nl;
			l[cnt].enterprise_id = col_dup(st, 0);
			l[cnt].team_id = col_dup(st, 1);
			l[cnt].user_id = i == 1 ? col_dup(st, 2) : NULL;
			l[cnt].refresh_token = col_dup(st, 3);
			cnt++;
		}
		rc = sq_rc(rc);
		sqlite3_reset(st);
	}
	if (rc != DB_OK) {
		store_due_free(l, cnt);
		return rc;
	}
	*list = l;
	*n = cnt;
	return DB_OK;
}

static void
due_key(const struct due *d, struct inst_key *k)
{
	k->enterprise_id = d->enterprise_id != NULL ? d->enterprise_id : "";
	k->team_id = d->team_id != NULL ? d->team_id : "";
}

static int
sq_refresh_token(struct db *db, const char *client_id, const struct due *d,
    char **refresh_token, int64_t *expires_at)
{
	struct inst_key k;
	sqlite3_stmt *st;

	due_key(d, &k);
	st = sq_stmt(
	    db, d->user_id != NULL ? STMT_USER_LATEST : STMT_BOT_LATEST);
	if (st == NULL || bind_key(st, client_id, &k) != SQLITE_OK ||
	    (d->user_id != NULL && bind_text(st, 4, d->user_id) != SQLITE_OK))
		return DB_ERR;
	return one_pair(st, refresh_token, expires_at);
}

/* Runs one copy statement with the refresh bindings. */
static int
copy_row(struct db *db, enum stmt id, const char *client_id,
    const struct due *d, const char *token, const char *refresh_token,
    int64_t expires_at, const char *scope, const char *json, const char *stamp)
{
	struct inst_key k;
	sqlite3_stmt *st;
	int e;

	due_key(d, &k);
	if ((st = sq_stmt(db, id)) == NULL)
		return -1;
	e = bind_key(st, client_id, &k) | bind_text(st, 4, token) |
	    bind_text(st, 5, refresh_token) | bind_expiry(st, 6, expires_at) |
	    bind_text(st, 7, scope) | bind_text(st, 8, stamp);
	if (id != STMT_BOT_COPY)
		e |= bind_text(st, 9, json);
	if (id == STMT_INSTALLATION_COPY_USER)
		e |= bind_text(st, 10, d->user_id);
	if (e != SQLITE_OK || sq_rc(sqlite3_step(st)) != DB_OK ||
	    sqlite3_changes(Q(db)->h) != 1) {
		sqlite3_reset(st);
		return -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return 0;
}

static int
sq_refreshed(struct db *db, const char *client_id, const struct due *d,
    const char *token, const char *refresh_token, int64_t expires_at,
    const char *scope, const char *json, const char *stamp)
{
	int rc;

	if ((rc = sq_begin_durable(db)) != DB_OK)
		return rc;
	if (d->user_id == NULL) {
		if (copy_row(db, STMT_BOT_COPY, client_id, d, token,
			refresh_token, expires_at, scope, json, stamp) == -1 ||
		    copy_row(db, STMT_INSTALLATION_COPY_BOT, client_id, d,
			token, refresh_token, expires_at, scope, json,
			stamp) == -1)
			goto fail;
	} else if (copy_row(db, STMT_INSTALLATION_COPY_USER, client_id, d,
		       token, refresh_token, expires_at, scope, json,
		       stamp) == -1)
		goto fail;
	return sq_commit(db);
fail:
	rc = sq_rc(sqlite3_errcode(Q(db)->h));
	sq_rollback(db);
	return rc == DB_OK ? DB_ERR : rc;
}

static int
sq_lock(struct db *db, const char *name, int64_t now, int64_t until)
{
	sqlite3_stmt *st;
	int rc, taken;

	if ((rc = sq_begin(db)) != DB_OK)
		return rc;
	if ((st = sq_stmt(db, STMT_LOCK_EXPIRE)) == NULL ||
	    bind_text(st, 1, name) || sqlite3_bind_int64(st, 2, now) ||
	    sq_rc(sqlite3_step(st)) != DB_OK)
		goto fail;
	if ((st = sq_stmt(db, STMT_LOCK_TAKE)) == NULL ||
	    bind_text(st, 1, name) || sqlite3_bind_int64(st, 2, until) ||
	    sq_rc(sqlite3_step(st)) != DB_OK)
		goto fail;
	taken = sqlite3_changes(Q(db)->h) == 1;
	sqlite3_reset(st);
	if ((rc = sq_commit(db)) != DB_OK)
		return rc;
	return taken;
fail:
	rc = sq_rc(sqlite3_errcode(Q(db)->h));
	sq_rollback(db);
	return rc == DB_OK ? DB_ERR : rc;
}

static int
sq_unlock(struct db *db, const char *name)
{
	sqlite3_stmt *st;
	int rc;

	if ((st = sq_stmt(db, STMT_LOCK_DROP)) == NULL ||
	    bind_text(st, 1, name))
		return DB_ERR;
	rc = sq_rc(sqlite3_step(st));
	sqlite3_reset(st);
	return rc;
}

static int
sq_tokens(struct db *db, const char *client_id, const struct inst_key *k,
    int64_t now, char ***tokens, size_t *n)
{
	static const enum stmt ids[2] = { STMT_REVOKE_BOT_TOKENS,
		STMT_REVOKE_USER_TOKENS };
	char **l = NULL, **nl, *t;
	sqlite3_stmt *st;
	size_t cnt = 0, i, j;
	int rc = DB_OK;

	for (i = 0; i < 2 && rc == DB_OK; i++) {
		if ((st = sq_stmt(db, ids[i])) == NULL ||
		    bind_key(st, client_id, k) != SQLITE_OK ||
		    sqlite3_bind_int64(st, 4, now) != SQLITE_OK) {
			rc = DB_ERR;
			break;
		}
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if ((t = col_dup(st, 0)) == NULL)
				continue;
			for (j = 0; j < cnt && strcmp(l[j], t) != 0; j++)
				;
			if (j < cnt) {
				free_secret(t);
				continue;
			}
			if ((nl = realloc(l, (cnt + 1) * sizeof(*l))) == NULL) {
				free_secret(t);
				rc = SQLITE_NOMEM;
				break;
			}
			l = nl;
			l[cnt++] = t;
		}
		rc = sq_rc(rc);
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
	if (rc != DB_OK) {
		store_tokens_free(l, cnt);
		return rc;
	}
	*tokens = l;
	*n = cnt;
	return DB_OK;
}

static long
sq_forget(struct db *db, enum forget_what what, const char *client_id,
    const struct inst_key *k, const char *before, const char *user_id)
{
	static const enum stmt ids[] = {
		[FORGET_BOTS] = STMT_DELETE_BOTS,
		[FORGET_INSTALLATIONS] = STMT_DELETE_INSTALLATIONS,
		[FORGET_USER] = STMT_DELETE_USER,
		[FORGET_BOT_COLUMNS] = STMT_CLEAR_BOT,
	};
	sqlite3_stmt *st;
	long n;
	int rc;

	if ((st = sq_stmt(db, ids[what])) == NULL ||
	    (bind_key(st, client_id, k) | bind_text(st, 4, before) |
		(user_id != NULL ? bind_text(st, 5, user_id) : SQLITE_OK)) !=
		SQLITE_OK)
		return DB_ERR;
	rc = sq_rc(sqlite3_step(st));
	n = (long)sqlite3_changes(Q(db)->h);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == DB_OK ? n : rc;
}

static int
sq_state_use(struct db *db, const unsigned char hash[32], int64_t expires_at,
    int64_t now)
{
	sqlite3_stmt *st;
	int rc, added;

	if ((rc = sq_begin(db)) != DB_OK)
		return rc;
	/* Expired records go in the same transaction: one fsync. */
	if ((st = sq_stmt(db, STMT_STATE_PURGE)) == NULL ||
	    sqlite3_bind_int64(st, 1, now) != SQLITE_OK ||
	    sq_rc(sqlite3_step(st)) != DB_OK)
		goto fail;
	if ((st = sq_stmt(db, STMT_STATE_USE)) == NULL ||
	    sqlite3_bind_blob(st, 1, hash, 32, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, expires_at) != SQLITE_OK ||
	    sq_rc(sqlite3_step(st)) != DB_OK)
		goto fail;
	added = sqlite3_changes(Q(db)->h) == 1;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if ((rc = sq_commit(db)) != DB_OK)
		return rc;
	return added;
fail:
	rc = sq_rc(sqlite3_errcode(Q(db)->h));
	sq_rollback(db);
	return rc == DB_OK ? DB_ERR : rc;
}

static long
sq_state_purge(struct db *db, int64_t now)
{
	sqlite3_stmt *st;
	long n;

	if ((st = sq_stmt(db, STMT_STATE_PURGE)) == NULL ||
	    sqlite3_bind_int64(st, 1, now) != SQLITE_OK ||
	    sq_rc(sqlite3_step(st)) != DB_OK)
		return -1;
	n = (long)sqlite3_changes(Q(db)->h);
	sqlite3_reset(st);
	return n;
}

static int
sq_each(struct db *db, int bots,
    int (*fn)(void *, const char *client_id, const struct installation *),
    void *arg)
{
	struct installation in;
	sqlite3_stmt *st;
	char *client_id;
	int rc, stop = 0;

	if ((st = sq_stmt(db, bots ? STMT_EACH_BOT : STMT_EACH_INSTALLATION)) ==
	    NULL)
		return DB_ERR;
	while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		read_installation(st, &in);
		client_id = col_dup(st, 0);
		stop = client_id == NULL || fn(arg, client_id, &in);
		free(client_id);
		installation_free(&in);
	}
	rc = stop ? DB_ERR : sq_rc(rc);
	sqlite3_reset(st);
	return rc;
}

static int
sq_put_row(struct db *db, int bots, const char *client_id,
    const struct installation *in)
{
	int r = put_row(db, bots ? ITABLE_BOTS : ITABLE_INSTALLATIONS,
	    client_id, in, in->installed_at);

	return r == 0                                     ? DB_OK
	    : sq_rc(sqlite3_errcode(Q(db)->h)) == DB_BUSY ? DB_BUSY
							  : DB_ERR;
}

static long
sq_rows(struct db *db)
{
	sqlite3_stmt *st;
	long n;
	int rc;

	if ((st = sq_stmt(db, STMT_ROWS)) == NULL)
		return sq_rc(sqlite3_errcode(Q(db)->h)) == DB_BUSY ? DB_BUSY
								   : DB_ERR;
	rc = sqlite3_step(st);
	n = rc == SQLITE_ROW       ? (long)sqlite3_column_int64(st, 0)
	    : sq_rc(rc) == DB_BUSY ? DB_BUSY
				   : DB_ERR;
	sqlite3_reset(st);
	return n;
}

const struct backend backend_sqlite = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.errmsg = sq_errmsg,
	.busy_timeout = sq_busy_timeout,
	.inspect = sq_inspect,
	.state_key = sq_state_key,
	.state_use = sq_state_use,
	.state_purge = sq_state_purge,
	.put = sq_put,
	.list = sq_list,
	.token = sq_token,
	.due = sq_due,
	.refresh_token = sq_refresh_token,
	.refreshed = sq_refreshed,
	.lock = sq_lock,
	.unlock = sq_unlock,
	.tokens = sq_tokens,
	.forget = sq_forget,
	.each = sq_each,
	.put_row = sq_put_row,
	.rows = sq_rows,
	.begin = sq_begin_durable,
	.commit = sq_commit,
	.rollback = sq_rollback,
};
