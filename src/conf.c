#include <sys/stat.h>

#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf.h"
#include "lim.h"
#include "util.h"
#include "watch.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc/slack-oauth"
#endif
#define CONF_FILE SYSCONFDIR "/slack-oauth.conf"
#define USER_CONF "/.config/slack-oauth/slack-oauth.conf"

static int valid_client_id(const char *);
static int valid_secret(const char *);
static int valid_redirect_uri(const char *);
static int valid_path(const char *);
static int valid_ttl(const char *);
static int valid_bool(const char *);
static int valid_timeout(const char *);
static int valid_proxy(const char *);
static int valid_concurrency(const char *);
static int valid_app_name(const char *);

static const struct {
	const char *name;
	const char *def;
	int (*valid)(const char *);
	const char *want; /* what a valid value is, for the log */
	int startup;      /* read at start, never from a request */
} keys[CONF__MAX] = {
	[CONF_CLIENT_ID] = { "SLACK_CLIENT_ID", NULL, valid_client_id,
	    "printable ASCII without spaces, at most 64 bytes" },
	[CONF_CLIENT_SECRET] = { "SLACK_CLIENT_SECRET", NULL, valid_secret,
	    "printable ASCII without spaces" },
	[CONF_SIGNING_SECRET] = { "SLACK_SIGNING_SECRET", NULL, valid_secret,
	    "printable ASCII without spaces" },
	[CONF_SCOPES] = { "SLACK_SCOPES", NULL, conf_valid_scopes,
	    "comma-separated scopes of [a-z0-9:._-]" },
	[CONF_USER_SCOPES] = { "SLACK_USER_SCOPES", NULL, conf_valid_scopes,
	    "comma-separated scopes of [a-z0-9:._-]" },
	[CONF_REDIRECT_URI] = { "SLACK_REDIRECT_URI", NULL, valid_redirect_uri,
	    "an absolute http(s) URL without a fragment" },
	[CONF_DB] = { "SLACK_OAUTH_DB", "/var/lib/slack-oauth/slack-oauth.db",
	    valid_path, "a file path" },
	[CONF_STATE_TTL] = { "SLACK_STATE_TTL", "600", valid_ttl,
	    "an integer from 1 to 3600" },
	[CONF_DIRECT_INSTALL] = { "SLACK_DIRECT_INSTALL", "0", valid_bool,
	    "0/1, yes/no, on/off or true/false" },
	[CONF_SUCCESS_URL] = { "SLACK_SUCCESS_URL", NULL, conf_valid_page_url,
	    "an absolute http(s) URL or a path starting with one /" },
	[CONF_FAILURE_URL] = { "SLACK_FAILURE_URL", NULL, conf_valid_page_url,
	    "an absolute http(s) URL or a path starting with one /" },
	[CONF_INSTALL_URL] = { "SLACK_INSTALL_URL", "/slack/install",
	    conf_valid_page_url,
	    "an absolute http(s) URL or a path starting with one /" },
	[CONF_STATE_COOKIE] = { "SLACK_STATE_COOKIE", "slack-app-oauth-state",
	    conf_valid_cookie_name, "RFC 6265 token characters, at most 64" },
	[CONF_AUTHORIZE_URL] = { "SLACK_AUTHORIZE_URL",
	    "https://slack.com/oauth/v2/authorize", conf_valid_slack_url,
	    "an https URL (http only on a loopback host), no query" },
	[CONF_API_URL] = { "SLACK_API_URL", "https://slack.com/api/",
	    conf_valid_slack_url,
	    "an https URL (http only on a loopback host), no query" },
	[CONF_HTTP_TIMEOUT] = { "SLACK_HTTP_TIMEOUT", "10", valid_timeout,
	    "an integer from 1 to 120" },
	[CONF_HTTPS_PROXY] = { "SLACK_HTTPS_PROXY", NULL, valid_proxy,
	    "an http(s):// or socks5h:// proxy URL" },
	[CONF_APP_NAME] = { "SLACK_APP_NAME", NULL, valid_app_name,
	    "printable text of at most 80 characters (UTF-8)" },
	[CONF_CONCURRENCY] = { "SLACK_OAUTH_CONCURRENCY", "32",
	    valid_concurrency, "an integer from 1 to 256", 1 },
};

const char *
conf_name(enum conf_key k)
{
	return keys[k].name;
}

static int
valid_client_id(const char *s)
{
	return is_token_ascii(s, LIM_CLIENT_ID);
}

static int
valid_secret(const char *s)
{
	return is_token_ascii(s, 256);
}

