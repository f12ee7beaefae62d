#!/usr/bin/env python3
"""End-to-end tests of cgi-bin/slack-install and cgi-bin/slack-oauth-redirect.

Every test runs twice: as plain CGI (one process per request, a controlled
environment) and as FastCGI (the binary started the spawn-fcgi way, settings
passed either as FastCGI request parameters or as the process environment).
Slack is tests/fake_slack.py on 127.0.0.1.

    python3 tests/e2e.py                 # everything
    python3 tests/e2e.py -k cookie       # tests whose name contains "cookie"
    python3 tests/e2e.py --mode cgi      # one mode only
    CGI_BIN=/path/to/asan/cgi-bin python3 tests/e2e.py

The last line printed is "N passed, N failed"; the exit status is 1 when any
test failed.  Secrets (tokens, codes, states, the client secret) are never
printed: failure messages are redacted.
"""

import base64
import glob
import hashlib
import hmac
import html
import json
import os
import re
import secrets
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from fake_slack import (APP_ID, BOT_ID, ENTERPRISE_ID, ENTERPRISE_NAME,  # noqa: E402
                        ENTERPRISE_URL, TEAM_ID, TEAM_NAME, FakeSlack)
from fcgi_client import FcgiServer, fcgi_request, parse_cgi_response  # noqa: E402
from testlib import (Runner, Skip, TestFailure, add_secret, add_state,  # noqa: E402
                     check, eq, eq_opt, mapped_files, record_db_modes, record_output,
                     redact, secret_values, variants, STATES)

CGI_BIN = os.path.join(ROOT, os.environ.get("CGI_BIN") or "cgi-bin")
# A command prefix for every binary run, e.g. valgrind (see tests/run.py).
WRAPPER = os.environ.get("CGI_WRAPPER", "").split()
VALGRIND_MARK = re.compile(rb"==\d+==")
PROGS = {
    "install": os.path.join(CGI_BIN, "slack-install"),
    "redirect": os.path.join(CGI_BIN, "slack-oauth-redirect"),
}
PROG_NAMES = {"install": "slack-install", "redirect": "slack-oauth-redirect"}
SCRIPT_NAMES = {"install": "/slack/install", "redirect": "/slack/oauth_redirect"}

CLIENT_ID = "1234567890.9876543210"
CLIENT_SECRET = "cs" + secrets.token_hex(16)
DEFAULT_SCOPES = "chat:write,commands"
DEFAULT_COOKIE = "slack-app-oauth-state"
CSP = ("default-src 'none'; img-src https://platform.slack-edge.com; "
       "style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'none'")
STATE_RE = re.compile(r"^[A-Za-z0-9_-]{43,128}$")
INSTALLED_AT_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?$")
PASSTHROUGH_ENV = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
                   "MSAN_OPTIONS", "TSAN_OPTIONS", "ASAN_SYMBOLIZER_PATH",
                   "VALGRIND_OPTS")

# ---------------------------------------------------------------- collector
# Everything the binaries produced in this run: (prog, kind, text), kind in
# "headers", "body", "stdout", "log". Also kept for tests/secrets_scan.py
# (testlib.record_output); the secrets and states are testlib's registry.
OUTPUTS = []
OUTPUTS_LOCK = threading.Lock()
add_secret(CLIENT_SECRET, "client secret")
CGI_LOGS = []                   # (label, prog, status, stderr text) per CGI run


def collect(prog, kind, data):
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    if data:
        with OUTPUTS_LOCK:
            OUTPUTS.append((prog, kind, data))
        record_output("%s %s" % (prog, kind), data,
                      states_ok=prog == "slack-install" and
                      kind in ("headers", "body", "stdout"))


def eq_status(r, expected, what):
    """Status check whose message carries the binary's log line."""
    if r.status != expected:
        raise TestFailure("%s: status: expected %d, got %d (%.2fs; log: %s)"
                          % (what, expected, r.status, r.elapsed,
                             r.log.strip()[-400:]))


