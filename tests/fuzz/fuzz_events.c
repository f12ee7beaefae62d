/* The events endpoint (handle_events), with the request from the input:
 *
 *   byte 0      flags, below
 *   then        lines "NAME=value" (REQUEST_METHOD, CONTENT_TYPE,
 *               CONTENT_LENGTH, HTTP_X_SLACK_REQUEST_TIMESTAMP,
 *               HTTP_X_SLACK_SIGNATURE, HTTP_X_SLACK_RETRY_NUM or any
 *               other), up to the first empty line
 *   the rest    the body, raw bytes (NUL and newlines included)
 *
 * So "\x03\n{...}" is a signed POST of {...} with the default headers.
 *
 *   0x01 SIGN     the harness sets X-Slack-Request-Timestamp and a valid
 *                 X-Slack-Signature over the whole body, with its own
 *                 signing secret, replacing the input's; without it the
 *                 input's own headers are used (fuzzing the verification)
 *   0x02 DEFAULT  REQUEST_METHOD=POST, CONTENT_TYPE=application/json and
 *                 CONTENT_LENGTH=<the body's length>, unless lines set them
 *   0x04 NOSECRET no SLACK_SIGNING_SECRET for this input (500)
 *   0x08 TRICKLE  the body comes at most 7 bytes a read
 *   0x30 SKEW     the signed timestamp: 0 now, 1 now-290, 2 now+290,
 *                 3 now-400 (stale: must be 401)
 *   0x40 FRESH    without SIGN: that timestamp, with the input's own
 *                 signature (which then must not verify)
 *   0x80 CORRUPT  with SIGN: one hex digit of the signature changed
 *                 (must be 401)
 *
 * Settings come from the fuzzer's environment, never from the input: the
 * SLACK_OAUTH_* names (the scratch database and configuration in a
 * mkdtemp directory, removed at exit) and SLACK_SIGNING_SECRET are not
 * looked up in it. The database holds a few installations (a workspace
 * with two users and a bot, an org-wide one, a Grid workspace, a user-only
 * one; some installed long ago, some now), put back whenever an input
 * deleted from it.
 *
 * After each input, any failure of these aborts:
 * - the status is 200..599; the headers hold no NUL, and CR and LF only
 *   as line ends;
 * - a 200 has an empty body, but for url_verification: its challenge,
 *   printable ASCII of 1..128 bytes, as text/plain;
 * - an input the harness did not sign, or signed and then corrupted,
 *   never gets a 200; one it signed (timestamp in the window, the whole
 *   body announced, POST) never a 401, unless corrupted (then 401
 *   bad_signature), and a stale one always a 401 (or, for all three, the
 *   500 of a setting the input made invalid);
 * - nothing is read past CONTENT_LENGTH or 1 MiB, and a CONTENT_LENGTH
 *   over 1 MiB is a 413 before any read;
 * - 401 is bad_signature or stale_timestamp, 400/411/413 bad_request;
 * - anything but a 200 revocation leaves the database as it was (PRAGMA
 *   data_version of a second connection);
 * - the secret and the signature are neither in the answer nor in the
 *   log's detail.
 * FUZZ_EVENTS_VERBOSE=1 in the environment prints each input's status,
 * outcome and detail on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "db.h"
#include "fuzz.h"
#include "handlers.h"
#include "installation.h"
#include "lim.h"
#include "serve.h"
#include "sha256.h"
#include "store.h"
#include "util.h"

#define MAXVARS 16 /* of which the input's lines: MAXVARS - 5 */

#define F_SIGN     0x01
#define F_DEFAULT  0x02
#define F_NOSECRET 0x04
#define F_TRICKLE  0x08
#define F_SKEW(f)  (((f) >> 4) & 3)
#define F_FRESH    0x40
#define F_CORRUPT  0x80

#define CLIENT_ID "111.222"

struct req {
	char *name[MAXVARS], *value[MAXVARS];
	int n;
	const char *body;
	size_t len, off;
	int trickle;
};

static const char *
param(void *arg, const char *name)
{
	struct req *r = arg;
	int i;

	if (strncmp(name, "SLACK_OAUTH_", 12) == 0 ||
	    strcmp(name, "SLACK_SIGNING_SECRET") == 0)
		return NULL;
	for (i = r->n - 1; i >= 0; i--)
		if (strcmp(r->name[i], name) == 0)
			return r->value[i];
	return NULL;
}

