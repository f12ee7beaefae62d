/* SQLite for slack-install, loaded on first use. The install program signs
 * states with the key in <db>-key and opens the database only when that
 * file is missing (the first run, or after the database was replaced): a
 * CGI run, one process per request, is then spared mapping and relocating
 * libsqlite3. Each function here forwards to the library's own, loaded by
 * the first call. The other programs link libsqlite3 as usual. */
#include <dlfcn.h>
#include <stdarg.h>
#include <stddef.h>

#include <sqlite3.h>

#include "util.h"

#define LIBSQLITE "libsqlite3.so.0"

/* X(return type, name, parameters, arguments, answer when not loaded) */
#define FUNCS                                                                  \
	X(const char *, sqlite3_errmsg, (sqlite3 * h), (h), "out of memory")   \
	X(const char *, sqlite3_errstr, (int rc), (rc),                        \
	    "cannot load " LIBSQLITE)                                          \
	X(int, sqlite3_errcode, (sqlite3 * h), (h), SQLITE_CANTOPEN)           \
	X(int, sqlite3_extended_result_codes, (sqlite3 * h, int on), (h, on),  \
	    SQLITE_MISUSE)                                                     \
	X(int, sqlite3_busy_handler,                                           \
	    (sqlite3 * h, int (*f)(void *, int), void *a), (h, f, a),          \
	    SQLITE_MISUSE)                                                     \
	X(int, sqlite3_busy_timeout, (sqlite3 * h, int ms), (h, ms),           \
	    SQLITE_MISUSE)                                                     \
	X(void *, sqlite3_wal_hook,                                            \
	    (sqlite3 * h, int (*f)(void *, sqlite3 *, const char *, int),      \
		void *a),                                                      \
	    (h, f, a), NULL)                                                   \
	X(int, sqlite3_wal_checkpoint_v2,                                      \
	    (sqlite3 * h, const char *db, int mode, int *log, int *ckpt),      \
	    (h, db, mode, log, ckpt), SQLITE_MISUSE)                           \
	X(int, sqlite3_file_control,                                           \
	    (sqlite3 * h, const char *db, int op, void *a), (h, db, op, a),    \
	    SQLITE_MISUSE)                                                     \
	X(int, sqlite3_exec,                                                   \
	    (sqlite3 * h, const char *sql,                                     \
		int (*f)(void *, int, char **, char **), void *a, char **err), \
	    (h, sql, f, a, err), SQLITE_MISUSE)                                \
	X(int, sqlite3_get_autocommit, (sqlite3 * h), (h), 1)                  \
	X(int, sqlite3_changes, (sqlite3 * h), (h), 0)                         \
	X(int, sqlite3_prepare_v2,                                             \
	    (sqlite3 * h, const char *sql, int n, sqlite3_stmt **st,           \
		const char **tail),                                            \
	    (h, sql, n, st, tail), SQLITE_MISUSE)                              \
	X(int, sqlite3_prepare_v3,                                             \
	    (sqlite3 * h, const char *sql, int n, unsigned flags,              \
		sqlite3_stmt **st, const char **tail),                         \
	    (h, sql, n, flags, st, tail), SQLITE_MISUSE)                       \
	X(int, sqlite3_step, (sqlite3_stmt * st), (st), SQLITE_MISUSE)         \
	X(int, sqlite3_reset, (sqlite3_stmt * st), (st), SQLITE_OK)            \
	X(int, sqlite3_finalize, (sqlite3_stmt * st), (st), SQLITE_OK)         \
	X(int, sqlite3_clear_bindings, (sqlite3_stmt * st), (st), SQLITE_OK)   \
	X(int, sqlite3_bind_blob,                                              \
	    (sqlite3_stmt * st, int i, const void *p, int n,                   \
		void (*d)(void *)),                                            \
	    (st, i, p, n, d), SQLITE_MISUSE)                                   \
	X(int, sqlite3_bind_text,                                              \
	    (sqlite3_stmt * st, int i, const char *p, int n,                   \
		void (*d)(void *)),                                            \
	    (st, i, p, n, d), SQLITE_MISUSE)                                   \
	X(int, sqlite3_bind_int, (sqlite3_stmt * st, int i, int v),            \
	    (st, i, v), SQLITE_MISUSE)                                         \
	X(int, sqlite3_bind_int64,                                             \
	    (sqlite3_stmt * st, int i, sqlite3_int64 v), (st, i, v),           \
	    SQLITE_MISUSE)                                                     \
	X(int, sqlite3_bind_null, (sqlite3_stmt * st, int i), (st, i),         \
	    SQLITE_MISUSE)                                                     \
	X(int, sqlite3_column_type, (sqlite3_stmt * st, int i), (st, i),       \
	    SQLITE_NULL)                                                       \
	X(int, sqlite3_column_int, (sqlite3_stmt * st, int i), (st, i), 0)     \
	X(sqlite3_int64, sqlite3_column_int64, (sqlite3_stmt * st, int i),     \
	    (st, i), 0)                                                        \
	X(int, sqlite3_column_bytes, (sqlite3_stmt * st, int i), (st, i), 0)   \
	X(const void *, sqlite3_column_blob, (sqlite3_stmt * st, int i),       \
	    (st, i), NULL)                                                     \
	X(const unsigned char *, sqlite3_column_text,                          \
	    (sqlite3_stmt * st, int i), (st, i), NULL)                         \
	X(int, sqlite3_stricmp, (const char *a, const char *b), (a, b), 1)