# ----------------------------------------------------------------- response
class Resp:
    def __init__(self, prog, method, status, headers, body, log, elapsed):
        self.prog = prog
        self.method = method
        self.status = status
        self.headers = headers
        self.body = body
        self.log = log
        self.elapsed = elapsed

    def all(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def header(self, name):
        vals = self.all(name)
        if len(vals) > 1:
            raise TestFailure("header %s sent %d times" % (name, len(vals)))
        return vals[0] if vals else None

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<%s %s -> %d>" % (self.method, self.prog, self.status)


def content_length(r, what):
    """The response's one Content-Length, as a number."""
    v = r.header("Content-Length")
    check(v is not None, "%s: no Content-Length header" % what)
    check(re.match(r"^(0|[1-9][0-9]*)$", v),
          "%s: Content-Length %r is not a decimal number" % (what, v))
    return int(v)


def hrefs(body):
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    out = []
    for m in re.finditer(r"""href\s*=\s*(?:"([^"]*)"|'([^']*)')""", body):
        out.append(html.unescape(m.group(1) if m.group(1) is not None
                                 else m.group(2)))
    return out


# ------------------------------------------------------------------ context
class Ctx:
    """One test's world: a temp dir, a fake Slack, a config file, a DB path,
    and a way to call the two binaries in this test's mode."""

    def __init__(self, mode, via, label):
        self.mode = mode          # "cgi" | "fcgi"
        self.via = via            # fcgi: "params" | "env"
        self.label = label
        self.tmp = tempfile.mkdtemp(prefix="e2e-")
        self.fs = FakeSlack(CLIENT_ID, CLIENT_SECRET).start()
        self.conf = os.path.join(self.tmp, "slack-oauth.conf")
        self.write_conf("", 0o600)
        self.db = os.path.join(self.tmp, "slack-oauth.db")
        self.settings = {
            "SLACK_OAUTH_CONFIG": self.conf,
            "SLACK_OAUTH_DB": self.db,
            "SLACK_CLIENT_ID": CLIENT_ID,
            "SLACK_CLIENT_SECRET": CLIENT_SECRET,
            "SLACK_SCOPES": DEFAULT_SCOPES,
            "SLACK_API_URL": self.fs.api_url,
            "SLACK_AUTHORIZE_URL": self.fs.authorize_url,
        }
        self.penv = {}            # process environment only
        self.rparams = {}         # request parameters only (CGI: env, last)
        self.dup_to_env = {"SLACK_OAUTH_CONFIG", "SLACK_OAUTH_DB"}
        self.umask = None
        self.nprocs = {prog: 1 for prog in PROGS}
        self.servers = {}         # prog -> (key, FcgiServer)
        self.wrapper = list(WRAPPER)  # command prefix of the binaries
        self.extra_secrets = set()

    # -------------------------------------------------------------- setup
    def write_conf(self, text, mode=0o600, path=None):
        path = path or self.conf
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(path, mode)

    def set(self, **kw):
        """Changes settings; None removes one."""
        for k, v in kw.items():
            if v is None:
                self.settings.pop(k, None)
            else:
                self.settings[k] = v

    @property
    def cookie_name(self):
        return self.settings.get("SLACK_STATE_COOKIE", DEFAULT_COOKIE)

    @property
    def ttl(self):
        return int(self.settings.get("SLACK_STATE_TTL", "600"))

    def close(self):
        for prog in list(self.servers):
            self._stop_server(prog)
        for s in self.fs.secrets():
            add_secret(s)
        for s in self.extra_secrets:
            add_secret(s)
        self.fs.stop()
        record_db_modes(self.tmp, self.label)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------ plumbing
    def _base_env(self):
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
        for k in PASSTHROUGH_ENV:
            if k in os.environ:
                env[k] = os.environ[k]
        return env

    def _request_vars(self, prog, method, query, cookie, body, extra):
        v = {
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_SOFTWARE": "e2e",
            "REQUEST_METHOD": method,
            "QUERY_STRING": query,
            "SCRIPT_NAME": SCRIPT_NAMES[prog],
            "REQUEST_URI": SCRIPT_NAMES[prog] + ("?" + query if query else ""),
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "80",
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_PORT": "54321",
            "HTTP_HOST": "localhost",
            "HTTP_USER_AGENT": "e2e-test",
        }
        if cookie is not None:
            v["HTTP_COOKIE"] = cookie
        if body:
            v["CONTENT_LENGTH"] = str(len(body))
            v["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
        v.update(extra or {})
        return v

    def _proc_env(self):
        env = self._base_env()
        env.update(self.penv)
        if self.via == "env":
            env.update(self.settings)
        else:
            for k in self.dup_to_env:
                if k in self.settings:
                    env[k] = self.settings[k]
        return env

    def _server(self, prog):
        env = self._proc_env()
        key = (tuple(sorted(env.items())), self.umask, self.nprocs[prog],
               tuple(self.wrapper))
        cur = self.servers.get(prog)
        if cur is not None and cur[0] == key:
            return cur[1]
        if cur is not None:
            self._stop_server(prog)
        srv = FcgiServer(PROGS[prog], env=env, nprocs=self.nprocs[prog],
                         sock_dir=self.tmp, umask=self.umask, cwd=self.tmp,
                         wrapper=self.wrapper)
        self.servers[prog] = (key, srv)
        return srv

    def _stop_server(self, prog):
        key, srv = self.servers.pop(prog)
        dead = srv.dead()
        codes = srv.stop()
        err = srv.stderr_bytes()
        collect(PROG_NAMES[prog], "log", err)
        if WRAPPER and VALGRIND_MARK.search(err):
            raise TestFailure("FastCGI %s: valgrind reported: %s"
                              % (PROG_NAMES[prog],
                                 err.decode("utf-8", "replace")[-1500:]))
        if b"WARNING: ThreadSanitizer" in err:
            raise TestFailure("FastCGI %s: ThreadSanitizer reported: %s"
                              % (PROG_NAMES[prog],
                                 err.decode("utf-8", "replace")[-1500:]))
        if dead:
            raise TestFailure("FastCGI %s process(es) exited on their own: %r"
                              % (PROG_NAMES[prog], dead))
        bad = [c for c in codes if c not in (0, -15)]
        if bad:
            raise TestFailure("FastCGI %s exited with %r after SIGTERM; "
                              "stderr tail: %s" % (PROG_NAMES[prog], bad,
                                                   err.decode("utf-8", "replace")
                                                   [-400:]))

    def request(self, prog, method="GET", query="", cookie=None, body=b"",
                extra=None, timeout=30):
        """One request to prog ("install" | "redirect")."""
        if not os.access(PROGS[prog], os.X_OK):
            raise TestFailure("binary missing: %s" % PROGS[prog])
        rv = self._request_vars(prog, method, query, cookie, body, extra)
        t0 = time.time()
        if self.mode == "cgi":
            env = self._base_env()
            env.update(self.penv)
            env.update(self.settings)
            env.update(self.rparams)
            env.update(rv)
            um = self.umask

            def pre():
                if um is not None:
                    os.umask(um)
            try:
                p = subprocess.run(self.wrapper + [PROGS[prog]], input=body,
                                   env=env, capture_output=True,
                                   timeout=timeout,
                                   cwd=self.tmp, preexec_fn=pre)
            except subprocess.TimeoutExpired:
                raise TestFailure("%s (CGI) did not finish in %ds"
                                  % (PROG_NAMES[prog], timeout))
            elapsed = time.time() - t0
            log = p.stderr.decode("utf-8", "replace")
            collect(PROG_NAMES[prog], "log", p.stderr)
            collect(PROG_NAMES[prog], "stdout", p.stdout)
            if p.returncode != 0:
                raise TestFailure("%s (CGI) exited with status %d; stderr: %s"
                                  % (PROG_NAMES[prog], p.returncode,
                                     log[-600:]))
            try:
                status, headers, rbody = parse_cgi_response(p.stdout)
            except ValueError as e:
                raise TestFailure("%s (CGI): unparsable output: %s"
                                  % (PROG_NAMES[prog], e))
            with OUTPUTS_LOCK:
                CGI_LOGS.append((self.label, prog, status, log))
        else:
            srv = self._server(prog)
            params = dict(rv)
            if self.via == "params":
                params.update(self.settings)
            params.update(self.rparams)
            # request vars win over settings of the same name (none overlap)
            params.update(rv)
            off = srv.stderr_size()
            try:
                status, headers, rbody, err = fcgi_request(
                    srv.path, params, body, timeout=timeout)
            except Exception as e:
                time.sleep(0.1)
                tail = srv.stderr_bytes(off).decode("utf-8", "replace")
                raise TestFailure("%s (FastCGI): %s: %s; dead=%r; stderr: %s"
                                  % (PROG_NAMES[prog], type(e).__name__, e,
                                     srv.dead(), tail[-600:]))
            elapsed = time.time() - t0
            collect(PROG_NAMES[prog], "log", err)
            deadline = time.time() + 0.5
            while srv.stderr_size() == off and time.time() < deadline:
                time.sleep(0.02)
            log = err.decode("utf-8", "replace") + \
                srv.stderr_bytes(off).decode("utf-8", "replace")
        collect(PROG_NAMES[prog], "headers",
                "\n".join("%s: %s" % hv for hv in headers))
        collect(PROG_NAMES[prog], "body", rbody)
        for k, v in headers:
            check("\0" not in v and "\r" not in v and "\n" not in v,
                  "header %s holds CR/LF/NUL" % k)
        r = Resp(prog, method, status, headers, rbody, log, elapsed)
        # every answer carries its length; HEAD's is checked against GET's
        # in content_length_* below
        what = "%s %s (%d)" % (method, PROG_NAMES[prog], status)
        n = content_length(r, what)
        if method != "HEAD":
            eq(n, len(rbody), what + ": Content-Length vs the body's bytes")
        if prog == "install":
            for c in r.all("Set-Cookie"):
                m = re.match(r"^[^=]+=([^;]*)", c)
                if m and m.group(1):
                    add_state(m.group(1))
        return r

    def install(self, query="", method="GET", **kw):
        return self.request("install", method, query, **kw)

    def redirect(self, query="", cookie=None, method="GET", **kw):
        return self.request("redirect", method, query, cookie=cookie, **kw)

    def cookie_for(self, state, name=None):
        return "%s=%s" % (name or self.cookie_name, state)

    # ---------------------------------------------------------------- DB
    def db_connect(self):
        return sqlite3.connect(self.db, timeout=10)

    def table_rows(self, table):
        if not os.path.exists(self.db):
            return []
        con = self.db_connect()
        try:
            con.row_factory = sqlite3.Row
            try:
                return [dict(r) for r in con.execute("select * from " + table)]
            except sqlite3.OperationalError as e:
                if "no such table" in str(e):
                    return []
                raise
        finally:
            con.close()


SDK_INSTALLATION_COLUMNS = (
    "app_id, enterprise_id, enterprise_name, enterprise_url, team_id, "
    "team_name, bot_token, bot_id, bot_user_id, bot_scopes, "
    "bot_refresh_token, bot_token_expires_at, user_id, user_token, "
    "user_scopes, user_refresh_token, user_token_expires_at, "
    "incoming_webhook_url, incoming_webhook_channel, "
    "incoming_webhook_channel_id, incoming_webhook_configuration_url, "
    "is_enterprise_install, token_type, installed_at")
SDK_BOT_COLUMNS = (
    "app_id, enterprise_id, enterprise_name, team_id, team_name, bot_token, "
    "bot_id, bot_user_id, bot_scopes, bot_refresh_token, "
    "bot_token_expires_at, is_enterprise_install, installed_at")


def sdk_find(ctx, table, enterprise_id, team_id):
    """The Python Slack SDK's own find_installation / find_bot query."""
    cols = SDK_INSTALLATION_COLUMNS if table == "slack_installations" \
        else SDK_BOT_COLUMNS
    con = ctx.db_connect()
    try:
        con.row_factory = sqlite3.Row
        cur = con.execute(
            "select %s from %s where client_id = ? and enterprise_id = ? and "
            "team_id = ? order by installed_at desc limit 1" % (cols, table),
            [CLIENT_ID, enterprise_id or "", team_id or ""])
        row = cur.fetchone()
        return dict(row) if row else None
    finally:
        con.close()


# ------------------------------------------------------------ common checks
def check_page(r, what):
    check(r.body, "%s: empty body" % what)
    try:
        text = r.body.decode("utf-8")
    except UnicodeDecodeError:
        raise TestFailure("%s: body is not UTF-8" % what)
    check(text.lstrip().lower().startswith("<!doctype html>"),
          "%s: page does not start with <!DOCTYPE html>" % what)
    check('<link rel="icon" href="data:,">' in text,
          '%s: page lacks <link rel="icon" href="data:,">' % what)
    check('name="viewport"' in text, "%s: page lacks a viewport meta" % what)


def check_common(r, what=None):
    what = what or repr(r)
    eq(r.header("Cache-Control"), "no-store", what + ": Cache-Control")
    eq(r.header("Referrer-Policy"), "no-referrer", what + ": Referrer-Policy")
    eq(r.header("X-Content-Type-Options"), "nosniff",
       what + ": X-Content-Type-Options")
    eq(r.header("Content-Security-Policy"), CSP,
       what + ": Content-Security-Policy")
    if r.method == "HEAD":
        eq(r.body, b"", what + ": HEAD body")
    if r.body or (r.method == "HEAD" and r.status == 200):
        eq(r.header("Content-Type"), "text/html; charset=utf-8",
           what + ": Content-Type")
    if r.body:
        check_page(r, what)
    elif r.method != "HEAD" and r.status not in (301, 302, 303, 307):
        raise TestFailure("%s: status %d without a page" % (what, r.status))


def cookie_set_re(ctx):
    return re.compile(r"^%s=([A-Za-z0-9_-]{43,128}); Path=/; Max-Age=%d; "
                      r"HttpOnly; Secure; SameSite=Lax$"
                      % (re.escape(ctx.cookie_name), ctx.ttl))


def check_install_ok(ctx, r, what="install", direct=False):
    """A successful install response; returns (state, authorize URL)."""
    eq_status(r, 302 if direct else 200, what)
    check_common(r, what)
    cookies = r.all("Set-Cookie")
    eq(len(cookies), 1, what + ": number of Set-Cookie headers")
    m = cookie_set_re(ctx).match(cookies[0])
    check(m, "%s: Set-Cookie %r does not match '<name>=<state>; Path=/; "
             "Max-Age=%d; HttpOnly; Secure; SameSite=Lax' (name %s)"
          % (what, re.sub(r"=[^;]*", "=<v>", cookies[0], 1), ctx.ttl,
             ctx.cookie_name))
    state = m.group(1)
    if direct:
        url = r.header("Location")
        check(url, what + ": no Location")
    else:
        if r.method == "HEAD":
            return state, None
        check("Add to Slack" in r.text, what + ": page lacks 'Add to Slack'")
        urls = [h for h in hrefs(r.body)
                if h.startswith(ctx.fs.authorize_url + "?")]
        check(urls, what + ": no link to the authorize URL in the page")
        check(len(set(urls)) == 1, what + ": several different authorize "
                                          "links in the page")
        url = urls[0]
    return state, url


def check_authorize_url(ctx, url, state, team=None, what="authorize URL"):
    base, _, q = url.partition("?")
    eq(base, ctx.fs.authorize_url, what + ": base")
    try:
        pairs = urllib.parse.parse_qsl(q, keep_blank_values=True,
                                       strict_parsing=True)
    except ValueError as e:
        raise TestFailure("%s: unparsable query: %s" % (what, e))
    keys = [k for k, _ in pairs]
    eq(len(keys), len(set(keys)), what + ": repeated keys")
    d = dict(pairs)
    eq(d.get("client_id"), ctx.settings.get("SLACK_CLIENT_ID"),
       what + ": client_id")
    for key, setting in (("scope", "SLACK_SCOPES"),
                         ("user_scope", "SLACK_USER_SCOPES"),
                         ("redirect_uri", "SLACK_REDIRECT_URI")):
        eq(d.get(key), ctx.settings.get(setting), "%s: %s" % (what, key))
    check(d.get("state") == state,
          what + ": state differs from the cookie's value")
    eq(d.get("team"), team, what + ": team")
    extra = set(d) - {"client_id", "scope", "user_scope", "redirect_uri",
                      "state", "team"}
    check(not extra, "%s: unexpected keys %r" % (what, sorted(extra)))
    for piece in q.split("&"):
        k, _, v = piece.partition("=")
        check(not re.search(r"[?#=\s\"<>\\^`{|}\x00-\x1f\x7f-\xff]", v),
              "%s: value of %s is not percent-encoded: %r" % (what, k, v))
    return d


def check_cookie_cleared(ctx, r, what=None, name=None):
    what = what or repr(r)
    cookies = r.all("Set-Cookie")
    want = "%s=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax" % (
        name or ctx.cookie_name)
    check(want in cookies, "%s: state cookie not cleared: expected "
                           "Set-Cookie %r, got %r" % (what, want, cookies))
    eq(len(cookies), 1, what + ": number of Set-Cookie headers")


def check_redirect_resp(ctx, r, status, what=None, location=None):
    what = what or repr(r)
    eq_status(r, status, what)
    check_common(r, what)
    check_cookie_cleared(ctx, r, what)
    if location is not None:
        eq(r.header("Location"), location, what + ": Location")
    if status == 405:
        eq(r.header("Allow"), "GET", what + ": Allow")


def assert_nothing_stored(ctx, what):
    for t in ("slack_installations", "slack_bots"):
        n = len(ctx.table_rows(t))
        eq(n, 0, "%s: rows in %s after a failure" % (what, t))


def q(**kw):
    return urllib.parse.urlencode(kw)


# -------------------------------------------------------------------- flows
def start(ctx, team=None, query=None, what="install"):
    """GET install; checks it; returns (state, authorize URL)."""
    direct = ctx.settings.get("SLACK_DIRECT_INSTALL") == "1"
    if query is None:
        query = q(team=team) if team else ""
    r = ctx.install(query)
    state, url = check_install_ok(ctx, r, what, direct=direct)
    check_authorize_url(ctx, url, state, team=team, what=what +
                        ": authorize URL")
    return state, url


def flow(ctx, team=None, extra_query="", status=200, what="redirect",
         location=None):
    """A whole install -> redirect flow; returns (redirect Resp, state, code)."""
    state, _ = start(ctx, team=team)
    code = ctx.fs.issue_code(ctx.settings.get("SLACK_REDIRECT_URI"))
    query = q(code=code, state=state) + extra_query
    r = ctx.redirect(query, cookie=ctx.cookie_for(state))
    check_redirect_resp(ctx, r, status, what, location=location)
    return r, state, code


def fail_flow(ctx, status, what, reason=None, code=None, fault=None):
    """A flow that must fail at the redirect with status; nothing stored."""
    if fault:
        ctx.fs.fault(*fault[0:2], **(fault[2] if len(fault) > 2 else {}))
    state, _ = start(ctx)
    if code is None:
        code = ctx.fs.issue_code(ctx.settings.get("SLACK_REDIRECT_URI"))
    ctx.extra_secrets.add(code)
    r = ctx.redirect(q(code=code, state=state), cookie=ctx.cookie_for(state))
    if fault:
        ctx.fs.fault(fault[0], None)
    check_redirect_resp(ctx, r, status, what)
    assert_nothing_stored(ctx, what)
    if reason:
        check(reason in r.log, "%s: log line does not name the reason %s"
              % (what, reason))
    return r


# ------------------------------------------------------------------- tests
TESTS = []


def test(modes=("cgi", "fcgi"), via=None):
    def deco(fn):
        TESTS.append((fn.__name__, fn, modes, via))
        return fn
    return deco


# ---- install endpoint -----------------------------------------------------
@test()
def install_page_says_how_long(ctx):
    """The page words the state's lifetime as people say it."""
    for ttl, words in (("600", "10 minutes"), ("90", "90 seconds"),
                       ("1", "1 second"), ("120", "2 minutes"),
                       ("3600", "60 minutes"), ("61", "61 seconds")):
        ctx.set(SLACK_STATE_TTL=ttl)
        r = ctx.install("")
        check_install_ok(ctx, r, "install, SLACK_STATE_TTL=" + ttl)
        text = r.body.decode("utf-8", "replace")
        check("within %s." % words in text,
              "SLACK_STATE_TTL=%s: the page does not say 'within %s.'"
              % (ttl, words))


@test()
def app_name_on_the_pages(ctx):
    """SLACK_APP_NAME names the app on the install and success pages,
    escaped like every value; 80 characters of any script serve."""
    name = 'Acme & <b>"Co"</b> \u2713'
    ctx.set(SLACK_APP_NAME=name)
    r = ctx.install("")
    check_install_ok(ctx, r, "install with SLACK_APP_NAME")
    esc = html.escape(name, quote=True).replace("&#x27;", "&#39;")
    check("<h1>Add %s to Slack</h1>" % esc in r.text,
          "install page heading does not name the app (escaped)")
    check("<title>Add %s to Slack</title>" % esc in r.text,
          "install page title does not name the app")
    check("Connect %s to your Slack workspace" % esc in r.text,
          "install page text does not name the app")
    check("<b>" not in r.text, "the name was not escaped")
    r, _, _ = flow(ctx)
    check(("%s is installed in the <strong>%s</strong> workspace"
           % (esc, html.escape(ctx.fs.team_name))) in r.text,
          "success page does not say '<name> is installed in …'")
    ctx.set(SLACK_APP_NAME="\u00e9" * 80)
    r = ctx.install("")
    check(r.status == 200 and "Add %s to Slack" % ("\u00e9" * 80) in r.text,
          "an 80-character name: %d" % r.status)
    ctx.set(SLACK_APP_NAME=None)
    r = ctx.install("")
    check("<h1>Add this app to Slack</h1>" in r.text,
          "without SLACK_APP_NAME: 'Add this app to Slack'")


@test()
def install_page_headers_and_cookie(ctx):
    state, url = start(ctx)
    check(STATE_RE.match(state), "state is not base64url, 43..128 chars")
    r = ctx.install("")
    check_common(r, "install page")
    check("<!DOCTYPE html>" in r.text, "page lacks <!DOCTYPE html>")


@test()
def install_state_unique(ctx):
    seen = set()
    for i in range(6):
        state, _ = start(ctx, what="install #%d" % i)
        check(state not in seen, "the same state was issued twice")
        seen.add(state)
    lengths = {len(s) for s in seen}
    check(all(43 <= n <= 128 for n in lengths), "state length out of range")
    check(all("=" not in s for s in seen), "state has padding")


@test()
def install_authorize_url_encoding(ctx):
    ctx.set(SLACK_REDIRECT_URI="https://example.test/slack/oauth_redirect?x=1&y=2",
            SLACK_SCOPES="chat:write,commands,incoming-webhook",
            SLACK_USER_SCOPES="search:read,users.profile:read")
    state, url = start(ctx)
    d = check_authorize_url(ctx, url, state)
    eq(d["redirect_uri"], "https://example.test/slack/oauth_redirect?x=1&y=2",
       "decoded redirect_uri")


@test()
def install_authorize_url_fully_encoded(ctx):
    # RFC 3986: everything outside the unreserved set percent-encoded.
    ctx.set(SLACK_REDIRECT_URI="https://example.test/slack/oauth_redirect?x=1",
            SLACK_USER_SCOPES="search:read")
    state, url = start(ctx)
    raw = dict(p.partition("=")[::2] for p in url.partition("?")[2].split("&"))
    for k in ("redirect_uri", "scope", "user_scope"):
        check(re.match(r"^[A-Za-z0-9._~%-]*$", raw.get(k, "")),
              "%s is not fully percent-encoded: %r" % (k, raw.get(k)))
    eq(raw.get("redirect_uri"),
       "https%3A%2F%2Fexample.test%2Fslack%2Foauth_redirect%3Fx%3D1",
       "raw redirect_uri")
    eq(raw.get("scope"), "chat%3Awrite%2Ccommands", "raw scope")


@test()
def install_user_scopes_only(ctx):
    ctx.set(SLACK_SCOPES=None, SLACK_USER_SCOPES="search:read,chat:write")
    start(ctx)


@test()
def install_team_param(ctx):
    start(ctx, team="T0TEAM001")
    start(ctx, team="E0ORG0001")
    # unknown keys ignored
    state, url = start(ctx, query=q(foo="bar", team="T0TEAM001", utm_source="x"),
                       team="T0TEAM001")
    # empty team= is absent
    start(ctx, query="team=", team=None)
    start(ctx, query="team=&x=1", team=None)


@test()
def install_team_invalid(ctx):
    for query in ("team=bad", "team=T0", "team=t0team001", "team=X0TEAM001",
                  "team=T0TEAM001%0A", "team=T" + "A" * 21,
                  "team=T0TEAM001&team=T0TEAM002", "team=T0TEAM001&team=T0TEAM001",
                  "team=%zz"):
        r = ctx.install(query)
        eq(r.status, 400, "install ?%s: status" % query)
        check_common(r, "install ?%s" % query)
    r = ctx.install("team=bad", method="HEAD")
    eq(r.status, 400, "HEAD install ?team=bad: status")
    check_common(r, "HEAD install ?team=bad")


@test()
def install_head(ctx):
    g = ctx.install("")
    h = ctx.install("", method="HEAD")
    eq(h.status, 200, "HEAD status")
    check_common(h, "HEAD install")
    eq(h.body, b"", "HEAD body")
    check_install_ok(ctx, h, "HEAD install")

    def norm(r):
        return sorted((k.lower(), v) for k, v in r.headers
                      if k.lower() not in ("set-cookie", "content-length",
                                           "date"))
    eq(norm(h), norm(g), "HEAD headers vs GET headers")


@test()
def install_method_not_allowed(ctx):
    for m, body in (("POST", b"a=1"), ("PUT", b"x"), ("DELETE", b""),
                    ("OPTIONS", b"")):
        r = ctx.install("", method=m, body=body)
        eq(r.status, 405, m + " install: status")
        eq(r.header("Allow"), "GET, HEAD", m + " install: Allow")
        check_common(r, m + " install")


@test()
def install_direct(ctx):
    for v in ("1", "yes", "on", "true"):
        ctx.set(SLACK_DIRECT_INSTALL=v)
        r = ctx.install(q(team="T0TEAM001"))
        state, url = check_install_ok(ctx, r, "direct install (%s)" % v,
                                      direct=True)
        check_authorize_url(ctx, url, state, team="T0TEAM001",
                            what="direct install Location")
    for v in ("0", "no", "off", "false"):
        ctx.set(SLACK_DIRECT_INSTALL=v)
        r = ctx.install("")
        check_install_ok(ctx, r, "install (SLACK_DIRECT_INSTALL=%s)" % v)


@test()
def install_custom_cookie_ttl(ctx):
    ctx.set(SLACK_STATE_COOKIE="__Host-slack_st8", SLACK_STATE_TTL="120")
    start(ctx)
    flow(ctx)


@test()
def install_raw_state_not_in_db(ctx):
    states = [start(ctx)[0] for _ in range(3)]
    _, st, _ = flow(ctx)
    states.append(st)
    data = b""
    for fn in os.listdir(ctx.tmp):
        if fn.startswith("slack-oauth.db"):
            with open(os.path.join(ctx.tmp, fn), "rb") as f:
                data += f.read()
    for s in states:
        check(s.encode() not in data, "a raw state is in the database file")


# ---- configuration --------------------------------------------------------
@test()
def config_missing_client_id(ctx):
    ctx.set(SLACK_CLIENT_ID=None)
    r = ctx.install("")
    eq(r.status, 500, "install without SLACK_CLIENT_ID: status")
    check_common(r)
    check("SLACK_CLIENT_ID" in r.log, "log does not name SLACK_CLIENT_ID")
    ctx.set(SLACK_CLIENT_ID=CLIENT_ID)
    state, _ = start(ctx)
    ctx.set(SLACK_CLIENT_ID=None)
    code = ctx.fs.issue_code()
    r = ctx.redirect(q(code=code, state=state), cookie=ctx.cookie_for(state))
    check_redirect_resp(ctx, r, 500, "redirect without SLACK_CLIENT_ID")
    check("SLACK_CLIENT_ID" in r.log, "redirect log does not name "
                                      "SLACK_CLIENT_ID")
    eq(ctx.fs.api_requests(), [], "requests to Slack")
    assert_nothing_stored(ctx, "missing client id")


@test()
def config_missing_scopes(ctx):
    ctx.set(SLACK_SCOPES=None, SLACK_USER_SCOPES=None)
    r = ctx.install("")
    eq(r.status, 500, "install without scopes: status")
    check_common(r)
    check("SLACK_SCOPES" in r.log or "SLACK_USER_SCOPES" in r.log,
          "log does not name SLACK_SCOPES/SLACK_USER_SCOPES")


@test()
def config_missing_client_secret(ctx):
    ctx.set(SLACK_CLIENT_SECRET=None)
    state, _ = start(ctx, what="install without a secret")
    code = ctx.fs.issue_code()
    r = ctx.redirect(q(code=code, state=state), cookie=ctx.cookie_for(state))
    check_redirect_resp(ctx, r, 500, "redirect without SLACK_CLIENT_SECRET")
    check("SLACK_CLIENT_SECRET" in r.log, "log does not name "
                                          "SLACK_CLIENT_SECRET")
    eq(ctx.fs.api_requests(), [], "requests to Slack")


@test()
def config_secret_invalid_not_logged(ctx):
    bad = "s3cr3t" + secrets.token_hex(8)
    ctx.extra_secrets.add(bad)
    state, _ = start(ctx)
    ctx.set(SLACK_CLIENT_SECRET=bad + "\x01")
    code = ctx.fs.issue_code()
    r = ctx.redirect(q(code=code, state=state), cookie=ctx.cookie_for(state))
    check_redirect_resp(ctx, r, 500, "redirect with a control char in the "
                                     "secret")
    check("SLACK_CLIENT_SECRET" in r.log, "log does not name "
                                          "SLACK_CLIENT_SECRET")
    check(bad not in r.log and bad not in r.text,
          "the secret's value appears in the log or page")


@test()
def config_invalid_install_values(ctx):
    cases = [
        ("SLACK_STATE_TTL", "0"), ("SLACK_STATE_TTL", "3601"),
        ("SLACK_STATE_TTL", "abc"), ("SLACK_STATE_TTL", "-5"),
        ("SLACK_STATE_TTL", "60x"),
        ("SLACK_STATE_COOKIE", "bad name"), ("SLACK_STATE_COOKIE", "a;b"),
        ("SLACK_STATE_COOKIE", "x" * 65),
        ("SLACK_SCOPES", "chat:write\x07"), ("SLACK_SCOPES", "Chat:Write"),
        ("SLACK_SCOPES", "chat:write,com mands"),
        ("SLACK_CLIENT_ID", "has space"), ("SLACK_CLIENT_ID", "x" * 65),
        ("SLACK_AUTHORIZE_URL", "http://example.com/oauth/v2/authorize"),
        ("SLACK_AUTHORIZE_URL", "ftp://127.0.0.1/oauth/v2/authorize"),
        ("SLACK_DIRECT_INSTALL", "maybe"),
        ("SLACK_REDIRECT_URI", "https://example.test/cb#frag"),
        ("SLACK_REDIRECT_URI", "/relative/cb"),
        ("SLACK_APP_NAME", "x" * 81), ("SLACK_APP_NAME", "\u00e9" * 81),
        ("SLACK_APP_NAME", "Acme\tBot"), ("SLACK_APP_NAME", "\x1b[2JAcme"),
        ("SLACK_APP_NAME", "Acme\u0085"),
    ]
    if ctx.mode == "cgi":   # bytes that are not UTF-8, through the environment
        cases.append(("SLACK_APP_NAME", "Acme \udcff"))
    bad = []
    for key, value in cases:
        saved = ctx.settings.get(key)
        ctx.set(**{key: value})
        r = ctx.install("")
        ctx.set(**{key: saved})
        if r.status != 500:
            bad.append("%s=%r -> %d" % (key, value, r.status))
            continue
        check_common(r, "install with %s=%r" % (key, value))
        if key not in r.log:
            bad.append("%s=%r: log does not name the key" % (key, value))
    check(not bad, "invalid settings not refused: " + "; ".join(bad))


@test()
def config_invalid_redirect_values(ctx):
    cases = [
        ("SLACK_API_URL", "http://example.com/api/"),
        ("SLACK_API_URL", "ftp://127.0.0.1/api/"),
        ("SLACK_HTTP_TIMEOUT", "0"), ("SLACK_HTTP_TIMEOUT", "121"),
        ("SLACK_HTTP_TIMEOUT", "abc"),
        ("SLACK_SUCCESS_URL", "//evil.example/x"),
        ("SLACK_SUCCESS_URL", "javascript:alert(1)"),
        ("SLACK_INSTALL_URL", "javascript:alert(1)"),
        ("SLACK_STATE_TTL", "0"),
        ("SLACK_SUCCESS_URL", "https://example.test/x\r\nSet-Cookie: evil=1"),
        ("SLACK_FAILURE_URL", "https://example.test/x\nX-Evil: 1"),
    ]
    bad = []
    for key, value in cases:
        state, _ = start(ctx)
        saved = ctx.settings.get(key)
        ctx.set(**{key: value})
        code = ctx.fs.issue_code()
        r = ctx.redirect(q(code=code, state=state), cookie=ctx.cookie_for(state))
        ctx.set(**{key: saved})
        if r.status != 500:
            bad.append("%s=%r -> %d" % (key, value, r.status))
            continue
        check_redirect_resp(ctx, r, 500, "redirect with %s=%r" % (key, value))
        if key not in r.log:
            bad.append("%s=%r: log does not name the key" % (key, value))
    check(not bad, "invalid settings not refused: " + "; ".join(bad))
    eq(len(ctx.fs.api_requests("oauth.v2.access")), 0,
       "oauth.v2.access calls with an invalid configuration")
    assert_nothing_stored(ctx, "invalid config")


@test()
def config_http_variables_ignored(ctx):
    extra = {"HTTP_SLACK_SCOPES": "evil:scope",
             "HTTP_SLACK_AUTHORIZE_URL": "https://evil.example/authorize",
             "HTTP_SLACK_CLIENT_ID": "evil"}
    r = ctx.install("", extra=extra)
    state, url = check_install_ok(ctx, r)
    check_authorize_url(ctx, url, state)
    # httpoxy: a client's "Proxy:" header must not become libcurl's proxy
    code = ctx.fs.issue_code()
    r = ctx.redirect(q(code=code, state=state), cookie=ctx.cookie_for(state),
                     extra={"HTTP_PROXY": "http://127.0.0.1:9/",
                            "HTTP_SLACK_API_URL": "http://127.0.0.1:9/api/"})
    check_redirect_resp(ctx, r, 200, "redirect with HTTP_PROXY / "
                                     "HTTP_SLACK_API_URL from the client")


@test()
def config_precedence(ctx):
    ctx.write_conf("SLACK_SCOPES = file:scope\n", 0o600)
    ctx.set(SLACK_SCOPES=None)

    def scope_now():
        r = ctx.install("")
        state, url = check_install_ok(ctx, r)
        return dict(urllib.parse.parse_qsl(url.partition("?")[2])).get("scope")

    eq(scope_now(), "file:scope", "scope from the config file alone")
    ctx.penv["SLACK_SCOPES"] = "env:scope"
    eq(scope_now(), "env:scope", "process env vs config file")
    if ctx.mode == "fcgi":
        ctx.rparams["SLACK_SCOPES"] = "param:scope"
        eq(scope_now(), "param:scope",
           "FastCGI request param vs process env vs config file")
        del ctx.rparams["SLACK_SCOPES"]
        eq(scope_now(), "env:scope", "process env once the request param is "
                                     "gone (same FastCGI process)")
        del ctx.penv["SLACK_SCOPES"]
        ctx.rparams["SLACK_SCOPES"] = "param:scope"
        eq(scope_now(), "param:scope", "FastCGI request param vs config file")


@test()
def config_file_only(ctx):
    # everything from the file (0600, holding the secret), a full flow
    lines = ["# slack-oauth test config", "", ]
    for k in ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "SLACK_SCOPES",
              "SLACK_API_URL", "SLACK_AUTHORIZE_URL"):
        lines.append("%s = %s" % (k, ctx.settings.pop(k)))
    lines.append("   # indented comment")
    lines.append("SLACK_REDIRECT_URI = https://example.test/slack/oauth_redirect?x=1")
    ctx.write_conf("\n".join(lines) + "\n", 0o600)
    # the checks below read settings from ctx.settings; mirror them
    r = ctx.install("")
    state, url = check_install_ok(ctx, r)
    d = dict(urllib.parse.parse_qsl(url.partition("?")[2]))
    eq(d.get("client_id"), CLIENT_ID, "client_id from file")
    eq(d.get("scope"), DEFAULT_SCOPES, "scope from file")
    eq(d.get("redirect_uri"), "https://example.test/slack/oauth_redirect?x=1",
       "redirect_uri from file")
    code = ctx.fs.issue_code("https://example.test/slack/oauth_redirect?x=1")
    r = ctx.redirect(q(code=code, state=state), cookie=ctx.cookie_for(state))
    check_redirect_resp(ctx, r, 200, "redirect with a file-only config")
    eq(len(ctx.table_rows("slack_installations")), 1, "installations stored")
    os.chmod(ctx.conf, 0o640)
    check_install_ok(ctx, ctx.install(""), "install, config 0640 with secret")


@test()
def changes_seen_at_once(ctx):
    """A long-lived process learns of a changed config file or key file
    from inotify, not from stat'ing them each request: every kind of change
    must show on the very next request, even one that keeps the file's
    size and modification time."""
    ctx.write_conf("SLACK_SCOPES = one:a\n", 0o600)
    ctx.set(SLACK_SCOPES=None)

    def scope_now(what):
        r = ctx.install("")
        _, url = check_install_ok(ctx, r, what)
        return dict(urllib.parse.parse_qsl(url.partition("?")[2])).get("scope")

    eq(scope_now("first"), "one:a", "scope from the config file")
    eq(scope_now("again"), "one:a", "scope, unchanged file")
    # rewritten in place: same size, modification time put back
    st = os.stat(ctx.conf)
    with open(ctx.conf, "r+") as f:
        f.write("SLACK_SCOPES = two:b\n")
    os.utime(ctx.conf, ns=(st.st_atime_ns, st.st_mtime_ns))
    eq(scope_now("after an in-place rewrite"), "two:b",
       "scope after the file was rewritten in place (same size and mtime)")
    # replaced by a rename, as editors and configuration tools do
    tmp = ctx.conf + ".new"
    ctx.write_conf("SLACK_SCOPES = three:c\n", 0o600, path=tmp)
    os.rename(tmp, ctx.conf)
    eq(scope_now("after a rename"), "three:c",
       "scope after the file was replaced by a rename")
    # made writable by others: refused on the next request
    os.chmod(ctx.conf, 0o666)
    r = ctx.install("")
    eq(r.status, 500, "install right after chmod 0666 of the config file")
    os.chmod(ctx.conf, 0o600)
    eq(scope_now("after chmod back"), "three:c", "scope after chmod 0600")
    # the key file replaced (a database restored from elsewhere): states
    # are signed with the new key from the next request on
    key = ctx.db + "-key"
    check(os.path.exists(key), "no key file after installs")
    new = bytes(range(32))
    fd = os.open(key + ".new", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, new)
    os.close(fd)
    os.rename(key + ".new", key)
    r = ctx.install("")
    state, _ = check_install_ok(ctx, r, "install after the key file changed")
    raw = base64.urlsafe_b64decode(state + "=" * (-len(state) % 4))
    body = raw[:-32]
    want = hmac.new(new, CLIENT_ID.encode() + b"\0" + body,
                    hashlib.sha256).digest()
    check(hmac.compare_digest(raw[-32:], want),
          "the state after the key file changed is not signed with the new "
          "key")


@test()
def config_file_syntax_error(ctx):
    ctx.write_conf("# comment\n\nSLACK_STATE_TTL = 300\nthis is not a setting\n"
                   "SLACK_SCOPES = a:b\n", 0o600)
    r = ctx.install("")
    eq(r.status, 500, "install with a bad config line: status")
    check_common(r)
    check(os.path.basename(ctx.conf) in r.log,
          "log does not name the config file")
    check(re.search(r"(line\s*4\b|:4\b)", r.log),
          "log does not name line 4")


@test()
def config_file_modes(ctx):
    bad = []
    for mode, text, ok in (
            (0o666, "SLACK_STATE_TTL = 300\n", False),
            (0o620, "SLACK_STATE_TTL = 300\n", False),
            (0o644, "SLACK_CLIENT_SECRET = %s\n" % CLIENT_SECRET, False),
            (0o604, "SLACK_CLIENT_SECRET = %s\n" % CLIENT_SECRET, False),
            (0o644, "SLACK_STATE_TTL = 300\n", True),
            (0o640, "SLACK_CLIENT_SECRET = %s\n" % CLIENT_SECRET, True),
            (0o600, "SLACK_CLIENT_SECRET = %s\n" % CLIENT_SECRET, True)):
        ctx.write_conf(text, mode)
        r = ctx.install("")
        want = 200 if ok else 500
        if r.status != want:
            bad.append("mode %o (%s): %d, expected %d"
                       % (mode, text.split()[0], r.status, want))
        else:
            check_common(r, "install, config mode %o" % mode)
    check(not bad, "; ".join(bad))


@test()
def config_file_owner(ctx):
    """A config file another user owns could send the client secret and the
    code elsewhere: only the effective user or root may own it."""
    start_state, _ = start(ctx)     # a state issued while the file was good
    code = ctx.fs.issue_code()
    ctx.extra_secrets.add(code)
    elsewhere = FakeSlack(CLIENT_ID, CLIENT_SECRET).start()
    try:
        ctx.set(SLACK_API_URL=None)
        ctx.write_conf("SLACK_API_URL = %s\n" % elsewhere.api_url, 0o644)
        os.chown(ctx.conf, 12345, 0)
        r = ctx.install("")
        eq(r.status, 500, "install with a config file owned by uid 12345")
        check_common(r)
        check(ctx.conf in r.log and "12345" in r.log,
              "the log names neither the file nor its owner: %r" % r.log)
        r = ctx.redirect(q(code=code, state=start_state),
                         cookie=ctx.cookie_for(start_state))
        eq(r.status, 500, "redirect with a config file owned by uid 12345")
        check("12345" in r.log, "the redirect's log does not name the owner")
        eq(len(elsewhere.api_requests()), 0,
           "API calls sent to the host the foreign config file named")
        assert_nothing_stored(ctx, "redirect, foreign config file")
        os.chown(ctx.conf, 0, 0)    # root may own it
        r = ctx.install("")
        eq(r.status, 200, "install with a config file owned by root")
    finally:
        elsewhere.stop()


@test()
def config_file_in_home(ctx):
    """Without SLACK_OAUTH_CONFIG the file is ~/.config/slack-oauth/
    slack-oauth.conf when it exists (home from HOME here), with the same
    owner and mode rules, else SYSCONFDIR's."""
    home = os.path.join(ctx.tmp, "home")
    conf = os.path.join(home, ".config", "slack-oauth", "slack-oauth.conf")
    os.makedirs(os.path.dirname(conf))
    ctx.set(SLACK_OAUTH_CONFIG=None, SLACK_SCOPES=None)
    ctx.penv["HOME"] = home
    ctx.write_conf("SLACK_SCOPES = users:read\n", 0o600, path=conf)
    r = ctx.install("")
    _, url = check_install_ok(ctx, r, "install, config file in the home")
    check("scope=users%3Aread" in url, "the home's config file was not read")
    ctx.write_conf("SLACK_SCOPES = users:read\n", 0o620, path=conf)
    r = ctx.install("")
    eq(r.status, 500, "a group-writable config file in the home")
    check(conf in r.log, "the log does not name the file: %r" % r.log)
    ctx.write_conf("SLACK_SCOPES = users:read\n", 0o600, path=conf)
    os.chown(conf, 12345, 12345)
    r = ctx.install("")
    eq(r.status, 500, "a config file in the home owned by uid 12345")
    check("12345" in r.log, "the log does not name the owner: %r" % r.log)
    os.unlink(conf)
    if os.path.exists(os.path.join("/etc/slack-oauth", "slack-oauth.conf")):
        raise Skip("this machine has /etc/slack-oauth/slack-oauth.conf")
    r = ctx.install("")
    eq(r.status, 500, "no file in the home, none in /etc/slack-oauth: "
       "no scopes")
    check("SLACK_SCOPES" in r.log, "log: %r" % r.log)


@test(modes=("cgi",))
def version_flag(ctx):
    """-V prints the program's name and the VERSION file's version, run by
    hand; under a web server arguments change nothing (Apache passes the
    words of a query without '=' as arguments)."""
    start(ctx)
    with open(os.path.join(ROOT, "VERSION")) as f:
        version = f.read().strip()
    progs = dict(PROGS, events=os.path.join(CGI_BIN, "slack-events"),
                 admin=os.path.join(ROOT, os.environ.get("BIN_DIR") or "bin",
                                    "slack-oauth"))
    for prog, path in progs.items():
        p = subprocess.run(ctx.wrapper + [path, "-V"], capture_output=True,
                           env=ctx._base_env(), timeout=30)
        name = os.path.basename(path)
        eq((p.returncode, p.stdout.decode()), (0, "%s %s\n" % (name, version)),
           name + " -V")
    p = subprocess.run(ctx.wrapper + [PROGS["install"], "x"],
                       capture_output=True, env=ctx._base_env(), timeout=30)
    eq(p.returncode, 2, "slack-install x (by hand): usage")
    env = ctx._base_env()
    env.update(ctx.settings)
    env.update(ctx._request_vars("install", "GET", "-V", None, b"", None))
    p = subprocess.run(ctx.wrapper + [PROGS["install"], "-V"],
                       capture_output=True, env=env, timeout=30)
    check(p.returncode == 0 and p.stdout.startswith(b"Status: 200 OK\r\n"),
          "slack-install -V under a web server: %r" % p.stdout[:80])
    for c in re.findall(rb"Set-Cookie: [^=]+=([A-Za-z0-9_-]+);", p.stdout):
        add_state(c.decode())
    collect("slack-install", "stdout", p.stdout)
    collect("slack-install", "log", p.stderr)


@test()
def config_file_missing(ctx):
    ctx.set(SLACK_OAUTH_CONFIG=os.path.join(ctx.tmp, "nope.conf"))
    r = ctx.install("")
    eq(r.status, 500, "install with a missing SLACK_OAUTH_CONFIG file")
    check_common(r)
    check("nope.conf" in r.log or "SLACK_OAUTH_CONFIG" in r.log,
          "log names neither the file nor SLACK_OAUTH_CONFIG")


@test(modes=("fcgi",), via="params")
def config_db_path_as_request_param(ctx):
    ctx.dup_to_env = set()
    db2 = os.path.join(ctx.tmp, "other.db")
    ctx.set(SLACK_OAUTH_DB=db2)
    ctx.db = db2
    flow(ctx)
    check(os.path.exists(db2), "SLACK_OAUTH_DB given as a request parameter "
                               "was not used")
    eq(len(ctx.table_rows("slack_installations")), 1, "installations stored")


# ---- redirect: success ----------------------------------------------------
def check_success(ctx, r, shape, auth_ok=True, redirect_uri=None):
    fs = ctx.fs
    resp = fs.last_exchange
    check(resp is not None, "the fake saw no successful exchange")
    is_org = shape == "org"
    # the page
    check_common(r, "success page")
    if is_org:
        check(html.escape(ENTERPRISE_NAME) in r.text,
              "success page does not name the org")
        check("https://app.slack.com/manage/%s/integrations/profile/%s/"
              "workspaces/add" % (ENTERPRISE_ID, APP_ID) in hrefs(r.body),
              "success page lacks the org's add-to-workspaces link")
    else:
        check(html.escape(fs.team_name) in r.text,
              "success page does not name the workspace")
        check("slack://app?team=%s&amp;id=%s" % (TEAM_ID, APP_ID) in r.text,
              "success page lacks slack://app?team=T0TEAM001&amp;id=A0APP0001")
        check("https://app.slack.com/client/%s" % TEAM_ID in r.text,
              "success page lacks https://app.slack.com/client/T0TEAM001")
    # what Slack saw
    calls = fs.api_requests()
    check(calls, "no API calls recorded")
    ex = calls[0]
    eq((ex["method"], ex["path"]), ("POST", "/api/oauth.v2.access"),
       "first API call")
    eq(len(fs.api_requests("oauth.v2.access")), 1, "oauth.v2.access calls")
    want_auth = "Basic " + base64.b64encode(
        ("%s:%s" % (CLIENT_ID, ctx.settings.get("SLACK_CLIENT_SECRET",
                                                CLIENT_SECRET))).encode()).decode()
    check(ex["headers"].get("authorization") == want_auth,
          "oauth.v2.access: Authorization is not Basic base64(id:secret)")
    check("client_secret" not in ex["form"], "client_secret in the body")
    check(CLIENT_SECRET.encode() not in ex["body"], "client secret in the body")
    eq(ex["form"].get("code"), [fs.exchanges[-1]["code"]], "form code")
    eq(ex["form"].get("redirect_uri"), [redirect_uri] if redirect_uri else None,
       "form redirect_uri")
    tests_ = fs.api_requests("auth.test")
    if "access_token" in resp:
        check(tests_, "no auth.test call")
        check(tests_[0]["headers"].get("authorization") ==
              "Bearer " + resp["access_token"],
              "auth.test: Authorization is not Bearer <the bot token>")
        eq(tests_[0]["method"], "POST", "auth.test method")
        check(calls.index(tests_[0]) > 0, "auth.test before oauth.v2.access")
    else:
        eq(len(tests_), 0, "auth.test calls without a bot token")
    check_rows(ctx, resp, shape, auth_ok)


def check_rows(ctx, resp, shape, auth_ok=True):
    now = time.time()
    is_org = bool(resp.get("is_enterprise_install"))
    ent = resp.get("enterprise") or {}
    team = resp.get("team") or {}
    eid = ent.get("id", "")
    tid = "" if is_org else team.get("id", "")
    authed = resp.get("authed_user") or {}
    n_inst = len(ctx.table_rows("slack_installations"))
    eq(n_inst, 1, "rows in slack_installations")
    row = sdk_find(ctx, "slack_installations", eid, tid)
    check(row, "the SDK's find_installation query finds no row for "
               "(%r, %r)" % (eid, tid))
    w = "slack_installations."
    eq(row["app_id"], APP_ID, w + "app_id")
    eq(row["enterprise_id"], eid, w + "enterprise_id")
    eq(row["team_id"], tid, w + "team_id")
    eq_opt(row["enterprise_name"], ent.get("name"), w + "enterprise_name")
    eq_opt(row["team_name"], None if is_org else team.get("name"),
           w + "team_name")
    eq_opt(row["enterprise_url"], ENTERPRISE_URL if is_org and auth_ok
           else None, w + "enterprise_url")
    bot = resp.get("access_token")
    eq_opt(row["bot_token"], bot, w + "bot_token")
    if bot:
        eq(row["bot_id"], BOT_ID if auth_ok else "", w + "bot_id")
    else:
        eq_opt(row["bot_id"], None, w + "bot_id")
    eq_opt(row["bot_user_id"], resp.get("bot_user_id"), w + "bot_user_id")
    eq_opt(row["bot_scopes"], resp.get("scope"), w + "bot_scopes")
    eq_opt(row["bot_refresh_token"], resp.get("refresh_token"),
           w + "bot_refresh_token")
    for col, exp_in in (("bot_token_expires_at", resp.get("expires_in")),
                        ("user_token_expires_at", authed.get("expires_in"))):
        v = row[col]
        if exp_in is None:
            eq(v, None, w + col)
        else:
            check(isinstance(v, int), "%s%s: expected integer Unix seconds, "
                                      "got %r" % (w, col, type(v).__name__))
            check(abs(v - (now + exp_in)) < 300, "%s%s: %r is not about "
                  "now+%d" % (w, col, v, exp_in))
    eq(row["user_id"], authed.get("id"), w + "user_id")
    eq_opt(row["user_token"], authed.get("access_token"), w + "user_token")
    eq_opt(row["user_scopes"], authed.get("scope"), w + "user_scopes")
    eq_opt(row["user_refresh_token"], authed.get("refresh_token"),
           w + "user_refresh_token")
    hook = resp.get("incoming_webhook") or {}
    for col, key in (("incoming_webhook_url", "url"),
                     ("incoming_webhook_channel", "channel"),
                     ("incoming_webhook_channel_id", "channel_id"),
                     ("incoming_webhook_configuration_url",
                      "configuration_url")):
        eq_opt(row[col], hook.get(key), w + col)
    eq(row["is_enterprise_install"], 1 if is_org else 0,
       w + "is_enterprise_install")
    eq_opt(row["token_type"], resp.get("token_type"), w + "token_type")
    check(isinstance(row["installed_at"], str) and
          INSTALLED_AT_RE.match(row["installed_at"]),
          "%sinstalled_at %r is not 'YYYY-MM-DD HH:MM:SS[.fff[fff]]'"
          % (w, row["installed_at"]))
    ts = time.mktime(time.strptime(row["installed_at"][:19],
                                   "%Y-%m-%d %H:%M:%S")) - time.timezone
    check(abs(ts - now) < 600, w + "installed_at is not about now (UTC)")

    bots = ctx.table_rows("slack_bots")
    if not bot:
        eq(len(bots), 0, "rows in slack_bots for a user-only install")
        return
    eq(len(bots), 1, "rows in slack_bots")
    b = sdk_find(ctx, "slack_bots", eid, tid)
    check(b, "the SDK's find_bot query finds no row")
    w = "slack_bots."
    eq(b["app_id"], APP_ID, w + "app_id")
    eq(b["enterprise_id"], eid, w + "enterprise_id")
    eq(b["team_id"], tid, w + "team_id")
    eq_opt(b["enterprise_name"], ent.get("name"), w + "enterprise_name")
    eq_opt(b["team_name"], None if is_org else team.get("name"),
           w + "team_name")
    eq(b["bot_token"], bot, w + "bot_token")
    eq(b["bot_id"], BOT_ID if auth_ok else "", w + "bot_id")
    eq(b["bot_user_id"], resp.get("bot_user_id"), w + "bot_user_id")
    eq(b["bot_scopes"], resp.get("scope"), w + "bot_scopes")
    eq_opt(b["bot_refresh_token"], resp.get("refresh_token"),
           w + "bot_refresh_token")
    if resp.get("expires_in") is None:
        eq(b["bot_token_expires_at"], None, w + "bot_token_expires_at")
    else:
        v = b["bot_token_expires_at"]
        check(isinstance(v, int) and abs(v - (now + 43200)) < 300,
              w + "bot_token_expires_at is not about now+43200 (int)")
    eq(b["is_enterprise_install"], 1 if is_org else 0,
       w + "is_enterprise_install")
    check(isinstance(b["installed_at"], str) and
          INSTALLED_AT_RE.match(b["installed_at"]),
          "%sinstalled_at %r has the wrong format" % (w, b["installed_at"]))


def _shape_test(shape, redirect_uri=None, team=None, name=None):
    def fn(ctx):
        ctx.fs.shape = shape
        if shape in ("user", "user_only", "rotation"):
            ctx.set(SLACK_USER_SCOPES="search:read")
        if shape == "user_only":
            ctx.set(SLACK_SCOPES=None)
        if redirect_uri:
            ctx.set(SLACK_REDIRECT_URI=redirect_uri)
        r, state, code = flow(ctx, team=team, extra_query="&foo=bar&utm_x=1")
        check_success(ctx, r, shape, redirect_uri=redirect_uri)
        check(r.log.count("\n") >= 1, "no log line")
        if shape == "org":
            check(ENTERPRISE_ID in r.log, "log line lacks the enterprise id")
        else:
            check(TEAM_ID in r.log, "log line lacks the team id")
    fn.__name__ = name or "success_" + shape
    return fn


for _shape in ("bot", "user", "user_only", "webhook", "org", "grid_workspace",
               "rotation"):
    test()(_shape_test(_shape))
test()(_shape_test("bot", redirect_uri="https://example.test/slack/"
                                       "oauth_redirect?x=1", team="T0TEAM001",
                   name="success_bot_with_redirect_uri_and_team"))


@test()
def success_team_name_escaped(ctx):
    ctx.fs.team_name = 'Ex<i>ample & "Team" \'q\''
    r, _, _ = flow(ctx)
    check("<i>ample" not in r.text, "the team name is not HTML-escaped")
    check(ctx.fs.team_name in html.unescape(r.text),
          "the success page does not name the workspace")


@test()
def success_through_fake_authorize_page(ctx):
    ru = "https://example.test/slack/oauth_redirect?x=1"
    ctx.set(SLACK_REDIRECT_URI=ru)
    ctx.fs.default_redirect_uri = None
    state, url = start(ctx)
    opener = urllib.request.build_opener(_NoRedirect)

    def get(u):
        try:
            resp = opener.open(u, timeout=10)
            return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()
    st, _, page = get(url)
    eq(st, 200, "fake authorize page")
    links = {h for h in hrefs(page) if "/oauth/v2/authorize/" in h}
    allow = [h for h in links if "/allow?" in h][0]
    deny = [h for h in links if "/deny?" in h][0]
    st, hdrs, _ = get(ctx.fs.base_url + allow)
    eq(st, 302, "Allow")
    loc = hdrs["Location"]
    check(loc.startswith(ru + "&"), "Allow did not go back to redirect_uri")
    query = loc.partition("?")[2]
    r = ctx.redirect(query, cookie=ctx.cookie_for(state))
    check_redirect_resp(ctx, r, 200, "redirect after Allow")
    check_success(ctx, r, "bot", redirect_uri=ru)
    # Cancel on a second flow
    state2, url2 = start(ctx)
    st, _, page = get(url2)
    deny = [h for h in hrefs(page) if "/deny?" in h][0]
    st, hdrs, _ = get(ctx.fs.base_url + deny)
    eq(st, 302, "Cancel")
    r = ctx.redirect(hdrs["Location"].partition("?")[2],
                     cookie=ctx.cookie_for(state2))
    check_redirect_resp(ctx, r, 200, "redirect after Cancel")
    check("cancel" in r.text.lower(), "cancel page does not say cancelled")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


@test()
def success_url(ctx):
    for url in ("https://example.test/done?x=1", "/welcome"):
        ctx.set(SLACK_SUCCESS_URL=url)
        flow(ctx, status=302, location=url, what="success with %s" % url)
    eq(len(ctx.table_rows("slack_installations")), 2, "installations stored")


@test()
def success_multiple_cookies(ctx):
    state, _ = start(ctx)
    code = ctx.fs.issue_code()
    cookie = "a=1; %s; other=%s" % (ctx.cookie_for(state), "x" * 43)
    r = ctx.redirect(q(code=code, state=state), cookie=cookie)
    check_redirect_resp(ctx, r, 200, "redirect with several cookies")


@test()
def auth_test_failure_still_stores(ctx):
    for i, fault in enumerate((("ok_false", {"error": "invalid_auth"}),
                               ("http_status", {"status": 500}))):
        ctx.fs.fault("auth.test", fault[0], **fault[1])
        r, _, _ = flow(ctx, what="auth.test %s" % fault[0])
        check(re.search(r"warn|auth\.test", r.log, re.I),
              "auth.test %s: no warning logged" % fault[0])
        rows = ctx.table_rows("slack_installations")
        eq(len(rows), i + 1, "installations stored")
        latest = sorted(rows, key=lambda x: x["id"])[-1]
        eq(latest["bot_id"], "", "bot_id after a failed auth.test")
        eq(latest["bot_token"], ctx.fs.last_exchange["access_token"],
           "bot_token after a failed auth.test")
        bots = sorted(ctx.table_rows("slack_bots"), key=lambda x: x["id"])
        eq(bots[-1]["bot_id"], "", "slack_bots.bot_id after a failed auth.test")
    ctx.fs.fault("auth.test", None)


# ---- redirect: failures ---------------------------------------------------
@test()
def access_denied(ctx):
    ctx.set(SLACK_INSTALL_URL="/start/install?src=a&b=1")
    state, _ = start(ctx)
    r = ctx.redirect(q(error="access_denied", state=state),
                     cookie=ctx.cookie_for(state))
    check_redirect_resp(ctx, r, 200, "access_denied")
    check("cancelled" in r.text.lower() or "canceled" in r.text.lower(),
          "page does not say the installation was cancelled")
    check("/start/install?src=a&b=1" in hrefs(r.body),
          "cancel page lacks a link to SLACK_INSTALL_URL")
    check("/start/install?src=a&amp;b=1" in r.text,
          "SLACK_INSTALL_URL is not HTML-escaped in the page")
    code = ctx.fs.issue_code()
    r = ctx.redirect(q(code=code, state=state), cookie=ctx.cookie_for(state))
    check_redirect_resp(ctx, r, 400, "state after access_denied")
    assert_nothing_stored(ctx, "access_denied")
    eq(ctx.fs.api_requests(), [], "API calls")


@test()
def error_param_other(ctx):
    state, _ = start(ctx)
    r = ctx.redirect(q(error="invalid_scope", state=state),
                     cookie=ctx.cookie_for(state))
    check_redirect_resp(ctx, r, 400, "error=invalid_scope")
    check("<code>invalid_scope</code>" in r.text,
          "the page does not show Slack's error code")
    # Free text in error= is someone's, not Slack's: not on our page.
    st3, _ = start(ctx)
    r = ctx.redirect(q(error="Call 555-0100 to verify your account",
                       state=st3), cookie=ctx.cookie_for(st3))
    check_redirect_resp(ctx, r, 400, "error=<free text>")
    check("555-0100" not in r.text and "verify" not in r.text,
          "a free-text error= is shown on the page")
    check("outcome=slack_error" in r.log, "log: %s" % r.log)
    check("<script>" not in ctx.redirect(
        q(error="<script>x</script>", state=state),
        cookie=ctx.cookie_for(state)).text, "error value not escaped")
    st2, _ = start(ctx)
    r = ctx.redirect("error=access+denied&state=" + st2,
                     cookie=ctx.cookie_for(st2))
    check_redirect_resp(ctx, r, 400, "error=access+denied ('+' is a space)")
    # the state was consumed by the first error
    r = ctx.redirect(q(code=ctx.fs.issue_code(), state=state),
                     cookie=ctx.cookie_for(state))
    check_redirect_resp(ctx, r, 400, "state after error=")
    assert_nothing_stored(ctx, "error=")


@test()
def invalid_request_missing_code(ctx):
    state, _ = start(ctx)
    r = ctx.redirect(q(state=state), cookie=ctx.cookie_for(state))
    check_redirect_resp(ctx, r, 400, "missing code")
    r = ctx.redirect(q(state=state, code=""), cookie=ctx.cookie_for(state))
    check_redirect_resp(ctx, r, 400, "empty code")
    assert_nothing_stored(ctx, "missing code")
    eq(ctx.fs.api_requests(), [], "API calls")


@test()
def invalid_request_malformed(ctx):
    state, _ = start(ctx)
    code = ctx.fs.issue_code()
    ck = ctx.cookie_for(state)
    cases = [
        ("repeated code", q(code=code, state=state) + "&code=" + code),
        ("repeated code (different)", q(code=code, state=state) + "&code=x"),
        ("repeated state", q(code=code, state=state) + "&state=" + state),
        ("state > 128", q(code=code, state="A" * 129)),
        ("code > 256", q(code="c" * 257, state=state)),
        ("error > 128", q(error="e" * 129, state=state)),
        ("bad %zz in code", "code=ab%zz&state=" + state),
        ("bad %zz in an unknown key", q(code=code, state=state) + "&foo=%zz"),
        ("%00 in code", "code=ab%00cd&state=" + state),
        ("truncated %4", q(code=code) + "&state=" + state + "%4"),
    ]
    bad = []
    for name, query in cases:
        r = ctx.redirect(query, cookie=ck)
        if r.status != 400:
            bad.append("%s -> %d" % (name, r.status))
        else:
            check_redirect_resp(ctx, r, 400, name)
    check(not bad, "; ".join(bad))
    assert_nothing_stored(ctx, "malformed")
    # a 129-byte state is also refused when the cookie carries it
    r = ctx.redirect(q(code=code, state="A" * 129), cookie=ctx.cookie_for("A" * 129))
    check_redirect_resp(ctx, r, 400, "over-long state with cookie")
    eq(ctx.fs.api_requests(), [], "API calls for malformed queries")
    # a malformed query consumed nothing
    r = ctx.redirect(q(code=code, state=state), cookie=ck)
    check_redirect_resp(ctx, r, 200, "the state after malformed queries")
    # codes that are not printable ASCII (fresh state each)
    for name, raw in (("control char in code", "ab%01cd"),
                      ("space in code", "ab+cd"), ("DEL in code", "ab%7Fcd"),
                      ("non-ASCII code", "ab%C3%A9cd")):
        st, _ = start(ctx)
        r = ctx.redirect("code=%s&state=%s" % (raw, st), cookie=ctx.cookie_for(st))
        check_redirect_resp(ctx, r, 400, name)
    eq(len(ctx.fs.api_requests("oauth.v2.access")), 1,
       "codes that are not printable ASCII were sent to Slack")


@test()
def invalid_request_limits_ok(ctx):
    # code of exactly 256 bytes and error of 128 are within limits
    state, _ = start(ctx)
    r = ctx.redirect(q(error="e" * 128, state=state), cookie=ctx.cookie_for(state))
    check_redirect_resp(ctx, r, 400, "error of 128 bytes (other error= value)")
    state, _ = start(ctx)
    code = "c" * 256
    r = ctx.redirect(q(code=code, state=state), cookie=ctx.cookie_for(state))
    check_redirect_resp(ctx, r, 400, "code of 256 bytes (unknown to Slack)")
    eq(len(ctx.fs.api_requests("oauth.v2.access")), 1,
       "a 256-byte code was not sent to Slack")


@test()
def invalid_state_cases(ctx):
    state, _ = start(ctx)
    other, _ = start(ctx)
    code = ctx.fs.issue_code()
    forged = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    ctx.extra_secrets.add(forged)
    cases = [
        ("missing state", q(code=code), ctx.cookie_for(state)),
        ("missing state and cookie", q(code=code), None),
        ("malformed state", q(code=code, state="abc"), ctx.cookie_for("abc")),
        ("malformed state (bad chars)", q(code=code, state=state[:-1] + "!"),
         ctx.cookie_for(state[:-1] + "!")),
        ("no cookie", q(code=code, state=state), None),
        ("empty cookie", q(code=code, state=state), ctx.cookie_for("")),
        ("cookie of another name", q(code=code, state=state),
         "other-cookie=" + state),
        ("different cookie", q(code=code, state=state), ctx.cookie_for(other)),
        ("forged state", q(code=code, state=forged), ctx.cookie_for(forged)),
    ]
    bad = []
    for name, query, ck in cases:
        r = ctx.redirect(query, cookie=ck)
        if r.status != 400:
            bad.append("%s -> %d" % (name, r.status))
        else:
            check_redirect_resp(ctx, r, 400, name)
            check("expired" in r.text.lower() or "already used" in r.text.lower(),
                  name + ": page does not say the link expired/was used")
            check("/slack/install" in hrefs(r.body),
                  name + ": page lacks a link to start again")
    check(not bad, "; ".join(bad))
    assert_nothing_stored(ctx, "invalid state")
    eq(ctx.fs.api_requests(), [], "API calls for invalid states")
    # the mismatched cookie consumed nothing: both states still work
    r = ctx.redirect(q(code=code, state=state), cookie=ctx.cookie_for(state))
    check_redirect_resp(ctx, r, 200, "valid state after the failures")
    code2 = ctx.fs.issue_code()
    r = ctx.redirect(q(code=code2, state=other), cookie=ctx.cookie_for(other))
    check_redirect_resp(ctx, r, 200, "other state after its use as a cookie")


@test()
def invalid_state_replay(ctx):
    r, state, code = flow(ctx)
    code2 = ctx.fs.issue_code()
    r = ctx.redirect(q(code=code2, state=state), cookie=ctx.cookie_for(state))
    check_redirect_resp(ctx, r, 400, "replayed state")
    eq(len(ctx.table_rows("slack_installations")), 1, "installations stored")


@test()
def invalid_state_expired(ctx):
    ctx.set(SLACK_STATE_TTL="1")
    state, _ = start(ctx)
    time.sleep(2.5)
    code = ctx.fs.issue_code()
    r = ctx.redirect(q(code=code, state=state), cookie=ctx.cookie_for(state))
    check_redirect_resp(ctx, r, 400, "expired state")
    assert_nothing_stored(ctx, "expired state")
    eq(ctx.fs.api_requests(), [], "API calls")


@test()
def invalid_state_default_cookie_name_refused(ctx):
    ctx.set(SLACK_STATE_COOKIE="my_state")
    state, _ = start(ctx)
    code = ctx.fs.issue_code()
    r = ctx.redirect(q(code=code, state=state),
                     cookie="%s=%s" % (DEFAULT_COOKIE, state))
    check_redirect_resp(ctx, r, 400, "state under the default cookie name")
    r = ctx.redirect(q(code=code, state=state), cookie="my_state=" + state)
    check_redirect_resp(ctx, r, 200, "state under the configured cookie name")


@test()
def invalid_code(ctx):
    bogus = "bogus" + secrets.token_hex(16)
    fail_flow(ctx, 400, "unknown code", code=bogus)
    for err in ("invalid_code", "code_already_used", "invalid_grant"):
        fail_flow(ctx, 400, "ok:false " + err,
                  fault=("oauth.v2.access", "ok_false", {"error": err}))
    # a code already exchanged in a successful flow
    r, _, code = flow(ctx)
    state, _ = start(ctx)
    r = ctx.redirect(q(code=code, state=state), cookie=ctx.cookie_for(state))
    check_redirect_resp(ctx, r, 400, "code used twice")
    eq(len(ctx.table_rows("slack_installations")), 1, "installations stored")


@test()
def server_error_slack_config_errors(ctx):
    for err in ("bad_client_secret", "invalid_client_id", "bad_redirect_uri",
                "oauth_authorization_url_mismatch", "no_scopes"):
        fail_flow(ctx, 500, "ok:false " + err,
                  fault=("oauth.v2.access", "ok_false", {"error": err}))


@test()
def server_error_native(ctx):
    wrong = "wrong" + secrets.token_hex(12)
    ctx.extra_secrets.add(wrong)
    ctx.set(SLACK_CLIENT_SECRET=wrong)
    r = fail_flow(ctx, 500, "wrong client secret")
    check(wrong not in r.log, "the client secret is in the log")
    ctx.set(SLACK_CLIENT_SECRET=CLIENT_SECRET)
    # redirect_uri sent to authorize differs from the one at the exchange
    ctx.set(SLACK_REDIRECT_URI="https://example.test/slack/oauth_redirect")
    fail_flow(ctx, 500, "bad_redirect_uri",
              code=ctx.fs.issue_code("https://example.test/other"))


@test()
def slack_error_ok_false(ctx):
    for err in ("ratelimited", "internal_error", "service_unavailable",
                "team_added_to_org", "invalid_arguments"):
        fault = ("oauth.v2.access", "ok_false", {"error": err})
        if err == "ratelimited":
            fault[2]["headers"] = {"Retry-After": "30"}
        fail_flow(ctx, 502, "ok:false " + err, fault=fault)


@test()
def slack_error_http_and_body(ctx):
    cases = [
        ("HTTP 500", ("http_status", {"status": 500})),
        ("HTTP 503 JSON", ("http_status", {"status": 503, "body":
                           b'{"ok":true}', "content_type": "application/json"})),
        ("HTTP 404", ("http_status", {"status": 404})),
        ("not JSON", ("not_json", {})),
        ("JSON array", ("not_json", {"body": b"[1,2,3]"})),
        ("truncated JSON", ("not_json", {"body": b'{"ok": true, "access'})),
        ("empty body", ("not_json", {"body": b""})),
        ("team a string", ("wrong_types", {"fields": {"team": TEAM_ID}})),
        ("access_token a number", ("wrong_types",
                                   {"fields": {"access_token": 123}})),
        ("ok a string", ("wrong_types", {"fields": {"ok": "true"}})),
        ("no ok", ("wrong_types", {"fields": {"ok": None}})),
        ("authed_user a string", ("wrong_types",
                                  {"fields": {"authed_user": "U0HUMAN01"}})),
        ("oversized 2 MiB", ("oversized", {})),
        ("oversized 2 MiB chunked", ("oversized", {"chunked": True})),
        ("302 redirect", ("redirect", {})),
        ("307 redirect", ("redirect", {"status": 307})),
        ("connection reset", ("reset", {})),
    ]
    bad = []
    for name, (kind, opts) in cases:
        ctx.fs.clear()
        try:
            fail_flow(ctx, 502, name, fault=("oauth.v2.access", kind, opts))
        except TestFailure as e:
            bad.append(str(e))
        if kind == "redirect":
            followed = [r for r in ctx.fs.requests
                        if r["path"].startswith("/redirected/")]
            if followed:
                bad.append(name + ": the client followed the redirect")
    check(not bad, "; ".join(bad))


@test()
def slack_error_timeout(ctx):
    ctx.set(SLACK_HTTP_TIMEOUT="2")
    for kind, opts in (("slow", {"seconds": 6}),
                       ("trickle", {"interval": 0.5, "chunk": 4})):
        r = fail_flow(ctx, 502, kind, fault=("oauth.v2.access", kind, opts))
        elapsed = r.elapsed
        check(elapsed < 4.5, "%s: answered after %.1fs with "
                             "SLACK_HTTP_TIMEOUT=2" % (kind, elapsed))
        check(elapsed > 1.5, "%s: answered after %.1fs, before the timeout"
              % (kind, elapsed))


@test()
def slack_error_unreachable(ctx):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    ctx.set(SLACK_API_URL="http://127.0.0.1:%d/api/" % port)
    fail_flow(ctx, 502, "Slack unreachable")


_TLS = {}


def _self_signed():
    """A self-signed certificate for 127.0.0.1 (made once, with openssl)."""
    if "ctx" not in _TLS:
        import ssl
        d = tempfile.mkdtemp(prefix="e2e-tls-")
        import atexit
        atexit.register(shutil.rmtree, d, True)
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        p = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
             "-keyout", key, "-out", cert, "-days", "2", "-subj",
             "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
            capture_output=True)
        if p.returncode != 0:
            raise Skip("openssl could not make a certificate")
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        c.load_cert_chain(cert, key)
        _TLS["ctx"] = c
    return _TLS["ctx"]


