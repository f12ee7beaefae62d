/* Internals of the SQLite backend, shared by db.c, state.c and store.c. */
#ifndef DBI_H
#define DBI_H

#include <sqlite3.h>

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
	STMT_COUNT,
	STMT__MAX
};

struct db {
	sqlite3 *h;
	char *path;
	sqlite3_stmt *stmt[STMT__MAX]; /* prepared on first use */
	unsigned char key[32];         /* the state key, once read */
	int have_key;
};

/* The statement id, reset and with its bindings cleared; NULL on error. */
sqlite3_stmt *db_stmt(struct db *, enum stmt);

/* Maps an SQLite result code to DB_OK, DB_BUSY or DB_ERR. */
int db_rc(int sqlite_rc);

#endif
