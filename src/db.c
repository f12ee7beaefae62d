#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db.h"
#include "dbi.h"
#include "lim.h"
#include "util.h"

/* The installation columns, in struct installation's order (store.c reads
 * them back in this order). */
#define INSTALLATION_COLS \
	"id, app_id, enterprise_id, enterprise_name, enterprise_url, team_id, " \
	"team_name, bot_token, bot_id, bot_user_id, bot_scopes, bot_refresh_token, " \
	"bot_token_expires_at, user_id, user_token, user_scopes, " \
	"user_refresh_token, user_token_expires_at, incoming_webhook_url, " \
	"incoming_webhook_channel, incoming_webhook_channel_id, " \
	"incoming_webhook_configuration_url, is_enterprise_install, token_type, " \
	"installed_at"

/* An installation: ?2 an enterprise id, or NULL for "any" (a team id is
 * unique across Slack), ?3 a team id ('' for an org-wide install). */
#define KEY "client_id = ?1 AND team_id = ?3 AND (?2 IS NULL OR enterprise_id = ?2)"
#define NEWEST " ORDER BY installed_at DESC, id DESC LIMIT 1"

/* The columns a refresh copies unchanged into a new row. */
#define COPY_HEAD \
	"client_id, app_id, enterprise_id, enterprise_name, enterprise_url, " \
	"team_id, team_name, "
#define COPY_TAIL \
	"incoming_webhook_url, incoming_webhook_channel, " \
	"incoming_webhook_channel_id, incoming_webhook_configuration_url, " \
	"is_enterprise_install, token_type, installed_at, oauth_response, " \
	"auth_test_response"

