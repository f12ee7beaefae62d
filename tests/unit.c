/* Unit tests, table-driven, for every module that parses or encodes. */
#include <sys/stat.h>

#include <ftw.h>

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <sqlite3.h>

#include "buf.h"
#include "conf.h"
#include "db.h"
#include "html.h"
#include "installation.h"
#include "lim.h"
#include "log.h"
#include "req.h"
#include "resp.h"
#include "sha256.h"
#include "slack.h"
#include "state.h"
#include "store.h"
#include "t.h"
#include "util.h"

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

/* Removes a scratch directory and what is in it. 0 or -1. */
static int
rmtree(const char *dir)
{
	return nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static void
test_pct_decode(void)
{
	static const struct {
		const char *in;
		const char *out; /* NULL: refused */
	} t[] = {
		{ "", "" },
		{ "abc", "abc" },
		{ "a+b", "a b" },
		{ "a%20b", "a b" },
		{ "%41%42%4a%4A", "ABJJ" },
		{ "%2B", "+" },
		{ "%e2%9c%93", "\xe2\x9c\x93" },
		{ "%", NULL },
		{ "%4", NULL },
		{ "%zz", NULL },
		{ "%g0", NULL },
		{ "%00", NULL },
		{ "%0a", NULL },
		{ "%0D", NULL },
		{ "%7f", NULL },
		{ "a\tb", NULL },
		{ "%1f", NULL },
	};
	char out[64];
	size_t i;
	long n;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		n = pct_decode(t[i].in, strlen(t[i].in), out, sizeof(out));
		if (t[i].out == NULL)
			CHECK(n == -1);
		else {
			CHECK(n == (long)strlen(t[i].out));
			if (n >= 0)
				CHECK_STR(out, t[i].out);
		}
	}
	/* The cap counts the NUL. */
	CHECK(pct_decode("abcd", 4, out, 4) == -1);
	CHECK(pct_decode("abc", 3, out, 4) == 3);
}

static void
test_pct_encode(void)
{
	static const struct {
		const char *in, *out;
	} t[] = {
		{ "", "" },
		{ "azAZ09-._~", "azAZ09-._~" },
		{ "chat:write,commands", "chat%3Awrite%2Ccommands" },
		{ "https://x.test/cb?a=1&b=2",
		    "https%3A%2F%2Fx.test%2Fcb%3Fa%3D1%26b%3D2" },
		{ "a b+c", "a%20b%2Bc" },
		{ "\xe2\x9c\x93", "%E2%9C%93" },
	};
	struct buf b;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		buf_init(&b, 1024);
		CHECK(pct_encode(&b, t[i].in) == 0);
		CHECK_STR(buf_str(&b), t[i].out);
		buf_free(&b);
	}
	buf_init(&b, 5);
	CHECK(pct_encode(&b, "::") == -1); /* 6 bytes past a cap of 5 */
	buf_free(&b);
}

static void
test_b64url(void)
{
	static const struct {
		const char *raw, *enc;
	} t[] = {
		{ "", "" },
		{ "f", "Zg" },
		{ "fo", "Zm8" },
		{ "foo", "Zm9v" },
		{ "foob", "Zm9vYg" },
		{ "fooba", "Zm9vYmE" },
		{ "foobar", "Zm9vYmFy" },
		{ "\xfb\xff\xbf", "-_-_" },
	};
	static const char *const bad[] = { "Z", "Zh", "Zm9", "Zm+v", "Zm/v",
		"Zm9v=", "Zm 9", "Zg==" };
	unsigned char out[64];
	char enc[64];
	size_t i;
	long n;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		CHECK(b64url_encode((const unsigned char *)t[i].raw,
			  strlen(t[i].raw), enc) == strlen(t[i].enc));
		CHECK_STR(enc, t[i].enc);
		n = b64url_decode(t[i].enc, out, sizeof(out));
		CHECK(n == (long)strlen(t[i].raw));
		CHECK(n >= 0 && memcmp(out, t[i].raw, (size_t)n) == 0);
	}
	/* "Zh" has non-zero trailing bits; "Zm9" is canonical. */
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (strcmp(bad[i], "Zm9") != 0)
			CHECK(b64url_decode(bad[i], out, sizeof(out)) == -1);
	CHECK(b64url_decode("Zm9v", out, 2) == -1);
}