int
conf_valid_scopes(const char *s)
{
	int n = 0;

	for (;; s++) {
		if ((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		    *s == ':' || *s == '.' || *s == '_' || *s == '-')
			n++;
		else if ((*s == ',' || *s == '\0') && n > 0)
			n = 0;
		else
			return 0;
		if (*s == '\0')
			return 1;
	}
}

/* The characters RFC 3986 allows anywhere in a URI. */
static int
uri_chars(const char *s)
{
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
			(*s >= '0' && *s <= '9') ||
			strchr("-._~:/?#[]@!$&'()*+,;=%", *s)))
			return 0;
	return 1;
}

struct url {
	int https;
	const char *host; /* the authority, up to hostlen bytes */
	size_t hostlen;
	const char *rest; /* from the path on */
};

/* Splits an absolute http(s) URL; 0, or -1 when it is not one. Userinfo
 * is refused: it would hide the real host from a reader. */
static int
url_split(const char *s, struct url *u)
{
	if (strlen(s) > LIM_CONF_VALUE || !uri_chars(s))
		return -1;
	if (strncmp(s, "https://", 8) == 0)
		u->https = 1, s += 8;
	else if (strncmp(s, "http://", 7) == 0)
		u->https = 0, s += 7;
	else
		return -1;
	u->host = s;
	u->hostlen = strcspn(s, "/?#");
	u->rest = s + u->hostlen;
	if (u->hostlen == 0 || memchr(u->host, '@', u->hostlen) != NULL)
		return -1;
	return 0;
}

static int
is_loopback(const struct url *u)
{
	char h[256];
	size_t n = u->hostlen;
	const char *colon;
	struct in_addr a4;

	if (n >= sizeof(h))
		return 0;
	memcpy(h, u->host, n);
	h[n] = '\0';
	if (h[0] == '[')
		return strncmp(h, "[::1]", 5) == 0 &&
		    (h[5] == '\0' || h[5] == ':');
	if ((colon = strchr(h, ':')) != NULL)
		h[colon - h] = '\0';
	if (strcasecmp(h, "localhost") == 0)
		return 1;
	/* 127.0.0.0/8, in dotted decimal */
	return inet_pton(AF_INET, h, &a4) == 1 &&
	    ((const unsigned char *)&a4)[0] == 127;
}

int
conf_valid_slack_url(const char *s)
{
	struct url u;

	if (url_split(s, &u) == -1 || strpbrk(u.rest, "?#") != NULL)
		return 0;
	return u.https || is_loopback(&u);
}

static int
valid_redirect_uri(const char *s)
{
	struct url u;

	return url_split(s, &u) == 0 && strchr(s, '#') == NULL;
}

int
conf_valid_page_url(const char *s)
{
	struct url u;

	if (s[0] == '/')
		return s[1] != '/' && strlen(s) <= LIM_CONF_VALUE &&
		    uri_chars(s);
	return url_split(s, &u) == 0;
}

int
conf_valid_cookie_name(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++, n++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
			(*s >= '0' && *s <= '9') ||
			strchr("!#$%&'*+-.^_`|~", *s)))
			return 0;
	return n >= 1 && n <= LIM_COOKIE_NAME;
}

static int
valid_path(const char *s)
{
	return *s != '\0' && strlen(s) <= LIM_CONF_VALUE;
}

static int
valid_ttl(const char *s)
{
	long long v;

	return num_parse(s, 1, LIM_TTL_MAX, &v) == 0;
}

static int
valid_timeout(const char *s)
{
	long long v;

	return num_parse(s, 1, LIM_TIMEOUT_MAX, &v) == 0;
}

static int
valid_concurrency(const char *s)
{
	long long v;

	return num_parse(s, 1, LIM_CONCURRENCY_MAX, &v) == 0;
}

static int
valid_app_name(const char *s)
{
	return is_utf8_text(s, LIM_APP_NAME);
}

/* Returns 1 for a true word, 0 for a false one, -1 for anything else. */
static int
parse_bool(const char *s)
{
	static const char *const t[] = { "1", "yes", "on", "true" };
	static const char *const f[] = { "0", "no", "off", "false" };
	size_t i;

	for (i = 0; i < 4; i++) {
		if (strcasecmp(s, t[i]) == 0)
			return 1;
		if (strcasecmp(s, f[i]) == 0)
			return 0;
	}
	return -1;
}

static int
valid_bool(const char *s)
{
	return parse_bool(s) != -1;
}

static int
valid_proxy(const char *s)
{
	return uri_chars(s) && strlen(s) <= LIM_CONF_VALUE &&
	    (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0 ||
		strncmp(s, "socks5h://", 10) == 0);
}

