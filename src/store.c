#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "dbi.h"
#include "installation.h"
#include "store.h"
#include "util.h"

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

static const char *
or_empty(const char *s)
{
	return s != NULL ? s : "";
}

static int
put_installation(struct db *db, const char *client_id,
    const struct installation *in, const char *stamp)
{
	sqlite3_stmt *st;
	int e = 0;

	if ((st = db_stmt(db, STMT_INSTALLATION_PUT)) == NULL)
		return -1;
	e |= bind_text(st, 1, client_id);
	e |= bind_text(st, 2, in->app_id);
	e |= bind_text(st, 3, or_empty(in->enterprise_id));
	e |= bind_text(st, 4, in->enterprise_name);
	e |= bind_text(st, 5, in->enterprise_url);
	e |= bind_text(st, 6, or_empty(in->team_id));
	e |= bind_text(st, 7, in->team_name);
	e |= bind_text(st, 8, in->bot_token);
	e |= bind_text(st, 9, in->bot_token != NULL ? or_empty(in->bot_id) : NULL);
	e |= bind_text(st, 10, in->bot_user_id);
	e |= bind_text(st, 11, in->bot_scopes);
	e |= bind_text(st, 12, in->bot_refresh_token);
	e |= bind_expiry(st, 13, in->bot_expires_at);
	e |= bind_text(st, 14, or_empty(in->user_id));
	e |= bind_text(st, 15, in->user_token);
	e |= bind_text(st, 16, in->user_scopes);
	e |= bind_text(st, 17, in->user_refresh_token);
	e |= bind_expiry(st, 18, in->user_expires_at);
	e |= bind_text(st, 19, in->webhook_url);
	e |= bind_text(st, 20, in->webhook_channel);
	e |= bind_text(st, 21, in->webhook_channel_id);
	e |= bind_text(st, 22, in->webhook_configuration_url);
	e |= sqlite3_bind_int(st, 23, in->is_enterprise_install ? 1 : 0);
	e |= bind_text(st, 24, in->token_type);
	e |= bind_text(st, 25, stamp);
	e |= bind_text(st, 26, in->oauth_response);
	e |= bind_text(st, 27, in->auth_test_response);
	if (e != SQLITE_OK || db_rc(sqlite3_step(st)) != DB_OK)
		return -1;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return 0;
}

static int
put_bot(struct db *db, const char *client_id, const struct installation *in,
    const char *stamp)
{
	sqlite3_stmt *st;
	int e = 0;

	if ((st = db_stmt(db, STMT_BOT_PUT)) == NULL)
		return -1;
	e |= bind_text(st, 1, client_id);
	e |= bind_text(st, 2, in->app_id);
	e |= bind_text(st, 3, or_empty(in->enterprise_id));
	e |= bind_text(st, 4, in->enterprise_name);
	e |= bind_text(st, 5, or_empty(in->team_id));
	e |= bind_text(st, 6, in->team_name);
	e |= bind_text(st, 7, in->bot_token);
	e |= bind_text(st, 8, or_empty(in->bot_id));
	e |= bind_text(st, 9, or_empty(in->bot_user_id));
	e |= bind_text(st, 10, in->bot_scopes);
	e |= bind_text(st, 11, in->bot_refresh_token);
	e |= bind_expiry(st, 12, in->bot_expires_at);
	e |= sqlite3_bind_int(st, 13, in->is_enterprise_install ? 1 : 0);
	e |= bind_text(st, 14, stamp);
	if (e != SQLITE_OK || db_rc(sqlite3_step(st)) != DB_OK)
		return -1;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return 0;
}

int
store_put(struct db *db, const char *client_id, const struct installation *in)
{
	char stamp[27];
	int rc;

	utc_stamp(stamp);
	if ((rc = db_begin(db)) != DB_OK)
		return rc;
	if (put_installation(db, client_id, in, stamp) == -1 ||
	    (in->bot_token != NULL && put_bot(db, client_id, in, stamp) == -1)) {
		rc = db_rc(sqlite3_errcode(db->h));
		db_rollback(db);
		return rc == DB_OK ? DB_ERR : rc;
	}
	return db_commit(db);
}

void
store_key(struct inst_key *k, const char *id)
{
	if (id[0] == 'E') {
		k->enterprise_id = id;
		k->team_id = "";
	} else {
		k->enterprise_id = NULL;
		k->team_id = id;
	}
}

/* Binds ?1 client_id, ?2 enterprise id (NULL: any), ?3 team id. */
static int
bind_key(sqlite3_stmt *st, const char *client_id, const struct inst_key *k)
{
	return bind_text(st, 1, client_id) | bind_text(st, 2, k->enterprise_id) |
	    bind_text(st, 3, k->team_id);
}

static char *
col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s != NULL ? strdup((const char *)s) : NULL;
}

