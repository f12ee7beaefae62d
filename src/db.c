/* The backend-neutral part of the database: choosing the backend, the
 * cached connection, the state key. */
#include <sys/stat.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "db.h"
#include "util.h"
#include "watch.h"

int
db_is_pg(const char *t)
{
	return strncmp(t, "postgresql://", 13) == 0 ||
	    strncmp(t, "postgres://", 11) == 0;
}

static const struct backend *
pick(const char *target)
{
	return db_is_pg(target) ? &backend_pg : &backend_sqlite;
}

struct db *
db_open(const char *target, int *rc, char *err, size_t errlen)
{
	struct db *db;

	if ((db = calloc(1, sizeof(*db))) == NULL ||
	    (db->target = strdup(target)) == NULL) {
		free(db);
		snprintf(err, errlen, "out of memory");
		*rc = DB_ERR;
		return NULL;
	}
	db->be = pick(target);
	if ((*rc = db->be->open(db, err, errlen)) != DB_OK) {
		db_close(db);
		return NULL;
	}
	return db;
}

void
db_close(struct db *db)
{
	if (db == NULL)
		return;
	db->be->close(db);
	explicit_bzero(db->key, sizeof(db->key));
	explicit_bzero(
	    db->target, strlen(db->target)); /* a URI may hold a password */
	free(db->target);
	free(db);
}

static struct db *cached;

struct db *
db_get(const char *target, int *rc, char *err, size_t errlen)
{
	if (cached != NULL && strcmp(cached->target, target) == 0) {
		*rc = DB_OK;
		return cached;
	}
	db_close(cached);
	cached = db_open(target, rc, err, errlen);
	return cached;
}

void
db_release(void)
{
	db_close(cached);
	cached = NULL;
}

/* The sidecar last read: stat'ing it tells whether it changed since (a
 * rename, a write or a chmod all move ctime). */
static struct {
	char *target;
	dev_t dev;
	ino_t ino;
	struct timespec ctime;
	unsigned char key[32];
	struct watched w;
} peeked;

int
db_sidecar(const char *target, const char *suffix, char *out, size_t len)
{
	size_t n = strlen(target), s = strlen(suffix);

	if (db_is_pg(target) || n + s >= len)
		return -1;
	memcpy(out, target, n);
	memcpy(out + n, suffix, s + 1);
	return 0;
}

int
db_key_peek(const char *target, unsigned char key[32])
{
	char path[4096];
	struct stat st;
	unsigned long gen;
	int fd, ok;

	if (peeked.target != NULL && watch_unchanged(&peeked.w) &&
	    strcmp(peeked.target, target) == 0) {
		memcpy(key, peeked.key, 32);
		return 0;
	}
	if (db_sidecar(target, "-key", path, sizeof(path)) == -1)
		return -1;
	gen = watch_file(path);
	if (stat(path, &st) == -1)
		return -1;
	if (peeked.target != NULL && strcmp(peeked.target, target) == 0 &&
	    peeked.dev == st.st_dev && peeked.ino == st.st_ino &&
	    peeked.ctime.tv_sec == st.st_ctim.tv_sec &&
	    peeked.ctime.tv_nsec == st.st_ctim.tv_nsec) {
		watch_note(&peeked.w, gen);
		memcpy(key, peeked.key, 32);
		return 0;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return -1;
	ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 32 &&
	    (st.st_mode & 077) == 0 && read(fd, key, 32) == 32;
	close(fd);
	if (!ok)
		return -1;
	free(peeked.target);
	if ((peeked.target = strdup(target)) != NULL) {
		peeked.dev = st.st_dev, peeked.ino = st.st_ino;
		peeked.ctime = st.st_ctim;
		watch_note(&peeked.w, gen);
		memcpy(peeked.key, key, 32);
	}
	return 0;
}

void
db_key_publish(const char *target, const unsigned char key[32])
{
	char path[4096], tmp[4096 + 16];
	unsigned char have[32];
	int fd, ok;

	if (db_sidecar(target, "-key", path, sizeof(path)) == -1)
		return;
	if (db_key_peek(target, have) == 0 && memcmp(have, key, 32) == 0)
		return;
	snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
	if ((fd = mkstemp(tmp)) == -1)
		return; /* a read-only directory: installs open the database */
	ok =
	    fchmod(fd, 0600) == 0 && write(fd, key, 32) == 32 && fsync(fd) == 0;
	close(fd);
	if (!ok || rename(tmp, path) == -1)
		unlink(tmp);
}

int
db_state_key(struct db *db, const unsigned char **key, size_t *len)
{
	int rc;

	if (!db->have_key) {
		if ((rc = db->be->state_key(db, db->key)) != DB_OK)
			return rc;
		db->have_key = 1;
		db_key_publish(db->target, db->key);
	}
	*key = db->key;
	*len = sizeof(db->key);
	return DB_OK;
}

void
db_busy_timeout(struct db *db, int ms)
{
	db->be->busy_timeout(db, ms);
}

int
db_inspect(const char *target, struct db_info *info, char *err, size_t errlen)
{
	return pick(target)->inspect(target, info, err, errlen);
}

const char *
db_errmsg(struct db *db)
{
	return db != NULL ? db->be->errmsg(db) : "no database";
}

const char *
db_backend(struct db *db)
{
	return db->be->name;
}

void
db_redact(const char *t, char *out, size_t len)
{
	const char *auth, *end, *at, *colon, *q, *pw;
	const char *cut[2][2] = { { NULL, NULL }, { NULL, NULL } }, *from = t;
	size_t o = 0;
	int i;

	snprintf(out, len, "%s", t);
	if (!db_is_pg(t))
		return;
	/* Spans to hide: the userinfo's password, a password= parameter. */
	auth = strstr(t, "://") + 3;
	end = auth + strcspn(auth, "/?");
	if ((at = memchr(auth, '@', (size_t)(end - auth))) != NULL &&
	    (colon = memchr(auth, ':', (size_t)(at - auth))) != NULL)
		cut[0][0] = colon + 1, cut[0][1] = at;
	if ((q = strchr(t, '?')) != NULL &&
	    (pw = strstr(q, "password=")) != NULL &&
	    (pw[-1] == '?' || pw[-1] == '&'))
		cut[1][0] = pw + 9, cut[1][1] = pw + 9 + strcspn(pw + 9, "&");
	for (i = 0; i < 2; i++) {
		if (cut[i][0] == NULL)
			continue;
		o += (size_t)snprintf(
		    out + o, len - o, "%.*s***", (int)(cut[i][0] - from), from);
		if (o >= len)
			return;
		from = cut[i][1];
	}
	snprintf(out + o, len - o, "%s", from);
}