static int
key_index(const char *name, size_t n)
{
	int k;

	for (k = 0; k < CONF__MAX; k++)
		if (strlen(keys[k].name) == n &&
		    memcmp(keys[k].name, name, n) == 0)
			return k;
	return -1;
}

static void
free_vals(char *vals[CONF__MAX])
{
	int k;

	for (k = 0; k < CONF__MAX; k++) {
		free_secret(vals[k]);
		vals[k] = NULL;
	}
}

int
conf_parse_file(const char *path, const char *text, size_t len,
    char *vals[CONF__MAX], char *err, size_t errlen)
{
	const char *p = text, *end = text + len, *eol, *s, *e, *eq;
	const char *why = NULL;
	size_t lineno = 0;
	int k;

	for (k = 0; k < CONF__MAX; k++)
		vals[k] = NULL;
	if (memchr(text, '\0', len) != NULL) {
		snprintf(err, errlen, "%s: holds a NUL byte", path);
		return -1;
	}
	for (; p < end; p = eol + 1) {
		lineno++;
		if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
			eol = end;
		s = p, e = eol;
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (
		    e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
			e--;
		if (s == e || *s == '#')
			continue;
		if ((size_t)(e - s) > LIM_CONF_LINE) {
			why = "line too long";
			goto fail;
		}
		if ((eq = memchr(s, '=', (size_t)(e - s))) == NULL) {
			why = "expected KEY = value";
			goto fail;
		}
		const char *ke = eq, *vs = eq + 1;
		while (ke > s && (ke[-1] == ' ' || ke[-1] == '\t'))
			ke--;
		while (vs < e && (*vs == ' ' || *vs == '\t'))
			vs++;
		if ((k = key_index(s, (size_t)(ke - s))) == -1) {
			why = "unknown key";
			goto fail;
		}
		if (vals[k] != NULL) {
			why = "key given twice";
			goto fail;
		}
		if ((vals[k] = strndup(vs, (size_t)(e - vs))) == NULL) {
			why = "out of memory";
			goto fail;
		}
		if (has_ctl(vals[k])) {
			why = "control character in value";
			goto fail;
		}
	}
	return 0;
fail:
	snprintf(err, errlen, "%s:%zu: %s", path, lineno, why);
	free_vals(vals);
	return -1;
}

/* The config file, parsed once and again only when it changes: the one
 * cache a process's workers share, so behind one mutex, held from the
 * look at the file to the copy of its values. */
static pthread_mutex_t file_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char *path;
	int loaded; /* 1: vals and status below describe path as stat'd */
	dev_t dev;
	ino_t ino;
	struct timespec ctime; /* moved by any write, chmod or utime */
	off_t size;
	mode_t mode;
	char *vals[CONF__MAX];
	int failed;
	char errmsg[512];
	struct watched w;
} file;

/* Opens, checks and parses the config file at path into file.vals; st
 * gets what fstat said of it. 0, or -1 with file.errmsg set (and no
 * values kept). The file is untrusted until it passed every check. */
static int
file_read(const char *path, struct stat *st)
{
	char *text = NULL, *msg = file.errmsg;
	size_t got = 0, len = sizeof(file.errmsg);
	static const enum conf_key secrets[] = { CONF_CLIENT_SECRET,
		CONF_SIGNING_SECRET };
	size_t i;
	ssize_t r;
	int fd, k, rc = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, st) == -1) {
		snprintf(msg, len, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st->st_mode) || st->st_size > LIM_CONF_FILE) {
		snprintf(msg, len, "%s: not a regular file of at most %d bytes",
		    path, LIM_CONF_FILE);
		goto out;
	}
	/* Another user could point SLACK_API_URL elsewhere and be sent the
	 * client secret: only the effective user or root may own it. */
	if (st->st_uid != geteuid() && st->st_uid != 0) {
		snprintf(msg, len,
		    "%s: refused: owned by uid %u, not by uid %u or root", path,
		    (unsigned)st->st_uid, (unsigned)geteuid());
		goto out;
	}
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(msg, len,
		    "%s: refused: writable by group or others (chmod 0640)",
		    path);
		goto out;
	}
	if ((text = malloc((size_t)st->st_size + 1)) == NULL) {
		snprintf(msg, len, "%s: out of memory", path);
		goto out;
	}
	while (got < (size_t)st->st_size &&
	    ((r = read(fd, text + got, (size_t)st->st_size - got)) > 0 ||
		(r == -1 && errno == EINTR)))
		if (r > 0)
			got += (size_t)r;
	if (got < (size_t)st->st_size) {
		snprintf(msg, len, "%s: read %zu of %lld bytes", path, got,
		    (long long)st->st_size);
		goto out;
	}
	if (conf_parse_file(path, text, got, file.vals, msg, len) == -1)
		goto out;
	for (i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		if (file.vals[k = secrets[i]] != NULL &&
		    (st->st_mode & S_IROTH)) {
			free_vals(file.vals);
			snprintf(msg, len,
			    "%s: refused: holds %s and is readable by others "
			    "(chmod 0640)",
			    path, keys[k].name);
			goto out;
		}
	msg[0] = '\0';
	rc = 0;
out:
	if (text != NULL) {
		explicit_bzero(text, (size_t)st->st_size + 1);
		free(text);
	}
	if (fd != -1)
		close(fd);
	return rc;
}