static struct {
#define X(ret, name, params, args, fail) __typeof__(name) *name;
	FUNCS
#undef X
	__typeof__(sqlite3_open_v2) *sqlite3_open_v2;
	__typeof__(sqlite3_close) *sqlite3_close;
	__typeof__(sqlite3_db_config) *sqlite3_db_config;
} lib;
static void *handle;
static int state;  /* 1 once loaded, -1 if it cannot be */
static int opened; /* connections open */

static int
load(void)
{
	static const struct dl_sym syms[] = {
#define X(ret, name, params, args, fail) { #name, (void **)&lib.name },
		FUNCS
#undef X
		{ "sqlite3_open_v2", (void **)&lib.sqlite3_open_v2 },
		{ "sqlite3_close", (void **)&lib.sqlite3_close },
		{ "sqlite3_db_config", (void **)&lib.sqlite3_db_config },
	};
	const char *missing;

	if (state == 0)
		state = (handle = dl_load(LIBSQLITE, syms,
			     sizeof(syms) / sizeof(syms[0]), &missing)) != NULL
		    ? 1
		    : -1;
	return state;
}

int
sqlite3_open_v2(const char *f, sqlite3 **h, int flags, const char *vfs)
{
	int rc;

	if (load() != 1) {
		*h = NULL;
		return SQLITE_CANTOPEN;
	}
	rc = lib.sqlite3_open_v2(f, h, flags, vfs);
	if (*h != NULL)
		opened++; /* even on failure, *h needs sqlite3_close */
	return rc;
}

/* The last connection closed, the library goes too: a long-lived install
 * process that made the key file keeps no SQLite in its memory. */
int
sqlite3_close(sqlite3 *h)
{
	int rc;

	if (state != 1 || h == NULL)
		return SQLITE_OK;
	if ((rc = lib.sqlite3_close(h)) == SQLITE_OK && --opened == 0) {
		dlclose(handle);
		handle = NULL;
		state = 0;
	}
	return rc;
}

#define X(ret, name, params, args, fail)                                       \
	ret name params                                                        \
	{                                                                      \
		return load() == 1 ? lib.name args : fail;                     \
	}
FUNCS
#undef X

/* The options this program sets all take (int, int *). */
int
sqlite3_db_config(sqlite3 *h, int op, ...)
{
	va_list ap;
	int v, *out;

	va_start(ap, op);
	v = va_arg(ap, int);
	out = va_arg(ap, int *);
	va_end(ap);
	return load() == 1 ? lib.sqlite3_db_config(h, op, v, out)
			   : SQLITE_MISUSE;
}