@test()
def slack_error_tls_unverified(ctx):
    if not shutil.which("openssl"):
        raise Skip("no openssl")
    tls = FakeSlack(CLIENT_ID, CLIENT_SECRET, ssl_context=_self_signed())
    tls.start()
    try:
        ctx.set(SLACK_API_URL=tls.api_url)
        state, _ = start(ctx)
        code = tls.issue_code()
        r = ctx.redirect(q(code=code, state=state), cookie=ctx.cookie_for(state))
        check_redirect_resp(ctx, r, 502, "Slack with a self-signed certificate")
        eq(tls.api_requests(), [], "requests that got past the TLS handshake")
        assert_nothing_stored(ctx, "self-signed Slack")
    finally:
        for s_ in tls.secrets():
            add_secret(s_)
        tls.stop()


@test()
def no_proxy_from_environment(ctx):
    # "no proxy unless configured": libcurl's environment proxies are ignored
    dead = "http://127.0.0.1:9/"
    ctx.penv.update({"http_proxy": dead, "https_proxy": dead,
                     "HTTPS_PROXY": dead, "ALL_PROXY": dead, "all_proxy": dead})
    r, _, _ = flow(ctx, what="redirect with proxy variables in the environment")
    eq(len(ctx.fs.api_requests("oauth.v2.access")), 1, "exchanges seen by Slack")