static const char *const stmts[STMT__MAX] = {
	[STMT_KEY_GET] = "SELECT key FROM slack_oauth_keys WHERE id = 1",
	[STMT_KEY_PUT] = "INSERT OR IGNORE INTO slack_oauth_keys (id, key, created_at) "
	    "VALUES (1, ?1, ?2)",
	[STMT_STATE_USE] = "INSERT OR IGNORE INTO slack_oauth_states (hash, expires_at) "
	    "VALUES (?1, ?2)",
	[STMT_STATE_PURGE] = "DELETE FROM slack_oauth_states WHERE expires_at <= ?1",
	[STMT_INSTALLATION_PUT] = "INSERT INTO slack_installations ("
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
	[STMT_BOT_PUT] = "INSERT INTO slack_bots ("
	    "client_id, app_id, enterprise_id, enterprise_name, team_id, team_name, "
	    "bot_token, bot_id, bot_user_id, bot_scopes, bot_refresh_token, "
	    "bot_token_expires_at, is_enterprise_install, installed_at) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
	[STMT_LIST_LATEST] = "SELECT " INSTALLATION_COLS " FROM slack_installations i "
	    "WHERE client_id = ?1 AND id = (SELECT j.id FROM slack_installations j "
	    "WHERE j.client_id = i.client_id AND j.enterprise_id = i.enterprise_id "
	    "AND j.team_id = i.team_id ORDER BY j.installed_at DESC, j.id DESC LIMIT 1) "
	    "ORDER BY enterprise_id, team_id",
	[STMT_BOT_TOKEN] = "SELECT bot_token, bot_token_expires_at FROM slack_bots "
	    "WHERE " KEY NEWEST,
	[STMT_USER_TOKEN] = "SELECT user_token, user_token_expires_at FROM "
	    "slack_installations WHERE " KEY " AND user_id = ?4" NEWEST,
	[STMT_DUE_BOTS] = "SELECT enterprise_id, team_id, NULL, bot_refresh_token "
	    "FROM slack_bots b "
	    "WHERE client_id = ?1 AND id = (SELECT c.id FROM slack_bots c "
	    "WHERE c.client_id = b.client_id AND c.enterprise_id = b.enterprise_id "
	    "AND c.team_id = b.team_id ORDER BY c.installed_at DESC, c.id DESC LIMIT 1) "
	    "AND bot_refresh_token IS NOT NULL AND bot_token_expires_at <= ?2",
	[STMT_DUE_USERS] = "SELECT enterprise_id, team_id, user_id, "
	    "user_refresh_token FROM "
	    "slack_installations i WHERE client_id = ?1 AND id = (SELECT j.id FROM "
	    "slack_installations j WHERE j.client_id = i.client_id AND "
	    "j.enterprise_id = i.enterprise_id AND j.team_id = i.team_id AND "
	    "j.user_id = i.user_id ORDER BY j.installed_at DESC, j.id DESC LIMIT 1) "
	    "AND user_refresh_token IS NOT NULL AND user_token_expires_at <= ?2",
	[STMT_BOT_LATEST] = "SELECT id, bot_refresh_token, bot_token_expires_at "
	    "FROM slack_bots WHERE " KEY NEWEST,
	[STMT_USER_LATEST] = "SELECT id, user_refresh_token, user_token_expires_at "
	    "FROM slack_installations WHERE " KEY " AND user_id = ?4" NEWEST,
	[STMT_BOT_COPY] = "INSERT INTO slack_bots (client_id, app_id, enterprise_id, "
	    "enterprise_name, team_id, team_name, bot_token, bot_id, bot_user_id, "
	    "bot_scopes, bot_refresh_token, bot_token_expires_at, "
	    "is_enterprise_install, installed_at) SELECT client_id, app_id, "
	    "enterprise_id, enterprise_name, team_id, team_name, ?4, bot_id, "
	    "bot_user_id, coalesce(?7, bot_scopes), ?5, ?6, is_enterprise_install, "
	    "?8 FROM slack_bots WHERE " KEY NEWEST,
	[STMT_INSTALLATION_COPY_BOT] = "INSERT INTO slack_installations ("
	    COPY_HEAD "bot_token, bot_id, bot_user_id, bot_scopes, bot_refresh_token, "
	    "bot_token_expires_at, user_id, user_token, user_scopes, "
	    "user_refresh_token, user_token_expires_at, " COPY_TAIL ") SELECT "
	    COPY_HEAD "?4, bot_id, bot_user_id, coalesce(?7, bot_scopes), ?5, ?6, "
	    "user_id, user_token, user_scopes, user_refresh_token, "
	    "user_token_expires_at, incoming_webhook_url, incoming_webhook_channel, "
	    "incoming_webhook_channel_id, incoming_webhook_configuration_url, "
	    "is_enterprise_install, token_type, ?8, ?9, auth_test_response "
	    "FROM slack_installations WHERE " KEY NEWEST,
	[STMT_INSTALLATION_COPY_USER] = "INSERT INTO slack_installations ("
	    COPY_HEAD "bot_token, bot_id, bot_user_id, bot_scopes, bot_refresh_token, "
	    "bot_token_expires_at, user_id, user_token, user_scopes, "
	    "user_refresh_token, user_token_expires_at, " COPY_TAIL ") SELECT "
	    COPY_HEAD "bot_token, bot_id, bot_user_id, bot_scopes, bot_refresh_token, "
	    "bot_token_expires_at, user_id, ?4, coalesce(?7, user_scopes), ?5, ?6, "
	    "incoming_webhook_url, incoming_webhook_channel, "
	    "incoming_webhook_channel_id, incoming_webhook_configuration_url, "
	    "is_enterprise_install, token_type, ?8, ?9, auth_test_response "
	    "FROM slack_installations WHERE " KEY " AND user_id = ?10" NEWEST,
	[STMT_LOCK_EXPIRE] = "DELETE FROM slack_oauth_locks WHERE name = ?1 AND "
	    "expires_at <= ?2",
	[STMT_LOCK_TAKE] = "INSERT OR IGNORE INTO slack_oauth_locks (name, expires_at) "
	    "VALUES (?1, ?2)",
	[STMT_LOCK_DROP] = "DELETE FROM slack_oauth_locks WHERE name = ?1",
	[STMT_REVOKE_BOT_TOKENS] = "SELECT DISTINCT bot_token FROM slack_bots WHERE "
	    KEY " AND (bot_token_expires_at IS NULL OR bot_token_expires_at > ?4)",
	[STMT_REVOKE_USER_TOKENS] = "SELECT DISTINCT user_token FROM "
	    "slack_installations WHERE " KEY " AND user_token IS NOT NULL AND "
	    "(user_token_expires_at IS NULL OR user_token_expires_at > ?4)",
	[STMT_DELETE_INSTALLATIONS] = "DELETE FROM slack_installations WHERE " KEY,
	[STMT_DELETE_BOTS] = "DELETE FROM slack_bots WHERE " KEY,
	[STMT_COUNT] = "SELECT count(*) FROM slack_installations WHERE client_id = ?1",
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

/* Our own columns, added to SDK-made tables when missing. */
static const struct {
	const char *probe, *add;
} own_columns[] = {
	{ "SELECT oauth_response FROM slack_installations LIMIT 0",
	    "ALTER TABLE slack_installations ADD COLUMN oauth_response text" },
	{ "SELECT auth_test_response FROM slack_installations LIMIT 0",
	    "ALTER TABLE slack_installations ADD COLUMN auth_test_response text" },
};

int
db_rc(int rc)
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

const char *
db_errmsg(struct db *db)
{
	return db != NULL && db->h != NULL ? sqlite3_errmsg(db->h) : "no database";
}

static int
user_version(sqlite3 *h, int *v)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL)) ==
	    SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
		*v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return db_rc(rc);
}

