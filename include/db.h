/* The SQLite database: opening, pragmas, the versioned schema, and the
 * table of every SQL statement the programs run. Only db.c, state.c and
 * store.c include sqlite3.h. */
#ifndef DB_H
#define DB_H

#include <stddef.h>

struct db;

#define DB_VERSION 1 /* PRAGMA user_version this build creates and expects */

/* Results of database calls. */
enum { DB_OK = 0, DB_ERR = -1, DB_BUSY = -2 };

/* Returns the process's connection to path, opening it (creating the file
 * 0600 and the schema when new) if it is not the one already open. NULL on
 * failure, with *rc DB_ERR or DB_BUSY and err saying why (no secrets). */
struct db *db_get(const char *path, int *rc, char *err, size_t errlen);

/* Opens without caching, for the admin command; same contract. */
struct db *db_open(const char *path, int *rc, char *err, size_t errlen);
void db_close(struct db *);

/* Closes the cached connection, at exit. */
void db_release(void);

/* The key that signs states, made on first use. 0 or DB_ERR/DB_BUSY. */
int db_state_key(struct db *, const unsigned char **key, size_t *len);

/* Transactions: BEGIN IMMEDIATE, COMMIT, ROLLBACK. 0 or DB_ERR/DB_BUSY. */
int db_begin(struct db *);
int db_commit(struct db *);
void db_rollback(struct db *);

/* Waits up to ms for a lock, for the admin command (default LIM_BUSY_MS). */
void db_busy_timeout(struct db *, int ms);

/* What `slack-oauth check` reports of an existing database, read without
 * writing anything. */
struct db_info {
	int version;          /* PRAGMA user_version */
	char journal[16];     /* PRAGMA journal_mode */
	int intact;           /* PRAGMA quick_check said ok */
};
int db_inspect(const char *path, struct db_info *, char *err, size_t errlen);

/* The last error of the connection, for logs. */
const char *db_errmsg(struct db *);

#endif