@test()
def slack_error_log_escapes_control_chars(ctx):
    err = "weird\x1b[2J\nerror\t<script>x</script>"
    r = fail_flow(ctx, 502, "ok:false with control chars",
                  fault=("oauth.v2.access", "ok_false", {"error": err}))
    for line in r.log.split("\n")[:-1]:
        check(not re.search(r"[\x00-\x1f\x7f]", line),
              "a log line holds a control character: %r" % line[:200])
    check(r.log.endswith("\n") or not r.log, "log does not end in a newline")
    check("<script>" not in r.text, "Slack's error is not escaped in the page")


# ---- every response clears the cookie; methods -----------------------------
@test()
def redirect_methods(ctx):
    state, _ = start(ctx)
    code = ctx.fs.issue_code()
    ck = ctx.cookie_for(state)
    query = q(code=code, state=state)
    r = ctx.redirect(query, cookie=ck, method="HEAD")
    check_redirect_resp(ctx, r, 405, "HEAD redirect")
    for m in ("POST", "PUT", "DELETE"):
        r = ctx.redirect(query, cookie=ck, method=m, body=b"code=x")
        check_redirect_resp(ctx, r, 405, m + " redirect")
    eq(ctx.fs.api_requests(), [], "API calls")
    r = ctx.redirect(query, cookie=ck)
    check_redirect_resp(ctx, r, 200, "GET after HEAD/POST (state unconsumed)")