/* Reads a row of INSTALLATION_COLS (see db.c) into in. */
static void
read_installation(sqlite3_stmt *st, struct installation *in)
{
	char **s[] = { &in->app_id, &in->enterprise_id, &in->enterprise_name,
		&in->enterprise_url, &in->team_id, &in->team_name, &in->bot_token,
		&in->bot_id, &in->bot_user_id, &in->bot_scopes,
		&in->bot_refresh_token };
	char **u[] = { &in->user_id, &in->user_token, &in->user_scopes,
		&in->user_refresh_token };
	char **w[] = { &in->webhook_url, &in->webhook_channel,
		&in->webhook_channel_id, &in->webhook_configuration_url };
	size_t i;

	memset(in, 0, sizeof(*in));
	for (i = 0; i < 11; i++)
		*s[i] = col_dup(st, 1 + (int)i);
	in->bot_expires_at = sqlite3_column_int64(st, 12);
	for (i = 0; i < 4; i++)
		*u[i] = col_dup(st, 13 + (int)i);
	in->user_expires_at = sqlite3_column_int64(st, 17);
	for (i = 0; i < 4; i++)
		*w[i] = col_dup(st, 18 + (int)i);
	in->is_enterprise_install = sqlite3_column_int(st, 22);
	in->token_type = col_dup(st, 23);
	in->installed_at = col_dup(st, 24);
}

int
store_list(struct db *db, const char *client_id,
    int (*fn)(void *, const struct installation *), void *arg)
{
	struct installation in;
	sqlite3_stmt *st;
	int rc, stop = 0;

	if ((st = db_stmt(db, STMT_LIST_LATEST)) == NULL ||
	    bind_text(st, 1, client_id) != SQLITE_OK)
		return DB_ERR;
	while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		read_installation(st, &in);
		stop = fn(arg, &in);
		installation_free(&in);
	}
	rc = stop ? DB_OK : db_rc(rc);
	sqlite3_reset(st);
	return rc;
}