static size_t
get(void *arg, char *p, size_t n)
{
	struct req *r = arg;

	if (r->trickle && n > 7)
		n = 7;
	if (n > r->len - r->off)
		n = r->len - r->off;
	memcpy(p, r->body + r->off, n);
	r->off += n;
	return n;
}

static char secret[257];
static int verbose;
static struct worker w; /* serve()'s part: one worker for every input */
static sqlite3 *watch;  /* our own connection, to see the handler's writes */

/* Closes the connections, at exit (before fuzz_scratch's directory goes). */
static void
cleanup(void)
{
	if (watch != NULL)
		sqlite3_close(watch);
	db_drop(&w.db);
	db_keyfile_free(&w.key);
}

static void
put(struct db *db, const char *ent, const char *team, const char *user, int bot,
    int org)
{
	struct installation in;

	memset(&in, 0, sizeof(in));
	in.app_id = strdup("A1");
	in.enterprise_id = ent != NULL ? strdup(ent) : NULL;
	in.team_id = team != NULL ? strdup(team) : NULL;
	in.user_id = strdup(user);
	in.user_token = strdup("xoxp-fuzz-user-token");
	in.user_scopes = strdup("search:read");
	if (bot) {
		in.bot_token = strdup("xoxb-fuzz-bot-token");
		in.bot_id = strdup("B1");
		in.bot_user_id = strdup("UB1");
		in.bot_scopes = strdup("chat:write");
	}
	in.is_enterprise_install = org;
	in.token_type = strdup("bot");
	in.oauth_response = strdup("{}");
	if (store_put(db, CLIENT_ID, &in) != DB_OK)
		abort();
	installation_free(&in);
}

static long long
data_version(void)
{
	sqlite3_stmt *q;
	long long v;

	if (sqlite3_prepare_v2(watch, "PRAGMA data_version", -1, &q, NULL) !=
		SQLITE_OK ||
	    sqlite3_step(q) != SQLITE_ROW)
		abort();
	v = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	return v;
}

/* The installations every input starts from. */
static void
seed(void)
{
	const char *path = getenv("SLACK_OAUTH_DB"); /* fuzz_scratch's */
	char err[512];
	struct db *db;
	int rc;

	if ((db = db_get(&w.db, path, &rc, err, sizeof(err))) == NULL)
		abort();
	if (watch == NULL &&
	    (sqlite3_open(path, &watch) != SQLITE_OK ||
		sqlite3_busy_timeout(watch, 3000) != SQLITE_OK))
		abort();
	if (sqlite3_exec(watch,
		"DELETE FROM slack_installations; DELETE FROM slack_bots;",
		NULL, NULL, NULL) != SQLITE_OK)
		abort();
	put(db, NULL, "T1", "U1", 1, 0);
	put(db, NULL, "T1", "U2", 1, 0);
	put(db, "E1", NULL, "U3", 1, 1);
	put(db, "E1", "T2", "U4", 1, 0);
	put(db, NULL, "T3", "U5", 0, 0);
	/* Half of them long ago: an event_time of the input's choosing
	 * (Unix seconds up to 1e11) can then delete them or not. */
	if (sqlite3_exec(watch,
		"UPDATE slack_installations SET installed_at = "
		"'2020-01-01 00:00:00' WHERE user_id IN ('U1', 'U3');"
		"UPDATE slack_bots SET installed_at = '2020-01-01 00:00:00' "
		"WHERE id % 2 = 1;",
		NULL, NULL, NULL) != SQLITE_OK)
		abort();
}

static void
setup(void)
{
	static int done;
	const char *s;

	if (done++)
		return;
	fuzz_scratch();
	atexit(cleanup);
	setenv("SLACK_CLIENT_ID", CLIENT_ID, 0);
	setenv("SLACK_SIGNING_SECRET", "fuzz-signing-secret-8f14e45fceea1", 0);
	s = getenv("SLACK_SIGNING_SECRET");
	if (strlen(s) >= sizeof(secret))
		abort();
	snprintf(secret, sizeof(secret), "%s", s);
	verbose = getenv("FUZZ_EVENTS_VERBOSE") != NULL;
	seed();
}

static void
set(struct req *r, char *name, char *value)
{
	if (r->n == MAXVARS)
		abort();
	r->name[r->n] = name;
	r->value[r->n++] = value;
}

