/* The database: a SQLite file, or PostgreSQL when SLACK_OAUTH_DB is a
 * postgresql:// or postgres:// URI. Opening creates or upgrades the
 * schema. The operations are in state.h and store.h. */
#ifndef DB_H
#define DB_H

#include <sys/types.h>

#include <stddef.h>
#include <time.h>

#include "watch.h"

struct db;

/* Results of database calls. */
enum { DB_OK = 0, DB_ERR = -1, DB_BUSY = -2 };

/* Sets the libraries up, once per process before any connection (and
 * before a FastCGI process's workers start). */
void db_init(void);

/* Returns 1 if target names a PostgreSQL database, else 0 (a file). */
int db_is_pg(const char *target);

/* Returns the connection in *slot (a worker's own) when it is to target,
 * else closes it and opens one to target into *slot. NULL on failure, with
 * *rc DB_ERR or DB_BUSY (a busy or unreachable database) and err saying
 * why, without secrets. */
struct db *
db_get(struct db **slot, const char *target, int *rc, char *err, size_t errlen);

/* Opens without caching, for the admin command; same contract. */
struct db *db_open(const char *target, int *rc, char *err, size_t errlen);
void db_close(struct db *);

/* Closes the connection in *slot, if any: the next db_get opens afresh. */
void db_drop(struct db **slot);

/* Loads libpq (once per process; later calls answer the same). 0, or -1
 * with err saying why. serve() calls it at start-up when the configured
 * database is PostgreSQL; opening a PostgreSQL target calls it too. */
int db_pg_load(char *err, size_t errlen);

/* A file beside a SQLite database: its path with suffix appended, into
 * out. 0, or -1 for a PostgreSQL target or a path too long. */
int db_sidecar(const char *target, const char *suffix, char *out, size_t len);

/* The state key of a SQLite database read from its sidecar file, the
 * database's path with "-key" appended (32 bytes, 0600, rewritten from the
 * database whenever a process reads the key there), so that the install
 * endpoint signs states without opening SQLite. kf is the caller's (a
 * worker's) note of the file as last read: while inotify tells of no
 * change, the key is taken from it without a stat. Returns 0 with key
 * set, or -1 (no sidecar, not 0600, not 32 bytes, or a PostgreSQL
 * target): then use db_state_key. */
struct db_keyfile {
	char *target; /* NULL: nothing read yet */
	dev_t dev;
	ino_t ino;
	struct timespec ctime;
	unsigned char key[32];
	struct watched w;
};
int
db_key_peek(struct db_keyfile *kf, const char *target, unsigned char key[32]);
void db_keyfile_free(struct db_keyfile *);

/* Makes the sidecar hold key, atomically, when it does not already. */
void db_key_publish(const char *target, const unsigned char key[32]);

/* The key that signs states, made with the schema. DB_OK or DB_ERR/BUSY. */
int db_state_key(struct db *, const unsigned char **key, size_t *len);

/* Waits up to ms for a lock, for the admin command. */
void db_busy_timeout(struct db *, int ms);

/* What `slack-oauth check` reports of an existing database, read without
 * writing anything. */
struct db_info {
	int version;      /* the schema version */
	int current;      /* the version this build creates and upgrades to */
	char journal[16]; /* SQLite's journal mode; "" for PostgreSQL */
	int intact;       /* SQLite's quick_check said ok; 1 for PostgreSQL */
};
int db_inspect(const char *target, struct db_info *, char *err, size_t errlen);

/* Whether the files of a SQLite database at path may be trusted with
 * tokens: each of the database, -wal, -shm, -key and -journal that exists
 * a regular file (no symbolic link) of the effective user, mode 0600, one
 * link; the directory root's or ours, and not writable by others unless
 * sticky. 0, or -1 with why saying what is wrong. Opening checks it. */
int db_trust(const char *path, char *why, size_t len);

/* The file policy for a SQLite database at path, for `slack-oauth check`:
 * 0 when it is a regular file only its owner may read, with a key file as
 * private, both it and its directory writable; 1 when it is not created
 * yet and its directory is writable; else -1. why says which (1 and -1). */
int db_file_check(const char *path, char *why, size_t len);

/* The last error of the connection, for logs (never a password). */
const char *db_errmsg(struct db *);

/* Writes target for display: a PostgreSQL URI with its password, in the
 * userinfo or a password= parameter, replaced by "***". */
void db_redact(const char *target, char *out, size_t len);

/* Which backend: "sqlite" or "postgresql". */
const char *db_backend(struct db *);

#endif
