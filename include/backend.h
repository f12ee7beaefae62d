/* The storage backends behind db.h, state.h and store.h. Each implements
 * these operations on its own connection, kept in struct db's h; handlers
 * never see which backend serves them. Results are DB_OK, DB_ERR or
 * DB_BUSY unless said otherwise. */
#ifndef BACKEND_H
#define BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "store.h"

struct installation;
struct inst_key;
struct due;

struct db {
	const struct backend *be;
	char *target;          /* the file path or connection URI */
	void *h;               /* the backend's connection */
	unsigned char key[32]; /* the state key, once read */
	int have_key;
};

struct backend {
	const char *name;
	/* Connects db->target, creating or upgrading the schema. */
	int (*open)(struct db *, char *err, size_t errlen);
	void (*close)(struct db *);
	const char *(*errmsg)(struct db *);
	void (*busy_timeout)(struct db *, int ms);
	int (*inspect)(
	    const char *target, struct db_info *, char *err, size_t errlen);
	int (*state_key)(struct db *, unsigned char key[32]);
	/* Records a used state: 1 when recorded now, 0 when it already was,
	 * else DB_ERR or DB_BUSY. One atomic statement or transaction. */
	int (*state_use)(struct db *, const unsigned char hash[32],
	    int64_t expires_at, int64_t now);
	long (*state_purge)(struct db *, int64_t now);
	int (*put)(struct db *, const char *client_id,
	    const struct installation *, const char *stamp);
	int (*list)(struct db *, const char *client_id,
	    int (*fn)(void *, const struct installation *), void *arg);
	int (*token)(struct db *, const char *client_id,
	    const struct inst_key *, const char *user_id, char **token,
	    int64_t *expires_at);
	int (*due)(struct db *, const char *client_id, int64_t deadline,
	    struct due **, size_t *);
	int (*refresh_token)(struct db *, const char *client_id,
	    const struct due *, char **refresh_token, int64_t *expires_at);
	int (*refreshed)(struct db *, const char *client_id, const struct due *,
	    const char *token, const char *refresh_token, int64_t expires_at,
	    const char *scope, const char *json, const char *stamp);
	int (*lock)(struct db *, const char *name, int64_t now, int64_t until);
	int (*unlock)(struct db *, const char *name);
	int (*tokens)(struct db *, const char *client_id,
	    const struct inst_key *, int64_t now, char ***, size_t *);
	/* One step of store_forget, inside its transaction: of the rows of
	 * k installed before `before` (NULL: any), deletes what, or clears
	 * the bot columns of the installations left. Returns the rows
	 * changed, or DB_ERR/DB_BUSY. */
	long (*forget)(struct db *, enum forget_what what,
	    const char *client_id, const struct inst_key *, const char *before,
	    const char *user_id);
	/* For `slack-oauth copy`: every row of slack_installations (bots 0) or
	 * slack_bots (bots 1), oldest first, whatever its client id. */
	int (*each)(struct db *, int bots,
	    int (*fn)(
		void *, const char *client_id, const struct installation *),
	    void *arg);
	/* Appends one such row, keeping its installed_at. */
	int (*put_row)(struct db *, int bots, const char *client_id,
	    const struct installation *);
	/* Rows in both installation tables, any client id, or <0. */
	long (*rows)(struct db *);
	/* A write transaction around several put_row; commit rolls back
	 * when it fails. */
	int (*begin)(struct db *);
	int (*commit)(struct db *);
	void (*rollback)(struct db *);
};

extern const struct backend backend_sqlite;
void db_sqlite_init(void);
extern const struct backend backend_pg;

#endif