long
store_count(struct db *db, const char *client_id)
{
	sqlite3_stmt *st;
	long n = -1;

	if ((st = db_stmt(db, STMT_COUNT)) != NULL &&
	    bind_text(st, 1, client_id) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		n = (long)sqlite3_column_int64(st, 0);
	if (st != NULL)
		sqlite3_reset(st);
	return n;
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
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_rc(rc);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

int
store_token(struct db *db, const char *client_id, const struct inst_key *k,
    const char *user_id, char **token, int64_t *expires_at)
{
	sqlite3_stmt *st;

	st = db_stmt(db, user_id != NULL ? STMT_USER_TOKEN : STMT_BOT_TOKEN);
	if (st == NULL || bind_key(st, client_id, k) != SQLITE_OK ||
	    (user_id != NULL && bind_text(st, 4, user_id) != SQLITE_OK))
		return DB_ERR;
	return one_pair(st, token, expires_at);
}

int
store_due(struct db *db, const char *client_id, int64_t deadline,
    struct due **list, size_t *n)
{
	static const enum stmt ids[2] = { STMT_DUE_BOTS, STMT_DUE_USERS };
	struct due *l = NULL, *nl;
	sqlite3_stmt *st;
	size_t cnt = 0, i;
	int rc = DB_OK;

	for (i = 0; i < 2 && rc == DB_OK; i++) {
		if ((st = db_stmt(db, ids[i])) == NULL ||
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
		rc = db_rc(rc);
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

void
store_due_free(struct due *l, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(l[i].enterprise_id);
		free(l[i].team_id);
		free(l[i].user_id);
		free_secret(l[i].refresh_token);
	}
	free(l);
}

static void
due_key(const struct due *d, struct inst_key *k)
{
	k->enterprise_id = d->enterprise_id != NULL ? d->enterprise_id : "";
	k->team_id = d->team_id != NULL ? d->team_id : "";
}

int
store_refresh_token(struct db *db, const char *client_id, const struct due *d,
    char **refresh_token, int64_t *expires_at)
{
	struct inst_key k;
	sqlite3_stmt *st;
	int rc;

	due_key(d, &k);
	st = db_stmt(db, d->user_id != NULL ? STMT_USER_LATEST : STMT_BOT_LATEST);
	if (st == NULL || bind_key(st, client_id, &k) != SQLITE_OK ||
	    (d->user_id != NULL && bind_text(st, 4, d->user_id) != SQLITE_OK))
		return DB_ERR;
	*refresh_token = NULL;
	*expires_at = 0;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 1) != SQLITE_NULL) {
		*refresh_token = col_dup(st, 1);
		*expires_at = sqlite3_column_int64(st, 2);
		rc = *refresh_token != NULL ? 1 : DB_ERR;
	} else
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_rc(rc);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
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
	if ((st = db_stmt(db, id)) == NULL)
		return -1;
	e = bind_key(st, client_id, &k) | bind_text(st, 4, token) |
	    bind_text(st, 5, refresh_token) | bind_expiry(st, 6, expires_at) |
	    bind_text(st, 7, scope) | bind_text(st, 8, stamp);
	if (id != STMT_BOT_COPY)
		e |= bind_text(st, 9, json);
	if (id == STMT_INSTALLATION_COPY_USER)
		e |= bind_text(st, 10, d->user_id);
	if (e != SQLITE_OK || db_rc(sqlite3_step(st)) != DB_OK ||
	    sqlite3_changes(db->h) != 1) {
		sqlite3_reset(st);
		return -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return 0;
}

int
store_refreshed(struct db *db, const char *client_id, const struct due *d,
    const char *token, const char *refresh_token, int64_t expires_at,
    const char *scope, const char *json)
{
	char stamp[27];
	int rc;

	utc_stamp(stamp);
	if ((rc = db_begin(db)) != DB_OK)
		return rc;
	if (d->user_id == NULL) {
		if (copy_row(db, STMT_BOT_COPY, client_id, d, token, refresh_token,
		    expires_at, scope, json, stamp) == -1 ||
		    copy_row(db, STMT_INSTALLATION_COPY_BOT, client_id, d, token,
		    refresh_token, expires_at, scope, json, stamp) == -1)
			goto fail;
	} else if (copy_row(db, STMT_INSTALLATION_COPY_USER, client_id, d, token,
	    refresh_token, expires_at, scope, json, stamp) == -1)
		goto fail;
	return db_commit(db);
fail:
	rc = db_rc(sqlite3_errcode(db->h));
	db_rollback(db);
	return rc == DB_OK ? DB_ERR : rc;
}

int
store_lock(struct db *db, const char *name, int64_t now, int64_t until)
{
	sqlite3_stmt *st;
	int rc, taken;

	if ((rc = db_begin(db)) != DB_OK)
		return rc;
	if ((st = db_stmt(db, STMT_LOCK_EXPIRE)) == NULL ||
	    bind_text(st, 1, name) || sqlite3_bind_int64(st, 2, now) ||
	    db_rc(sqlite3_step(st)) != DB_OK)
		goto fail;
	if ((st = db_stmt(db, STMT_LOCK_TAKE)) == NULL ||
	    bind_text(st, 1, name) || sqlite3_bind_int64(st, 2, until) ||
	    db_rc(sqlite3_step(st)) != DB_OK)
		goto fail;
	taken = sqlite3_changes(db->h) == 1;
	sqlite3_reset(st);
	if ((rc = db_commit(db)) != DB_OK)
		return rc;
	return taken;
fail:
	rc = db_rc(sqlite3_errcode(db->h));
	db_rollback(db);
	return rc == DB_OK ? DB_ERR : rc;
}

int
store_unlock(struct db *db, const char *name)
{
	sqlite3_stmt *st;
	int rc;

	if ((st = db_stmt(db, STMT_LOCK_DROP)) == NULL || bind_text(st, 1, name))
		return DB_ERR;
	rc = db_rc(sqlite3_step(st));
	sqlite3_reset(st);
	return rc;
}

int
store_tokens(struct db *db, const char *client_id, const struct inst_key *k,
    int64_t now, char ***tokens, size_t *n)
{
	static const enum stmt ids[2] = { STMT_REVOKE_BOT_TOKENS,
		STMT_REVOKE_USER_TOKENS };
	char **l = NULL, **nl, *t;
	sqlite3_stmt *st;
	size_t cnt = 0, i, j;
	int rc = DB_OK;

	for (i = 0; i < 2 && rc == DB_OK; i++) {
		if ((st = db_stmt(db, ids[i])) == NULL ||
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
		rc = db_rc(rc);
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

void
store_tokens_free(char **l, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free_secret(l[i]);
	free(l);
}

long
store_delete(struct db *db, const char *client_id, const struct inst_key *k)
{
	static const enum stmt ids[2] = { STMT_DELETE_BOTS, STMT_DELETE_INSTALLATIONS };
	sqlite3_stmt *st;
	long n = 0;
	int rc;
	size_t i;

	if ((rc = db_begin(db)) != DB_OK)
		return rc;
	for (i = 0; i < 2; i++) {
		if ((st = db_stmt(db, ids[i])) == NULL ||
		    bind_key(st, client_id, k) != SQLITE_OK ||
		    db_rc(sqlite3_step(st)) != DB_OK) {
			rc = db_rc(sqlite3_errcode(db->h));
			db_rollback(db);
			return rc == DB_OK ? DB_ERR : rc;
		}
		n += (long)sqlite3_changes(db->h);
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
	return (rc = db_commit(db)) == DB_OK ? n : rc;
}