@test()
def redirect_empty_query(ctx):
    r = ctx.redirect("")
    check_redirect_resp(ctx, r, 400, "redirect without a query")
    r = ctx.redirect("", cookie=ctx.cookie_for("x" * 43))
    check_redirect_resp(ctx, r, 400, "redirect without a query, with cookie")


# ---- SLACK_FAILURE_URL ------------------------------------------------------
@test()
def failure_url(ctx):
    for base, sep in (("https://example.test/failed?x=1", "&"),
                      ("https://example.test/failed", "?")):
        ctx.set(SLACK_FAILURE_URL=base)

        def expect(r, reason, what):
            check_redirect_resp(ctx, r, 302, "%s (%s)" % (what, base),
                                location=base + sep + "error=" + reason)

        state, _ = start(ctx)
        expect(ctx.redirect(q(error="access_denied", state=state),
                            cookie=ctx.cookie_for(state)),
               "access_denied", "cancel")
        state, _ = start(ctx)
        expect(ctx.redirect(q(error="bad_thing", state=state),
                            cookie=ctx.cookie_for(state)),
               "slack_error", "other error=")
        state, _ = start(ctx)
        expect(ctx.redirect(q(state=state), cookie=ctx.cookie_for(state)),
               "invalid_request", "missing code")
        expect(ctx.redirect("code=%zz&state=" + state,
                            cookie=ctx.cookie_for(state)),
               "invalid_request", "bad percent-encoding")
        state, _ = start(ctx)
        expect(ctx.redirect(q(code=ctx.fs.issue_code(), state=state)),
               "invalid_state", "no cookie")
        expect(ctx.redirect(q(code="bogus" + secrets.token_hex(8), state=state),
                            cookie=ctx.cookie_for(state)),
               "invalid_code", "unknown code")
        for fault, reason in ((("ok_false", {"error": "ratelimited"}),
                               "slack_error"),
                              (("http_status", {"status": 500}), "slack_error"),
                              (("ok_false", {"error": "bad_client_secret"}),
                               "server_error")):
            ctx.fs.fault("oauth.v2.access", fault[0], **fault[1])
            state, _ = start(ctx)
            expect(ctx.redirect(q(code=ctx.fs.issue_code(), state=state),
                                cookie=ctx.cookie_for(state)),
                   reason, "fault %s" % fault[0])
            ctx.fs.fault("oauth.v2.access", None)
    assert_nothing_stored(ctx, "failure URL")