static int
found(const char *hay, size_t n, const char *needle)
{
	return n > 0 && memmem(hay, n, needle, strlen(needle)) != NULL;
}

/* No NUL, and CR only as the first half of CRLF. */
static void
check_head(const struct buf *h)
{
	size_t i;

	for (i = 0; i < h->len; i++) {
		if (h->p[i] == '\0')
			abort();
		if ((h->p[i] == '\r') !=
		    (i + 1 < h->len && h->p[i + 1] == '\n'))
			abort();
		if (h->p[i] == '\n' && (i == 0 || h->p[i - 1] != '\r'))
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char m_post[] = "POST", m_json[] = "application/json",
		    n_method[] = "REQUEST_METHOD", n_type[] = "CONTENT_TYPE",
		    n_len[] = "CONTENT_LENGTH",
		    n_ts[] = "HTTP_X_SLACK_REQUEST_TIMESTAMP",
		    n_sig[] = "HTTP_X_SLACK_SIGNATURE";
	static const int skews[] = { 0, -290, 290, -400 };
	char *text, *line, *nl, *eq, lenbuf[24], tsbuf[24],
	    sigbuf[3 + 2 * SHA256_LEN + 1];
	unsigned char mac[SHA256_LEN];
	unsigned flags;
	struct req r;
	struct ctx c;
	long long before;
	const char *cl, *method;
	int signed_ok;
	size_t i;

	if (size == 0)
		return 0;
	setup();
	flags = data[0];
	text = fuzz_str(data + 1, size - 1);
	memset(&r, 0, sizeof(r));
	/* The lines, up to an empty one or the end; the body after. */
	line = text;
	r.body = text + (size - 1);
	for (;;) {
		if ((nl = memchr(line, '\n',
			 (size_t)(text + size - 1 - line))) == NULL) {
			r.body = text + (size - 1);
			break;
		}
		*nl = '\0';
		if (line == nl) {
			r.body = nl + 1;
			break;
		}
		if ((eq = strchr(line, '=')) != NULL && r.n < MAXVARS - 5) {
			*eq = '\0';
			set(&r, line, eq + 1);
		}
		line = nl + 1;
	}
	r.len = (size_t)(text + size - 1 - r.body);
	r.trickle = (flags & F_TRICKLE) != 0;
	if (flags & F_DEFAULT) {
		snprintf(lenbuf, sizeof(lenbuf), "%zu", r.len);
		if (param(&r, n_method) == NULL)
			set(&r, n_method, m_post);
		if (param(&r, n_type) == NULL)
			set(&r, n_type, m_json);
		if (param(&r, n_len) == NULL)
			set(&r, n_len, lenbuf);
	}
	/* Last wins in param(): these replace the input's. */
	if (flags & (F_SIGN | F_FRESH)) {
		snprintf(tsbuf, sizeof(tsbuf), "%lld",
		    (long long)now_unix() + skews[F_SKEW(flags)]);
		set(&r, n_ts, tsbuf);
	}
	if (flags & F_SIGN) {
		const struct iov_part parts[] = { { "v0:", 3 },
			{ tsbuf, strlen(tsbuf) }, { ":", 1 },
			{ r.body, r.len } };
		hmac_sha256((const unsigned char *)secret, strlen(secret),
		    parts, 4, mac);
		memcpy(sigbuf, "v0=", 3);
		hex_encode(mac, sizeof(mac), sigbuf + 3);
		if (flags & F_CORRUPT) {
			i = 3 + r.len % (2 * SHA256_LEN);
			sigbuf[i] = sigbuf[i] == '0' ? '1' : '0';
		}
		set(&r, n_sig, sigbuf);
	}
	/* Whether the handler sees a well-signed request: POST, the whole
	 * body announced, within the cap, a secret. */
	method = param(&r, n_method);
	cl = param(&r, n_len);
	snprintf(lenbuf, sizeof(lenbuf), "%zu", r.len);
	signed_ok = (flags & F_SIGN) && !(flags & F_NOSECRET) &&
	    method != NULL && strcmp(method, "POST") == 0 && cl != NULL &&
	    strcmp(cl, lenbuf) == 0 && r.len <= LIM_EVENT_BODY;

	if (flags & F_NOSECRET)
		unsetenv("SLACK_SIGNING_SECRET");
	before = data_version();
	memset(&c, 0, sizeof(c));
	c.w = &w;
	c.param = param;
	c.get = get;
	c.pctx = &r;
	c.outcome = "ok";
	resp_init(&c.resp);
	handle_events(&c);
	if (flags & F_NOSECRET)
		setenv("SLACK_SIGNING_SECRET", secret, 1);

	if (verbose)
		fprintf(stderr, "status=%d outcome=%s detail=%s body=%.40s\n",
		    c.resp.status, c.outcome, c.detail,
		    c.resp.status == 200 ? buf_str(&c.resp.body) : "");
	if (c.resp.status < 200 || c.resp.status > 599)
		abort();
	check_head(&c.resp.head);
	if (c.resp.status == 200 &&
	    strcmp(c.outcome, "url_verification") == 0) {
		if (c.resp.body.len < 1 || c.resp.body.len > LIM_CHALLENGE ||
		    strlen(buf_str(&c.resp.body)) != c.resp.body.len ||
		    !is_ascii(buf_str(&c.resp.body)) ||
		    !found(c.resp.head.p, c.resp.head.len,
			"Content-Type: text/plain"))
			abort();
	} else if (c.resp.status == 200 && c.resp.body.len != 0)
		abort();
	if ((!(flags & F_SIGN) || (flags & F_CORRUPT)) && c.resp.status == 200)
		abort();
	if (signed_ok && c.resp.status == 401 && F_SKEW(flags) != 3 &&
	    !(flags & F_CORRUPT))
		abort();
	if (signed_ok && (flags & F_CORRUPT) && F_SKEW(flags) != 3 &&
	    !(c.resp.status == 401 &&
		strcmp(c.outcome, "bad_signature") == 0) &&
	    !(c.resp.status == 500 && strcmp(c.outcome, "server_error") == 0))
		abort();
	/* (A setting from the input may be invalid: 500 comes first.) */
	if (signed_ok && c.resp.status != 401 && F_SKEW(flags) == 3 &&
	    !(c.resp.status == 500 && strcmp(c.outcome, "server_error") == 0))
		abort();
	if (c.resp.status == 401 && strcmp(c.outcome, "bad_signature") != 0 &&
	    strcmp(c.outcome, "stale_timestamp") != 0)
		abort();
	if ((c.resp.status == 400 || c.resp.status == 411 ||
		c.resp.status == 413) &&
	    strcmp(c.outcome, "bad_request") != 0)
		abort();
	if ((flags & F_NOSECRET) && method != NULL &&
	    strcmp(method, "POST") == 0 && c.resp.status != 500)
		abort();
	/* Never a byte read past CONTENT_LENGTH nor past the cap; a length
	 * over the cap is a 413 with nothing read. */
	if (cl != NULL && *cl != '\0' &&
	    strspn(cl, "0123456789") == strlen(cl) && strlen(cl) < 19) {
		long long n = atoll(cl);

		if ((long long)r.off > n)
			abort();
		if (n > LIM_EVENT_BODY && method != NULL &&
		    strcmp(method, "POST") == 0 &&
		    !(c.resp.status == 500 &&
			strcmp(c.outcome, "server_error") == 0) &&
		    (c.resp.status != 413 || r.off != 0))
			abort();
	}
	if (r.off > LIM_EVENT_BODY)
		abort();
	/* Nothing of the secret or the signature: not in the answer, not in
	 * what is logged, unless the input itself held it (libFuzzer learns
	 * the secret from the comparisons below and puts it in the body, as
	 * the event type that the log shows). */
	if (!found((const char *)data, size, secret) &&
	    (found(c.resp.head.p, c.resp.head.len, secret) ||
		found(c.resp.body.p, c.resp.body.len, secret) ||
		strstr(c.detail, secret) != NULL))
		abort();
	if ((flags & F_SIGN) && !found((const char *)data, size, sigbuf + 3) &&
	    (found(c.resp.body.p, c.resp.body.len, sigbuf + 3) ||
		strstr(c.detail, sigbuf + 3) != NULL))
		abort();
	/* Only a revocation that answered 200 may write. */
	if (data_version() != before) {
		if (c.resp.status != 200 ||
		    (strcmp(c.outcome, "app_uninstalled") != 0 &&
			strcmp(c.outcome, "tokens_revoked") != 0))
			abort();
		seed();
	}
	resp_free(&c.resp);
	explicit_bzero(mac, sizeof(mac));
	free(text);
	return 0;
}