/* Makes the file cache describe path: as it was while inotify tells of no
 * change (and under a second), else as stat() finds it, read again when
 * its inode, size, mode or ctime moved. Returns 0, or -1 with err set.
 * Called with file_lock held. */
static int
file_load(const char *path, int must_exist, char *err, size_t errlen)
{
	struct stat st;
	unsigned long gen;

	if (file.loaded && watch_unchanged(&file.w) &&
	    strcmp(file.path, path) == 0)
		goto answer;
	gen = watch_file(path);
	if (stat(path, &st) == -1) {
		if (errno == ENOENT && !must_exist) {
			free_vals(file.vals);
			file.loaded = 0;
			return 0;
		}
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!file.loaded || strcmp(file.path, path) != 0 ||
	    file.dev != st.st_dev || file.ino != st.st_ino ||
	    file.size != st.st_size || file.mode != st.st_mode ||
	    file.ctime.tv_sec != st.st_ctim.tv_sec ||
	    file.ctime.tv_nsec != st.st_ctim.tv_nsec) {
		free_vals(file.vals);
		free(file.path);
		file.failed = file_read(path, &st) == -1;
		file.loaded = (file.path = strdup(path)) != NULL;
		file.dev = st.st_dev, file.ino = st.st_ino;
		file.size = st.st_size, file.mode = st.st_mode;
		file.ctime = st.st_ctim;
	}
	watch_note(&file.w, gen);
answer:
	if (file.failed)
		snprintf(err, errlen, "%s", file.errmsg);
	return file.failed ? -1 : 0;
}

/* The first non-empty value of name among the request and the process. */
static const char *
lookup(conf_param_fn param, void *ctx, const char *name)
{
	const char *v;

	if (param != NULL && (v = param(ctx, name)) != NULL && *v != '\0')
		return v;
	if ((v = getenv(name)) != NULL && *v != '\0')
		return v;
	return NULL;
}

/* ~/.config/slack-oauth/slack-oauth.conf of the effective user: HOME when
 * it is an absolute path, else the password database's home for the
 * effective uid (suexec passes no HOME). Made once: neither changes while
 * the process runs. */
static pthread_once_t user_once = PTHREAD_ONCE_INIT;
static char user_path[LIM_CONF_VALUE + sizeof(USER_CONF)];
static const char *user_home_from =
    "no home directory: no HOME, no password entry";

static void
user_conf_init(void)
{
	struct passwd pw, *res = NULL;
	const char *home = getenv("HOME");
	char buf[4096];

	if (home != NULL && home[0] == '/')
		user_home_from = "HOME";
	else if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &res) == 0 &&
	    res != NULL && pw.pw_dir != NULL && pw.pw_dir[0] == '/') {
		home = pw.pw_dir;
		user_home_from = "the password database";
	} else
		return;
	if (strlen(home) > LIM_CONF_VALUE) {
		user_home_from = "no home directory: its path is too long";
		return;
	}
	snprintf(user_path, sizeof(user_path), "%s%s",
	    strcmp(home, "/") == 0 ? "" : home, USER_CONF);
}

/* conf_file's answer, with *named set when SLACK_OAUTH_CONFIG named it;
 * why (NULL on a request's path) as conf_file has it. */
static const char *
find_file(conf_param_fn param, void *ctx, int *named, char *why, size_t whylen)
{
	const char *v;
	struct stat st;
	int home;

	if ((*named = (v = lookup(param, ctx, "SLACK_OAUTH_CONFIG")) != NULL)) {
		if (why != NULL)
			snprintf(why, whylen, "named by SLACK_OAUTH_CONFIG");
		return v;
	}
	pthread_once(&user_once, user_conf_init);
	/* The first that exists: a file there that cannot be read is still
	 * the one meant, and refused as such. */
	home = user_path[0] != '\0' &&
	    (stat(user_path, &st) == 0 ||
		(errno != ENOENT && errno != ENOTDIR));
	if (why != NULL && home)
		snprintf(why, whylen, "in the home directory, from %s",
		    user_home_from);
	else if (why != NULL && user_path[0] != '\0')
		snprintf(why, whylen, "%s does not exist", user_path);
	else if (why != NULL)
		snprintf(why, whylen, "%s", user_home_from);
	return home ? user_path : CONF_FILE;
}