/* Brings the schema to DB_VERSION under one write lock, so that processes
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
	for (i = 0; (rc = db_rc(sqlite3_exec(db->h, "PRAGMA journal_mode=WAL",
	    NULL, NULL, NULL))) == DB_BUSY && i < LIM_BUSY_MS / 10; i++)
		usleep(10 * 1000);
	if (rc != DB_OK)
		goto fail;
	if ((rc = db_begin(db)) != DB_OK)
		goto fail;
	if ((rc = user_version(db->h, &v)) != DB_OK)
		goto rollback;
	if (v > DB_VERSION) {
		snprintf(err, errlen, "%s: schema version %d is newer than this "
		    "program's %d", db->path, v, DB_VERSION);
		db_rollback(db);
		return DB_ERR;
	}
	if (v < 1) {
		if ((rc = db_rc(sqlite3_exec(db->h, schema_v1, NULL, NULL, NULL))) != DB_OK)
			goto rollback;
		for (i = 0; i < sizeof(own_columns) / sizeof(own_columns[0]); i++) {
			if (sqlite3_prepare_v2(db->h, own_columns[i].probe, -1, &st,
			    NULL) == SQLITE_OK) {
				sqlite3_finalize(st);
				st = NULL;
				continue;
			}
			if ((rc = db_rc(sqlite3_exec(db->h, own_columns[i].add, NULL,
			    NULL, NULL))) != DB_OK)
				goto rollback;
		}
		if (rand_bytes(key, sizeof(key)) == -1) {
			rc = DB_ERR;
			goto rollback;
		}
		st = db_stmt(db, STMT_KEY_PUT);
		if (st == NULL ||
		    sqlite3_bind_blob(st, 1, key, sizeof(key), SQLITE_TRANSIENT) ||
		    sqlite3_bind_int64(st, 2, now_unix()) ||
		    (rc = db_rc(sqlite3_step(st))) != DB_OK) {
			rc = st == NULL ? DB_ERR : db_rc(sqlite3_errcode(db->h));
			explicit_bzero(key, sizeof(key));
			goto rollback;
		}
		sqlite3_reset(st);
		explicit_bzero(key, sizeof(key));
		if ((rc = db_rc(sqlite3_exec(db->h, "PRAGMA user_version = 1", NULL,
		    NULL, NULL))) != DB_OK)
			goto rollback;
	}
	/* Later versions: if (v < 2) { ... PRAGMA user_version = 2 } */
	if ((rc = db_commit(db)) != DB_OK)
		goto fail;
	return DB_OK;
rollback:
	snprintf(err, errlen, "%s: creating the schema: %s", db->path,
	    sqlite3_errmsg(db->h));
	db_rollback(db);
	return rc == DB_OK ? DB_ERR : rc;
fail:
	snprintf(err, errlen, "%s: %s", db->path, sqlite3_errmsg(db->h));
	return rc;
}

