#!/usr/bin/env python3
"""Fault tests of cgi-bin/slack-oauth-redirect (and slack-install): Slack
misbehaving, the database locked, read-only, corrupt or on a full disk, a
FastCGI worker killed in the middle of a request.

Each test injects one fault, checks the status, that one clear log line
names it (printed as "#   log: ..." so it can be quoted; never a secret in
it), that no process crashed (FastCGI workers still alive, CGI exit status
0), that nothing partial was stored and that PRAGMA integrity_check is ok;
then, the fault gone, a normal flow must succeed.

    python3 tests/faults.py              # everything
    python3 tests/faults.py -k disk      # tests whose name contains "disk"
    CGI_BIN=build/asan/cgi-bin python3 tests/faults.py

Needs root for the read-only directory and full-disk tests (a read-only
bind mount, a tiny tmpfs). Prints "ok - name" / "FAIL - name: reason", then
"N passed, N failed" as the last line; exit status 1 when a test failed.
Python 3 standard library only.
"""

import os
import re
import secrets as _secrets
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from fake_slack import TEAM_NAME, FakeSlack  # noqa: E402
from fcgi_client import FcgiError, FcgiServer, fcgi_request, parse_cgi_response  # noqa: E402

CGI_BIN = os.path.join(ROOT, os.environ.get("CGI_BIN") or "cgi-bin")
PROGS = {"install": os.path.join(CGI_BIN, "slack-install"),
         "redirect": os.path.join(CGI_BIN, "slack-oauth-redirect")}
NAMES = {"install": "slack-install", "redirect": "slack-oauth-redirect"}
SCRIPTS = {"install": "/slack/install", "redirect": "/slack/oauth_redirect"}
CLIENT_ID = "1234567890.9876543210"
CLIENT_SECRET = "faults-cs-" + _secrets.token_hex(12)
COOKIE = "slack-app-oauth-state"
PASSTHROUGH = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")
BUSY_S = 3.0  # include/lim.h LIM_BUSY_MS
EXPIRED_TEXT = "expired or was already used"

SECRETS = {CLIENT_SECRET}  # every code, state and token seen; never printed


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def redact(text):
    for s in sorted(SECRETS, key=len, reverse=True):
        if s and len(s) >= 8:
            text = text.replace(s, "<secret>")
            text = text.replace(urllib.parse.quote(s, safe=""), "<secret>")
    return text


def note(msg):
    print("#   " + redact(msg), flush=True)


# ----------------------------------------------------------------- plumbing
class R:
    def __init__(self, status, headers, body, log, elapsed, rc=0):
        self.status, self.headers, self.body = status, headers, body
        self.log, self.elapsed, self.rc = log, elapsed, rc

    def header(self, name):
        v = [b for a, b in self.headers if a.lower() == name.lower()]
        return v[0] if v else None

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def lines(self, prog=None):
        """The programs' log lines of this request."""
        pre = (NAMES[prog] + ":",) if prog else ("slack-install:",
                                                 "slack-oauth-redirect:")
        return [ln for ln in self.log.splitlines() if ln.startswith(pre)]