static void
test_utf8_text(void)
{
	static const struct {
		const char *s;
		size_t max;
		int ok;
	} t[] = {
		{ "Acme", 80, 1 },
		{ "Caf\xc3\xa9 Bot \xe2\x9c\x93 \xf0\x9f\xa4\x96", 80, 1 },
		{ "", 80, 0 },
		{ "abc", 3, 1 },
		{ "abcd", 3, 0 },
		{ "\xc3\xa9\xc3\xa9\xc3\xa9", 3,
		    1 }, /* characters, not bytes */
		{ "a\tb", 80, 0 },
		{ "a\x7f", 80, 0 },
		{ "a\xc2\x85", 80, 0 },        /* NEL, a C1 control */
		{ "a\xc2\xa0", 80, 1 },        /* NBSP */
		{ "\xc0\xaf", 80, 0 },         /* overlong '/' */
		{ "\xe0\x80\xaf", 80, 0 },     /* overlong, three bytes */
		{ "\xed\xa0\x80", 80, 0 },     /* a surrogate */
		{ "\xf4\x90\x80\x80", 80, 0 }, /* past U+10FFFF */
		{ "\xe2\x9c", 80, 0 },         /* truncated */
		{ "\x80", 80, 0 },             /* a lone continuation */
		{ "\xff", 80, 0 },
		{ "\x1b[2J", 80, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (is_utf8_text(t[i].s, t[i].max) != t[i].ok) {
			printf("  case %zu\n", i);
			CHECK(is_utf8_text(t[i].s, t[i].max) == t[i].ok);
		}
}

/* What log_request wrote to stderr for one call, into out. */
static size_t
log_line_of(const char *detail, char *out, size_t cap)
{
	FILE *f = tmpfile();
	int saved = dup(2);
	size_t n;

	if (f == NULL || saved == -1)
		return 0;
	fflush(stderr);
	dup2(fileno(f), 2);
	log_request("ok", 200, "T1", NULL, 1.5, detail);
	dup2(saved, 2);
	close(saved);
	rewind(f);
	n = fread(out, 1, cap, f);
	fclose(f);
	return n;
}

static void
test_log_line_cut(void)
{
	static char detail[4096], line[8192];
	const char *d;
	size_t n, i;

	/* A detail that fills the line, plain and all escapes, at every
	 * length around the cap: one line of at most 1024 bytes, "..." and
	 * the newline at its end, nothing past it. */
	for (i = 900; i < 1100; i++) {
		memset(detail, i % 2 ? 'a' : '\x1b', i);
		detail[i] = '\0';
		n = log_line_of(detail, line, sizeof(line));
		CHECK(n > 0 && n <= 1024);
		CHECK(line[n - 1] == '\n');
		CHECK(memchr(line, '\n', n) == line + n - 1);
		CHECK(memchr(line, '\0', n) == NULL);
		/* Whole, or cut near the cap. */
		if (memcmp(line + n - 2, "\"\n", 2) == 0) {
			d = strstr(line, "detail=\"");
			CHECK(d != NULL &&
			    (size_t)(line + n - 2 - d - 8) ==
				(i % 2 ? i : 4 * i));
		} else
			CHECK(memcmp(line + n - 4, "...\n", 4) == 0 &&
			    n >= 1024 - 8);
	}
	n = log_line_of("short", line, sizeof(line));
	CHECK(n > 7 && memcmp(line + n - 8, "\"short\"\n", 8) == 0);
	log_init("unit");
}

static void
test_ct_streq(void)
{
	CHECK(ct_streq("", ""));
	CHECK(ct_streq("abc", "abc"));
	CHECK(!ct_streq("abc", "abd"));
	CHECK(!ct_streq("abc", "ab"));
	CHECK(!ct_streq("ab", "abc"));
	CHECK(!ct_streq("", "a"));
	CHECK(!ct_streq("Abc", "abc"));
}

static void
test_num_parse(void)
{
	static const struct {
		const char *s;
		long long min, max, want;
		int ok;
	} t[] = {
		{ "600", 1, 3600, 600, 1 },
		{ "1", 1, 3600, 1, 1 },
		{ "3600", 1, 3600, 3600, 1 },
		{ "0", 1, 3600, 0, 0 },
		{ "3601", 1, 3600, 0, 0 },
		{ "", 1, 3600, 0, 0 },
		{ " 1", 1, 3600, 0, 0 },
		{ "1 ", 1, 3600, 0, 0 },
		{ "+1", 1, 3600, 0, 0 },
		{ "0x10", 1, 3600, 0, 0 },
		{ "1e3", 1, 3600, 0, 0 },
		{ "-5", -10, 10, -5, 1 },
		{ "-", -10, 10, 0, 0 },
		{ "99999999999999999999", 0, 9223372036854775807LL, 0, 0 },
		{ "9223372036854775807", 0, 9223372036854775807LL,
		    9223372036854775807LL, 1 },
	};
	long long v;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		v = 0;
		CHECK((num_parse(t[i].s, t[i].min, t[i].max, &v) == 0) ==
		    t[i].ok);
		if (t[i].ok)
			CHECK(v == t[i].want);
	}
}

static void
test_sha256(void)
{
	static const struct {
		const char *in, *hex;
	} t[] = {
		{ "",
		    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
		{ "abc",
		    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
		{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
	};
	unsigned char md[32];
	char h[65];
	size_t i;
	struct sha256 c;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		sha256(t[i].in, strlen(t[i].in), md);
		hex_encode(md, 32, h);
		CHECK_STR(h, t[i].hex);
	}
	/* One million 'a', fed in uneven pieces. */
	sha256_init(&c);
	for (i = 0; i < 1000000;) {
		size_t k =
		    (i % 7) + 60 < 1000000 - i ? (i % 7) + 60 : 1000000 - i;
		char a[80];
		memset(a, 'a', k);
		sha256_update(&c, a, k);
		i += k;
	}
	sha256_final(&c, md);
	hex_encode(md, 32, h);
	CHECK_STR(h,
	    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void
test_hmac_sha256(void)
{
	/* RFC 4231 test cases 1, 2 and 6 (a key longer than a block). */
	unsigned char key1[20], key6[131], md[32];
	char h[65];
	struct iov_part p;

	memset(key1, 0x0b, sizeof(key1));
	p.p = "Hi There", p.n = 8;
	hmac_sha256(key1, sizeof(key1), &p, 1, md);
	hex_encode(md, 32, h);
	CHECK_STR(h,
	    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

	struct iov_part two[2] = { { "what do ya ", 11 },
		{ "want for nothing?", 17 } };
	hmac_sha256((const unsigned char *)"Jefe", 4, two, 2, md);
	hex_encode(md, 32, h);
	CHECK_STR(h,
	    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

	memset(key6, 0xaa, sizeof(key6));
	p.p = "Test Using Larger Than Block-Size Key - Hash Key First",
	p.n = 54;
	hmac_sha256(key6, sizeof(key6), &p, 1, md);
	hex_encode(md, 32, h);
	CHECK_STR(h,
	    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void
test_req_query(void)
{
	static const struct {
		const char *q;
		unsigned keys;
		enum req_err err;
		const char *code, *state, *error, *team;
	} t[] = {
		{ "", REQ_KEYS_REDIRECT, REQ_OK, NULL, NULL, NULL, NULL },
		{ "code=abc&state=xyz", REQ_KEYS_REDIRECT, REQ_OK, "abc", "xyz",
		    NULL, NULL },
		{ "state=xyz&code=a%2Eb", REQ_KEYS_REDIRECT, REQ_OK, "a.b",
		    "xyz", NULL, NULL },
		{ "error=access_denied&state=s", REQ_KEYS_REDIRECT, REQ_OK,
		    NULL, "s", "access_denied", NULL },
		{ "code=a+b", REQ_KEYS_REDIRECT, REQ_OK, "a b", NULL, NULL,
		    NULL },
		{ "code=1&&&state=2&", REQ_KEYS_REDIRECT, REQ_OK, "1", "2",
		    NULL, NULL },
		{ "code=1&code=2", REQ_KEYS_REDIRECT, REQ_ERR_REPEATED, NULL,
		    NULL, NULL, NULL },
		{ "state=1&st%61te=2", REQ_KEYS_REDIRECT, REQ_ERR_REPEATED,
		    NULL, NULL, NULL, NULL },
		{ "code=%zz", REQ_KEYS_REDIRECT, REQ_ERR_ENCODING, NULL, NULL,
		    NULL, NULL },
		{ "code=a%00b", REQ_KEYS_REDIRECT, REQ_ERR_ENCODING, NULL, NULL,
		    NULL, NULL },
		{ "x=%0d%0a", REQ_KEYS_REDIRECT, REQ_ERR_ENCODING, NULL, NULL,
		    NULL, NULL },
		{ "other=1&other=2&code=c", REQ_KEYS_REDIRECT, REQ_OK, "c",
		    NULL, NULL, NULL },
		{ "code", REQ_KEYS_REDIRECT, REQ_OK, "", NULL, NULL, NULL },
		{ "team=T123&code=x&code=y", REQ_KEYS_INSTALL, REQ_OK, NULL,
		    NULL, NULL, "T123" },
		{ "team=T1&team=T2", REQ_KEYS_INSTALL, REQ_ERR_REPEATED, NULL,
		    NULL, NULL, NULL },
		{ "team=", REQ_KEYS_INSTALL, REQ_OK, NULL, NULL, NULL, "" },
	};
	struct req r;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		enum req_err e =
		    req_parse(&r, "GET", t[i].q, NULL, NULL, t[i].keys);
		CHECK(e == t[i].err);
		if (e == REQ_OK) {
			CHECK_STR(r.q[REQ_CODE], t[i].code);
			CHECK_STR(r.q[REQ_STATE], t[i].state);
			CHECK_STR(r.q[REQ_ERROR], t[i].error);
			CHECK_STR(r.q[REQ_TEAM], t[i].team);
		}
		req_free(&r);
	}
}

static void
test_req_limits(void)
{
	char q[LIM_QUERY + 64];
	struct req r;
	size_t i;

	/* Values at and over each cap. */
	memcpy(q, "state=", 6);
	memset(q + 6, 'a', LIM_STATE);
	q[6 + LIM_STATE] = '\0';
	CHECK(req_parse(&r, "GET", q, NULL, NULL, REQ_KEYS_REDIRECT) == REQ_OK);
	req_free(&r);
	memcpy(q + 6 + LIM_STATE, "a", 2);
	CHECK(req_parse(&r, "GET", q, NULL, NULL, REQ_KEYS_REDIRECT) ==
	    REQ_ERR_TOOBIG);
	req_free(&r);

	memcpy(q, "code=", 5);
	memset(q + 5, 'c', LIM_CODE + 1);
	q[5 + LIM_CODE + 1] = '\0';
	CHECK(req_parse(&r, "GET", q, NULL, NULL, REQ_KEYS_REDIRECT) ==
	    REQ_ERR_TOOBIG);
	req_free(&r);

	memcpy(q, "error=", 6);
	memset(q + 6, 'e', LIM_ERROR + 1);
	q[6 + LIM_ERROR + 1] = '\0';
	CHECK(req_parse(&r, "GET", q, NULL, NULL, REQ_KEYS_REDIRECT) ==
	    REQ_ERR_TOOBIG);
	req_free(&r);

	/* The whole query and the number of pairs. */
	memset(q, 'x', LIM_QUERY + 1);
	q[LIM_QUERY + 1] = '\0';
	CHECK(req_parse(&r, "GET", q, NULL, NULL, REQ_KEYS_REDIRECT) ==
	    REQ_ERR_TOOBIG);
	req_free(&r);
	for (i = 0; i < LIM_PARAMS + 1; i++)
		memcpy(q + 2 * i, "a&", 2);
	q[2 * i] = '\0';
	CHECK(req_parse(&r, "GET", q, NULL, NULL, REQ_KEYS_REDIRECT) ==
	    REQ_ERR_TOOBIG);
	req_free(&r);
}

static void
test_req_method(void)
{
	static const struct {
		const char *m;
		enum req_method want;
	} t[] = {
		{ "GET", REQ_GET },
		{ "HEAD", REQ_HEAD },
		{ "POST", REQ_OTHER },
		{ "get", REQ_OTHER },
		{ "", REQ_OTHER },
		{ NULL, REQ_OTHER },
		{ "GETX", REQ_OTHER },
	};
	struct req r;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		req_parse(&r, t[i].m, NULL, NULL, NULL, 0);
		CHECK(r.method == t[i].want);
		req_free(&r);
	}
}

static void
test_req_cookie(void)
{
	static const struct {
		const char *h;
		const char *want;
		int bad;
	} t[] = {
		{ "st=abc", "abc", 0 },
		{ "a=1; st=abc; b=2", "abc", 0 },
		{ "a=1;st=abc", "abc", 0 },
		{ "xst=abc; st_=1", NULL, 0 },
		{ "st=", "", 0 },
		{ "st=a; st=b", NULL, 1 },
		{ "st=abc ", "abc", 0 },
		{ "", NULL, 0 },
		{ "st", NULL, 0 },
	};
	char big[LIM_COOKIE_HEADER + 16];
	struct req r;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		req_parse(&r, "GET", "", t[i].h, "st", 0);
		CHECK_STR(r.cookie, t[i].want);
		CHECK(r.cookie_bad == t[i].bad);
		req_free(&r);
	}
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "st=x; ", 6);
	req_parse(&r, "GET", "", big, "st", 0);
	CHECK(r.cookie == NULL && r.cookie_bad);
	req_free(&r);

	memcpy(big, "st=", 3);
	memset(big + 3, 'a', LIM_STATE + 1);
	big[3 + LIM_STATE + 1] = '\0';
	req_parse(&r, "GET", "", big, "st", 0);
	CHECK(r.cookie == NULL && r.cookie_bad);
	req_free(&r);
}

static void
test_resp_header(void)
{
	struct resp r;

	resp_init(&r);
	CHECK(resp_header(&r, "X-Ok", "fine value") == 0);
	CHECK(resp_header(&r, "X-Bad", "a\r\nSet-Cookie: x=1") == -1);
	CHECK(resp_header(&r, "X-Bad", "a\nb") == -1);
	CHECK(resp_header(&r, "X-Bad", "a\rb") == -1);
	CHECK(resp_header(&r, "X-Bad", "tab\there") == -1);
	CHECK(resp_header(&r, "Bad Name", "v") == -1);
	CHECK(resp_header(&r, "Bad:Name", "v") == -1);
	CHECK(resp_header(&r, "", "v") == -1);
	CHECK(strstr(buf_str(&r.head), "X-Ok: fine value\r\n") != NULL);
	CHECK(strstr(buf_str(&r.head), "X-Bad") == NULL);
	CHECK(strstr(buf_str(&r.head), "Cache-Control: no-store\r\n") != NULL);
	CHECK(resp_cookie(&r, "c", "v1", 600) == 0);
	CHECK(strstr(buf_str(&r.head),
		  "Set-Cookie: c=v1; Path=/; Max-Age=600; "
		  "HttpOnly; Secure; SameSite=Lax\r\n") != NULL);
	CHECK(resp_cookie(&r, "c", NULL, 600) == 0);
	CHECK(strstr(buf_str(&r.head),
		  "Set-Cookie: c=; Path=/; Max-Age=0; "
		  "HttpOnly; Secure; SameSite=Lax\r\n") != NULL);
	resp_free(&r);
}

static void
test_html_escape(void)
{
	static const struct {
		const char *in, *out;
	} t[] = {
		{ "", "" },
		{ "plain", "plain" },
		{ "<script>alert('x')</script>",
		    "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" },
		{ "a&b\"c", "a&amp;b&quot;c" },
	};
	struct buf b;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		buf_init(&b, 1024);
		CHECK(html_escape(&b, t[i].in) == 0);
		CHECK_STR(buf_str(&b), t[i].out);
		buf_free(&b);
	}
	buf_init(&b, LIM_PAGE);
	CHECK(
	    html_page(&b, "T<1>", "<p>%s and %s, 100%%</p>", "<b>", NULL) == 0);
	CHECK(strstr(buf_str(&b), "<title>T&lt;1&gt;</title>") != NULL);
	CHECK(strstr(buf_str(&b), "<p>&lt;b&gt; and , 100%</p>") != NULL);
	CHECK(
	    strstr(buf_str(&b), "<link rel=\"icon\" href=\"data:,\">") != NULL);
	CHECK(strncmp(buf_str(&b), "<!DOCTYPE html>", 15) == 0);
	buf_free(&b);
}

static void
test_conf_validators(void)
{
	static const struct {
		int (*fn)(const char *);
		const char *s;
		int ok;
	} t[] = {
		{ conf_valid_scopes, "chat:write,commands", 1 },
		{ conf_valid_scopes, "incoming-webhook", 1 },
		{ conf_valid_scopes, "a.b_c-d:e", 1 },
		{ conf_valid_scopes, "", 0 },
		{ conf_valid_scopes, "a,,b", 0 },
		{ conf_valid_scopes, "a,", 0 },
		{ conf_valid_scopes, ",a", 0 },
		{ conf_valid_scopes, "Chat:write", 0 },
		{ conf_valid_scopes, "a, b", 0 },
		{ conf_valid_slack_url, "https://slack.com/api/", 1 },
		{ conf_valid_slack_url,
		    "https://slack-gov.com/oauth/v2/authorize", 1 },
		{ conf_valid_slack_url, "http://127.0.0.1:8081/api/", 1 },
		{ conf_valid_slack_url, "http://127.1.2.3/api/", 1 },
		{ conf_valid_slack_url, "http://localhost:9/api/", 1 },
		{ conf_valid_slack_url, "http://[::1]:9/api/", 1 },
		{ conf_valid_slack_url, "http://example.com/api/", 0 },
		{ conf_valid_slack_url, "http://127.0.0.1.evil.test/api/", 0 },
		{ conf_valid_slack_url, "http://localhost.evil.test/", 0 },
		{ conf_valid_slack_url, "http://[::2]/", 0 },
		{ conf_valid_slack_url, "http://128.0.0.1/", 0 },
		{ conf_valid_slack_url, "https://user@slack.com/api/", 0 },
		{ conf_valid_slack_url, "https://slack.com/api/?x=1", 0 },
		{ conf_valid_slack_url, "ftp://slack.com/", 0 },
		{ conf_valid_slack_url, "https://", 0 },
		{ conf_valid_page_url, "/done", 1 },
		{ conf_valid_page_url, "/done?x=1#y", 1 },
		{ conf_valid_page_url, "https://example.test/ok", 1 },
		{ conf_valid_page_url, "//evil.test/", 0 },
		{ conf_valid_page_url, "/\\evil.test/", 0 },
		{ conf_valid_page_url, "javascript:alert(1)", 0 },
		{ conf_valid_page_url, "done", 0 },
		{ conf_valid_page_url, "/a b", 0 },
		{ conf_valid_page_url, "/a\"b", 0 },
		{ conf_valid_cookie_name, "slack-app-oauth-state", 1 },
		{ conf_valid_cookie_name, "__Host-state", 1 },
		{ conf_valid_cookie_name, "a b", 0 },
		{ conf_valid_cookie_name, "a=b", 0 },
		{ conf_valid_cookie_name, "a;b", 0 },
		{ conf_valid_cookie_name, "", 0 },
	};
	char long_name[LIM_COOKIE_NAME + 2];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (t[i].fn(t[i].s) != t[i].ok) {
			printf("  validator case %zu: \"%s\"\n", i, t[i].s);
			t_case_failed = 1;
		}
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	CHECK(!conf_valid_cookie_name(long_name));
	long_name[LIM_COOKIE_NAME] = '\0';
	CHECK(conf_valid_cookie_name(long_name));
}

static void
test_conf_file(void)
{
	static const struct {
		const char *text;
		const char *err; /* NULL: parses */
	} t[] = {
		{ "", NULL },
		{ "# comment\n\n  \t\nSLACK_CLIENT_ID = 1.2\n", NULL },
		{ "SLACK_CLIENT_ID=1.2\r\nSLACK_SCOPES =chat:write\r\n", NULL },
		{ "SLACK_CLIENT_ID = 1.2\nbogus line\n",
		    "f.conf:2: expected KEY = value" },
		{ "\n\nSLACK_NOPE = 1\n", "f.conf:3: unknown key" },
		{ "SLACK_CLIENT_ID = 1\nSLACK_CLIENT_ID = 2\n",
		    "f.conf:2: key given twice" },
		{ "slack_client_id = 1\n", "f.conf:1: unknown key" },
		{ "SLACK_CLIENT_ID = a\x01"
		  "b\n",
		    "f.conf:1: control character in value" },
		{ "= 1\n", "f.conf:1: unknown key" },
	};
	char *vals[CONF__MAX], err[256];
	size_t i;
	int k;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		err[0] = '\0';
		int rc = conf_parse_file("f.conf", t[i].text, strlen(t[i].text),
		    vals, err, sizeof(err));
		if (t[i].err == NULL)
			CHECK(rc == 0);
		else {
			CHECK(rc == -1);
			CHECK_STR(err, t[i].err);
		}
		for (k = 0; k < CONF__MAX; k++)
			free(vals[k]);
	}
	CHECK(conf_parse_file("f.conf", "SLACK_CLIENT_ID = 1.2 \n", 23, vals,
		  err, sizeof(err)) == 0);
	CHECK_STR(vals[CONF_CLIENT_ID], "1.2");
	for (k = 0; k < CONF__MAX; k++)
		free(vals[k]);
	CHECK(
	    conf_parse_file("f.conf", "A\0B", 3, vals, err, sizeof(err)) == -1);
}

/* The request parameters of a fake request, for conf_load. */
static const char *
params(void *ctx, const char *name)
{
	const char *const *p;

	for (p = ctx; *p != NULL; p += 2)
		if (strcmp(p[0], name) == 0)
			return p[1];
	return NULL;
}

static void
test_conf_load(void)
{
	char dir[] = "/tmp/unitconfXXXXXX", path[256], err[512];
	struct conf c;
	FILE *f;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/slack-oauth.conf", dir);
	f = fopen(path, "w");
	fputs("SLACK_CLIENT_ID = from-file\nSLACK_SCOPES = file:scope\n"
	      "SLACK_STATE_TTL = 120\n",
	    f);
	fclose(f);
	chmod(path, 0600);

	const char *p1[] = { "SLACK_OAUTH_CONFIG", path, "SLACK_SCOPES",
		"req:scope", NULL };
	setenv("SLACK_SCOPES", "env:scope", 1);
	setenv("SLACK_STATE_TTL", "300", 1);
	CHECK(
	    conf_load(&c, params, p1, CONF_NEED_SCOPES, err, sizeof(err)) == 0);
	CHECK_STR(c.v[CONF_SCOPES], "req:scope");    /* request > env */
	CHECK_STR(c.v[CONF_CLIENT_ID], "from-file"); /* file */
	CHECK(c.ttl == 300);                         /* env > file */
	CHECK_STR(
	    c.v[CONF_STATE_COOKIE], "slack-app-oauth-state"); /* default */
	CHECK(c.timeout == 10 && c.direct == 0);
	conf_free(&c);
	unsetenv("SLACK_SCOPES");
	unsetenv("SLACK_STATE_TTL");

	/* Missing and invalid keys are named, values never. */
	const char *p2[] = { "SLACK_OAUTH_CONFIG", path, "SLACK_STATE_TTL", "0",
		"SLACK_STATE_COOKIE", "my-cookie", NULL };
	CHECK(conf_load(&c, params, p2, 0, err, sizeof(err)) == -1);
	CHECK(strncmp(err, "SLACK_STATE_TTL: invalid", 24) == 0);
	CHECK_STR(c.v[CONF_STATE_COOKIE], "my-cookie"); /* still resolved */
	conf_free(&c);

	const char *p3[] = { "SLACK_OAUTH_CONFIG", path, "SLACK_CLIENT_SECRET",
		"s3cr3t value", NULL };
	CHECK(conf_load(&c, params, p3, CONF_NEED_SECRET, err, sizeof(err)) ==
	    -1);
	CHECK(strstr(err, "SLACK_CLIENT_SECRET") != NULL);
	CHECK(strstr(err, "s3cr3t") == NULL);
	conf_free(&c);

	const char *p4[] = { "SLACK_OAUTH_CONFIG", path, NULL };
	CHECK(conf_load(&c, params, p4, CONF_NEED_SECRET, err, sizeof(err)) ==
	    -1);
	CHECK_STR(err, "SLACK_CLIENT_SECRET: missing");
	conf_free(&c);

	/* Modes: group-writable is refused; a secret readable by others too. */
	chmod(path, 0620);
	CHECK(conf_load(&c, params, p4, 0, err, sizeof(err)) == -1);
	CHECK(strstr(err, "writable by group or others") != NULL);
	conf_free(&c);
	chmod(path, 0644);
	CHECK(conf_load(&c, params, p4, 0, err, sizeof(err)) == 0);
	conf_free(&c);
	f = fopen(path, "a");
	fputs("SLACK_CLIENT_SECRET = abc\n", f);
	fclose(f);
	CHECK(conf_load(&c, params, p4, 0, err, sizeof(err)) == -1);
	CHECK(strstr(err, "readable by others") != NULL);
	CHECK(strstr(err, "abc") == NULL);
	conf_free(&c);
	chmod(path, 0640);
	CHECK(
	    conf_load(&c, params, p4, CONF_NEED_SECRET, err, sizeof(err)) == 0);
	CHECK_STR(c.v[CONF_CLIENT_SECRET], "abc");
	conf_free(&c);

	/* A syntax error names the file and the line. */
	f = fopen(path, "a");
	fputs("oops\n", f);
	fclose(f);
	CHECK(conf_load(&c, params, p4, 0, err, sizeof(err)) == -1);
	char want[300];
	snprintf(want, sizeof(want), "%s:5: expected KEY = value", path);
	CHECK_STR(err, want);
	conf_free(&c);

	/* An explicit file that does not exist is an error. */
	unlink(path);
	CHECK(conf_load(&c, params, p4, 0, err, sizeof(err)) == -1);
	conf_free(&c);
	rmdir(dir);
}

/* conf_load with key = value, as a request parameter or (env) in the
 * process environment, SLACK_CLIENT_ID and the config file besides.
 * Returns conf_load's answer, or -2 when it took another value for key. */
static int
conf_with(const char *file, const char *key, const char *value, int env,
    char *err, size_t errlen)
{
	const char *p[9];
	struct conf c;
	int n = 0, k, rc;

	if (!env)
		p[n++] = key, p[n++] = value;
	p[n++] = "SLACK_OAUTH_CONFIG", p[n++] = file;
	if (strcmp(key, "SLACK_CLIENT_ID") != 0)
		p[n++] = "SLACK_CLIENT_ID", p[n++] = "1.2";
	p[n] = NULL;
	if (env)
		setenv(key, value, 1);
	rc = conf_load(&c, params, p, 0, err, errlen);
	for (k = 0; k < CONF__MAX; k++)
		if (rc == 0 && strcmp(conf_name(k), key) == 0 &&
		    (c.v[k] == NULL || strcmp(c.v[k], value) != 0))
			rc = -2;
	conf_free(&c);
	if (env)
		unsetenv(key);
	return rc;
}

/* A long-lived process checks a setting once per distinct value (conf.c
 * keeps the last valid value of each key): valid, then invalid, then
 * valid again, the invalid one must be refused naming its key, whether
 * it extends the cached value, is a prefix of it, comes in the same
 * buffer, or from the environment; and a value valid for one key is not
 * thereby valid for another. */
static void
test_conf_cache(void)
{
	static const struct {
		const char *key, *good, *bad;
	} t[] = {
		{ "SLACK_STATE_TTL", "360", "3601" },
		{ "SLACK_STATE_TTL", "360", "0" },
		{ "SLACK_HTTP_TIMEOUT", "12", "121" },
		{ "SLACK_SCOPES", "chat:write,commands", "chat:write," },
		{ "SLACK_STATE_COOKIE", "my-cookie", "my-cookie;x" },
		{ "SLACK_CLIENT_ID", "1.2", "1.2 3" },
		{ "SLACK_DIRECT_INSTALL", "yes", "yess" },
		{ "SLACK_API_URL", "http://127.0.0.1:9/api/",
		    "http://127.0.0.1:9/api/?x=1" },
		{ "SLACK_SUCCESS_URL", "/done", "/done\x01" },
	};
	static const char *const how[] = { "request", "same buffer",
		"environment" };
	char dir[] = "/tmp/unitconfXXXXXX", path[256], err[512], want[64];
	char buf[128];
	const char *g, *b;
	size_t i;
	int src, rc1, rc2, rc3;
	FILE *f;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/slack-oauth.conf", dir);
	CHECK((f = fopen(path, "w")) != NULL);
	if (f != NULL)
		fclose(f);
	chmod(path, 0600);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		for (src = 0; src < 3; src++) {
			snprintf(want, sizeof(want), "%s: invalid", t[i].key);
			g = t[i].good, b = t[i].bad;
			if (src == 1) /* one buffer, rewritten in place */
				g = b = buf,
				snprintf(buf, sizeof(buf), "%s", t[i].good);
			rc1 = conf_with(
			    path, t[i].key, g, src == 2, err, sizeof(err));
			if (src == 1)
				snprintf(buf, sizeof(buf), "%s", t[i].bad);
			rc2 = conf_with(
			    path, t[i].key, b, src == 2, err, sizeof(err));
			CHECK(
			    rc2 != -1 || strncmp(err, want, strlen(want)) == 0);
			if (src == 1)
				snprintf(buf, sizeof(buf), "%s", t[i].good);
			rc3 = conf_with(
			    path, t[i].key, g, src == 2, err, sizeof(err));
			if (rc1 != 0 || rc2 != -1 || rc3 != 0)
				printf("  %s (%s): valid, invalid, valid "
				       "again gave %d, %d, %d; want 0, -1, 0\n",
				    t[i].key, how[src], rc1, rc2, rc3);
			CHECK(rc1 == 0 && rc2 == -1 && rc3 == 0);
		}
	/* The cache is per key: http on a host not loopback is a page URL,
	 * not a Slack URL. */
	CHECK(conf_with(path, "SLACK_SUCCESS_URL", "http://example.test/api/",
		  0, err, sizeof(err)) == 0);
	CHECK(conf_with(path, "SLACK_API_URL", "http://example.test/api/", 0,
		  err, sizeof(err)) == -1);
	CHECK(strncmp(err, "SLACK_API_URL: invalid", 22) == 0);
	/* Nor in one load: "/x" is a page URL, not a cookie name. */
	const char *p2[] = { "SLACK_OAUTH_CONFIG", path, "SLACK_CLIENT_ID",
		"1.2", "SLACK_INSTALL_URL", "/x", "SLACK_STATE_COOKIE", "/x",
		NULL };
	struct conf c;
	CHECK(conf_load(&c, params, p2, 0, err, sizeof(err)) == -1);
	CHECK(strncmp(err, "SLACK_STATE_COOKIE: invalid", 27) == 0);
	conf_free(&c);
	unlink(path);
	rmdir(dir);
}

/* An oauth.v2.access body with the given middle. */
#define ACCESS(...) "{\"ok\":true,\"app_id\":\"A0APP0001\"," __VA_ARGS__ "}"

static void
test_slack_parse_access(void)
{
	static const struct {
		const char *name, *json;
		enum slack_res res;
		const char *team, *ent, *bot, *user_token, *user_id, *hook;
		int is_ent;
		int64_t bot_exp, user_exp;
	} t[] = {
		{ "bot",
		    ACCESS(
			"\"access_token\":\"xoxb-1\",\"token_type\":\"bot\","
			"\"scope\":\"chat:write,commands\",\"bot_user_id\":\"U0BOT\","
			"\"team\":{\"id\":\"T1\",\"name\":\"Ex\"},\"enterprise\":null,"
			"\"is_enterprise_install\":false,\"authed_user\":{\"id\":\"U1\"}"),
		    SLACK_OK, "T1", NULL, "xoxb-1", NULL, "U1", NULL, 0, 0, 0 },
		{ "user",
		    ACCESS(
			"\"access_token\":\"xoxb-1\",\"token_type\":\"bot\","
			"\"scope\":\"a\",\"bot_user_id\":\"U0BOT\",\"team\":{\"id\":\"T1\"},"
			"\"authed_user\":{\"id\":\"U1\",\"scope\":\"search:read\","
			"\"access_token\":\"xoxp-1\",\"token_type\":\"user\"}"),
		    SLACK_OK, "T1", NULL, "xoxb-1", "xoxp-1", "U1", NULL, 0, 0,
		    0 },
		{ "user only",
		    ACCESS(
			"\"team\":{\"id\":\"T1\"},\"authed_user\":{"
			"\"id\":\"U1\",\"scope\":\"search:read\",\"access_token\":\"xoxp-1\","
			"\"token_type\":\"user\"}"),
		    SLACK_OK, "T1", NULL, NULL, "xoxp-1", "U1", NULL, 0, 0, 0 },
		{ "webhook",
		    ACCESS(
			"\"access_token\":\"xoxb-1\",\"scope\":\"incoming-webhook\","
			"\"bot_user_id\":\"U0BOT\",\"team\":{\"id\":\"T1\"},\"authed_user\":"
			"{\"id\":\"U1\"},\"incoming_webhook\":{\"channel\":\"#a\","
			"\"channel_id\":\"C1\",\"configuration_url\":\"https://x/c\","
			"\"url\":\"https://hooks.slack.com/services/T/B/x\"}"),
		    SLACK_OK, "T1", NULL, "xoxb-1", NULL, "U1",
		    "https://hooks.slack.com/services/T/B/x", 0, 0, 0 },
		{ "org",
		    ACCESS(
			"\"access_token\":\"xoxb-1\",\"scope\":\"users:read\","
			"\"bot_user_id\":\"W0BOT\",\"team\":null,\"enterprise\":{\"id\":\"E1\","
			"\"name\":\"Org\"},\"is_enterprise_install\":true,\"authed_user\":"
			"{\"id\":\"W1\"}"),
		    SLACK_OK, NULL, "E1", "xoxb-1", NULL, "W1", NULL, 1, 0, 0 },
		{ "rotation",
		    ACCESS(
			"\"access_token\":\"xoxe.xoxb-1\",\"expires_in\":43200,"
			"\"refresh_token\":\"xoxe-1-r\",\"scope\":\"commands\",\"bot_user_id\":"
			"\"U0BOT\",\"team\":{\"id\":\"T1\"},\"authed_user\":{\"id\":\"U1\","
			"\"access_token\":\"xoxe.xoxp-1\",\"expires_in\":43200,"
			"\"refresh_token\":\"xoxe-1-u\"}"),
		    SLACK_OK, "T1", NULL, "xoxe.xoxb-1", "xoxe.xoxp-1", "U1",
		    NULL, 0, 1000 + 43200, 1000 + 43200 },
		{ "invalid_code", "{\"ok\":false,\"error\":\"invalid_code\"}",
		    SLACK_BAD_CODE },
		{ "code_already_used",
		    "{\"ok\":false,\"error\":\"code_already_used\"}",
		    SLACK_BAD_CODE },
		{ "bad secret",
		    "{\"ok\":false,\"error\":\"bad_client_secret\"}",
		    SLACK_CONFIG },
		{ "ratelimited", "{\"ok\":false,\"error\":\"ratelimited\"}",
		    SLACK_FAIL },
		{ "no error", "{\"ok\":false}", SLACK_FAIL },
		{ "not json", "<html>", SLACK_FAIL },
		{ "array", "[1]", SLACK_FAIL },
		{ "ok string", "{\"ok\":\"true\"}", SLACK_FAIL },
		{ "team string",
		    ACCESS("\"access_token\":\"x\",\"team\":\"T1\""),
		    SLACK_FAIL },
		{ "token number",
		    ACCESS("\"access_token\":5,\"team\":{\"id\":\"T1\"}"),
		    SLACK_FAIL },
		{ "team id number",
		    ACCESS("\"access_token\":\"x\",\"team\":{\"id\":1}"),
		    SLACK_FAIL },
		{ "expires string",
		    ACCESS("\"access_token\":\"x\",\"expires_in\":\"1\","
			   "\"team\":{\"id\":\"T1\"}"),
		    SLACK_FAIL },
		{ "no token", ACCESS("\"team\":{\"id\":\"T1\"}"), SLACK_FAIL },
		{ "no team", ACCESS("\"access_token\":\"x\""), SLACK_FAIL },
		{ "no app",
		    "{\"ok\":true,\"access_token\":\"x\",\"team\":{\"id\":\"T1\"}}",
		    SLACK_FAIL },
		{ "bool type",
		    ACCESS("\"access_token\":\"x\",\"team\":{\"id\":\"T1\"},"
			   "\"is_enterprise_install\":1"),
		    SLACK_FAIL },
		{ "team id with newline",
		    ACCESS("\"access_token\":\"x\",\"team\":"
			   "{\"id\":\"T1\\nX\"}"),
		    SLACK_FAIL },
	};
	struct installation in;
	char why[256];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		t_case = t[i].name;
		enum slack_res r = slack_parse_access(
		    t[i].json, strlen(t[i].json), 1000, &in, why, sizeof(why));
		CHECK(r == t[i].res);
		if (r == SLACK_OK) {
			CHECK_STR(in.app_id, "A0APP0001");
			CHECK_STR(in.team_id, t[i].team);
			CHECK_STR(in.enterprise_id, t[i].ent);
			CHECK_STR(in.bot_token, t[i].bot);
			CHECK_STR(in.user_token, t[i].user_token);
			CHECK_STR(in.user_id, t[i].user_id);
			CHECK_STR(in.webhook_url, t[i].hook);
			CHECK(in.is_enterprise_install == t[i].is_ent);
			CHECK(in.bot_expires_at == t[i].bot_exp);
			CHECK(in.user_expires_at == t[i].user_exp);
			CHECK_STR(in.oauth_response, t[i].json);
		} else {
			CHECK(
			    in.bot_token == NULL && in.oauth_response == NULL);
			CHECK(why[0] != '\0');
		}
		installation_free(&in);
	}
	t_case = "test_slack_parse_access";
}

#define AUTH_TEST(json, in, why)                                               \
	slack_parse_auth_test(json, strlen(json), in, why, sizeof(why))

static void
test_slack_parse_auth_test(void)
{
	struct installation in;
	char why[256];

	memset(&in, 0, sizeof(in));
	CHECK(AUTH_TEST("{\"ok\":true,\"bot_id\":\"B1\",\"url\":"
			"\"https://x.slack.com/\"}",
		  &in, why) == 0);
	CHECK_STR(in.bot_id, "B1");
	CHECK_STR(in.enterprise_url, NULL); /* only for org-wide installs */
	in.is_enterprise_install = 1;
	CHECK(AUTH_TEST("{\"ok\":true,\"bot_id\":\"B2\",\"url\":"
			"\"https://o.enterprise.slack.com/\"}",
		  &in, why) == 0);
	CHECK_STR(in.bot_id, "B2");
	CHECK_STR(in.enterprise_url, "https://o.enterprise.slack.com/");
	CHECK(AUTH_TEST(
		  "{\"ok\":false,\"error\":\"invalid_auth\"}", &in, why) == -1);
	CHECK_STR(why, "auth.test: invalid_auth");
	CHECK(AUTH_TEST("{\"ok\":true,\"bot_id\":7}", &in, why) == -1);
	CHECK(AUTH_TEST("nope", &in, why) == -1);
	CHECK_STR(in.bot_id, "B2"); /* failures change nothing */
	installation_free(&in);
}

static void
test_state_and_store(void)
{
	char dir[] = "/tmp/unitdbXXXXXX", path[256], err[256],
	     s[STATE_CHARS + 1], s2[STATE_CHARS + 1];
	struct installation in;
	struct db *db;
	struct stat st;
	sqlite3 *h;
	sqlite3_stmt *q;
	int rc;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/t.db", dir);
	umask(077);
	CHECK((db = db_open(path, &rc, err, sizeof(err))) != NULL);
	if (db == NULL)
		return;
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);

	CHECK(state_issue(db, "cid", 600, s) == STATE_OK);
	CHECK(strlen(s) == STATE_CHARS && state_shape_ok(s));
	/* Reading the key published it beside the database, 0600, and a
	 * state signed with that copy verifies. */
	{
		char side[300];
		unsigned char k[32];
		struct db_keyfile kf = { NULL };

		snprintf(side, sizeof(side), "%s-key", path);
		CHECK(stat(side, &st) == 0 && (st.st_mode & 0777) == 0600 &&
		    st.st_size == 32);
		CHECK(db_key_peek(&kf, path, k) == 0);
		CHECK(state_sign(k, sizeof(k), "cid", 600, s2) == STATE_OK);
		CHECK(state_consume(db, "cid", s2, now_unix()) == STATE_OK);
		chmod(side, 0640);
		CHECK(db_key_peek(&kf, path, k) == -1); /* readable by group */
		chmod(side, 0600);
		CHECK(db_key_peek(&kf, "postgresql://h/db", k) == -1);
		db_keyfile_free(&kf);
	}
	CHECK(state_issue(db, "cid", 600, s2) == STATE_OK);
	CHECK(strcmp(s, s2) != 0);
	CHECK(state_consume(db, "other-cid", s, now_unix()) == STATE_INVALID);
	CHECK(state_consume(db, "cid", s, now_unix() + 601) == STATE_INVALID);
	CHECK(state_consume(db, "cid", s, now_unix()) == STATE_OK);
	CHECK(state_consume(db, "cid", s, now_unix()) == STATE_INVALID);
	CHECK(state_consume(db, "cid", s2, now_unix()) == STATE_OK);
	/* One flipped character anywhere is a forgery. */
	s2[10] = s2[10] == 'A' ? 'B' : 'A';
	CHECK(state_consume(db, "cid", s2, now_unix()) == STATE_INVALID);
	CHECK(state_consume(db, "cid", "short", now_unix()) == STATE_INVALID);
	CHECK(state_purge(db, now_unix() + 700) == 3);

	memset(&in, 0, sizeof(in));
	in.app_id = strdup("A1");
	in.team_id = strdup("T1");
	in.team_name = strdup("Team");
	in.bot_token = strdup("xoxb-secret");
	in.bot_id = strdup("B1");
	in.bot_user_id = strdup("U0");
	in.bot_scopes = strdup("a,b");
	in.bot_expires_at = 12345;
	in.user_id = strdup("U1");
	in.oauth_response = strdup("{}");
	CHECK(store_put(db, "cid", &in) == DB_OK);
	free(in.user_id);
	in.user_id = strdup("U2");
	CHECK(store_put(db, "cid", &in) == DB_OK);
	installation_free(&in);
	db_close(db);

	CHECK(sqlite3_open(path, &h) == SQLITE_OK);
	CHECK(
	    sqlite3_prepare_v2(h,
		"select user_id, enterprise_id, bot_token_expires_at, "
		"user_token_expires_at, is_enterprise_install, length(installed_at) "
		"from slack_installations where client_id = 'cid' and enterprise_id = '' "
		"and team_id = 'T1' order by installed_at desc limit 1",
		-1, &q, NULL) == SQLITE_OK);
	CHECK(sqlite3_step(q) == SQLITE_ROW);
	CHECK_STR((const char *)sqlite3_column_text(q, 0), "U2");
	CHECK_STR((const char *)sqlite3_column_text(q, 1), "");
	CHECK(sqlite3_column_int64(q, 2) == 12345);
	CHECK(sqlite3_column_type(q, 3) == SQLITE_NULL);
	CHECK(sqlite3_column_int(q, 4) == 0);
	CHECK(sqlite3_column_int(q, 5) == 26);
	sqlite3_finalize(q);
	CHECK(sqlite3_prepare_v2(h,
		  "select count(*), min(bot_id) from slack_bots", -1, &q,
		  NULL) == SQLITE_OK);
	CHECK(sqlite3_step(q) == SQLITE_ROW);
	CHECK(sqlite3_column_int(q, 0) == 2);
	CHECK_STR((const char *)sqlite3_column_text(q, 1), "B1");
	sqlite3_finalize(q);
	CHECK(sqlite3_prepare_v2(h, "pragma user_version", -1, &q, NULL) ==
	    SQLITE_OK);
	CHECK(sqlite3_step(q) == SQLITE_ROW &&
	    sqlite3_column_int(q, 0) == 2); /* SQLite schema v2 */
	sqlite3_finalize(q);
	sqlite3_close(h);

	/* Reopening keeps the key: an issued state survives a restart. */
	CHECK((db = db_open(path, &rc, err, sizeof(err))) != NULL);
	CHECK(state_issue(db, "cid", 600, s) == STATE_OK);
	db_close(db);
	CHECK((db = db_open(path, &rc, err, sizeof(err))) != NULL);
	CHECK(state_consume(db, "cid", s, now_unix()) == STATE_OK);
	db_close(db);

	CHECK(rmtree(dir) == 0);
}

static void
test_db_adopts_sdk_tables(void)
{
	char dir[] = "/tmp/unitsdkXXXXXX", path[256], err[256];
	struct db *db;
	sqlite3 *h;
	int rc;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/sdk.db", dir);
	CHECK(sqlite3_open(path, &h) == SQLITE_OK);
	/* The SDK's own table, as its create_tables() makes it (abridged). */
	CHECK(
	    sqlite3_exec(h,
		"create table slack_installations (id integer primary "
		"key autoincrement, client_id text not null, app_id text not null, "
		"enterprise_id text not null default '', enterprise_name text, "
		"enterprise_url text, team_id text not null default '', team_name text, "
		"bot_token text, bot_id text, bot_user_id text, bot_scopes text, "
		"bot_refresh_token text, bot_token_expires_at datetime, user_id text not "
		"null, user_token text, user_scopes text, user_refresh_token text, "
		"user_token_expires_at datetime, incoming_webhook_url text, "
		"incoming_webhook_channel text, incoming_webhook_channel_id text, "
		"incoming_webhook_configuration_url text, is_enterprise_install boolean "
		"not null default 0, token_type text, installed_at datetime not null "
		"default current_timestamp); insert into slack_installations (client_id, "
		"app_id, user_id) values ('c', 'A', 'U');",
		NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(h);
	CHECK((db = db_open(path, &rc, err, sizeof(err))) != NULL);
	db_close(db);
	CHECK(sqlite3_open(path, &h) == SQLITE_OK);
	CHECK(sqlite3_exec(h,
		  "select oauth_response, auth_test_response from "
		  "slack_installations",
		  NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(h);
	CHECK(rmtree(dir) == 0);
}

static void
test_db_redact(void)
{
	static const struct {
		const char *in, *out;
	} t[] = {
		{ "/var/lib/slack-oauth/x.db", "/var/lib/slack-oauth/x.db" },
		{ "/p:a@b/x.db", "/p:a@b/x.db" },
		{ "postgresql://host/db", "postgresql://host/db" },
		{ "postgresql://u@host/db", "postgresql://u@host/db" },
		{ "postgresql://u:s3cret@host:5432/db",
		    "postgresql://u:***@host:5432/db" },
		{ "postgres://u:p@h/db?sslmode=verify-full&password=x&a=b",
		    "postgres://u:***@h/db?sslmode=verify-full&password=***&a=b" },
		{ "postgresql:///db?password=pw",
		    "postgresql:///db?password=***" },
		{ "postgresql://h/db?xpassword=1",
		    "postgresql://h/db?xpassword=1" },
	};
	char out[256];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		db_redact(t[i].in, out, sizeof(out));
		CHECK_STR(out, t[i].out);
	}
	db_redact("postgresql://u:secret@h/db", out, 12);
	CHECK(strstr(out, "secret") == NULL);
}

int
main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	RUN(test_pct_decode);
	RUN(test_pct_encode);
	RUN(test_b64url);
	RUN(test_ct_streq);
	RUN(test_utf8_text);
	RUN(test_log_line_cut);
	RUN(test_num_parse);
	RUN(test_sha256);
	RUN(test_hmac_sha256);
	RUN(test_req_query);
	RUN(test_req_limits);
	RUN(test_req_method);
	RUN(test_req_cookie);
	RUN(test_resp_header);
	RUN(test_html_escape);
	RUN(test_conf_validators);
	RUN(test_conf_file);
	RUN(test_conf_load);
	RUN(test_conf_cache);
	RUN(test_slack_parse_access);
	RUN(test_slack_parse_auth_test);
	RUN(test_state_and_store);
	RUN(test_db_adopts_sdk_tables);
	RUN(test_db_redact);
	printf("unit: %d passed, %d failed\n", t_pass, t_fail);
	return t_fail != 0;
}
