/* The PostgreSQL backend: not written yet. A postgresql:// URI is refused
 * with a clear error. */
#include <stdio.h>

#include "backend.h"

static int
pg_open(struct db *db, char *err, size_t errlen)
{
	(void)db;
	snprintf(err, errlen, "PostgreSQL databases are not supported yet");
	return DB_ERR;
}

static void
pg_close(struct db *db)
{
	(void)db;
}

static const char *
pg_errmsg(struct db *db)
{
	(void)db;
	return "PostgreSQL databases are not supported yet";
}

static int
pg_inspect(const char *target, struct db_info *info, char *err, size_t errlen)
{
	(void)target, (void)info;
	snprintf(err, errlen, "PostgreSQL databases are not supported yet");
	return DB_ERR;
}

const struct backend backend_pg = {
	.name = "postgresql",
	.open = pg_open,
	.close = pg_close,
	.errmsg = pg_errmsg,
	.inspect = pg_inspect,
};
