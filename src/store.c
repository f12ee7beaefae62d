/* The installation store: the interface handlers and the admin command
 * use, whatever the backend (backend.h). */
#include <stdlib.h>

#include "backend.h"
#include "store.h"
#include "util.h"

int
store_put(struct db *db, const char *client_id, const struct installation *in)
{
	char stamp[27];

	utc_stamp(stamp);
	return db->be->put(db, client_id, in, stamp);
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

int
store_list(struct db *db, const char *client_id,
    int (*fn)(void *, const struct installation *), void *arg)
{
	return db->be->list(db, client_id, fn, arg);
}

int
store_token(struct db *db, const char *client_id, const struct inst_key *k,
    const char *user_id, char **token, int64_t *expires_at)
{
	return db->be->token(db, client_id, k, user_id, token, expires_at);
}

int
store_due(struct db *db, const char *client_id, int64_t deadline,
    struct due **list, size_t *n)
{
	return db->be->due(db, client_id, deadline, list, n);
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

int
store_refresh_token(struct db *db, const char *client_id, const struct due *d,
    char **refresh_token, int64_t *expires_at)
{
	return db->be->refresh_token(
	    db, client_id, d, refresh_token, expires_at);
}

int
store_refreshed(struct db *db, const char *client_id, const struct due *d,
    const char *token, const char *refresh_token, int64_t expires_at,
    const char *scope, const char *json)
{
	char stamp[27];

	utc_stamp(stamp);
	return db->be->refreshed(db, client_id, d, token, refresh_token,
	    expires_at, scope, json, stamp);
}

int
store_lock(struct db *db, const char *name, int64_t now, int64_t until)
{
	return db->be->lock(db, name, now, until);
}

int
store_unlock(struct db *db, const char *name)
{
	return db->be->unlock(db, name);
}

int
store_tokens(struct db *db, const char *client_id, const struct inst_key *k,
    int64_t now, char ***tokens, size_t *n)
{
	return db->be->tokens(db, client_id, k, now, tokens, n);
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
	struct forget f = { .all = 1 };
	int rc;

	return (rc = store_forget(db, client_id, k, &f)) == DB_OK ? f.deleted
								  : rc;
}

/* One step of store_forget, its rows added to *n. */
static int
forget_step(struct db *db, enum forget_what what, const char *client_id,
    const struct inst_key *k, const struct forget *f, const char *user_id,
    long *n)
{
	long changed =
	    db->be->forget(db, what, client_id, k, f->before, user_id);

	if (changed < 0)
		return (int)changed;
	*n += changed;
	return DB_OK;
}

int
store_forget(struct db *db, const char *client_id, const struct inst_key *k,
    struct forget *f)
{
	size_t i;
	int rc;

	f->deleted = f->cleared = 0;
	if ((rc = db->be->begin(db)) != DB_OK)
		return rc;
	if (f->all || f->bots)
		rc = forget_step(
		    db, FORGET_BOTS, client_id, k, f, NULL, &f->deleted);
	if (rc == DB_OK && f->all)
		rc = forget_step(db, FORGET_INSTALLATIONS, client_id, k, f,
		    NULL, &f->deleted);
	for (i = 0; rc == DB_OK && !f->all && i < f->nusers; i++)
		rc = forget_step(
		    db, FORGET_USER, client_id, k, f, f->users[i], &f->deleted);
	if (rc == DB_OK && !f->all && f->bots)
		rc = forget_step(
		    db, FORGET_BOT_COLUMNS, client_id, k, f, NULL, &f->cleared);
	if (rc != DB_OK) {
		db->be->rollback(db);
		return rc;
	}
	return db->be->commit(db);
}

int
store_each(struct db *db, int bots,
    int (*fn)(void *, const char *client_id, const struct installation *),
    void *arg)
{
	return db->be->each(db, bots, fn, arg);
}

int
store_put_row(struct db *db, int bots, const char *client_id,
    const struct installation *in)
{
	return db->be->put_row(db, bots, client_id, in);
}

long
store_rows(struct db *db)
{
	return db->be->rows(db);
}

int
store_tx(struct db *db, int op)
{
	switch (op) {
	case TX_BEGIN:
		return db->be->begin(db);
	case TX_COMMIT:
		return db->be->commit(db);
	default:
		db->be->rollback(db);
		return DB_OK;
	}
}