const char *
conf_file(conf_param_fn param, void *ctx, char *why, size_t whylen)
{
	int named;

	return find_file(param, ctx, &named, why, whylen);
}

/* The process environment's settings, in one pass (the first of a name,
 * as getenv finds it). */
static void
env_collect(const char *env[CONF__MAX])
{
	extern char **environ;
	const char *eq;
	char **e;
	int k;

	memset(env, 0, CONF__MAX * sizeof(*env));
	for (e = environ; e != NULL && *e != NULL; e++)
		if (strncmp(*e, "SLACK_", 6) == 0 &&
		    (eq = strchr(*e, '=')) != NULL &&
		    (k = key_index(*e, (size_t)(eq - *e))) != -1 &&
		    env[k] == NULL)
			env[k] = eq + 1;
}

int
conf_load(struct conf *c, conf_param_fn param, void *ctx, int need, char *err,
    size_t errlen)
{
	const char *path, *v, *env[CONF__MAX], *val[CONF__MAX] = { NULL };
	size_t len[CONF__MAX], total = 0;
	long long n;
	int k, explicit, rc = 0, have_file;
	char *p = NULL;

	memset(c, 0, sizeof(*c));
	err[0] = '\0';
	path = find_file(param, ctx, &explicit, NULL, 0);
	pthread_mutex_lock(&file_lock);
	if (file_load(path, explicit, err, errlen) == -1)
		rc = -1;
	have_file = rc == 0 && file.loaded;
	env_collect(env);

	/* Every key is resolved even after a failure, so that a caller can
	 * still clear the state cookie it names. */
	for (k = 0; k < CONF__MAX; k++) {
		if ((param == NULL || keys[k].startup ||
			(v = param(ctx, keys[k].name)) == NULL || *v == '\0') &&
		    ((v = env[k]) == NULL || *v == '\0') &&
		    (!have_file || (v = file.vals[k]) == NULL || *v == '\0'))
			v = keys[k].def;
		if (v == NULL)
			continue;
		if (has_ctl(v) || !keys[k].valid(v)) {
			if (rc == 0)
				snprintf(err, errlen, "%s: invalid: want %s",
				    keys[k].name, keys[k].want);
			rc = -1;
			continue;
		}
		val[k] = v;
		total += len[k] = strlen(v) + 1;
	}
	/* One block holds every value: conf_free wipes it at once. */
	if (total > 0 && (c->mem = p = malloc(total)) != NULL) {
		c->memlen = total;
		for (k = 0; k < CONF__MAX; k++)
			if (val[k] != NULL) {
				c->v[k] = memcpy(p, val[k], len[k]);
				p += len[k];
			}
	}
	pthread_mutex_unlock(&file_lock);
	if (total > 0 && c->mem == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (rc == -1)
		return -1;
	if (c->v[CONF_CLIENT_ID] == NULL) {
		snprintf(err, errlen, "SLACK_CLIENT_ID: missing");
		return -1;
	}
	if ((need & CONF_NEED_SECRET) && c->v[CONF_CLIENT_SECRET] == NULL) {
		snprintf(err, errlen, "SLACK_CLIENT_SECRET: missing");
		return -1;
	}
	if ((need & CONF_NEED_SIGNING) && c->v[CONF_SIGNING_SECRET] == NULL) {
		snprintf(err, errlen, "SLACK_SIGNING_SECRET: missing");
		return -1;
	}
	if ((need & CONF_NEED_SCOPES) && c->v[CONF_SCOPES] == NULL &&
	    c->v[CONF_USER_SCOPES] == NULL) {
		snprintf(err, errlen,
		    "SLACK_SCOPES: missing (set it, "
		    "SLACK_USER_SCOPES, or both)");
		return -1;
	}
	num_parse(c->v[CONF_STATE_TTL], 1, LIM_TTL_MAX, &n);
	c->ttl = n;
	num_parse(c->v[CONF_HTTP_TIMEOUT], 1, LIM_TIMEOUT_MAX, &n);
	c->timeout = (long)n;
	c->direct = parse_bool(c->v[CONF_DIRECT_INSTALL]);
	return 0;
}

void
conf_free(struct conf *c)
{
	if (c->mem != NULL) {
		explicit_bzero(c->mem, c->memlen);
		free(c->mem);
	}
	memset(c, 0, sizeof(*c));
}