# ---- concurrency -------------------------------------------------------------
@test()
def concurrent_same_state(ctx):
    ctx.nprocs["redirect"] = 4
    state, _ = start(ctx)
    code = ctx.fs.issue_code()
    if ctx.mode == "fcgi":
        ctx._server("redirect")
    results = []
    errors = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def go():
        try:
            barrier.wait(10)
            r = ctx.redirect(q(code=code, state=state),
                             cookie=ctx.cookie_for(state))
            with lock:
                results.append(r.status)
        except Exception as e:
            with lock:
                errors.append(str(e))
    ts = [threading.Thread(target=go) for _ in range(20)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    check(not errors, "errors: %s" % "; ".join(errors[:3]))
    eq(sorted(results), [200] + [400] * 19, "statuses of 20 concurrent "
                                             "requests with one state")
    eq(len(ctx.fs.api_requests("oauth.v2.access")), 1, "exchanges")
    eq(len(ctx.table_rows("slack_installations")), 1, "installations stored")


# ---- storage -------------------------------------------------------------------
@test()
def storage_modes_and_pragmas(ctx):
    ctx.umask = 0
    flow(ctx)
    files = [f for f in os.listdir(ctx.tmp) if f.startswith("slack-oauth.db")]
    check("slack-oauth.db" in files, "no database file")
    for f in files:
        mode = stat.S_IMODE(os.stat(os.path.join(ctx.tmp, f)).st_mode)
        eq(oct(mode), oct(0o600), "mode of %s (umask 0)" % f)
    con = ctx.db_connect()
    try:
        eq(con.execute("pragma journal_mode").fetchone()[0], "wal",
           "journal_mode")
        uv = con.execute("pragma user_version").fetchone()[0]
        check(uv > 0, "user_version is %r" % uv)
        names = {r[0] for r in con.execute(
            "select name from sqlite_master where type='table'")}
        for t in ("slack_installations", "slack_bots"):
            check(t in names, "no table " + t)
        check("oauth_states" not in names,
              "states live in the SDK's oauth_states table")
    finally:
        con.close()
    # after more requests (and our connection), modes still 0600
    flow(ctx)
    for f in os.listdir(ctx.tmp):
        if f.startswith("slack-oauth.db"):
            mode = stat.S_IMODE(os.stat(os.path.join(ctx.tmp, f)).st_mode)
            eq(oct(mode), oct(0o600), "mode of %s after a second flow" % f)


@test()
def storage_sdk_save_compatible(ctx):
    flow(ctx)
    # the SDK's own insert (no extra NOT NULL column without a default)
    con = ctx.db_connect()
    try:
        con.execute(
            "insert into slack_installations (client_id, app_id, enterprise_id, "
            "enterprise_name, enterprise_url, team_id, team_name, bot_token, "
            "bot_id, bot_user_id, bot_scopes, bot_refresh_token, "
            "bot_token_expires_at, user_id, user_token, user_scopes, "
            "user_refresh_token, user_token_expires_at, incoming_webhook_url, "
            "incoming_webhook_channel, incoming_webhook_channel_id, "
            "incoming_webhook_configuration_url, is_enterprise_install, "
            "token_type) values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [CLIENT_ID, APP_ID, "", None, None, "T0SDK0001", "SDK", "xoxb-sdk",
             "B0SDK", "U0SDK", "chat:write", None, None, "U0SDKUSER", None,
             None, None, None, None, None, None, None, 0, "bot"])
        con.execute(
            "insert into slack_bots (client_id, app_id, enterprise_id, "
            "enterprise_name, team_id, team_name, bot_token, bot_id, "
            "bot_user_id, bot_scopes, bot_refresh_token, bot_token_expires_at, "
            "is_enterprise_install) values (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [CLIENT_ID, APP_ID, "", None, "T0SDK0001", "SDK", "xoxb-sdk",
             "B0SDK", "U0SDK", "chat:write", None, None, False])
        con.commit()
    except sqlite3.Error as e:
        raise TestFailure("the SDK's save() fails on our tables: %s" % e)
    finally:
        con.close()
    # and we still work after the SDK wrote its rows
    flow(ctx)