class World:
    """A temp dir, a fake Slack, the settings, the FastCGI servers started,
    the mounts made, and their clean-up."""

    def __init__(self, name):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix="faults-")
        os.chmod(self.tmp, 0o700)
        self.dbdir = os.path.join(self.tmp, "db")
        os.makedirs(self.dbdir)
        self.db = os.path.join(self.dbdir, "slack-oauth.db")
        self.conf = os.path.join(self.tmp, "slack-oauth.conf")
        with open(os.open(self.conf, os.O_WRONLY | os.O_CREAT, 0o600), "w"):
            pass
        self.fs = FakeSlack(CLIENT_ID, CLIENT_SECRET).start()
        self.env = {"PATH": "/usr/local/bin:/usr/bin:/bin",
                    "SLACK_OAUTH_CONFIG": self.conf,
                    "SLACK_OAUTH_DB": self.db,
                    "SLACK_CLIENT_ID": CLIENT_ID,
                    "SLACK_CLIENT_SECRET": CLIENT_SECRET,
                    "SLACK_SCOPES": "chat:write,commands",
                    "SLACK_API_URL": self.fs.api_url,
                    "SLACK_AUTHORIZE_URL": self.fs.authorize_url,
                    "SLACK_HTTP_TIMEOUT": "2"}
        for k in PASSTHROUGH:
            if k in os.environ:
                self.env[k] = os.environ[k]
        self.servers = []     # FcgiServer
        self.expect_dead = set()
        self.mounts = []
        self.helpers = []     # Popen of helper processes (lock holders)
        self.printed = set()

    # ------------------------------------------------------------ requests
    def _vars(self, prog, query, cookie):
        v = {"GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
             "REQUEST_METHOD": "GET", "QUERY_STRING": query,
             "SCRIPT_NAME": SCRIPTS[prog], "SERVER_NAME": "localhost",
             "SERVER_PORT": "443", "HTTPS": "on", "REMOTE_ADDR": "127.0.0.1",
             "REQUEST_URI": SCRIPTS[prog] + ("?" + query if query else "")}
        if cookie is not None:
            v["HTTP_COOKIE"] = cookie
        return v

    def cgi(self, prog, query="", cookie=None, timeout=30):
        env = dict(self.env)
        env.update(self._vars(prog, query, cookie))
        t0 = time.monotonic()
        try:
            p = subprocess.run([PROGS[prog]], env=env, capture_output=True,
                               timeout=timeout, cwd=self.tmp,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise Fail("%s (CGI) did not finish in %ds" % (NAMES[prog], timeout))
        el = time.monotonic() - t0
        log = p.stderr.decode("utf-8", "replace")
        check(p.returncode == 0, "%s (CGI) exited with status %d: %s"
              % (NAMES[prog], p.returncode, redact(log[-600:])))
        check(not re.search(r"==\d+==ERROR|runtime error:", log),
              "%s (CGI): sanitizer report: %s" % (NAMES[prog], redact(log[-600:])))
        try:
            st, hd, body = parse_cgi_response(p.stdout)
        except ValueError as e:
            raise Fail("%s (CGI): unparsable output: %s" % (NAMES[prog], e))
        return R(st, hd, body, log, el, p.returncode)

    def server(self, prog, nprocs=2):
        srv = FcgiServer(PROGS[prog], env=self.env, nprocs=nprocs,
                         sock_dir=self.tmp, cwd=self.tmp)
        srv.prog = prog
        self.servers.append(srv)
        return srv

    def fcgi(self, srv, query="", cookie=None, timeout=30):
        off = srv.stderr_size()
        t0 = time.monotonic()
        params = dict(self._vars(srv.prog, query, cookie))
        try:
            st, hd, body, err = fcgi_request(srv.path, params, timeout=timeout)
        except (FcgiError, OSError) as e:
            raise Fail("%s (FastCGI): %s: %s; dead=%r" % (
                NAMES[srv.prog], type(e).__name__, e, srv.dead()))
        el = time.monotonic() - t0
        deadline = time.monotonic() + 1.0
        while srv.stderr_size() == off and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.02)
        log = err.decode("utf-8", "replace") + \
            srv.stderr_bytes(off).decode("utf-8", "replace")
        dead = [d for d in srv.dead() if d[0] not in self.expect_dead]
        check(not dead, "%s (FastCGI): a worker died: %r" % (
            NAMES[srv.prog], dead))
        return R(st, hd, body, log, el)

    def req(self, via, prog, query="", cookie=None):
        """via: "cgi" or a FcgiServer."""
        if via == "cgi":
            r = self.cgi(prog, query, cookie)
        else:
            check(via.prog == prog, "wrong server")
            r = self.fcgi(via, query, cookie)
        self.no_secret(r, prog)
        return r

    def no_secret(self, r, prog):
        for s in SECRETS | self.fs.secrets():
            if s and s in r.log:
                raise Fail("a secret (%s…) in the log of %s" % (s[:6], NAMES[prog]))
            if prog == "redirect" and s and s in r.text:
                raise Fail("a secret (%s…) in the page of %s" % (s[:6], NAMES[prog]))
        for k, v in r.headers:
            if k.lower() == "set-cookie" and prog == "redirect":
                check("Max-Age=0" in v, "state cookie not cleared: " + redact(v))

    def start(self, via="cgi"):
        r = self.req(via, "install")
        check(r.status == 200, "install: status %d: %s" % (r.status, r.log.strip()))
        for k, v in r.headers:
            m = re.match(re.escape(COOKIE) + r"=([A-Za-z0-9_-]+);", v)
            if k.lower() == "set-cookie" and m:
                SECRETS.add(m.group(1))
                return m.group(1)
        raise Fail("install: no state cookie")

    def code(self):
        c = self.fs.issue_code()
        SECRETS.add(c)
        return c

    def redirect(self, via, state, code):
        q = urllib.parse.urlencode({"code": code, "state": state})
        return self.req(via, "redirect", q, "%s=%s" % (COOKIE, state))

    def flow(self, via_install="cgi", via_redirect="cgi", what="normal flow"):
        state = self.start(via_install)
        r = self.redirect(via_redirect, state, self.code())
        check(r.status == 200 and TEAM_NAME in r.text,
              "%s: status %d, want 200 (log: %s)" % (what, r.status,
                                                    r.log.strip()[-300:]))
        return r

    # --------------------------------------------------------------- the DB
    def rows(self):
        """(installations, bots, states used) — read without writing."""
        if not os.path.exists(self.db):
            return (0, 0, 0)
        con = sqlite3.connect(self.db, timeout=10)
        try:
            return tuple(con.execute("select count(*) from %s" % t).fetchone()[0]
                         for t in ("slack_installations", "slack_bots",
                                   "slack_oauth_states"))
        finally:
            con.close()

    def integrity(self):
        con = sqlite3.connect(self.db, timeout=10)
        try:
            res = [r[0] for r in con.execute("pragma integrity_check")]
            bad = con.execute("select count(*) from slack_installations i where "
                              "bot_token is not null and not exists (select 1 "
                              "from slack_bots b where b.bot_token = i.bot_token)"
                              ).fetchone()[0]
        finally:
            con.close()
        check(res == ["ok"], "PRAGMA integrity_check: %r" % res[:3])
        check(bad == 0, "%d installation rows without their slack_bots row" % bad)

    # ------------------------------------------------------------- helpers
    def mount(self, argv, target):
        r = subprocess.run(argv, capture_output=True, text=True)
        check(r.returncode == 0, "%s: %s (needs root with CAP_SYS_ADMIN)"
              % (" ".join(argv[:3]), r.stderr.strip()))
        self.mounts.append(target)

    def umount(self, target):
        if target in self.mounts:
            self.mounts.remove(target)
            r = subprocess.run(["umount", target], capture_output=True, text=True)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", target], capture_output=True)

    def lock_db(self):
        """Another process holding BEGIN EXCLUSIVE on the database until
        release() is called on what this returns."""
        code = ("import sqlite3, sys\n"
                "c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)\n"
                "c.execute('BEGIN EXCLUSIVE')\n"
                "print('locked', flush=True)\n"
                "sys.stdin.read()\n"
                "c.execute('ROLLBACK')\n")
        p = subprocess.Popen([sys.executable, "-c", code, self.db],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
        self.helpers.append(p)
        ready, _, _ = select.select([p.stdout], [], [], 10)
        check(ready and p.stdout.readline().strip() == "locked",
              "the lock holder did not get its lock")

        def release():
            try:
                p.stdin.close()
                p.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                p.kill()
                p.wait()
            if p in self.helpers:
                self.helpers.remove(p)
        return release

    def wait_api(self, method, n=1, timeout=10):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if len(self.fs.api_requests(method)) >= n:
                return True
            time.sleep(0.01)
        return False

    def show(self, r, label=None, prog="redirect"):
        """Prints the request's status and log line(s), for the report."""
        lines = r.lines(prog) + [ln for ln in r.lines()
                                 if ": warning:" in ln and ln not in r.lines(prog)]
        head = "%s%d in %.1fs" % ((label + ": ") if label else "", r.status,
                                  r.elapsed)
        note(head)
        for ln in lines:
            note("log: " + ln)

    def close(self):
        errors = []
        for p in self.helpers:
            try:
                p.kill()
                p.wait(5)
            except OSError:
                pass
        for srv in self.servers:
            dead = [d for d in srv.dead() if d[0] not in self.expect_dead]
            codes = srv.stop()
            m = re.search(r"==\d+==ERROR.*|.*runtime error:.*", srv.stderr_text())
            if m:
                errors.append("%s: sanitizer report: %s"
                              % (NAMES[srv.prog], m.group(0)[:300]))
            if dead:
                errors.append("%s worker(s) exited on their own: %r"
                              % (NAMES[srv.prog], dead))
            bad = [c for c in codes if c not in (0, -15, -9)]
            if bad:
                errors.append("%s exit statuses after SIGTERM: %r"
                              % (NAMES[srv.prog], bad))
        for m in reversed(list(self.mounts)):
            self.umount(m)
        self.fs.stop()
        for s in self.fs.secrets():
            SECRETS.add(s)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return errors


def expect(r, status, outcome, what, tmin=None, tmax=None):
    lines = r.lines("redirect")
    check(r.status == status, "%s: status %d, want %d (log: %s)"
          % (what, r.status, status, redact(" | ".join(lines))))
    check(len(lines) == 1, "%s: want one log line, got %d: %s"
          % (what, len(lines), redact(" | ".join(lines))))
    want = "outcome=%s status=%d" % (outcome, status)
    check(want in lines[0], "%s: log line lacks %r: %s" % (what, want,
                                                         redact(lines[0])))
    m = re.search(r' detail="(.*)"$', lines[0])
    check(m and not re.search(r"(?i)not an error|unknown error", m.group(1)),
          "%s: the log line does not say what went wrong: %s"
          % (what, redact(lines[0])))
    if tmin is not None:
        check(r.elapsed >= tmin, "%s: answered in %.1fs, before %.1fs"
              % (what, r.elapsed, tmin))
    if tmax is not None:
        check(r.elapsed <= tmax, "%s: answered in %.1fs, after %.1fs"
              % (what, r.elapsed, tmax))
    ctype = r.header("Content-Type") or ""
    check(ctype.startswith("text/html"), "%s: no page (Content-Type %r)"
          % (what, ctype))


# ------------------------------------------------------------------- tests
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def slack_fault(w, endpoint, kind, opts, tmin=None, tmax=None):
    """One fault of Slack's oauth.v2.access through 2 FastCGI workers: 502,
    nothing stored, the state spent (a replay is 400), then a normal flow."""
    inst, red = w.server("install", 1), w.server("redirect", 2)
    w.flow(inst, red, "flow before the fault")
    before = w.rows()
    state = w.start(inst)
    w.fs.fault(endpoint, kind, **opts)
    try:
        r = w.redirect(red, state, w.code())
    finally:
        w.fs.fault(endpoint, None)
    w.show(r)
    expect(r, 502, "slack_error", kind, tmin, tmax)
    after = w.rows()
    check(after[:2] == before[:2], "rows stored after a 502: %r -> %r"
          % (before, after))
    r2 = w.redirect(red, state, w.code())
    check(r2.status == 400 and EXPIRED_TEXT in r2.text,
          "the state of a failed exchange: replay answered %d, want 400"
          % r2.status)
    w.flow(inst, red, "flow after the fault")
    check(w.rows()[0] == before[0] + 1, "the normal flow stored no row")
    w.integrity()


@test
def slack_hangs(w):
    """Slack accepts the connection and says nothing for 6 s;
    SLACK_HTTP_TIMEOUT=2."""
    slack_fault(w, "oauth.v2.access", "slow", {"seconds": 6}, 1.5, 4.0)


@test
def slack_resets_connection(w):
    slack_fault(w, "oauth.v2.access", "reset", {}, None, 2.0)


@test
def slack_trickles_past_timeout(w):
    """Headers at once, then 4 bytes every 0.5 s: the whole call is
    bounded, not each read."""
    slack_fault(w, "oauth.v2.access", "trickle", {"interval": 0.5, "chunk": 4},
                1.5, 4.0)


@test
def slack_answers_500(w):
    slack_fault(w, "oauth.v2.access", "http_status", {"status": 500}, None, 2.0)


@test
def slack_answers_503_json(w):
    slack_fault(w, "oauth.v2.access", "http_status",
                {"status": 503, "body": b'{"ok":true}',
                 "content_type": "application/json"}, None, 2.0)


@test
def slack_answers_invalid_json(w):
    slack_fault(w, "oauth.v2.access", "not_json",
                {"body": b'{"ok": true, "access_token": "xoxb-1'}, None, 2.0)


@test
def slack_answers_html(w):
    slack_fault(w, "oauth.v2.access", "not_json", {}, None, 2.0)


@test
def slack_answers_10mb(w):
    slack_fault(w, "oauth.v2.access", "oversized",
                {"size": 10 * 1024 * 1024}, None, 3.0)


@test
def slack_answers_10mb_chunked(w):
    slack_fault(w, "oauth.v2.access", "oversized",
                {"size": 10 * 1024 * 1024, "chunked": True}, None, 3.0)


# Slack's values are checked for their shape before anything is kept
# (issue 15): each of these is a 502 with nothing stored.
def _malformed(w, fields, what):
    slack_fault(w, "oauth.v2.access", "wrong_types", {"fields": fields})


@test
def slack_token_with_crlf(w):
    """A token is sent on as a header line and printed by `token`."""
    _malformed(w, {"access_token": "xoxb-1\r\nX-Injected: yes"}, "CR LF")


@test
def slack_user_token_with_space(w):
    _malformed(w, {"authed_user": {"id": "U0HUMAN01", "scope": "search:read",
                                   "access_token": "xoxp-1 2",
                                   "token_type": "user"}}, "a space")


@test
def slack_id_with_nul(w):
    """cJSON would end the string at \u0000: T0TEAM001\u0000X stored as
    T0TEAM001."""
    _malformed(w, {"team": {"id": "T0TEAM001\u0000X",
                            "name": TEAM_NAME}}, "\\u0000")


@test
def slack_name_with_escape_sequences(w):
    _malformed(w, {"team": {"id": "T0TEAM001",
                            "name": "\x1b]0;pwned\x07\x1b[2J"}}, "ESC")


@test
def slack_name_not_utf8(w):
    body = (b'{"ok":true,"app_id":"A0APP0001","access_token":"xoxb-1-2",'
            b'"token_type":"bot","scope":"chat:write","bot_user_id":'
            b'"U0BOT0001","team":{"id":"T0TEAM001","name":"Caf\xe9 \xff"},'
            b'"authed_user":{"id":"U0HUMAN01"}}')
    slack_fault(w, "oauth.v2.access", "http_status",
                {"status": 200, "body": body,
                 "content_type": "application/json"})


@test
def slack_webhook_url_not_https(w):
    _malformed(w, {"incoming_webhook": {
        "url": "javascript:alert(1)", "channel": "#alerts",
        "channel_id": "C0CHAN001",
        "configuration_url": "https://example.slack.com/services/B1"}},
        "a webhook URL")


@test
def slack_huge_team_name_kept(w):
    """A name of a million characters: the install is kept, the page shows
    its start."""
    inst, red = w.server("install", 1), w.server("redirect", 2)
    name = "Long \u00e9 " + "A" * 1000000
    state = w.start(inst)
    w.fs.team_name = name
    try:
        r = w.redirect(red, state, w.code())
    finally:
        w.fs.team_name = TEAM_NAME
    w.show(r)
    check(r.status == 200, "status %d, want 200 (log: %s)"
          % (r.status, redact(" | ".join(r.lines("redirect")))))
    shown = "Long \u00e9 " + "A" * 93 + "\u2026"
    check(shown in r.text, "the page does not show the name's first 100 "
          "characters and an ellipsis")
    check(len(r.body) < 16384, "the page is %d bytes" % len(r.body))
    con = sqlite3.connect(w.db, timeout=10)
    try:
        stored = con.execute("select team_name from slack_installations"
                             ).fetchone()[0]
    finally:
        con.close()
    check(stored == name, "the stored name is not Slack's (%d characters)"
          % len(stored or ""))


@test
def slack_auth_test_bot_id_with_crlf(w):
    """auth.test's bot_id of the wrong shape: the installation is kept with
    bot_id '' and a warning, as for a failed auth.test."""
    inst, red = w.server("install", 1), w.server("redirect", 2)
    state = w.start(inst)
    w.fs.fault("auth.test", "wrong_types", fields={"bot_id": "B1\r\nX: y"})
    try:
        r = w.redirect(red, state, w.code())
    finally:
        w.fs.fault("auth.test", None)
    check(r.status == 200, "status %d, want 200" % r.status)
    con = sqlite3.connect(w.db, timeout=10)
    try:
        bot_ids = [x[0] for x in con.execute("select bot_id from slack_bots")]
    finally:
        con.close()
    check(bot_ids == [""], "bot_id stored: %r, want ['']" % bot_ids)
    check("malformed bot_id" in r.log, "no warning naming the bot_id: %s"
          % redact(r.log))


@test
def slack_auth_test_hangs(w):
    """auth.test hangs after a good exchange: the installation is stored
    without bot_id, with a warning line (README, "The redirect endpoint")."""
    inst, red = w.server("install", 1), w.server("redirect", 2)
    state = w.start(inst)
    w.fs.fault("auth.test", "slow", seconds=6)
    try:
        r = w.redirect(red, state, w.code())
    finally:
        w.fs.fault("auth.test", None)
    w.show(r)
    check(r.status == 200, "status %d, want 200" % r.status)
    check(1.5 <= r.elapsed <= 4.0, "answered in %.1fs" % r.elapsed)
    warn = [ln for ln in r.lines() if ": warning:" in ln]
    check(len(warn) == 1 and "auth.test" in warn[0],
          "want one warning naming auth.test: %r" % [redact(x) for x in warn])
    con = sqlite3.connect(w.db)
    try:
        rows = con.execute("select bot_id from slack_installations").fetchall()
        bots = con.execute("select bot_id from slack_bots").fetchall()
    finally:
        con.close()
    check(rows == [("",)] and bots == [("",)],
          "want one row with bot_id '': %r %r" % (rows, bots))
    w.flow(inst, red)
    w.integrity()


@test
def db_locked_before_consume(w):
    """Another process holds BEGIN EXCLUSIVE past the busy timeout while
    the state is being consumed: 503 with Retry-After, no call to Slack,
    the state not spent, so the same link works once the lock is gone."""
    inst, red = w.server("install", 1), w.server("redirect", 2)
    w.flow(inst, red, "flow before the fault")
    before = w.rows()
    state, code = w.start(inst), w.code()
    w.fs.clear()
    release = w.lock_db()
    try:
        r = w.redirect(red, state, code)
    finally:
        release()
    w.show(r)
    expect(r, 503, "server_error", "database locked", BUSY_S - 0.2, BUSY_S + 3)
    ra = r.header("Retry-After")
    check(ra is not None and ra.isdigit(), "no numeric Retry-After: %r" % ra)
    note("Retry-After: " + ra)
    check(w.fs.api_requests() == [], "Slack was called while the database "
          "was locked")
    check(w.rows() == before, "rows changed: %r -> %r" % (before, w.rows()))
    r2 = w.redirect(red, state, code)
    check(r2.status == 200, "the same link after the lock: status %d, want "
          "200 (Retry-After promised it)" % r2.status)
    w.flow(inst, red, "flow after the fault")
    w.integrity()


@test
def db_locked_during_exchange(w):
    """The lock is taken while Slack is being called (after the state was
    spent) and held past the busy timeout: the store fails with 503 and
    Retry-After, no partial row, and a replay of the link is 400."""
    inst, red = w.server("install", 1), w.server("redirect", 2)
    w.flow(inst, red, "flow before the fault")
    before = w.rows()
    state = w.start(inst)
    w.fs.clear()
    w.fs.fault("oauth.v2.access", "slow", seconds=1)
    box = {}

    def locker():
        if w.wait_api("oauth.v2.access"):
            box["release"] = w.lock_db()
    t = threading.Thread(target=locker)
    t.start()
    try:
        r = w.redirect(red, state, w.code())
    finally:
        t.join(15)
        if "release" in box:
            box["release"]()
        w.fs.fault("oauth.v2.access", None)
    check("release" in box, "the lock was never taken")
    w.show(r)
    expect(r, 503, "server_error", "database locked at the store",
           1 + BUSY_S - 0.2, 1 + BUSY_S + 3)
    check((r.header("Retry-After") or "").isdigit(), "no Retry-After")
    after = w.rows()
    check(after[:2] == before[:2], "rows stored: %r -> %r" % (before, after))
    r2 = w.redirect(red, state, w.code())
    check(r2.status == 400, "replay after the 503: status %d, want 400"
          % r2.status)
    w.flow(inst, red, "flow after the fault")
    w.integrity()


@test
def db_directory_read_only(w):
    """The database's directory on a read-only mount (a bind mount of it
    over itself, remounted ro; root ignores permission bits): the redirect
    is 500 from CGI and from a FastCGI worker started meanwhile, which
    serves again once the directory is writable."""
    w.flow("cgi", "cgi", "flow before the fault")
    before = w.rows()
    s1, s2 = w.start(), w.start()
    w.mount(["mount", "--bind", w.dbdir, w.dbdir], w.dbdir)
    w.mount(["mount", "-o", "remount,bind,ro", w.dbdir], w.dbdir)
    try:
        open(os.path.join(w.dbdir, "probe"), "w").close()
        raise Fail("the directory is still writable")
    except OSError:
        pass
    r = w.redirect("cgi", s1, w.code())
    w.show(r, "redirect (CGI)")
    expect(r, 500, "server_error", "read-only directory (CGI)")
    # The install endpoint only reads (the state key); with the -wal and
    # -shm files kept, it can still issue states, which the redirect will
    # refuse until the directory is writable: 200 or 500, never a crash.
    ri = w.req("cgi", "install")
    w.show(ri, "install (CGI)", prog="install")
    check(ri.status in (200, 500), "install on a read-only directory: %d"
          % ri.status)
    red = w.server("redirect", 2)
    r = w.redirect(red, s2, w.code())
    w.show(r, "redirect (FastCGI)")
    expect(r, 500, "server_error", "read-only directory (FastCGI)")
    w.umount(w.dbdir)
    check(w.rows() == before, "rows changed: %r -> %r" % (before, w.rows()))
    r = w.redirect(red, s2, w.code())
    check(r.status == 200, "the same FastCGI worker once the directory is "
          "writable: %d (%s)" % (r.status, redact(r.log.strip())))
    w.flow("cgi", "cgi", "flow after the fault")
    w.integrity()


def _corrupt(w, how):
    inst, running = w.server("install", 1), w.server("redirect", 1)
    w.flow(inst, running, "flow before the fault")  # running has it open
    good = w.db + ".good"
    src, dst = sqlite3.connect(w.db, timeout=10), sqlite3.connect(good)
    try:
        src.backup(dst)  # the administrator's backup
    finally:
        src.close()
        dst.close()
    for srv in (inst, running):
        srv.stop()
    running = w.server("redirect", 1)
    w.flow("cgi", running, "flow before the fault")
    s1, s2, s3 = w.start(), w.start(), w.start()
    # Another process checkpoints (as a backup would): the running worker's
    # next transaction has to read the file, not its cache or the WAL.
    con = sqlite3.connect(w.db, timeout=10)
    try:
        con.execute("pragma wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        con.close()
    size = os.path.getsize(w.db)
    with open(w.db, "r+b") as f:
        if how == "garbage":
            f.write(os.urandom(size))
        else:
            # page 1 (header, schema) intact, every other page garbage
            f.seek(4096)
            f.write(os.urandom(size - 4096))
    r = w.redirect("cgi", s1, w.code())
    w.show(r, "redirect (CGI)")
    expect(r, 500, "server_error", "corrupt database (CGI)")
    # The install endpoint signs with the key's sidecar file and does not
    # open the database: it may go on issuing states (200), which the
    # redirect refuses with a clear 500 until the file is restored.
    ri = w.req("cgi", "install")
    w.show(ri, "install (CGI)", prog="install")
    check(ri.status in (200, 500), "install on a corrupt database: %d"
          % ri.status)
    red = w.server("redirect", 2)
    r = w.redirect(red, s2, w.code())
    w.show(r, "redirect (FastCGI worker started after the damage)")
    expect(r, 500, "server_error", "corrupt database (new FastCGI worker)")
    r = w.redirect(running, s3, w.code())
    w.show(r, "redirect (FastCGI worker that had the file open)")
    expect(r, 500, "server_error", "corrupt database (running FastCGI worker)")
    for srv in w.servers:
        srv.stop()  # the administrator restores the file with the servers down
    os.replace(good, w.db)
    for ext in ("-wal", "-shm"):
        if os.path.exists(w.db + ext):
            os.unlink(w.db + ext)
    # The backup was made 0644 (sqlite3's default under umask 022): the
    # programs refuse it, saying so, until it is 0600 again.
    os.chmod(w.db, 0o644)
    r = w.redirect("cgi", s2, w.code())
    expect(r, 500, "server_error", "the restored file, 0644")
    check("chmod 600" in r.log, "the log does not say what to do: %s"
          % redact(r.log))
    os.chmod(w.db, 0o600)
    r = w.redirect("cgi", s2, w.code())
    check(r.status == 200, "a link issued before the damage, once the "
          "file is restored: %d" % r.status)
    red = w.server("redirect", 2)
    w.flow("cgi", red, "flow after the fault")
    w.integrity()


@test
def db_file_garbage(w):
    """The database file overwritten with random bytes."""
    _corrupt(w, "garbage")


@test
def db_file_pages_garbled(w):
    """The header page intact, every other page random bytes."""
    _corrupt(w, "pages")


ADMIN = os.path.join(ROOT, os.environ.get("BIN_DIR") or "bin", "slack-oauth")


@test
def db_files_not_trusted(w):
    """The database's files are trusted with tokens only when they are
    ours alone (issue 15): each case is a 500 naming the file and why, for
    the redirect and for `slack-oauth check`, and nothing is written
    anywhere, then a normal flow once it is put right."""
    w.flow("cgi", "cgi", "flow before")    # the database and its key
    before = w.rows()
    victim = os.path.join(w.tmp, "elsewhere.db")

    def run(what, why, ours=True):
        # The install endpoint signs with the -key file when it can trust
        # it, without the database; the redirect always opens it.
        r, prog = w.req("cgi", "install"), "install"
        for k, v in r.headers if r.status == 200 else ():
            m = re.match(re.escape(COOKIE) + r"=([A-Za-z0-9_-]+);", v)
            if k.lower() == "set-cookie" and m:
                SECRETS.add(m.group(1))
                r, prog = w.redirect("cgi", m.group(1), w.code()), "redirect"
        w.show(r, what, prog=prog)
        check(r.status == 500, "%s: status %d, want 500" % (what, r.status))
        check(why in r.log, "%s: the log does not say %r: %s"
              % (what, why, redact(r.log)))
        p = subprocess.run([ADMIN, "check"], env=w.env, capture_output=True,
                           timeout=60)
        err = p.stderr.decode("utf-8", "replace")
        check(p.returncode == 1 and why in err, "%s: check: exit %d: %s"
              % (what, p.returncode, redact(err)))
        if ours:
            check(w.rows() == before, "%s: rows changed" % what)

    # A directory others may write, without the sticky bit.
    os.chmod(w.dbdir, 0o777)
    run("a 0777 directory", "no sticky bit")
    # Sticky (1777), the database pre-created by another user.
    os.chmod(w.dbdir, 0o1777)
    saved = w.db + ".ours"
    for ext in ("", "-wal", "-shm", "-key"):
        if os.path.exists(w.db + ext):
            os.rename(w.db + ext, saved + ext)
    fd = os.open(w.db, os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    os.chown(w.db, 12345, 12345)
    run("a database of uid 12345 in a 1777 directory", "owned by uid 12345",
        ours=False)
    os.unlink(w.db)
    # The database's name a symbolic link to a 0644 file.
    with open(victim, "wb"):
        pass
    os.chmod(victim, 0o644)
    os.symlink(victim, w.db)
    run("the database a symbolic link", "symbolic link", ours=False)
    check(os.path.getsize(victim) == 0 and not os.path.exists(victim + "-wal")
          and not os.path.exists(victim + "-shm"),
          "something was written through the symbolic link")
    os.unlink(w.db)
    for ext in ("", "-wal", "-shm", "-key"):
        if os.path.exists(saved + ext):
            os.rename(saved + ext, w.db + ext)
    os.chmod(w.dbdir, 0o700)
    # A -wal of another user; a -key with a second name.
    had_wal = os.path.exists(w.db + "-wal")
    if not had_wal:      # another user's, made before ours would be
        os.close(os.open(w.db + "-wal", os.O_WRONLY | os.O_CREAT, 0o600))
    os.chown(w.db + "-wal", 12345, 12345)
    run("a -wal of uid 12345", "owned by uid 12345")
    # (run()'s own read of the rows may have checkpointed and removed it)
    if os.path.exists(w.db + "-wal"):
        if had_wal:
            os.chown(w.db + "-wal", 0, 0)
        else:
            os.unlink(w.db + "-wal")
    os.link(w.db + "-key", victim + "-key")
    run("a hard-linked -key", "hard links")
    os.unlink(victim + "-key")
    w.flow("cgi", "cgi", "flow after")
    w.integrity()


def _fill(path):
    """Fills the filesystem of path; returns the filler's name."""
    filler = os.path.join(path, "filler")
    chunk = b"\0" * 4096
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(1 << 16):
            try:
                os.write(fd, chunk)
            except OSError:
                break
        for _ in range(64):   # what the page-granular writes left
            try:
                os.write(fd, b"\0" * 512)
            except OSError:
                break
    finally:
        os.close(fd)
    return filler


@test
def disk_full(w):
    """The database on a 1 MiB tmpfs, filled up: (a) before the state is
    consumed, (b) while Slack is called, so that the state is spent and the
    store fails. 500, nothing partial; once space is freed, a normal flow."""
    w.mount(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs",
             w.dbdir], w.dbdir)
    w.flow("cgi", "cgi", "flow before the fault")
    before = w.rows()
    s1, s2 = w.start(), w.start()
    filler = _fill(w.dbdir)
    r = w.redirect("cgi", s1, w.code())
    w.show(r, "(a) disk full before the state is consumed")
    expect(r, 500, "server_error", "disk full (a)")
    os.unlink(filler)
    check(w.rows()[:2] == before[:2], "rows after (a): %r" % (w.rows(),))
    w.fs.clear()
    w.fs.fault("oauth.v2.access", "slow", seconds=1.5)
    box = {}

    def filling():
        if w.wait_api("oauth.v2.access"):
            box["filler"] = _fill(w.dbdir)
    t = threading.Thread(target=filling)
    t.start()
    try:
        r = w.redirect("cgi", s2, w.code())
    finally:
        t.join(15)
        w.fs.fault("oauth.v2.access", None)
    check("filler" in box, "the disk was not filled during the call")
    w.show(r, "(b) disk full at the store")
    expect(r, 500, "server_error", "disk full (b)")
    os.unlink(box["filler"])
    after = w.rows()
    check(after[:2] == before[:2], "rows after (b): %r -> %r" % (before, after))
    w.integrity()
    w.flow("cgi", "cgi", "flow after the fault")
    r = w.redirect("cgi", s1, w.code())
    check(r.status == 200, "the link of (a), whose state was not spent: %d"
          % r.status)
    r = w.redirect("cgi", s2, w.code())
    check(r.status == 400, "the link of (b), whose state was spent: %d"
          % r.status)
    w.integrity()
    check(w.rows()[:2] == (before[0] + 2, before[1] + 2), "rows at the end: %r"
          % (w.rows(),))


def _worker_talking_to(srv, port):
    """The pid of srv's worker with a TCP connection to 127.0.0.1:port."""
    inodes = set()
    for tab in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(tab) as f:
                next(f)
                for ln in f:
                    p = ln.split()
                    # ESTABLISHED only: an idle worker may keep a closed
                    # connection of an earlier call in CLOSE_WAIT
                    if int(p[2].rsplit(":", 1)[1], 16) == port and p[3] == "01":
                        inodes.add(p[9])
        except OSError:
            pass
    for p in srv.procs:
        try:
            for fd in os.listdir("/proc/%d/fd" % p.pid):
                link = os.readlink("/proc/%d/fd/%s" % (p.pid, fd))
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return p.pid
        except OSError:
            continue
    return None


@test
def worker_killed_during_slack_call(w):
    """SIGKILL to the FastCGI worker waiting on Slack: no row, the state
    spent (a replay is 400), the database intact; the other worker serves
    the next flow, and so does a new worker on the same database."""
    inst, red = w.server("install", 1), w.server("redirect", 2)
    w.flow(inst, red, "flow before the fault")
    before = w.rows()
    state = w.start(inst)
    w.fs.clear()
    w.fs.fault("oauth.v2.access", "slow", seconds=3)
    box = {}

    def go():
        try:
            box["r"] = w.redirect(red, state, w.code())
        except Exception as e:  # the connection dies with the worker
            box["e"] = e
    t = threading.Thread(target=go)
    t.start()
    pid = None
    try:
        check(w.wait_api("oauth.v2.access"), "Slack was never called")
        for _ in range(100):
            pid = _worker_talking_to(red, w.fs.port)
            if pid:
                break
            time.sleep(0.02)
        check(pid, "no worker connected to Slack")
        w.expect_dead.add(pid)
        os.kill(pid, signal.SIGKILL)
    finally:
        t.join(15)
        w.fs.fault("oauth.v2.access", None)
    check("e" in box, "the request was answered although its worker was "
          "killed: %r" % box.get("r"))
    note("killed worker %d during oauth.v2.access; the client saw: %s"
         % (pid, box["e"]))
    for _ in range(500):  # the kernel reaps a big (ASan) process slowly
        dead = red.dead()
        if dead:
            break
        time.sleep(0.01)
    check(dead == [(pid, -9)], "dead workers: %r" % dead)
    after = w.rows()
    check(after[:2] == before[:2], "rows after the kill: %r -> %r"
          % (before, after))
    check(after[2] == before[2] + 1, "the state was not recorded as used")
    w.integrity()
    r = w.redirect(red, state, w.code())
    w.show(r, "replay on the surviving worker")
    check(r.status == 400 and EXPIRED_TEXT in r.text,
          "replay of the killed request's state: %d, want 400" % r.status)
    w.flow(inst, red, "flow on the surviving worker")
    red2 = w.server("redirect", 1)
    w.flow(inst, red2, "flow on a new worker")
    w.integrity()
    check(w.rows()[0] == before[0] + 2, "rows at the end: %r" % (w.rows(),))


def main(argv):
    only = []
    i = 0
    while i < len(argv):
        if argv[i] == "-k" and i + 1 < len(argv):
            only.append(argv[i + 1])
            i += 2
        else:
            only.append(argv[i])
            i += 1
    for p in PROGS.values():
        if not os.access(p, os.X_OK):
            print("FAIL - faults: %s is not built (run make)" % p)
            print("0 passed, 1 failed")
            return 1
    passed = failed = 0
    t_all = time.monotonic()
    for fn in TESTS:
        name = fn.__name__
        if only and not any(o in name for o in only):
            continue
        t0 = time.monotonic()
        w = World(name)
        err = None
        print("# %s" % name, flush=True)
        try:
            fn(w)
        except Fail as e:
            err = str(e)
        except Exception as e:
            err = "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc())
        finally:
            left = w.close()
        if err is None and left:
            err = "; ".join(left)
        if err is None:
            print("ok - %s (%.1fs)" % (name, time.monotonic() - t0), flush=True)
            passed += 1
        else:
            print("FAIL - %s: %s" % (name, redact(err)), flush=True)
            failed += 1
    print("# faults took %.1fs" % (time.monotonic() - t_all))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
