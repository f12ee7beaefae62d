#include <sys/stat.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "admin.h"
#include "buf.h"
#include "conf.h"
#include "db.h"
#include "installation.h"
#include "lim.h"
#include "slack.h"
#include "state.h"
#include "store.h"
#include "util.h"

#define PROG           "slack-oauth"
#define REFRESH_WINDOW 7200
#define ADMIN_BUSY_MS  30000
#define TEXT_MAX       (4 * LIM_SLACK_BODY) /* a stored value, escaped */

static const char usage_text[] =
    "usage: " PROG " check\n"
    "       " PROG " list [--json]\n"
    "       " PROG " token [--user USER_ID] TEAM_OR_ENTERPRISE_ID\n"
    "       " PROG " refresh [--within SECONDS]\n"
    "       " PROG " revoke TEAM_OR_ENTERPRISE_ID\n"
    "       " PROG " purge\n"
    "       " PROG " copy FROM TO\n"
    "       " PROG " -V\n";

static int
usage(void)
{
	fputs(usage_text, stderr);
	return 2;
}

static void __attribute__((format(printf, 1, 2))) complain(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Loads the configuration; on failure says why and returns -1. */
static int
load(struct conf *c, int need)
{
	char err[512];

	if (conf_load(c, NULL, NULL, need, err, sizeof(err)) == -1) {
		complain("configuration: %s", err);
		conf_free(c);
		return -1;
	}
	return 0;
}

/* Opens the database, which must exist: the admin command never creates
 * it, so that it is not left owned by whoever ran the command first. With
 * absent non-NULL, a database not created yet sets *absent instead of
 * being an error. */
static struct db *
open_db(const struct conf *c, int *absent)
{
	char err[512];
	struct stat st;
	struct db *db;
	int rc;

	if (!db_is_pg(c->v[CONF_DB]) && stat(c->v[CONF_DB], &st) == -1) {
		if (errno == ENOENT && absent != NULL) {
			*absent = 1;
			return NULL;
		}
		complain("database: %s: %s%s", c->v[CONF_DB], strerror(errno),
		    errno == ENOENT ? " (the first request to the install "
				      "endpoint creates it)"
				    : "");
		return NULL;
	}
	if ((db = db_open(c->v[CONF_DB], &rc, err, sizeof(err))) == NULL) {
		complain("database: %s", err);
		return NULL;
	}
	/* The refresh lease outlives a slow call to Slack by design; others
	 * wait for locks longer than the web endpoints do. */
	db_busy_timeout(db, ADMIN_BUSY_MS);
	return db;
}

/* "xoxb-…abcd": the kind of token and its last four characters. */
static void
mask(const char *t, char *out, size_t len)
{
	size_t n, pre;

	if (t == NULL) {
		snprintf(out, len, "-");
		return;
	}
	n = strlen(t);
	pre = strcspn(t, "-");
	pre = pre < n ? pre + 1 : 0;
	if (pre > 16)
		pre = 0;
	if (n < pre + 12)
		snprintf(out, len, "%.*s…", (int)pre, t);
	else
		snprintf(out, len, "%.*s…%s", (int)pre, t, t + n - 4);
}

static void
when(int64_t t, char *out, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (t <= 0) {
		snprintf(out, len, "never");
		return;
	}
	gmtime_r(&tt, &tm);
	strftime(out, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static int
cmd_check(void)
{
	struct conf c;
	struct db_info info;
	struct stat st;
	char err[LIM_CONF_VALUE + 64], dirbuf[LIM_CONF_VALUE + 1];
	const char *path;
	int rc = 1;

	path = conf_file(NULL, NULL, err, sizeof(err));
	if (stat(path, &st) == 0 || errno != ENOENT)
		printf("config file: %s (%s)\n", path, err);
	else
		printf("config file: none (%s; %s does not exist either)\n",
		    err, path);
	if (load(&c, CONF_NEED_SECRET | CONF_NEED_SCOPES) == -1)
		return 1;
	printf("configuration: ok (client id %s, scopes %s%s%s)\n",
	    c.v[CONF_CLIENT_ID], c.v[CONF_SCOPES] ? c.v[CONF_SCOPES] : "-",
	    c.v[CONF_USER_SCOPES] ? ", user scopes " : "",
	    c.v[CONF_USER_SCOPES] ? c.v[CONF_USER_SCOPES] : "");
	printf(c.v[CONF_SIGNING_SECRET] != NULL
		? "events endpoint: configured (SLACK_SIGNING_SECRET set)\n"
		: "events endpoint: not configured (no SLACK_SIGNING_SECRET: "
		  "slack-events answers 500)\n");
	if (strncmp(c.v[CONF_API_URL], "http:", 5) == 0)
		printf(
		    "warning: SLACK_API_URL is plain http (loopback only): a test "
		    "setup?\n");

	path = c.v[CONF_DB];
	if (db_is_pg(path)) {
		db_redact(path, dirbuf, sizeof(dirbuf));
		if (db_inspect(path, &info, err, sizeof(err)) == -1) {
			complain("database: %s", err);
			goto out;
		}
		if (info.version > info.current) {
			complain(
			    "database: %s: schema version %d is newer than this "
			    "program's %d",
			    dirbuf, info.version, info.current);
			goto out;
		}
		printf("database: ok (%s, PostgreSQL, schema version %d%s)\n",
		    dirbuf, info.version,
		    info.version == 0 ? ", created on first use"
			: info.version < info.current
			? ", will be upgraded on first use"
			: "");
		rc = 0;
		goto out;
	}
	switch (db_file_check(path, err, sizeof(err))) {
	case -1:
		complain("database: %s", err);
		goto out;
	case 1:
		printf("database: %s\n", err);
		rc = 0;
		goto out;
	}
	if (db_inspect(path, &info, err, sizeof(err)) == -1) {
		complain("database: %s", err);
		goto out;
	}
	if (info.version > info.current) {
		complain("database: %s: schema version %d is newer than this "
			 "program's %d",
		    path, info.version, info.current);
		goto out;
	}
	if (!info.intact) {
		complain("database: %s: PRAGMA quick_check failed: the file is "
			 "damaged",
		    path);
		goto out;
	}
	printf("database: ok (%s, schema version %d%s, journal %s, private)\n",
	    path, info.version,
	    info.version < info.current ? ", will be upgraded on first use"
					: "",
	    info.journal);
	rc = 0;
out:
	conf_free(&c);
	return rc;
}

/* A stored value as a JSON string: valid UTF-8 whatever the row holds
 * (another program may have written it), so that the output is JSON. */
static cJSON *
json_str(const char *s)
{
	struct buf b;
	cJSON *v;

	if (s == NULL)
		return cJSON_CreateNull();
	buf_init(&b, TEXT_MAX);
	v = text_json(&b, s) == 0 ? cJSON_CreateString(buf_str(&b)) : NULL;
	buf_free(&b);
	return v;
}

/* One line of `list` for a terminal: whatever a stored value holds
 * (escape sequences, bytes that are not UTF-8) is written as \xNN. */
static void line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void
line(const char *fmt, ...)
{
	struct buf b;
	va_list ap;
	char *text;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	buf_init(&b, TEXT_MAX);
	if (text_terminal(&b, text) == 0)
		printf("%s\n", buf_str(&b));
	buf_free(&b);
	free(text);
}

static cJSON *
json_time(int64_t t)
{
	return t > 0 ? cJSON_CreateNumber((double)t) : cJSON_CreateNull();
}

static int
list_json(void *arg, const struct installation *in)
{
	cJSON *arr = arg, *o, *b, *u, *w;
	char m[64];

	o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "enterprise_id", json_str(in->enterprise_id));
	cJSON_AddItemToObject(
	    o, "enterprise_name", json_str(in->enterprise_name));
	cJSON_AddItemToObject(o, "team_id", json_str(in->team_id));
	cJSON_AddItemToObject(o, "team_name", json_str(in->team_name));
	cJSON_AddItemToObject(o, "app_id", json_str(in->app_id));
	cJSON_AddBoolToObject(
	    o, "is_enterprise_install", in->is_enterprise_install);
	if (in->bot_token != NULL) {
		b = cJSON_AddObjectToObject(o, "bot");
		mask(in->bot_token, m, sizeof(m));
		cJSON_AddStringToObject(b, "token", m);
		cJSON_AddItemToObject(b, "bot_id", json_str(in->bot_id));
		cJSON_AddItemToObject(
		    b, "bot_user_id", json_str(in->bot_user_id));
		cJSON_AddItemToObject(b, "scopes", json_str(in->bot_scopes));
		cJSON_AddItemToObject(
		    b, "expires_at", json_time(in->bot_expires_at));
		cJSON_AddBoolToObject(
		    b, "rotating", in->bot_refresh_token != NULL);
	} else
		cJSON_AddNullToObject(o, "bot");
	u = cJSON_AddObjectToObject(o, "user");
	cJSON_AddItemToObject(u, "user_id", json_str(in->user_id));
	if (in->user_token != NULL) {
		mask(in->user_token, m, sizeof(m));
		cJSON_AddStringToObject(u, "token", m);
	} else
		cJSON_AddNullToObject(u, "token");
	cJSON_AddItemToObject(u, "scopes", json_str(in->user_scopes));
	cJSON_AddItemToObject(u, "expires_at", json_time(in->user_expires_at));
	cJSON_AddBoolToObject(u, "rotating", in->user_refresh_token != NULL);
	if (in->webhook_url != NULL) {
		w = cJSON_AddObjectToObject(o, "incoming_webhook");
		cJSON_AddItemToObject(
		    w, "channel", json_str(in->webhook_channel));
		cJSON_AddItemToObject(
		    w, "channel_id", json_str(in->webhook_channel_id));
	} else
		cJSON_AddNullToObject(o, "incoming_webhook");
	cJSON_AddItemToObject(o, "installed_at", json_str(in->installed_at));
	cJSON_AddItemToArray(arr, o);
	return 0;
}

static int
list_text(void *arg, const struct installation *in)
{
	int *count = arg;
	char m[64], t[64];
	int org = in->team_id == NULL || *in->team_id == '\0';

	if ((*count)++ > 0)
		putchar('\n');
	line("%s (%s)%s", org ? in->enterprise_id : in->team_id,
	    org ? (in->enterprise_name ? in->enterprise_name : "-")
		: (in->team_name ? in->team_name : "-"),
	    org ? ", org-wide" : "");
	if (!org && in->enterprise_id != NULL && *in->enterprise_id)
		line("  enterprise:   %s (%s)", in->enterprise_id,
		    in->enterprise_name ? in->enterprise_name : "-");
	line("  app:          %s", in->app_id ? in->app_id : "-");
	if (in->bot_token != NULL) {
		mask(in->bot_token, m, sizeof(m));
		when(in->bot_expires_at, t, sizeof(t));
		line("  bot token:    %s (bot %s, user %s), expires %s", m,
		    in->bot_id && *in->bot_id ? in->bot_id : "-",
		    in->bot_user_id ? in->bot_user_id : "-", t);
		line("  bot scopes:   %s",
		    in->bot_scopes ? in->bot_scopes : "-");
	}
	if (in->user_token != NULL) {
		mask(in->user_token, m, sizeof(m));
		when(in->user_expires_at, t, sizeof(t));
		line("  user token:   %s (user %s), expires %s", m,
		    in->user_id ? in->user_id : "-", t);
		line("  user scopes:  %s",
		    in->user_scopes ? in->user_scopes : "-");
	} else
		line("  installed by: %s", in->user_id ? in->user_id : "-");
	if (in->webhook_channel != NULL)
		line("  webhook:      %s", in->webhook_channel);
	line("  installed at: %s UTC",
	    in->installed_at ? in->installed_at : "-");
	return 0;
}

static int
cmd_list(int json)
{
	struct conf c;
	struct db *db;
	cJSON *arr = NULL;
	char *s;
	int rc = 1, count = 0, absent = 0;

	if (load(&c, 0) == -1)
		return 1;
	if ((db = open_db(&c, &absent)) == NULL && !absent)
		goto out;
	if (json)
		arr = cJSON_CreateArray();
	if (absent) {
		if (json)
			puts("[]");
		else
			printf("no installations: no database yet at %s\n",
			    c.v[CONF_DB]);
		rc = 0;
		goto out;
	}
	if (store_list(db, c.v[CONF_CLIENT_ID], json ? list_json : list_text,
		json ? (void *)arr : (void *)&count) != DB_OK) {
		complain("database: %s", db_errmsg(db));
		goto out;
	}
	if (json) {
		if ((s = cJSON_Print(arr)) == NULL)
			goto out;
		puts(s);
		free(s);
	} else if (count == 0)
		printf(
		    "no installations for client id %s\n", c.v[CONF_CLIENT_ID]);
	rc = 0;
out:
	cJSON_Delete(arr);
	db_close(db);
	conf_free(&c);
	return rc;
}

static int
valid_id(const char *id)
{
	return is_token_ascii(id, 64);
}

static int
cmd_token(const char *id, const char *user)
{
	struct inst_key k;
	struct conf c;
	struct db *db;
	char *token = NULL, t[64];
	int64_t exp;
	int rc = 1, found;

	if (!valid_id(id) || (user != NULL && !valid_id(user)))
		return usage();
	if (load(&c, 0) == -1)
		return 1;
	if ((db = open_db(&c, NULL)) == NULL)
		goto out;
	store_key(&k, id);
	if ((found = store_token(
		 db, c.v[CONF_CLIENT_ID], &k, user, &token, &exp)) < 0) {
		complain("database: %s", db_errmsg(db));
		goto out;
	}
	if (found == 0) {
		if (user != NULL)
			complain("no user token for user %s in %s", user, id);
		else
			complain("no bot token for %s", id);
		goto out;
	}
	/* Printed for a shell to use: never a value with a control byte or
	 * a space in it (a row another program wrote, or an old one). */
	if (!is_token_ascii(token, LIM_SLACK_TOKEN)) {
		complain("the stored token of %s is malformed (not printable "
			 "ASCII without spaces): not printed",
		    id);
		goto out;
	}
	if (exp > 0 && exp <= now_unix()) {
		when(exp, t, sizeof(t));
		complain("warning: this token expired at %s; run `" PROG
			 " refresh`",
		    t);
	}
	printf("%s\n", token);
	rc = fflush(stdout) == 0 ? 0 : 1;
out:
	free_secret(token);
	db_close(db);
	conf_free(&c);
	return rc;
}

/* Waits for the lease on name, at most until deadline. 1 taken, 0 not. */
static int
take_lock(struct db *db, const char *name, int64_t lease, int64_t deadline)
{
	int r;

	for (;;) {
		r = store_lock(db, name, now_unix(), now_unix() + lease);
		if (r != 0)
			return r;
		if (now_unix() >= deadline)
			return 0;
		usleep(200 * 1000);
	}
}

/* Refreshes one due token; 0 done or not needed, -1 failed (said why). */
/* The admin command runs in one thread: one HTTP handle for the run. */
static void *http;

static int
http_start(void)
{
	if (slack_init() == -1 || (http = slack_http_new()) == NULL) {
		complain("cannot initialise libcurl");
		return -1;
	}
	return 0;
}

static void
http_stop(void)
{
	if (http != NULL)
		slack_http_free(http);
	http = NULL;
	slack_cleanup();
}

static int
refresh_one(
    struct db *db, const struct conf *c, const struct due *d, int64_t deadline)
{
	struct refreshed r;
	char name[256], who[192], why[384], t[64];
	const char *type = d->user_id != NULL ? "user" : "bot";
	char *rt = NULL;
	int64_t exp;
	int rc = -1, got;

	memset(&r, 0, sizeof(r));
	if (d->user_id != NULL)
		snprintf(who, sizeof(who), "%s: user token of %s",
		    *d->team_id ? d->team_id : d->enterprise_id, d->user_id);
	else
		snprintf(who, sizeof(who), "%s: bot token",
		    *d->team_id ? d->team_id : d->enterprise_id);
	snprintf(name, sizeof(name), "refresh:%s:%s:%s", d->enterprise_id,
	    d->team_id, d->user_id ? d->user_id : "bot");

	got =
	    take_lock(db, name, c->timeout + 60, now_unix() + c->timeout + 65);
	if (got <= 0) {
		complain("%s: %s", who,
		    got == 0 ? "another process holds the "
			       "refresh lock"
			     : db_errmsg(db));
		return -1;
	}
	/* Re-read under the lease: another run may have refreshed it. */
	if ((got = store_refresh_token(
		 db, c->v[CONF_CLIENT_ID], d, &rt, &exp)) < 0) {
		complain("%s: database: %s", who, db_errmsg(db));
		goto out;
	}
	if (got == 0 || exp > deadline || d->refresh_token == NULL ||
	    strcmp(rt, d->refresh_token) != 0) {
		printf("%s: already refreshed\n", who);
		rc = 0;
		goto out;
	}
	if (slack_refresh(http, c, rt, type, &r, why, sizeof(why)) !=
	    SLACK_OK) {
		complain("%s: refresh failed, kept the old pair: %s", who, why);
		goto out;
	}
	/* The old refresh token is spent: store the new pair before anything
	 * else, retrying a busy database. */
	for (int i = 0; i < 5; i++) {
		got = store_refreshed(db, c->v[CONF_CLIENT_ID], d, r.token,
		    r.refresh_token, r.expires_at, r.scope, r.json);
		if (got != DB_BUSY)
			break;
	}
	if (got != DB_OK) {
		complain(
		    "%s: Slack rotated the token but storing it failed (%s); "
		    "the installation must be redone",
		    who, db_errmsg(db));
		goto out;
	}
	when(r.expires_at, t, sizeof(t));
	printf("%s: refreshed, expires %s\n", who, t);
	rc = 0;
out:
	store_unlock(db, name);
	slack_refreshed_free(&r);
	free_secret(rt);
	return rc;
}

static int
cmd_refresh(long long within)
{
	struct conf c;
	struct db *db;
	struct due *list = NULL;
	size_t n = 0, i;
	int64_t deadline;
	int rc = 1, failed = 0, absent = 0;

	if (load(&c, CONF_NEED_SECRET) == -1)
		return 1;
	if ((db = open_db(&c, &absent)) == NULL) {
		if (absent) {
			printf("nothing to refresh: no database yet at %s\n",
			    c.v[CONF_DB]);
			rc = 0;
		}
		goto out;
	}
	if (http_start() == -1)
		goto out;
	deadline = now_unix() + within;
	if (store_due(db, c.v[CONF_CLIENT_ID], deadline, &list, &n) != DB_OK) {
		complain("database: %s", db_errmsg(db));
		goto out;
	}
	for (i = 0; i < n; i++)
		if (refresh_one(db, &c, &list[i], deadline) == -1)
			failed++;
	if (n == 0)
		printf("nothing expires within %lld seconds\n", within);
	rc = failed ? 1 : 0;
out:
	store_due_free(list, n);
	db_close(db);
	http_stop();
	conf_free(&c);
	return rc;
}

static int
cmd_revoke(const char *id)
{
	struct inst_key k;
	struct conf c;
	struct db *db;
	char **tokens = NULL, why[384];
	size_t n = 0, i;
	long deleted;
	int rc = 1, failed = 0;

	if (!valid_id(id))
		return usage();
	if (load(&c, CONF_NEED_SECRET) == -1)
		return 1;
	if ((db = open_db(&c, NULL)) == NULL)
		goto out;
	store_key(&k, id);
	if (store_tokens(db, c.v[CONF_CLIENT_ID], &k, now_unix(), &tokens,
		&n) != DB_OK) {
		complain("database: %s", db_errmsg(db));
		goto out;
	}
	if (n > 0 && http_start() == -1)
		goto out;
	for (i = 0; i < n; i++)
		if (slack_revoke(http, &c, tokens[i], why, sizeof(why)) == -1) {
			complain("%s: token %zu of %zu: %s", id, i + 1, n, why);
			failed++;
		}
	if (failed) {
		complain(
		    "%s: kept its rows, since not every token was revoked", id);
		goto out;
	}
	if ((deleted = store_delete(db, c.v[CONF_CLIENT_ID], &k)) < 0) {
		complain("database: %s", db_errmsg(db));
		goto out;
	}
	if (deleted == 0) {
		complain("no installation %s", id);
		goto out;
	}
	printf("%s: revoked %zu token%s, deleted %ld row%s\n", id, n,
	    n == 1 ? "" : "s", deleted, deleted == 1 ? "" : "s");
	rc = 0;
out:
	store_tokens_free(tokens, n);
	db_close(db);
	http_stop();
	conf_free(&c);
	return rc;
}

static int
cmd_purge(void)
{
	struct conf c;
	struct db *db;
	long n;
	int rc = 1, absent = 0;

	if (load(&c, 0) == -1)
		return 1;
	if ((db = open_db(&c, &absent)) == NULL) {
		if (absent) {
			printf("deleted 0 expired states: no database yet\n");
			rc = 0;
		}
		goto out;
	}
	if ((n = state_purge(db, now_unix())) < 0) {
		complain("database: %s", db_errmsg(db));
		goto out;
	}
	printf("deleted %ld expired state%s\n", n, n == 1 ? "" : "s");
	rc = 0;
out:
	db_close(db);
	conf_free(&c);
	return rc;
}

struct copy {
	struct db *to;
	int bots;
	long n;
	int rc;
};

static int
copy_row(void *arg, const char *client_id, const struct installation *in)
{
	struct copy *c = arg;

	if ((c->rc = store_put_row(c->to, c->bots, client_id, in)) != DB_OK)
		return 1;
	c->n++;
	return 0;
}

/* Copies every installation row, of every client id, from one store to an
 * empty other, in one transaction, keeping installed_at. */
static int
cmd_copy(const char *from, const char *to)
{
	struct db *src = NULL, *dst = NULL;
	struct copy c = { NULL, 0, 0, DB_OK };
	char err[512], sf[LIM_CONF_VALUE + 1], st[LIM_CONF_VALUE + 1];
	struct stat sb;
	long rows, inst = 0;
	int rc = 1, r;

	if (strlen(from) > LIM_CONF_VALUE || strlen(to) > LIM_CONF_VALUE ||
	    has_ctl(from) || has_ctl(to))
		return usage();
	db_redact(from, sf, sizeof(sf));
	db_redact(to, st, sizeof(st));
	if (strcmp(from, to) == 0) {
		complain("copy: FROM and TO are the same database");
		return 1;
	}
	if (!db_is_pg(from) && stat(from, &sb) == -1) {
		complain("copy: %s: %s", sf, strerror(errno));
		return 1;
	}
	if ((src = db_open(from, &r, err, sizeof(err))) == NULL) {
		complain("copy: %s", err);
		goto out;
	}
	if ((dst = db_open(to, &r, err, sizeof(err))) == NULL) {
		complain("copy: %s", err);
		goto out;
	}
	db_busy_timeout(dst, ADMIN_BUSY_MS);
	if ((rows = store_rows(dst)) < 0) {
		complain("copy: %s: cannot count its rows%s: %s", st,
		    rows == DB_BUSY ? " (busy)" : "", db_errmsg(dst));
		goto out;
	}
	if (rows > 0) {
		complain(
		    "copy: %s already holds %ld installation rows; copy only "
		    "into an empty store",
		    st, rows);
		goto out;
	}
	if (store_tx(dst, TX_BEGIN) != DB_OK) {
		complain("copy: %s: %s", st, db_errmsg(dst));
		goto out;
	}
	for (c.to = dst, c.bots = 0; c.bots < 2; c.bots++) {
		if (store_each(src, c.bots, copy_row, &c) != DB_OK) {
			complain("copy: %s",
			    c.rc != DB_OK ? db_errmsg(dst) : db_errmsg(src));
			store_tx(dst, TX_ROLLBACK);
			goto out;
		}
		if (c.bots == 0)
			inst = c.n;
	}
	if (store_tx(dst, TX_COMMIT) != DB_OK) {
		complain("copy: %s: %s", st, db_errmsg(dst));
		goto out;
	}
	printf("copied %ld installation rows and %ld bot rows from %s to %s\n",
	    inst, c.n - inst, sf, st);
	rc = 0;
out:
	db_close(src);
	db_close(dst);
	return rc;
}

int
admin_main(int argc, char **argv)
{
	const char *cmd, *user = NULL;
	long long within = REFRESH_WINDOW;

	if (getenv("GATEWAY_INTERFACE") != NULL) {
		complain(
		    "refusing to run under a web server (GATEWAY_INTERFACE is set)");
		return 1;
	}
	umask(077);
	db_init();
	if (argc < 2)
		return usage();
	cmd = argv[1];
	if (strcmp(cmd, "-V") == 0 && argc == 2) {
		printf(PROG " %s\n", VERSION);
		return 0;
	}
	if (strcmp(cmd, "check") == 0 && argc == 2)
		return cmd_check();
	if (strcmp(cmd, "list") == 0 && argc == 2)
		return cmd_list(0);
	if (strcmp(cmd, "list") == 0 && argc == 3 &&
	    strcmp(argv[2], "--json") == 0)
		return cmd_list(1);
	if (strcmp(cmd, "token") == 0) {
		if (argc == 5 && strcmp(argv[2], "--user") == 0)
			user = argv[3];
		else if (argc != 3 || argv[2][0] == '-')
			return usage();
		return cmd_token(argv[argc - 1], user);
	}
	if (strcmp(cmd, "refresh") == 0) {
		if (argc == 4 && strcmp(argv[2], "--within") == 0) {
			if (num_parse(argv[3], 0, 366LL * 86400, &within) == -1)
				return usage();
		} else if (argc != 2)
			return usage();
		return cmd_refresh(within);
	}
	if (strcmp(cmd, "revoke") == 0 && argc == 3)
		return cmd_revoke(argv[2]);
	if (strcmp(cmd, "purge") == 0 && argc == 2)
		return cmd_purge();
	if (strcmp(cmd, "copy") == 0 && argc == 4)
		return cmd_copy(argv[2], argv[3]);
	return usage();
}
