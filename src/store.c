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