@test()
def storage_concurrent_new_db(ctx):
    ok = []
    for rnd in range(8):
        db = os.path.join(ctx.tmp, "race%d.db" % rnd)
        ctx.set(SLACK_OAUTH_DB=db)
        ctx.db = db
        if ctx.mode == "fcgi":
            ctx.nprocs["install"] = 4
            ctx.nprocs["redirect"] = 4
            ctx._server("install")
            ctx._server("redirect")
        n = 4
        res = [None] * n
        barrier = threading.Barrier(n)

        def inst(i):
            try:
                barrier.wait(10)
                res[i] = ctx.install("")
            except Exception as e:
                res[i] = e
        ts = [threading.Thread(target=inst, args=(i,)) for i in range(n)]
        [t.start() for t in ts]
        [t.join(60) for t in ts]
        states = []
        for i, r in enumerate(res):
            check(isinstance(r, Resp), "round %d install %d: %s" % (rnd, i, r))
            states.append(check_install_ok(ctx, r, "concurrent install")[0])
        res2 = [None] * n
        barrier = threading.Barrier(n)

        def red(i):
            try:
                barrier.wait(10)
                res2[i] = ctx.redirect(
                    q(code=ctx.fs.issue_code(), state=states[i]),
                    cookie=ctx.cookie_for(states[i]))
            except Exception as e:
                res2[i] = e
        ts = [threading.Thread(target=red, args=(i,)) for i in range(n)]
        [t.start() for t in ts]
        [t.join(60) for t in ts]
        for i, r in enumerate(res2):
            check(isinstance(r, Resp), "round %d redirect %d: %s" % (rnd, i, r))
            check_redirect_resp(ctx, r, 200, "concurrent redirect")
        eq(len(ctx.table_rows("slack_installations")), n,
           "installations stored in round %d" % rnd)
        ok.append(rnd)


@test()
def storage_keeps_unknown_fields(ctx):
    marker = "keep-me-" + secrets.token_hex(6)
    ctx.fs.fault("oauth.v2.access", "wrong_types",
                 fields={"x_future_field": {"note": marker},
                         "warning": "superfluous_charset",
                         "response_metadata": {"warnings":
                                               ["superfluous_charset"]}})
    r, _, _ = flow(ctx, what="exchange with extra fields")
    rows = ctx.table_rows("slack_installations")
    eq(len(rows), 1, "installations stored")
    check(any(isinstance(v, str) and marker in v for v in rows[0].values()),
          "a field Slack returned without a column was dropped")


@test()
def storage_busy_is_503(ctx):
    state, _ = start(ctx)
    con = sqlite3.connect(ctx.db, timeout=10, isolation_level=None)
    try:
        con.execute("BEGIN EXCLUSIVE")
        code = ctx.fs.issue_code()
        r = ctx.redirect(q(code=code, state=state), cookie=ctx.cookie_for(state))
    finally:
        con.execute("ROLLBACK")
        con.close()
    check_redirect_resp(ctx, r, 503, "redirect while the database is locked")
    ra = r.header("Retry-After")
    check(ra is not None and ra.isdigit(), "503 without a numeric Retry-After")
    check(r.elapsed < 15, "busy timeout not bounded (%.1fs)" % r.elapsed)
    assert_nothing_stored(ctx, "database busy")
    eq(ctx.fs.api_requests(), [], "API calls while the database is locked")


@test()
def storage_unwritable_is_500(ctx):
    ctx.set(SLACK_OAUTH_DB=os.path.join(ctx.tmp, "no-such-dir", "x.db"))
    r = ctx.install("")
    eq_status(r, 500, "install with an impossible SLACK_OAUTH_DB")
    check_common(r)
    r = ctx.redirect(q(code=ctx.fs.issue_code(), state="A" * 43),
                     cookie=ctx.cookie_for("A" * 43))
    check(r.status in (400, 500), "redirect with an impossible SLACK_OAUTH_DB: "
                                  "status %d" % r.status)
    check_redirect_resp(ctx, r, r.status)


# ---- Content-Length -------------------------------------------------------
def check_length(r, status, what, page=True):
    """r has status and a Content-Length: its body's bytes (GET, POST), or
    an empty body (HEAD). page: the body is a page, not empty. Returns the
    length."""
    eq_status(r, status, what)
    n = content_length(r, what)
    if r.method == "HEAD":
        eq(r.body, b"", what + ": HEAD body")   # its length: head_like_get
    else:
        eq(n, len(r.body), what + ": Content-Length vs the body's bytes")
        if page:
            check(n > 0, what + ": Content-Length 0 for an answer with a "
                                "page")
    return n


def head_like_get(get, head, what):
    """HEAD announces the length GET has (RFC 9110 8.6), though it sends
    no body."""
    n = content_length(get, what + " (GET)")
    eq(content_length(head, what + " (HEAD)"), n,
       what + ": Content-Length of HEAD vs GET")


@test()
def content_length_install(ctx):
    g = ctx.install("")
    check_length(g, 200, "install page")
    h = ctx.install("", method="HEAD")
    check_length(h, 200, "HEAD install page")
    head_like_get(g, h, "install page")
    g = ctx.install("team=bad")
    check_length(g, 400, "install ?team=bad")
    h = ctx.install("team=bad", method="HEAD")
    check_length(h, 400, "HEAD install ?team=bad")
    head_like_get(g, h, "install ?team=bad")
    for m, body in (("POST", b"a=1"), ("PUT", b"x"), ("DELETE", b"")):
        check_length(ctx.install("", method=m, body=body), 405, m + " install")
    ctx.set(SLACK_DIRECT_INSTALL="1")
    g = ctx.install(q(team="T0TEAM001"))
    check_install_ok(ctx, g, "direct install", direct=True)
    check_length(g, 302, "direct install", page=False)
    h = ctx.install(q(team="T0TEAM001"), method="HEAD")
    check_install_ok(ctx, h, "HEAD direct install", direct=True)
    check_length(h, 302, "HEAD direct install", page=False)
    head_like_get(g, h, "direct install")


@test()
def content_length_redirect(ctx):
    r, _, _ = flow(ctx)
    check_length(r, 200, "redirect success page")
    state, _ = start(ctx)
    code = ctx.fs.issue_code()
    r = ctx.redirect(q(code=code, state=state))
    check_redirect_resp(ctx, r, 400, "redirect without the cookie")
    check_length(r, 400, "redirect 400 page (no cookie)")
    query, ck = q(code=code, state=state), ctx.cookie_for(state)
    p = ctx.redirect(query, cookie=ck, method="POST", body=b"code=x")
    n = check_length(p, 405, "POST redirect")
    h = ctx.redirect(query, cookie=ck, method="HEAD")
    check_length(h, 405, "HEAD redirect")
    eq(content_length(h, "HEAD redirect"), n,
       "HEAD redirect: Content-Length vs that of the same 405 page to POST")
    ctx.set(SLACK_FAILURE_URL="https://example.test/failed")
    state, _ = start(ctx)
    r = ctx.redirect(q(error="access_denied", state=state),
                     cookie=ctx.cookie_for(state))
    check_redirect_resp(ctx, r, 302, "redirect to SLACK_FAILURE_URL",
                        location="https://example.test/failed"
                                 "?error=access_denied")
    check_length(r, 302, "redirect to SLACK_FAILURE_URL", page=False)


# ---- what a run maps: every library linked, libpq only for PostgreSQL ------
LIBPQ = "libpq.so.5"
SANITIZER_LIB = re.compile(r"^lib(asan|ubsan|lsan|tsan|msan)\.so")


def elf_needed(path):
    """The DT_NEEDED entries of an ELF file (readelf -d)."""
    p = subprocess.run(["readelf", "-d", path], capture_output=True,
                       text=True)
    check(p.returncode == 0, "readelf -d %s failed: %s"
          % (path, p.stderr.strip()[-300:]))
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", p.stdout)