struct db *
db_open(const char *path, int *rc, char *err, size_t errlen)
{
	struct db *db;
	int v = 0;

	if ((db = calloc(1, sizeof(*db))) == NULL ||
	    (db->path = strdup(path)) == NULL) {
		free(db);
		snprintf(err, errlen, "out of memory");
		*rc = DB_ERR;
		return NULL;
	}
	/* The file and its -wal and -shm take the mode of a new file under the
	 * process umask; serve() and the admin command set 077. */
	if (sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, db->h != NULL ?
		    sqlite3_errmsg(db->h) : "cannot open");
		*rc = DB_ERR;
		goto fail;
	}
	sqlite3_extended_result_codes(db->h, 1);
	sqlite3_busy_timeout(db->h, LIM_BUSY_MS);
	if ((*rc = user_version(db->h, &v)) != DB_OK) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db->h));
		goto fail;
	}
	if (v != DB_VERSION && (*rc = migrate(db, err, errlen)) != DB_OK)
		goto fail;
	*rc = DB_OK;
	return db;
fail:
	db_close(db);
	return NULL;
}

void
db_close(struct db *db)
{
	int i;

	if (db == NULL)
		return;
	for (i = 0; i < STMT__MAX; i++)
		sqlite3_finalize(db->stmt[i]);
	sqlite3_close(db->h);
	explicit_bzero(db->key, sizeof(db->key));
	free(db->path);
	free(db);
}

static struct db *cached;

struct db *
db_get(const char *path, int *rc, char *err, size_t errlen)
{
	if (cached != NULL && strcmp(cached->path, path) == 0) {
		*rc = DB_OK;
		return cached;
	}
	db_close(cached);
	cached = db_open(path, rc, err, errlen);
	return cached;
}

void
db_release(void)
{
	db_close(cached);
	cached = NULL;
}

sqlite3_stmt *
db_stmt(struct db *db, enum stmt id)
{
	sqlite3_stmt *st = db->stmt[id];

	if (st == NULL) {
		if (sqlite3_prepare_v3(db->h, stmts[id], -1, SQLITE_PREPARE_PERSISTENT,
		    &st, NULL) != SQLITE_OK)
			return NULL;
		db->stmt[id] = st;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

int
db_state_key(struct db *db, const unsigned char **key, size_t *len)
{
	sqlite3_stmt *st;
	int rc;

	if (!db->have_key) {
		if ((st = db_stmt(db, STMT_KEY_GET)) == NULL)
			return db_rc(sqlite3_errcode(db->h));
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW ||
		    sqlite3_column_bytes(st, 0) != (int)sizeof(db->key)) {
			sqlite3_reset(st);
			return rc == SQLITE_ROW || rc == SQLITE_DONE ? DB_ERR : db_rc(rc);
		}
		memcpy(db->key, sqlite3_column_blob(st, 0), sizeof(db->key));
		sqlite3_reset(st);
		db->have_key = 1;
	}
	*key = db->key;
	*len = sizeof(db->key);
	return DB_OK;
}

int
db_begin(struct db *db)
{
	return db_rc(sqlite3_exec(db->h, "BEGIN IMMEDIATE", NULL, NULL, NULL));
}

int
db_commit(struct db *db)
{
	int rc = db_rc(sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL));

	if (rc != DB_OK)
		db_rollback(db);
	return rc;
}

void
db_rollback(struct db *db)
{
	if (!sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

void
db_busy_timeout(struct db *db, int ms)
{
	sqlite3_busy_timeout(db->h, ms);
}

int
db_inspect(const char *path, struct db_info *info, char *err, size_t errlen)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	const unsigned char *s;
	int rc = DB_ERR;

	memset(info, 0, sizeof(*info));
	if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		goto out;
	sqlite3_busy_timeout(h, LIM_BUSY_MS);
	if (user_version(h, &info->version) != DB_OK)
		goto out;
	if (sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		goto out;
	if ((s = sqlite3_column_text(st, 0)) != NULL)
		snprintf(info->journal, sizeof(info->journal), "%s", (const char *)s);
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(h, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		goto out;
	s = sqlite3_column_text(st, 0);
	info->intact = s != NULL && strcmp((const char *)s, "ok") == 0;
	rc = DB_OK;
out:
	if (rc != DB_OK)
		snprintf(err, errlen, "%s: %s", path, h != NULL ? sqlite3_errmsg(h) :
		    "cannot open");
	sqlite3_finalize(st);
	sqlite3_close(h);
	return rc;
}
