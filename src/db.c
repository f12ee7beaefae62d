/* The backend-neutral part of the database: choosing the backend, a
 * worker's connection, the state key and its sidecar file. Nothing here is
 * process-wide: what is kept lives in the caller's slot or db_keyfile. */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "db.h"
#include "util.h"
#include "watch.h"

void
db_init(void)
{
	db_sqlite_init();
}

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

struct db *
db_get(struct db **slot, const char *target, int *rc, char *err, size_t errlen)
{
	if (*slot != NULL && strcmp((*slot)->target, target) == 0) {
		*rc = DB_OK;
		return *slot;
	}
	db_drop(slot);
	return *slot = db_open(target, rc, err, errlen);
}

void
db_drop(struct db **slot)
{
	db_close(*slot);
	*slot = NULL;
}

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
db_key_peek(struct db_keyfile *kf, const char *target, unsigned char key[32])
{
	char path[4096];
	struct stat st;
	unsigned long gen;
	int fd, ok;

	if (kf->target != NULL && watch_unchanged(&kf->w) &&
	    strcmp(kf->target, target) == 0) {
		memcpy(key, kf->key, 32);
		return 0;
	}
	if (db_sidecar(target, "-key", path, sizeof(path)) == -1)
		return -1;
	gen = watch_file(path);
	if (stat(path, &st) == -1)
		return -1;
	if (kf->target != NULL && strcmp(kf->target, target) == 0 &&
	    kf->dev == st.st_dev && kf->ino == st.st_ino &&
	    kf->ctime.tv_sec == st.st_ctim.tv_sec &&
	    kf->ctime.tv_nsec == st.st_ctim.tv_nsec) {
		watch_note(&kf->w, gen);
		memcpy(key, kf->key, 32);
		return 0;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return -1;
	ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 32 &&
	    (st.st_mode & 077) == 0 && st.st_uid == geteuid() &&
	    st.st_nlink == 1 && read(fd, key, 32) == 32;
	close(fd);
	if (!ok)
		return -1;
	free(kf->target);
	if ((kf->target = strdup(target)) != NULL) {
		kf->dev = st.st_dev, kf->ino = st.st_ino;
		kf->ctime = st.st_ctim;
		watch_note(&kf->w, gen);
		memcpy(kf->key, key, 32);
	}
	return 0;
}

void
db_keyfile_free(struct db_keyfile *kf)
{
	free(kf->target);
	explicit_bzero(kf, sizeof(*kf));
}

void
db_key_publish(const char *target, const unsigned char key[32])
{
	char path[4096], tmp[4096 + 16];
	unsigned char have[32];
	struct db_keyfile kf = { NULL };
	struct stat st;
	int fd, ok;

	if (db_sidecar(target, "-key", path, sizeof(path)) == -1)
		return;
	ok = db_key_peek(&kf, target, have) == 0 && memcmp(have, key, 32) == 0;
	db_keyfile_free(&kf);
	explicit_bzero(have, sizeof(have));
	if (ok)
		return;
	/* One fixed name for the file being written: a crash leaves at most
	 * that one, which the next publish overwrites (every writer writes
	 * the same 32 bytes); O_NOFOLLOW and the checks keep out a file
	 * someone else put there. Then the rename, and the directory synced
	 * so that the name survives a power cut. */
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	if ((fd = open(tmp,
		 O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		 0600)) == -1)
		return; /* a read-only directory: installs open the database */
	ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_uid == geteuid() && st.st_nlink == 1 &&
	    fchmod(fd, 0600) == 0 && write(fd, key, 32) == 32 && fsync(fd) == 0;
	close(fd);
	if (!ok || rename(tmp, path) == -1) {
		unlink(tmp);
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s", path);
	if ((fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) !=
	    -1) {
		fsync(fd);
		close(fd);
	}
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

/* One file of a SQLite database, if it exists: ours alone. */
static int
trust_file(const char *path, char *why, size_t len)
{
	struct stat st;

	if (lstat(path, &st) == -1) {
		if (errno == ENOENT)
			return 0;
		snprintf(why, len, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (S_ISLNK(st.st_mode))
		snprintf(why, len, "%s: refused: a symbolic link", path);
	else if (!S_ISREG(st.st_mode))
		snprintf(why, len, "%s: refused: not a regular file", path);
	else if (st.st_uid != geteuid())
		snprintf(why, len,
		    "%s: refused: owned by uid %u, not by uid %u (run as the "
		    "user that owns the database)",
		    path, (unsigned)st.st_uid, (unsigned)geteuid());
	else if (st.st_mode & 077)
		snprintf(why, len,
		    "%s: refused: mode %04o lets others in; chmod 600 it", path,
		    (unsigned)(st.st_mode & 07777));
	else if (st.st_nlink > 1)
		snprintf(why, len,
		    "%s: refused: %u hard links (another name could read or "
		    "replace it)",
		    path, (unsigned)st.st_nlink);
	else
		return 0;
	return -1;
}

int
db_trust(const char *path, char *why, size_t len)
{
	static const char *const sides[] = { "", "-wal", "-shm", "-key",
		"-journal" };
	char dirbuf[4096], side[4096 + 16];
	struct stat st;
	const char *dir;
	size_t i;

	if (strlen(path) >= sizeof(dirbuf)) {
		snprintf(why, len, "database path too long");
		return -1;
	}
	memcpy(dirbuf, path, strlen(path) + 1);
	dir = dirname(dirbuf);
	if (stat(dir, &st) == -1) {
		snprintf(why, len, "%s: %s", dir, strerror(errno));
		return -1;
	}
	/* Another user who may write the directory could put their own file
	 * under our database's name, or replace ours: only with the sticky
	 * bit (then the files must be ours, as below) in a directory of root
	 * or ours. */
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		snprintf(why, len,
		    "%s: refused: the database's directory is owned by uid %u, "
		    "not by uid %u or root",
		    dir, (unsigned)st.st_uid, (unsigned)geteuid());
		return -1;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
		snprintf(why, len,
		    "%s: refused: others may write the database's directory "
		    "(mode %04o, no sticky bit); chmod 700 it",
		    dir, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	for (i = 0; i < sizeof(sides) / sizeof(sides[0]); i++) {
		snprintf(side, sizeof(side), "%s%s", path, sides[i]);
		if (trust_file(side, why, len) == -1)
			return -1;
	}
	return 0;
}

int
db_file_check(const char *path, char *why, size_t len)
{
	char dirbuf[4096];
	const char *dir;

	/* The files' type, owner, mode and links are db_trust's. */
	if (db_trust(path, why, len) == -1)
		return -1;
	snprintf(dirbuf, sizeof(dirbuf), "%s", path);
	dir = dirname(dirbuf);
	if (access(path, F_OK) == -1) {
		if (access(dir, W_OK | X_OK) == -1) {
			snprintf(why, len,
			    "%s does not exist and its directory %s is not "
			    "writable: %s",
			    path, dir, strerror(errno));
			return -1;
		}
		snprintf(why, len,
		    "%s: not created yet; %s is writable, so the first request "
		    "will create it",
		    path, dir);
		return 1;
	}
	if (access(path, R_OK | W_OK) == -1 || access(dir, W_OK | X_OK) == -1) {
		snprintf(why, len,
		    "%s or its directory is not writable (WAL needs both): %s",
		    path, strerror(errno));
		return -1;
	}
	return 0;
}