@test(modes=("cgi",))
def linked_libs(ctx):
    """What ldd and a packager see is what runs: libfcgi and SQLite are
    linked, not loaded behind their back; slack-install links neither
    libcurl nor cJSON (SPEC), and nothing links libpq."""
    if not shutil.which("readelf"):
        raise Skip("no readelf")
    want = {"install": {"libfcgi.so.0", "libsqlite3.so.0"},
            "redirect": {"libfcgi.so.0", "libsqlite3.so.0", "libcurl.so.4",
                         "libcjson.so.1"}}
    for prog, libs in want.items():
        have = set(elf_needed(PROGS[prog]))
        check(libs <= have, "%s's DT_NEEDED lacks %s: %r"
              % (PROG_NAMES[prog], sorted(libs - have), sorted(have)))
        check(LIBPQ not in have, "%s links %s" % (PROG_NAMES[prog], LIBPQ))
    have = set(elf_needed(PROGS["install"]))
    check(not have & {"libcurl.so.4", "libcjson.so.1"},
          "slack-install links libcurl or cJSON: %r" % sorted(have))
    start(ctx, what="install")


def ld_debug(ctx, tag):
    """The programs started from now on report what the glibc loader maps
    (LD_DEBUG=files) in <tmp>/ld-<tag>.<pid>, one file a process, their
    stderr untouched. Returns the prefix for loaded()."""
    prefix = os.path.join(ctx.tmp, "ld-" + tag)
    ctx.penv.update(LD_DEBUG="files", LD_DEBUG_OUTPUT=prefix)
    return prefix


def loaded(prefix, prog=None):
    """{pid: set of library names the loader mapped} from the files of
    ld_debug(); prog: only the processes of that program."""
    out = {}
    for fn in sorted(glob.glob(prefix + ".*")):
        with open(fn, encoding="utf-8", errors="replace") as f:
            text = f.read()
        if prog is not None and PROGS[prog] not in text:
            continue
        out[fn.rpartition(".")[2]] = {
            os.path.basename(m) for m in re.findall(r"\bfile=([^\s\[]+)",
                                                    text)}
    check(out, "no loader report for %s at %s.*"
          % (PROG_NAMES[prog] if prog else "any program",
             os.path.basename(prefix)))
    return out


def loaded_once(prefix, what):
    """The libraries of the one process that wrote under prefix."""
    runs = loaded(prefix)
    eq(len(runs), 1, what + ": processes reporting what they loaded")
    return next(iter(runs.values()))


def check_key_file(path, what):
    check(os.path.exists(path), "%s: no %s" % (what, os.path.basename(path)))
    st = os.lstat(path)
    check(stat.S_ISREG(st.st_mode), "%s: %s is not a regular file"
          % (what, os.path.basename(path)))
    eq(oct(stat.S_IMODE(st.st_mode)), oct(0o600),
       "%s: mode of %s" % (what, os.path.basename(path)))
    eq(st.st_size, 32, "%s: size of %s" % (what, os.path.basename(path)))
    with open(path, "rb") as f:
        return f.read()


def need_glibc_loader():
    if WRAPPER:
        raise Skip("CGI_WRAPPER set: the wrapper changes what is loaded")
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            raise ValueError
    except (ValueError, OSError):
        raise Skip("not glibc: no LD_DEBUG")


@test()
def key_file_and_no_libpq(ctx):
    """The first install makes the -key file; later installs sign with it
    and the redirect accepts their states. A SQLite deployment never maps
    libpq."""
    need_glibc_loader()
    key = ctx.db + "-key"
    check(not os.path.exists(key), "a key file before the first run")
    prefix = ld_debug(ctx, "flow")
    start(ctx, what="first install (new database)")
    k1 = check_key_file(key, "after the first install")
    state, _ = start(ctx, what="second install (key file present)")
    r = ctx.redirect(q(code=ctx.fs.issue_code(), state=state),
                     cookie=ctx.cookie_for(state))
    check_redirect_resp(ctx, r, 200, "redirect with the state of an install "
                                     "signed with the key file")
    for pid, libs in loaded(prefix).items():
        check(LIBPQ not in libs, "a SQLite run (pid %s) loaded %s"
              % (pid, LIBPQ))

    # the key file gone: the install opens the database again and writes
    # the same key back (the database's, which signed earlier states)
    os.unlink(key)
    start(ctx, what="install after the key file was removed")
    k2 = check_key_file(key, "after the key file was removed")
    check(k1 == k2, "the key file written again holds another key than "
                    "the first time")


# ---- durable installations: the WAL synced before the answer ---------------
STRACE_CALLS = ("openat", "close", "write", "pwrite64", "fdatasync", "fsync")
_STRACE_OK = {}


def need_strace():
    if WRAPPER:
        raise Skip("CGI_WRAPPER set: no strace under the wrapper")
    if not shutil.which("strace"):
        raise Skip("no strace")
    if "ok" not in _STRACE_OK:
        p = subprocess.run(["strace", "-o", os.devnull, "true"],
                           capture_output=True)
        _STRACE_OK["ok"] = p.returncode == 0
    if not _STRACE_OK["ok"]:
        raise Skip("strace cannot trace here (ptrace not permitted?)")


class Syscall:
    def __init__(self, line, pid, name, args):
        self.start = self.end = line   # trace line numbers
        self.pid = pid
        self.name = name
        self.args = args
        self.ret = None

    def fd(self):
        m = re.match(r"^(\d+)\b", self.args)
        return int(m.group(1)) if m else None

    def path(self):
        m = re.match(r'^[^,]*, "((?:[^"\\]|\\.)*)"', self.args)
        return m.group(1) if m else None


STRACE_CALL = re.compile(r"^(?:(\d+)\s+)?([a-z_0-9]+)\((.*)$")
STRACE_RESUMED = re.compile(
    r"^(?:(\d+)\s+)?<\.\.\. ([a-z_0-9]+) resumed>(.*)$")
STRACE_RET = re.compile(r"\)\s+=\s+(-?\d+)(?:\s.*)?$")


def strace_calls(path):
    """The system calls of an `strace -f -o path` file, in the order they
    began; those split by another thread's (<unfinished ...> and
    <... resumed>) joined, .end the line they returned on."""
    calls, pending = [], {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f, 1):
            line = line.rstrip("\n")
            m = STRACE_RESUMED.match(line)
            if m:
                c = pending.pop((m.group(1), m.group(2)), None)
                if c is not None:
                    c.end = i
                    r = STRACE_RET.search(m.group(3))
                    c.ret = int(r.group(1)) if r else None
                continue
            m = STRACE_CALL.match(line)
            if not m:
                continue                    # +++ exited, --- SIGCHLD ...
            c = Syscall(i, m.group(1), m.group(2), m.group(3))
            calls.append(c)
            if m.group(3).endswith("<unfinished ...>"):
                pending[(m.group(1), m.group(2))] = c
            else:
                r = STRACE_RET.search(m.group(3))
                c.ret = int(r.group(1)) if r else None
    return calls


def wal_sync_before_answer(calls, wal):
    """Checks: before the CGI answer (the first write to fd 1, "Status:
    200 ..."), the last write to the WAL file wal is followed by a
    successful fdatasync (or fsync) of it. Names calls by trace line, never
    by content."""
    fds = {}                # fd -> path, as opened and closed
    writes, syncs = [], []
    answer = None
    opened = False
    for c in calls:
        if c.name == "openat":
            if c.ret is not None and c.ret >= 0:
                fds[c.ret] = c.path()
                opened = opened or c.path() == wal
        elif c.name == "close":
            fds.pop(c.fd(), None)
        elif c.name == "write" and c.fd() == 1:
            check(c.args.startswith('1, "Status: 200 '),
                  "the first write to stdout (trace line %d) is not the "
                  "start of a 200 answer" % c.start)
            answer = c
            break
        elif fds.get(c.fd()) != wal:
            continue
        elif c.name in ("write", "pwrite64"):
            writes.append(c)
        elif c.name in ("fdatasync", "fsync") and c.ret == 0:
            syncs.append(c)
    check(answer is not None, "no write(1, \"Status: 200 ...\") in the trace")
    check(opened, "the redirect never opened %s before answering"
          % os.path.basename(wal))
    check(writes, "no write to %s before the answer: the installation was "
                  "not written to the WAL" % os.path.basename(wal))
    last = writes[-1]
    after = [s for s in syncs if s.start > last.end and s.end < answer.start]
    check(after, "no fdatasync of %s between its last write (%s, trace line "
                 "%d) and the answer (trace line %d); syncs of it at lines "
                 "%r" % (os.path.basename(wal), last.name, last.end,
                         answer.start, [s.start for s in syncs]))


@test(modes=("cgi",))
def durable_install_wal_synced_before_answer(ctx):
    need_strace()
    state, _ = start(ctx)
    code = ctx.fs.issue_code()
    trace = os.path.join(ctx.tmp, "redirect.strace")
    ctx.wrapper = ["strace", "-f", "-qq", "-e",
                   "trace=" + ",".join(STRACE_CALLS), "-o", trace]
    # LeakSanitizer (an ASan build) does not run under ptrace
    ctx.penv["ASAN_OPTIONS"] = ":".join(
        filter(None, (os.environ.get("ASAN_OPTIONS"), "detect_leaks=0")))
    try:
        r = ctx.redirect(q(code=code, state=state),
                         cookie=ctx.cookie_for(state))
    finally:
        ctx.wrapper = list(WRAPPER)
        del ctx.penv["ASAN_OPTIONS"]
    check_redirect_resp(ctx, r, 200, "redirect under strace")
    eq(len(ctx.table_rows("slack_installations")), 1, "installations stored")
    wal_sync_before_answer(strace_calls(trace), ctx.db + "-wal")
    check(not os.path.exists(ctx.db + "-sync"),
          "a -sync file: the group commit is gone")


# -------------------------------------------------------------- final checks
def final_secrets():
    bad = []
    texts = {}
    for prog, kind, text in OUTPUTS:
        texts.setdefault((prog, kind), []).append(text)
    joined = {k: "\x00".join(v) for k, v in texts.items()}
    secrets_ = secret_values()
    for s, skind in sorted(secrets_.items()):
        if len(s) < 8 or skind == "state":
            continue
        for var in variants(s):
            for (prog, kind), blob in joined.items():
                if var in blob:
                    bad.append("a %s (%d chars) in %s %s"
                               % (skind, len(s), prog, kind))
    for s in sorted(STATES):
        for var in variants(s):
            for (prog, kind), blob in joined.items():
                if prog == "slack-install" and kind in ("headers", "body",
                                                        "stdout"):
                    continue
                if var in blob:
                    bad.append("a state in %s %s" % (prog, kind))
    check(secrets_ and STATES, "nothing collected")
    check(not bad, "; ".join(sorted(set(bad))[:20]))


def final_log_control_chars():
    bad = 0
    example = ""
    for prog, kind, text in OUTPUTS:
        if kind != "log":
            continue
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        else:
            bad += 1
            example = example or "log output not ending in a newline"
        for line in lines:
            if re.search(r"[\x00-\x1f\x7f]", line):
                bad += 1
                example = example or repr(line[:160])
    check(not bad, "%d log outputs with control characters, e.g. %s"
          % (bad, redact(example)))


def final_log_lines():
    bad = []
    for label, prog, status, text in CGI_LOGS:
        lines = [x for x in text.split("\n") if x]
        if not 1 <= len(lines) <= 2:
            bad.append("%s %s: %d log lines" % (label, PROG_NAMES[prog],
                                                len(lines)))
            continue
        if not any(PROG_NAMES[prog] in x and re.search(r"\b%d\b" % status, x)
                   and re.search(r"\d\s*ms\b|\bms\s*[=:]\s*\d", x)
                   for x in lines):
            bad.append("%s %s: no log line with the program name, status %d "
                       "and elapsed ms" % (label, PROG_NAMES[prog], status))
    check(not bad, "%d requests: %s" % (len(bad), "; ".join(bad[:5])))


FINAL = [("secrets: no secret or state in any output", final_secrets),
         ("logs: no control characters", final_log_control_chars),
         ("logs: one line per CGI request, naming program and status",
          final_log_lines)]


# -------------------------------------------------------------------- runner
def main(argv):
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", action="append", default=[],
                    help="run tests whose name contains this (repeatable)")
    ap.add_argument("--mode", choices=("cgi", "fcgi"), default=None)
    ap.add_argument("-v", action="store_true", help="print timings")
    args = ap.parse_args(argv)
    t_start = time.time()
    for p in PROGS.values():
        if not os.access(p, os.X_OK):
            print("# binary missing: %s" % p)
    plan = []
    for i, (name, fn, modes, via) in enumerate(TESTS):
        for mode in modes:
            if args.mode and mode != args.mode:
                continue
            v = via or (("params", "env")[i % 2] if mode == "fcgi" else None)
            label = "%s: %s" % (mode if mode == "cgi" else "fcgi-" + v, name)
            if args.k and not any(k in label for k in args.k):
                continue
            plan.append((label, fn, mode, v))
    run = Runner()
    for label, fn, mode, v in plan:
        t0 = time.time()
        ctx = Ctx(mode, v, label)
        err = None
        skipped = None
        try:
            fn(ctx)
        except Skip as e:
            skipped = str(e)
        except TestFailure as e:
            err = str(e)
        except Exception as e:
            err = "%s: %s [%s]" % (type(e).__name__, e,
                                   traceback.format_exc(limit=3)
                                   .strip().splitlines()[-3].strip())
        try:
            ctx.close()
        except TestFailure as e:
            err = err or str(e)
        except Exception as e:
            err = err or "cleanup: %s: %s" % (type(e).__name__, e)
        dt = " (%.1fs)" % (time.time() - t0) if args.v else ""
        if err is None and skipped is not None:
            run.skip(label, skipped, dt)
        elif err is None:
            run.ok(label, dt)
        else:
            msg = redact(err, ctx.fs.secrets() | ctx.extra_secrets)
            run.fail(label, msg.replace("\n", " ")[:1500] + dt)
    if plan:
        for label, fn in FINAL:
            try:
                fn()
                run.ok(label)
            except TestFailure as e:
                run.fail(label, redact(str(e)))
    if args.v:
        print("# %.1fs" % (time.time() - t_start))
    return run.finish()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
