#!/usr/bin/env python3
"""Tests of the PostgreSQL backend (issue 7), against a real PostgreSQL.

The test starts its own server: initdb (as the `postgres` user) into a
temporary directory, listening on 127.0.0.1 on a free port and on a unix
socket in that directory, with a role `slack` that has a password and owns
the databases the tests use (each test its own database). The programs reach
it through postgresql://slack:PASSWORD@127.0.0.1:PORT/…; the test reads rows
with `psql` as the superuser over the unix socket. The server is stopped and
its directory removed at the end, on failure too.

  e2e_cgi / e2e_fastcgi   the flows (bot, user_only, org, rotation) with the
                          rows checked by the SDK's queries, replay, a cookie
                          that does not match, access_denied, the schema
                          version, the raw state never stored
  two_hosts               two nginx + spawn-fcgi pairs (from
                          nginx-spawn-fcgi-example.conf) on one database:
                          install on A, redirect on B
  replay_across_hosts     50 concurrent redirects with one state, split
                          across both hosts: one 200, 49 x 400
  refresh_two_hosts       two concurrent `slack-oauth refresh` (different
                          cwd and environment): each refresh token spent once
  admin                   check (and with the server unreachable), list,
                          token, revoke, purge
  server_restart          a FastCGI process keeps serving across
                          `pg_ctl restart`; while the server is down: 503
                          with Retry-After and a clear log line; then 200
  concurrent_first_use    8 processes at once on an empty database (x3)
  copy_between_backends   `slack-oauth copy` SQLite -> PostgreSQL -> SQLite
  sqlite_never_maps_libpq /proc/PID/maps of a FastCGI process: no libpq on
                          SQLite, libpq on PostgreSQL
  no_secret_in_any_output the password (and every token, code, state) in no
                          log line, page or command output

    python3 tests/pg.py                  # everything
    python3 tests/pg.py -k admin         # tests whose name contains "admin"
    CGI_BIN=build/asan/cgi-bin BIN_DIR=build/asan/bin python3 tests/pg.py
    PG_KEEP=1 python3 tests/pg.py        # keep the temp dirs to look at

Needs root (the server runs as `postgres`, the web hosts as www-data),
PostgreSQL's server binaries (/usr/lib/postgresql/*/bin), psql, nginx,
spawn-fcgi, openssl. Prints `ok - name` / `FAIL - name: reason` and, last,
`N passed, N failed`. Python 3 standard library only.
"""

import base64
import datetime
import glob
import grp
import http.client
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from fake_slack import (APP_ID, BOT_ID, BOT_USER_ID, ENTERPRISE_ID,  # noqa: E402
                        ENTERPRISE_NAME, ENTERPRISE_URL, HUMAN_USER_ID,
                        ROTATION_TTL, TEAM_ID, TEAM_NAME, FakeSlack,
                        event_envelope, sign_event)
from fcgi_client import FcgiServer, parse_cgi_response  # noqa: E402
from testlib import (Runner, Skip, TestFailure, add_secret, free_port,  # noqa: E402
                     kill_leftovers, processes_under, shell_lines,  # noqa: E402
                     stop_processes, wait_for, mapped_files,
                     add_secrets, add_state, check, eq, eq_opt, leaked,
                     record_output, redact)


def _dir(var, default):
    d = os.environ.get(var) or os.path.join(ROOT, default)
    return d if os.path.isabs(d) else os.path.join(ROOT, d)


CGI_BIN = _dir("CGI_BIN", "cgi-bin")
BIN_DIR = _dir("BIN_DIR", "bin")
INSTALL = os.path.join(CGI_BIN, "slack-install")
REDIRECT = os.path.join(CGI_BIN, "slack-oauth-redirect")
EVENTS = os.path.join(CGI_BIN, "slack-events")
ADMIN = os.path.join(BIN_DIR, "slack-oauth")
KEEP = os.environ.get("PG_KEEP") == "1"

CLIENT_ID = "1234567890.9876543210"
CLIENT_SECRET = "cs" + secrets.token_hex(16)
# The example file's client id (the web hosts run its commands as they are).
EXAMPLE_CLIENT_ID = "123456789012.1234567890123"
BOT_SCOPES = "chat:write,commands"
USER_SCOPES = "search:read"
COOKIE = "slack-app-oauth-state"
PASSWORD = "pw" + secrets.token_hex(16)
PASSTHROUGH_ENV = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
                   "ASAN_SYMBOLIZER_PATH")
SANITIZER_RE = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:|"
                          r"UndefinedBehaviorSanitizer")
INSTALLED_AT_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})?$")
NULL = "\x01NULL\x01"   # psql's display of NULL (-P null=…)

add_secret(CLIENT_SECRET, "client secret")
add_secret(PASSWORD, "database password")

# Every output of the programs (log lines, pages, command output, server
# logs): (where, text, states_ok). Scanned at the end for every secret.
OUTPUTS = []
OUT_LOCK = threading.Lock()


def keep_output(where, text, states_ok=False):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not text:
        return text
    with OUT_LOCK:
        OUTPUTS.append((where, text, states_ok))
    record_output("pg: " + where, text, states_ok=states_ok)
    return text


def no_sanitizer(where, text):
    if text and SANITIZER_RE.search(text):
        raise TestFailure("%s: sanitizer report: %s"
                          % (where, redact(text)[-1500:]))


def no_password(where, text):
    check(not text or PASSWORD not in text,
          "%s holds the database password" % where)


def base_env():
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    for k in PASSTHROUGH_ENV:
        if k in os.environ:
            env[k] = os.environ[k]
    return env


def lit(s):
    """A SQL string literal of a test-controlled value."""
    check("\\" not in s and "\0" not in s, "lit: unexpected character")
    return "'" + s.replace("'", "''") + "'"


# ------------------------------------------------------------ PostgreSQL
def pg_bin_dir():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda d: int(re.sub(r"\D", "", d.split("/")[-2]) or 0))
    for d in reversed(dirs):
        if all(os.access(os.path.join(d, b), os.X_OK)
               for b in ("initdb", "pg_ctl", "postgres")):
            return d
    return None


class Postgres:
    """A PostgreSQL server of our own in a temporary directory."""

    def __init__(self, bindir):
        self.bindir = bindir
        self.dir = tempfile.mkdtemp(prefix="pg-test-")
        pw = pwd.getpwnam("postgres")
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o700)
        self.data = os.path.join(self.dir, "data")
        self.sock = self.dir
        self.log = os.path.join(self.dir, "server.log")
        self.port = free_port()
        self.running = False
        self.dbs = 0

    def tool(self, name):
        p = os.path.join(self.bindir, name)
        return p if os.access(p, os.X_OK) else shutil.which(name) or name

    def as_postgres(self, argv, timeout=60, stdin=None):
        runas = (["runuser", "-u", "postgres", "--"] if shutil.which("runuser")
                 else ["setpriv", "--reuid=postgres", "--regid=postgres",
                       "--init-groups", "--"])
        r = subprocess.run(runas + argv, capture_output=True, text=True,
                           timeout=timeout, cwd=self.dir, input=stdin)
        return r

    def initdb(self):
        r = self.as_postgres([self.tool("initdb"), "-D", self.data, "-U",
                              "postgres", "--auth-local=trust",
                              "--auth-host=scram-sha-256", "-E", "UTF8",
                              "--locale=C", "--no-sync"])
        check(r.returncode == 0, "initdb: " + (r.stderr or r.stdout)[-500:])

    def start(self):
        opts = ("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=150" % (self.port, self.sock))
        r = self.as_postgres([self.tool("pg_ctl"), "-D", self.data, "-l",
                              self.log, "-w", "-t", "30", "-o", opts, "start"])
        check(r.returncode == 0, "pg_ctl start: %s; log: %s"
              % ((r.stderr or r.stdout)[-300:], self.server_log()[-500:]))
        self.running = True

    def stop(self, mode="fast"):
        r = self.as_postgres([self.tool("pg_ctl"), "-D", self.data, "-m",
                              mode, "-w", "-t", "30", "stop"])
        check(r.returncode == 0, "pg_ctl stop: " + (r.stderr or r.stdout)[-300:])
        self.running = False

    def restart(self):
        r = self.as_postgres([self.tool("pg_ctl"), "-D", self.data, "-l",
                              self.log, "-m", "fast", "-w", "-t", "30",
                              "restart"])
        check(r.returncode == 0, "pg_ctl restart: "
              + (r.stderr or r.stdout)[-300:])
        self.running = True

    def server_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def psql_argv(self, db):
        return [self.tool("psql"), "-X", "-q", "-A", "-t", "-F", "\t",
                "-P", "null=" + NULL, "-v", "ON_ERROR_STOP=1", "-h", self.sock,
                "-p", str(self.port), "-U", "postgres", "-d", db]

    def psql(self, sql, db="postgres"):
        """Rows of a query as lists of strings (None for NULL)."""
        r = subprocess.run(self.psql_argv(db) + ["-c", sql],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, "psql: %s: %s"
              % (sql[:80], redact(r.stderr.strip())[-300:]))
        rows = []
        for ln in r.stdout.split("\n"):
            if ln == "":
                continue
            rows.append([None if v == NULL else v for v in ln.split("\t")])
        return rows

    def psql_stdin(self, sql, db="postgres"):
        """SQL given on stdin (kept out of the command line)."""
        r = subprocess.run(self.psql_argv(db) + ["-f", "-"], input=sql,
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, "psql: " + redact(r.stderr.strip())[-300:])

    def one(self, sql, db):
        rows = self.psql(sql, db)
        check(len(rows) == 1 and len(rows[0]) == 1,
              "psql: %s: want one value, got %r" % (sql[:80], rows))
        return rows[0][0]

    def setup(self):
        self.initdb()
        self.start()
        self.psql_stdin("CREATE ROLE slack LOGIN PASSWORD %s;" % lit(PASSWORD))

    def new_db(self, name):
        """A fresh, empty database owned by the role `slack`."""
        self.dbs += 1
        db = "%s_%d" % (name, self.dbs)
        self.psql("CREATE DATABASE %s OWNER slack" % db)
        return db

    def uri(self, db, scheme="postgresql", port=None):
        return "%s://slack:%s@127.0.0.1:%d/%s?connect_timeout=5" % (
            scheme, PASSWORD, port or self.port, db)

    def dump(self, db):
        r = subprocess.run([self.tool("pg_dump"), "-h", self.sock, "-p",
                            str(self.port), "-U", "postgres", "-d", db,
                            "--data-only"], capture_output=True, text=True,
                           timeout=30)
        check(r.returncode == 0, "pg_dump: " + r.stderr[-300:])
        return r.stdout

    def cleanup(self):
        if self.running:
            try:
                self.stop("fast")
            except Exception:
                try:
                    self.stop("immediate")
                except Exception:
                    pass
        # Whatever postgres process still runs on our data directory.
        for d in glob.glob("/proc/[0-9]*"):
            try:
                with open(d + "/cmdline", "rb") as f:
                    cmd = f.read().split(b"\0")
                exe = os.readlink(d + "/exe")
            except OSError:
                continue
            if exe.startswith(self.bindir) and self.data.encode() in cmd:
                try:
                    os.kill(int(os.path.basename(d)), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if not KEEP:
            shutil.rmtree(self.dir, ignore_errors=True)


PG = None


# ---------------------------------------------------------------- the fake
class Fake(FakeSlack):
    """The fake, also recording each successful refresh answer (to know the
    pair it issued last); rotation_context puts a rotating install in an
    org ("org")."""

    def __init__(self, *a, **kw):
        FakeSlack.__init__(self, *a, **kw)
        self.refreshes = []     # [(refresh token spent, answer)]

    def oauth_v2_access(self, headers, form):
        resp = FakeSlack.oauth_v2_access(self, headers, form)
        if (form.get("grant_type", [None])[0] == "refresh_token"
                and resp.get("ok")):
            with self._lock:
                self.refreshes.append((form.get("refresh_token", [None])[0],
                                       resp))
        return resp


def refresh_requests(fs):
    return [r for r in fs.api_requests("oauth.v2.access")
            if r["form"].get("grant_type") == ["refresh_token"]]


# --------------------------------------------------------- the programs
def settings(fs, uri, conf):
    return {"SLACK_OAUTH_CONFIG": conf, "SLACK_OAUTH_DB": uri,
            "SLACK_CLIENT_ID": CLIENT_ID, "SLACK_CLIENT_SECRET": CLIENT_SECRET,
            "SLACK_SCOPES": BOT_SCOPES, "SLACK_USER_SCOPES": USER_SCOPES,
            "SLACK_API_URL": fs.api_url,
            "SLACK_AUTHORIZE_URL": fs.authorize_url}


def cgi_params(prog, query, cookie):
    p = {"GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
         "REQUEST_METHOD": "GET", "QUERY_STRING": query,
         "SCRIPT_NAME": "/slack/install" if prog == "install"
         else "/slack/oauth_redirect",
         "SERVER_NAME": "localhost", "SERVER_PORT": "80",
         "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "localhost"}
    if cookie is not None:
        p["HTTP_COOKIE"] = cookie
    return p


class Answer:
    def __init__(self, status, headers, body, log):
        self.status, self.headers, self.log = status, headers, log
        self.body = body.decode("utf-8", "replace") if isinstance(
            body, bytes) else body

    def header(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def __repr__(self):
        return "status %d, log %s" % (self.status, redact(self.log)[-400:])


class Cgi:
    """Each request a new process (CGI), settings in its environment."""
    mode = "CGI"

    def __init__(self, tmp, fs, uri, conf):
        self.tmp, self.env = tmp, settings(fs, uri, conf)

    def request(self, prog, query="", cookie=None, extra=None):
        binary = INSTALL if prog == "install" else REDIRECT
        env = base_env()
        env.update(self.env)
        env.update(cgi_params(prog, query, cookie))
        env.update(extra or {})
        try:
            p = subprocess.run([binary], env=env, capture_output=True,
                               timeout=60, cwd=self.tmp)
        except subprocess.TimeoutExpired:
            raise TestFailure("%s did not finish in 60 s" % prog)
        log = keep_output("stderr of %s (CGI)" % prog, p.stderr) or ""
        keep_output("stdout of %s (CGI)" % prog, p.stdout,
                    states_ok=prog == "install")
        no_sanitizer(prog, log)
        check(p.returncode == 0, "%s: exit %d: %s" % (prog, p.returncode,
                                                      redact(log)[-600:]))
        return Answer(*parse_cgi_response(p.stdout), log)

    def close(self):
        pass


class Fcgi:
    """The two programs as FastCGI servers (the spawn-fcgi way), settings in
    their process environment; they keep their database connection."""
    mode = "FastCGI"

    def __init__(self, tmp, fs, uri, conf, nprocs=1):
        env = base_env()
        env.update(settings(fs, uri, conf))
        self.srv = {}
        for prog, binary in (("install", INSTALL), ("redirect", REDIRECT)):
            d = os.path.join(tmp, "fcgi-" + prog)
            os.makedirs(d, exist_ok=True)
            self.srv[prog] = FcgiServer(binary, env=env, nprocs=nprocs,
                                        sock_dir=d, cwd=tmp)
        wait_for(lambda: all(os.path.exists(s.path)
                             for s in self.srv.values()), "FastCGI sockets")

    def pids(self):
        return {k: [p.pid for p in s.procs] for k, s in self.srv.items()}

    def request(self, prog, query="", cookie=None, extra=None):
        s = self.srv[prog]
        off = s.stderr_size()
        params = cgi_params(prog, query, cookie)
        params.update(extra or {})
        check(s.alive(), "%s FastCGI process died: %r" % (prog, s.dead()))
        status, headers, body, _ = s.request(params, timeout=60)
        # The request's log line may be written after the answer.
        deadline = time.monotonic() + 2
        while True:
            log = s.stderr_bytes(off).decode("utf-8", "replace")
            if (" status=" in log and log.endswith("\n")) or \
                    time.monotonic() > deadline:
                break
            time.sleep(0.01)
        keep_output("log of %s (FastCGI)" % prog, log)
        keep_output("answer of %s (FastCGI)" % prog,
                    "\n".join("%s: %s" % hv for hv in headers) + "\n\n" +
                    body.decode("utf-8", "replace"),
                    states_ok=prog == "install")
        no_sanitizer(prog, log)
        return Answer(status, headers, body, log)

    def close(self):
        for prog, s in self.srv.items():
            s.stop()
            log = s.stderr_text()
            keep_output("log of %s (FastCGI, all)" % prog, log)
            no_sanitizer(prog + " (FastCGI)", log)


def state_of(a):
    for v in a.header("Set-Cookie"):
        m = re.match(re.escape(COOKIE) + r"=([^;]+);", v)
        if m:
            return m.group(1)
    return None


def install(h, what="install"):
    a = h.request("install")
    check(a.status in (200, 302), "%s: status %d; %r" % (what, a.status, a))
    state = state_of(a)
    check(state, "%s: no state cookie" % what)
    return add_state(state)


def redirect(h, state, code=None, cookie="same", error=None):
    q = {}
    if error:
        q["error"] = error
    if code:
        q["code"] = code
    if state:
        q["state"] = state
    if cookie == "same":
        cookie = state
    return h.request("redirect", urllib.parse.urlencode(q),
                     cookie=None if cookie is None else
                     "%s=%s" % (COOKIE, cookie))


def flow(h, fs, shape):
    """install -> the fake's code -> redirect; returns (state, code,
    exchange)."""
    fs.shape = shape
    state = install(h)
    code = fs.issue_code()
    n = len(fs.exchanges)
    a = redirect(h, state, code)
    add_secrets(fs.secrets())
    check(a.status == 200, "%s (%s): redirect: %r" % (shape, h.mode, a))
    check(len(fs.exchanges) == n + 1, "%s: the redirect did not exchange "
          "the code" % shape)
    return state, code, fs.last_exchange


# ------------------------------------------------------ rows, the SDK way
INST_COLS = ["app_id", "enterprise_id", "enterprise_name", "enterprise_url",
             "team_id", "team_name", "bot_token", "bot_id", "bot_user_id",
             "bot_scopes", "bot_refresh_token", "bot_token_expires_at",
             "user_id", "user_token", "user_scopes", "user_refresh_token",
             "user_token_expires_at", "incoming_webhook_url",
             "incoming_webhook_channel", "incoming_webhook_channel_id",
             "incoming_webhook_configuration_url", "is_enterprise_install",
             "token_type", "installed_at"]
BOT_COLS = ["app_id", "enterprise_id", "enterprise_name", "team_id",
            "team_name", "bot_token", "bot_id", "bot_user_id", "bot_scopes",
            "bot_refresh_token", "bot_token_expires_at",
            "is_enterprise_install", "installed_at"]


def sdk_installation(db, ent, team, user_id=None, cid=CLIENT_ID):
    """The SDK's find_installation query (client_id, enterprise_id, team_id
    [, user_id], newest first)."""
    sql = ("select %s from slack_installations where client_id = %s and "
           "enterprise_id = %s and team_id = %s" % (
               ", ".join(INST_COLS), lit(cid), lit(ent), lit(team)))
    if user_id:
        sql += " and user_id = %s" % lit(user_id)
    rows = PG.psql(sql + " order by installed_at desc limit 1", db)
    return dict(zip(INST_COLS, rows[0])) if rows else None


def sdk_bot(db, ent, team, cid=CLIENT_ID):
    rows = PG.psql("select %s from slack_bots where client_id = %s and "
                   "enterprise_id = %s and team_id = %s order by installed_at "
                   "desc limit 1" % (", ".join(BOT_COLS), lit(cid),
                                     lit(ent), lit(team)), db)
    return dict(zip(BOT_COLS, rows[0])) if rows else None


def count(db, table, where="true"):
    """Rows of table (0 when the schema is not created yet)."""
    if PG.one("select to_regclass(%s) is null" % lit(table), db) == "t":
        return 0
    return int(PG.one("select count(*) from %s where %s" % (table, where), db))


def expected_ids(shape):
    if shape == "org":
        return ENTERPRISE_ID, "", True
    return "", TEAM_ID, False


def check_installed_at(v, what, t0):
    check(v is not None and INSTALLED_AT_RE.match(v),
          "%s: installed_at %r is not 'YYYY-MM-DD HH:MM:SS[.f]'" % (what, v))
    t = datetime.datetime.fromisoformat(v).replace(
        tzinfo=datetime.timezone.utc).timestamp()
    check(t0 - 5 <= t <= time.time() + 5,
          "%s: installed_at %s is not now in UTC" % (what, v))


def check_expiry(v, ttl, what, t0):
    if ttl is None:
        eq(v, None, what + " (a token that does not expire)")
        return
    check(v is not None and re.match(r"^\d+$", v),
          "%s: %r is not Unix seconds" % (what, v))
    check(t0 + ttl - 5 <= int(v) <= time.time() + ttl + 5,
          "%s: %s is not now + %d" % (what, v, ttl))


def check_rows(db, shape, ex, t0, n_bots_before, cid=CLIENT_ID):
    ent, team, is_org = expected_ids(shape)
    au = ex.get("authed_user") or {}
    bot = ex.get("access_token")
    rot = shape == "rotation"
    w = "%s: slack_installations" % shape
    row = sdk_installation(db, ent, team, cid=cid)
    check(row is not None, w + ": the SDK's query found nothing")
    eq(row["app_id"], APP_ID, w + ".app_id")
    eq(row["enterprise_id"], ent, w + ".enterprise_id")
    eq_opt(row["enterprise_name"], ENTERPRISE_NAME if ent else None,
           w + ".enterprise_name")
    eq_opt(row["enterprise_url"], ENTERPRISE_URL if is_org else None,
           w + ".enterprise_url")
    eq(row["team_id"], team, w + ".team_id")
    eq_opt(row["team_name"], TEAM_NAME if team else None, w + ".team_name")
    eq(row["bot_token"], bot, w + ".bot_token")
    if bot:
        eq(row["bot_id"], BOT_ID, w + ".bot_id (auth.test)")
        eq(row["bot_user_id"], BOT_USER_ID, w + ".bot_user_id")
        eq(row["bot_scopes"], ex["scope"], w + ".bot_scopes")
    else:
        eq_opt(row["bot_id"], None, w + ".bot_id")
        eq_opt(row["bot_scopes"], None, w + ".bot_scopes")
    eq(row["bot_refresh_token"], ex.get("refresh_token"),
       w + ".bot_refresh_token")
    check_expiry(row["bot_token_expires_at"], ROTATION_TTL if rot and bot
                 else None, w + ".bot_token_expires_at", t0)
    eq(row["user_id"], HUMAN_USER_ID, w + ".user_id")
    eq(row["user_token"], au.get("access_token"), w + ".user_token")
    eq_opt(row["user_scopes"], au.get("scope"), w + ".user_scopes")
    eq(row["user_refresh_token"], au.get("refresh_token"),
       w + ".user_refresh_token")
    check_expiry(row["user_token_expires_at"],
                 ROTATION_TTL if rot else None, w + ".user_token_expires_at",
                 t0)
    eq(row["is_enterprise_install"], "t" if is_org else "f",
       w + ".is_enterprise_install")
    eq_opt(row["token_type"], ex.get("token_type"), w + ".token_type")
    check_installed_at(row["installed_at"], w, t0)
    eq(sdk_installation(db, ent, team, HUMAN_USER_ID, cid), row,
       w + ": the SDK's query with user_id")
    w = "%s: slack_bots" % shape
    if not bot:
        eq(count(db, "slack_bots"), n_bots_before,
           w + ": rows (a user-only install writes none)")
        return
    b = sdk_bot(db, ent, team, cid)
    check(b is not None, w + ": the SDK's query found nothing")
    for k in BOT_COLS:
        eq(b[k], row[k], "%s.%s (vs slack_installations)" % (w, k))
    eq(count(db, "slack_bots"), n_bots_before + 1, w + ": rows")


# ---------------------------------------------------------------- helpers
class Ctx:
    """A test's temp dir, fake Slack, database and empty config file."""

    def __init__(self, name, client_id=CLIENT_ID):
        self.name = name
        self.closed = False
        self.tmp = tempfile.mkdtemp(prefix="pg-%s-" % name)
        os.chmod(self.tmp, 0o755)
        self.fs = Fake(client_id, CLIENT_SECRET).start()
        self.db = PG.new_db(re.sub(r"\W", "_", name))
        self.uri = PG.uri(self.db)
        self.conf = os.path.join(self.tmp, "slack-oauth.conf")
        os.close(os.open(self.conf, os.O_WRONLY | os.O_CREAT, 0o600))
        self.closers = []

    def cgi(self):
        return Cgi(self.tmp, self.fs, self.uri, self.conf)

    def fcgi(self, **kw):
        f = Fcgi(self.tmp, self.fs, self.uri, self.conf, **kw)
        self.closers.append(f.close)
        return f

    def admin(self, *args, extra=None, cwd=None, env=None, timeout=90):
        e = base_env()
        e.update(settings(self.fs, self.uri, self.conf))
        e.update(extra or {})
        if env is not None:
            e = env
        t0 = time.time()
        try:
            p = subprocess.run([ADMIN] + list(args), env=e,
                               capture_output=True, timeout=timeout,
                               cwd=cwd or self.tmp)
        except subprocess.TimeoutExpired:
            raise TestFailure("slack-oauth %s did not finish in %d s"
                              % (" ".join(args), timeout))
        return self.admin_result(args, p.returncode, p.stdout, p.stderr,
                                 time.time() - t0)

    def admin_result(self, args, rc, out, err, elapsed=0.0):
        out = out.decode("utf-8", "replace")
        err = err.decode("utf-8", "replace")
        # The label names the command, whose arguments may carry a URI
        # with the password: only the command goes in.
        what = "slack-oauth " + args[0]
        keep_output("stderr of " + what, err)
        if args[0] != "token":
            keep_output("stdout of " + what, out)
        no_sanitizer(what, err)
        check(rc is not None and rc >= 0, "%s: killed by signal %d"
              % (what, -(rc or 0)))
        return AdminRun(args, rc, out, err)

    def close(self):
        if self.closed:
            return
        self.closed = True
        for c in self.closers:
            try:
                c()
            except Exception:  # noqa: BLE001
                pass
        add_secrets(self.fs.secrets())
        self.fs.stop()
        if not KEEP:
            shutil.rmtree(self.tmp, ignore_errors=True)


class AdminRun:
    def __init__(self, args, rc, out, err):
        self.args, self.rc, self.out, self.err = args, rc, out, err

    def expect(self, rc):
        check(self.rc == rc, "slack-oauth %s: exit %s, want %d; stdout %s; "
              "stderr %s" % (" ".join(self.args), self.rc, rc,
                             redact(self.out)[-300:], redact(self.err)[-400:]))
        return self


# ================================================================= tests
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def e2e(ctx, h):
    db = ctx.db
    fs = ctx.fs
    states = []
    # The shapes, each checked with the SDK's queries as soon as stored.
    for shape in ("bot", "user_only", "org", "rotation"):
        t0 = time.time()
        nb = count(db, "slack_bots")
        ns = count(db, "slack_oauth_states")
        state, code, ex = flow(h, fs, shape)
        states.append(state)
        check_rows(db, shape, ex, t0, nb)
        eq(count(db, "slack_oauth_states"), ns + 1,
           "%s: used states recorded" % shape)
        # replay: 400, nothing exchanged, nothing stored
        n, ni = len(fs.exchanges), count(db, "slack_installations")
        a = redirect(h, state, code)
        check(a.status == 400 and "expired or was already used" in a.body,
              "%s: replay: want 400 'expired or was already used', %r"
              % (shape, a))
        eq(len(fs.exchanges), n, "%s: replay reached Slack" % shape)
        eq(count(db, "slack_installations"), ni, "%s: replay stored" % shape)
    eq(PG.psql("select id, version from slack_oauth_meta", db), [["1", "1"]],
       "slack_oauth_meta (schema version 1)")
    eq(count(db, "slack_oauth_keys"), 1, "slack_oauth_keys rows")

    # A cookie that does not match consumes nothing.
    fs.shape = "bot"
    s1, s2 = install(h), install(h)
    states += [s1, s2]
    code = fs.issue_code()
    ns, n = count(db, "slack_oauth_states"), len(fs.exchanges)
    a = redirect(h, s1, code, cookie=s2)
    check(a.status == 400, "state != cookie: want 400, %r" % a)
    eq(count(db, "slack_oauth_states"), ns,
       "used states after a mismatched cookie")
    eq(len(fs.exchanges), n, "a mismatched cookie reached Slack")
    a = redirect(h, s1, code)
    check(a.status == 200, "the state after a mismatched cookie: want 200 "
          "(not consumed), %r" % a)
    add_secrets(fs.secrets())

    # access_denied: the cancel page, the state consumed.
    s3 = install(h)
    states.append(s3)
    a = redirect(h, s3, error="access_denied")
    check(a.status == 200 and "cancel" in a.body.lower(),
          "access_denied: want the 200 cancelled page, %r" % a)
    check("outcome=access_denied" in a.log, "access_denied: log: %s"
          % redact(a.log))
    a = redirect(h, s3, fs.issue_code())
    check(a.status == 400, "the state after access_denied: want 400 "
          "(consumed), %r" % a)

    # The raw state never reaches the database, in any form.
    dump = PG.dump(db)
    for s in states:
        raw = urllib.parse.unquote(s)
        forms = {s, s.encode().hex()}
        try:
            forms.add(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
                      .hex())
        except ValueError:
            pass
        for f in forms:
            check(f not in dump, "a state (%d chars) is in the database"
                  % len(s))
    # Every row of slack_oauth_states is a 32-byte hash.
    eq(PG.psql("select distinct length(hash) from slack_oauth_states", db),
       [["32"]], "slack_oauth_states.hash lengths")


@test
def e2e_cgi(ctx):
    """The flows as CGI (a connection per request)."""
    e2e(ctx, ctx.cgi())


@test
def e2e_fastcgi(ctx):
    """The flows as FastCGI (each process keeps its connection)."""
    h = ctx.fcgi()
    e2e(ctx, h)
    for prog, s in h.srv.items():
        check(s.alive(), "%s FastCGI process died: %r" % (prog, s.dead()))
    # A connection per worker at most (32 a process by default), each the
    # same one request after request: another flow closes none of them.
    sql = ("select pid, backend_start from pg_stat_activity where usename = "
           "'slack' and datname = %s order by pid" % lit(ctx.db))
    before = PG.psql(sql)
    check(1 <= len(before) <= 64, "connections of the two FastCGI processes "
          "(32 workers each): %d" % len(before))
    flow(h, ctx.fs, "bot")
    after = PG.psql(sql)
    gone = [c for c in before if c not in after]
    check(not gone, "connections closed by one more flow (a FastCGI worker "
          "keeps its connection): %d of %d" % (len(gone), len(before)))


# ------------------------------------------------------------ web hosts
# The paths nginx-spawn-fcgi-example.conf uses, each moved under a host's
# temp root (as tests/deploy.py does).
PATHS = ["/usr/local/lib/cgi-bin", "/etc/slack-oauth", "/var/lib/slack-oauth",
         "/var/log/nginx", "/var/log/slack-oauth", "/run/slack-oauth",
         "/etc/letsencrypt/live/example.org"]
NGINX_MAIN = """\
user www-data;
worker_processes 1;
pid {dir}/run/nginx.pid;
daemon off;
error_log {dir}/var/log/nginx/error.log;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {dir}/tmp/nginx-body;
    proxy_temp_path {dir}/tmp/nginx-proxy;
    fastcgi_temp_path {dir}/tmp/nginx-fastcgi;
    uwsgi_temp_path {dir}/tmp/nginx-uwsgi;
    scgi_temp_path {dir}/tmp/nginx-scgi;
    access_log {dir}/var/log/nginx/access.log;
    include {dir}/nginx/site.conf;
}}
"""
CERT_DIR = [None]


def make_cert():
    if CERT_DIR[0]:
        return CERT_DIR[0]
    d = tempfile.mkdtemp(prefix="pg-cert-")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", os.path.join(d, "privkey.pem"),
                        "-out", os.path.join(d, "fullchain.pem"), "-days", "2",
                        "-subj", "/CN=localhost"], capture_output=True,
                       text=True)
    check(r.returncode == 0, "openssl: " + r.stderr[-300:])
    CERT_DIR[0] = d
    return d


class WebHost:
    """One web host: nginx + spawn-fcgi from nginx-spawn-fcgi-example.conf,
    in a temp root, on its own loopback port. The database URI (with its
    password) goes in the config file (root:www-data 0640), not on the
    command line: the example's SLACK_OAUTH_DB= is the one thing taken out
    of its commands."""

    def __init__(self, name):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="pg-host-%s-" % name)
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.procs = []
        self.pidfiles = []
        self.uid = pwd.getpwnam("www-data").pw_uid
        self.gid = grp.getgrnam("www-data").gr_gid

    def start(self, fs, uri):
        name = self.name
        for d in ("usr/local/lib/cgi-bin", "etc/slack-oauth", "var/log/nginx",
                  "run", "etc/letsencrypt/live/example.org", "tmp", "nginx"):
            os.makedirs(self.p(d), exist_ok=True)
        certs = make_cert()
        for f in ("fullchain.pem", "privkey.pem"):
            shutil.copy(os.path.join(certs, f),
                        self.p("etc/letsencrypt/live/example.org", f))
        for prog in ("slack-install", "slack-oauth-redirect"):
            shutil.copy(os.path.join(CGI_BIN, prog),
                        self.p("usr/local/lib/cgi-bin", prog))
            os.chmod(self.p("usr/local/lib/cgi-bin", prog), 0o755)
        conf = self.p("etc/slack-oauth/slack-oauth.conf")
        with open(conf, "w") as f:
            f.write("SLACK_CLIENT_SECRET = %s\nSLACK_OAUTH_DB = %s\n"
                    "SLACK_USER_SCOPES = %s\nSLACK_AUTHORIZE_URL = %s\n"
                    "SLACK_API_URL = %s\n" % (CLIENT_SECRET, uri, USER_SCOPES,
                                              fs.authorize_url, fs.api_url))
        os.chown(conf, 0, self.gid)
        os.chmod(conf, 0o640)
        with open(os.path.join(ROOT, "nginx-spawn-fcgi-example.conf")) as f:
            text = f.read()
        # The events endpoint's line is tests/deploy.py's: no events here.
        cmds = shell_lines(text, without="slack-events")
        check(len(cmds) == 3, "example: want 3 '#$' commands, got %d"
              % len(cmds))
        for i, cmd in enumerate(cmds):
            cmd = self.subst(cmd)
            if i > 0:
                cmd, n = re.subn(r"SLACK_OAUTH_DB=\S+\s+", "", cmd)
                check(n == 1, "example command %d: no SLACK_OAUTH_DB=" % i)
                check("SLACK_CLIENT_ID=" + EXAMPLE_CLIENT_ID in cmd,
                      "example command %d: another client id" % i)
            r = subprocess.run(["/bin/sh", "-c", cmd], cwd="/",
                               stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=30)
            check(r.returncode == 0, "%s: example command %d: exit %d: %s"
                  % (name, i, r.returncode, r.stderr.strip()[-300:]))
        for prog in ("slack-install", "slack-oauth-redirect"):
            self.pidfiles.append(self.p("run/slack-oauth/%s.pid" % prog))
        shutil.copy("/etc/nginx/fastcgi_params", self.p("nginx",
                                                         "fastcgi_params"))
        with open(self.p("nginx", "site.conf"), "w") as f:
            f.write(self.subst(text))
        with open(self.p("nginx", "nginx.conf"), "w") as f:
            f.write(NGINX_MAIN.format(dir=self.dir))
        argv = ["nginx", "-p", self.p("nginx"), "-c", self.p("nginx",
                                                             "nginx.conf"),
                "-e", self.p("var/log/nginx/error.log")]
        t = subprocess.run(argv + ["-t"], capture_output=True, text=True)
        check(t.returncode == 0, "nginx -t: " + t.stderr.strip()[-400:])
        out = open(self.p("var/log/nginx/stderr.log"), "ab")
        self.procs.append(subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True))
        out.close()

        def up():
            with socket.create_connection(("127.0.0.1", self.port), 0.5):
                return self.procs[0].poll() is None
        wait_for(up, "nginx of host " + name)

    def p(self, *parts):
        return os.path.join(self.dir, *parts)

    def subst(self, text):
        for path in PATHS:
            text = text.replace(path, self.dir + path)
        return text.replace("listen 443 ssl;",
                            "listen 127.0.0.1:%d ssl;" % self.port)

    def get(self, path, cookie=None):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=60,
                                        context=ctx)
        headers = {"User-Agent": "pg-test"}
        if cookie:
            headers["Cookie"] = cookie
        try:
            c.request("GET", path, headers=headers)
            r = c.getresponse()
            body = r.read().decode("utf-8", "replace")
            a = Answer(r.status, r.getheaders(), body, "")
        finally:
            c.close()
        keep_output("host %s: GET %s" % (self.name, path.split("?")[0]),
                    "\n".join("%s: %s" % hv for hv in a.headers) + "\n\n" +
                    body, states_ok=path.startswith("/slack/install"))
        return a

    def install(self):
        a = self.get("/slack/install")
        check(a.status == 200, "host %s: install: status %d" % (self.name,
                                                                a.status))
        s = state_of(a)
        check(s, "host %s: install: no state cookie" % self.name)
        return add_state(s)

    def redirect(self, state, code):
        return self.get("/slack/oauth_redirect?" + urllib.parse.urlencode(
            {"code": code, "state": state}), cookie="%s=%s" % (COOKIE, state))

    def log(self):
        try:
            with open(self.p("var/log/slack-oauth/slack-oauth.log"),
                      errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def our_processes(self):
        return processes_under(self.dir)

    def stop(self):
        stop_processes(self.procs, self.pidfiles)
        self.procs = []
        kill_leftovers(self.dir)
        for dp, _, fns in os.walk(self.p("var/log")):
            for fn in fns:
                with open(os.path.join(dp, fn), "rb") as f:
                    keep_output("host %s: %s" % (self.name, fn), f.read())

    def cleanup(self):
        self.stop()
        if not KEEP:
            shutil.rmtree(self.dir, ignore_errors=True)


HOSTS = {}


def hosts(ctx):
    """Hosts A and B on ctx's database and fake, started once for the
    tests that need them."""
    if "A" not in HOSTS:
        for n in ("A", "B"):
            HOSTS[n] = WebHost(n)
        for n in ("A", "B"):
            HOSTS[n].start(ctx.fs, ctx.uri)
            HOSTS[n].started = True
    check(all(getattr(h, "started", False) for h in HOSTS.values()),
          "the web hosts did not start")
    return HOSTS["A"], HOSTS["B"]


class SharedCtx(Ctx):
    """One database and fake for the tests on the two web hosts."""
    inst = None

    def close(self):
        pass


def host_ctx():
    if SharedCtx.inst is None:
        # The example's commands give the programs its client id.
        SharedCtx.inst = SharedCtx("hosts", EXAMPLE_CLIENT_ID)
    return SharedCtx.inst


@test
def two_hosts(ctx):
    """Install on host A, the redirect on host B: 200, and stored."""
    a, b = hosts(ctx)
    fs = ctx.fs
    fs.shape = "bot"
    t0 = time.time()
    nb = count(ctx.db, "slack_bots")
    state = a.install()
    code = fs.issue_code()
    r = b.redirect(state, code)
    add_secrets(fs.secrets())
    check(r.status == 200 and TEAM_NAME in r.body,
          "redirect on B of an install on A: status %d; B's log: %s"
          % (r.status, redact(b.log())[-500:]))
    ex = fs.last_exchange
    check_rows(ctx.db, "bot", ex, t0, nb, EXAMPLE_CLIENT_ID)
    r = a.redirect(state, code)
    check(r.status == 400, "the same redirect again on A: want 400, got %d"
          % r.status)
    time.sleep(0.1)
    check("slack-install: outcome=ok status=200" in a.log(),
          "host A's log has no install line")
    check("slack-oauth-redirect: outcome=ok status=200" in b.log(),
          "host B's log has no redirect line")
    check("slack-oauth-redirect: outcome=invalid_state status=400" in a.log(),
          "host A's log has no invalid_state line")
    for h in (a, b):
        no_sanitizer("host %s log" % h.name, h.log())
        # The URI (with the password) is in the config file only: not on
        # the programs' command line nor in their environment.
        pids = h.our_processes()
        check(len(pids) == 4, "host %s: want 2 processes per program, "
              "found %d" % (h.name, len(pids)))
        for pid in pids:
            for f in ("cmdline", "environ"):
                with open("/proc/%d/%s" % (pid, f), "rb") as fh:
                    check(PASSWORD.encode() not in fh.read(),
                          "host %s: the password is in a program's %s"
                          % (h.name, f))


two_hosts.ctx = host_ctx


@test
def replay_across_hosts(ctx):
    """One state, 50 concurrent redirects, every other one on host B:
    exactly one 200, 49 x 400, one exchange, one row."""
    a, b = hosts(ctx)
    fs = ctx.fs
    fs.shape = "bot"
    state = a.install()
    code = fs.issue_code()
    n_ex, n_inst = len(fs.exchanges), count(ctx.db, "slack_installations")
    results = [None] * 50
    barrier = threading.Barrier(50)

    def one(i):
        try:
            barrier.wait(timeout=20)
            results[i] = (a if i % 2 == 0 else b).redirect(state, code).status
        except Exception as e:  # noqa: BLE001
            results[i] = "%s: %s" % (type(e).__name__, e)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    add_secrets(fs.secrets())
    ok = [i for i, r in enumerate(results) if r == 200]
    bad = [r for r in results if r not in (200, 400)]
    check(not bad, "answers other than 200/400: %r" % bad[:5])
    eq(len(ok), 1, "200 answers of 50 (A: even, B: odd; got %r)" % ok)
    eq(results.count(400), 49, "400 answers of 50")
    eq(len(fs.exchanges), n_ex + 1, "codes exchanged with Slack")
    eq(count(ctx.db, "slack_installations"), n_inst + 1,
       "installations stored")
    for h in (a, b):
        no_sanitizer("host %s log" % h.name, h.log())


replay_across_hosts.ctx = host_ctx


@test
def refresh_two_hosts(ctx):
    """`slack-oauth refresh --within 50000` from two hosts at once (one with
    the settings in a config file and a postgres:// URI, the other in its
    environment, different working directories), the fake slowed to 1 s:
    every refresh token is spent once, both succeed, and the newest stored
    pair is the fake's last."""
    fs = ctx.fs
    h = ctx.cgi()
    _, _, ex = flow(h, fs, "rotation")
    # host 1: a config file (0600) with everything, a postgres:// URI
    d1, d2 = os.path.join(ctx.tmp, "host1"), os.path.join(ctx.tmp, "host2")
    os.makedirs(d1)
    os.makedirs(d2)
    conf1 = os.path.join(d1, "slack-oauth.conf")
    with open(os.open(conf1, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        for k, v in settings(fs, PG.uri(ctx.db, "postgres"), conf1).items():
            if k != "SLACK_OAUTH_CONFIG":
                f.write("%s = %s\n" % (k, v))
    env1 = base_env()
    env1["SLACK_OAUTH_CONFIG"] = conf1
    env2 = base_env()
    env2.update(settings(fs, ctx.uri, ctx.conf))
    env2["SLACK_HTTP_TIMEOUT"] = "20"
    fs.fault("oauth.v2.access", "slow", seconds=1)
    fs.clear()
    args = ("refresh", "--within", "50000")
    procs = [subprocess.Popen([ADMIN] + list(args), env=e, cwd=d,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for e, d in ((env1, d1), (env2, d2))]
    runs = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise TestFailure("concurrent refresh did not finish in 90 s")
        runs.append(ctx.admin_result(args, p.returncode, out, err))
    fs.fault("oauth.v2.access", None)
    add_secrets(fs.secrets())
    for r in runs:
        r.expect(0)
    reqs = refresh_requests(fs)
    sent = [q["form"]["refresh_token"][0] for q in reqs]
    eq(len(sent) - len(set(sent)), 0, "refresh tokens sent more than once")
    eq(len(fs.refreshes), len(reqs), "refresh requests the fake accepted")
    check(ex["refresh_token"] in sent and
          ex["authed_user"]["refresh_token"] in sent,
          "the stored refresh tokens were not used")
    eq(len(sent), 2, "refresh requests (one per token)")
    last = {resp["token_type"]: resp for _, resp in fs.refreshes}
    b = sdk_bot(ctx.db, "", TEAM_ID)
    eq(b["bot_token"], last["bot"]["access_token"],
       "newest slack_bots.bot_token (the fake's last)")
    eq(b["bot_refresh_token"], last["bot"]["refresh_token"],
       "newest slack_bots.bot_refresh_token (the fake's last)")
    i = sdk_installation(ctx.db, "", TEAM_ID, HUMAN_USER_ID)
    eq(i["bot_token"], last["bot"]["access_token"],
       "newest slack_installations.bot_token")
    eq(i["user_token"], last["user"]["access_token"],
       "newest slack_installations.user_token (the fake's last)")
    eq(i["user_refresh_token"], last["user"]["refresh_token"],
       "newest slack_installations.user_refresh_token (the fake's last)")
    eq(count(ctx.db, "slack_bots"), 2, "slack_bots rows (history kept)")
    eq(count(ctx.db, "slack_oauth_locks"), 0, "refresh leases left behind")
    r = ctx.admin("token", TEAM_ID).expect(0)
    eq(r.out, last["bot"]["access_token"] + "\n", "`token` after refresh")


@test
def admin(ctx):
    fs = ctx.fs
    h = ctx.cgi()
    _, _, bot = flow(h, fs, "bot")
    _, _, org = flow(h, fs, "org")

    # check
    r = ctx.admin("check").expect(0)
    check(re.search(r"database: ok \(.*PostgreSQL.*schema version 1", r.out),
          "check: %r" % redact(r.out))
    check("***" in r.out and "127.0.0.1" in r.out,
          "check: the URI (password masked) is not shown: %r"
          % redact(r.out))
    no_password("`check` output", r.out + r.err)
    # check: a server that is not there
    down = PG.uri(ctx.db, port=free_port())
    r = ctx.admin("check", extra={"SLACK_OAUTH_DB": down}).expect(1)
    no_password("`check` (server down) output", r.out + r.err)
    check("database" in r.err and re.search(
        r"connect|refused|127\.0\.0\.1", r.err, re.I),
        "check (server down): unclear message: %r" % redact(r.err))
    check("\n" not in r.err.strip(), "check (server down): the message is "
          "not one line: %r" % redact(r.err))
    # a wrong password: exit 1, and neither password shown
    wrong = "wrong" + secrets.token_hex(8)
    add_secret(wrong, "wrong password")
    r = ctx.admin("check", extra={"SLACK_OAUTH_DB": ctx.uri.replace(
        PASSWORD, wrong)}).expect(1)
    check(wrong not in r.out + r.err, "check: the wrong password is shown")
    check("password" in r.err.lower() or "authentication" in r.err.lower(),
          "check (wrong password): unclear message: %r" % redact(r.err))

    # the password as a URI parameter is masked too
    r = ctx.admin("check", extra={"SLACK_OAUTH_DB": "postgresql://slack@"
                                  "127.0.0.1:%d/%s?password=%s&"
                                  "connect_timeout=5" % (PG.port, ctx.db,
                                                         PASSWORD)}).expect(0)
    no_password("`check` output (password= parameter)", r.out + r.err)
    check("password=***" in r.out, "check: password= not masked: %r"
          % redact(r.out))

    # list
    r = ctx.admin("list").expect(0)
    for want in (TEAM_ID, ENTERPRISE_ID):
        check(want in r.out, "list: %s missing: %r" % (want, redact(r.out)))
    for tok in (bot["access_token"], org["access_token"]):
        check(tok not in r.out, "list shows a token unmasked")
        check(tok[-4:] in r.out, "list: no masked token (…%s)" % "last 4")
    r = ctx.admin("list", "--json").expect(0)
    items = json.loads(r.out)
    if isinstance(items, dict):
        items = items.get("installations", items)
    check(isinstance(items, list) and len(items) == 2,
          "list --json: want 2 installations: %r" % redact(r.out)[:400])

    # token
    r = ctx.admin("token", TEAM_ID).expect(0)
    eq(r.out, bot["access_token"] + "\n", "token T…")
    r = ctx.admin("token", ENTERPRISE_ID).expect(0)
    eq(r.out, org["access_token"] + "\n", "token E… (the org-wide install)")
    r = ctx.admin("token", "--user", HUMAN_USER_ID, TEAM_ID).expect(1)
    eq(r.out, "", "token --user (no user token): stdout")
    r = ctx.admin("token", "T0NOBODY1").expect(1)
    eq(r.out, "", "token of an unknown team: stdout")

    # revoke
    fs.clear()
    r = ctx.admin("revoke", TEAM_ID).expect(0)
    revoked = [q["headers"].get("authorization", "")[7:]
               for q in fs.api_requests("auth.revoke")]
    check(bot["access_token"] in revoked,
          "revoke: auth.revoke not called with the bot token")
    eq(count(ctx.db, "slack_installations", "team_id = %s" % lit(TEAM_ID)),
       0, "slack_installations rows of the revoked team")
    eq(count(ctx.db, "slack_bots", "team_id = %s" % lit(TEAM_ID)), 0,
       "slack_bots rows of the revoked team")
    eq(count(ctx.db, "slack_installations",
             "enterprise_id = %s" % lit(ENTERPRISE_ID)), 1,
       "the org's rows after revoking the team")
    ctx.admin("token", TEAM_ID).expect(1)

    # purge
    now = int(time.time())
    before = count(ctx.db, "slack_oauth_states")
    PG.psql("insert into slack_oauth_states (hash, expires_at) select "
            "sha256(('x' || g || random())::bytea), %d - g from "
            "generate_series(10, 12) g" % now, ctx.db)
    PG.psql("insert into slack_oauth_states (hash, expires_at) values "
            "(sha256('fresh'::bytea), %d)" % (now + 3600), ctx.db)
    r = ctx.admin("purge").expect(0)
    check(re.search(r"\b3\b", r.out), "purge: count 3 not printed: %r"
          % r.out)
    eq(count(ctx.db, "slack_oauth_states"), before + 1,
       "states left after purge")
    r = ctx.admin("purge").expect(0)
    check(re.search(r"\b0\b", r.out), "purge again: 0 not printed: %r"
          % r.out)


def sqlite_rows(path, sql):
    c = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return c.execute(sql).fetchall()
    finally:
        c.close()


def same_time(a, b):
    ta = datetime.datetime.fromisoformat(a)
    tb = datetime.datetime.fromisoformat(b)
    return abs((ta - tb).total_seconds()) < 0.001


@test
def copy_between_backends(ctx):
    """`slack-oauth copy` SQLite -> PostgreSQL (an empty database, schema
    made by the copy) and back to a new SQLite file: every row, tokens and
    installed_at kept; a store that is not empty is refused; the password
    masked in the output; the copy serves the flow."""
    fs = ctx.fs
    lite = os.path.join(ctx.tmp, "from.db")
    h = Cgi(ctx.tmp, fs, lite, ctx.conf)
    exs = {shape: flow(h, fs, shape)[2]
           for shape in ("bot", "user_only", "org", "rotation")}
    cols = ("client_id, enterprise_id, team_id, user_id, bot_token, "
            "user_token, bot_refresh_token, user_refresh_token, "
            "bot_token_expires_at, user_token_expires_at, installed_at")
    order = " order by installed_at, bot_token, user_token"
    want_i = sqlite_rows(lite, "select %s from slack_installations%s"
                         % (cols, order))
    want_b = sqlite_rows(lite, "select client_id, team_id, bot_token, "
                         "installed_at from slack_bots" + order[:-12])
    eq(len(want_i), 4, "SQLite installation rows")

    r = ctx.admin("copy", lite, ctx.uri).expect(0)
    no_password("`copy` output", r.out + r.err)
    check("***" in r.out and "copied 4 installation rows and 3 bot rows"
          in r.out, "copy: %r" % redact(r.out))

    def norm(rows):
        return [tuple(None if v is None else str(v) for v in row)
                for row in rows]
    got_i = PG.psql("select %s from slack_installations%s" % (
        cols.replace("installed_at", "to_char(installed_at, "
                     "'YYYY-MM-DD HH24:MI:SS.US')"), order), ctx.db)
    eq(len(got_i), len(want_i), "PostgreSQL installation rows")
    for g, w in zip(norm(got_i), norm(want_i)):
        eq(g[:-1], w[:-1], "a copied installation row")
        check(same_time(g[-1], w[-1]), "installed_at %s copied as %s"
              % (w[-1], g[-1]))
    got_b = PG.psql("select client_id, team_id, bot_token, to_char("
                    "installed_at, 'YYYY-MM-DD HH24:MI:SS.US') from "
                    "slack_bots" + order[:-12], ctx.db)
    eq([g[:3] for g in norm(got_b)], [w[:3] for w in norm(want_b)],
       "copied bot rows")
    b = sdk_bot(ctx.db, "", TEAM_ID)
    eq(b["bot_token"], exs["rotation"]["access_token"],
       "the SDK's find_bot on the copy: the newest")
    r = ctx.admin("token", ENTERPRISE_ID).expect(0)
    eq(r.out, exs["org"]["access_token"] + "\n", "token E… on the copy")

    r = ctx.admin("copy", lite, ctx.uri).expect(1)
    no_password("`copy` (not empty) output", r.out + r.err)
    check("empty" in r.err, "copy into a store with rows: %r"
          % redact(r.err))

    back = os.path.join(ctx.tmp, "back.db")
    r = ctx.admin("copy", PG.uri(ctx.db, "postgres"), back).expect(0)
    no_password("`copy` (to SQLite) output", r.out + r.err)
    eq(os.stat(back).st_mode & 0o777, 0o600, "mode of the SQLite copy")
    got = sqlite_rows(back, "select %s from slack_installations%s"
                      % (cols, order))
    eq(len(got), 4, "installation rows copied back")
    for g, w in zip(norm(got), norm(want_i)):
        eq(g[:-1], w[:-1], "an installation row copied back")
        check(same_time(g[-1], w[-1]), "installed_at %s copied back as %s"
              % (w[-1], g[-1]))
    # The copy serves: a flow on the PostgreSQL database.
    flow(ctx.cgi(), fs, "bot")


def check_503(a, what):
    check(a.status == 503, "%s: want 503 while the server is down, %r"
          % (what, a))
    check(a.header("Retry-After"), "%s: 503 without Retry-After" % what)
    lines = [ln for ln in a.log.splitlines() if "status=503" in ln]
    check(lines, "%s: no log line with status=503: %s" % (what,
                                                        redact(a.log)))
    no_password(what + " log", a.log)
    no_password(what + " page", a.body)
    return lines[0]


@test
def server_restart(ctx):
    """FastCGI processes (kept connections) serve across `pg_ctl restart
    -m fast`; while the server is stopped, 503 + Retry-After and a log line
    that says why, without the password; the first request after it is back
    succeeds."""
    fs = ctx.fs
    f = ctx.fcgi()
    c = ctx.cgi()
    pids = f.pids()
    flow(f, fs, "bot")
    PG.restart()
    t0 = time.time()
    nb = count(ctx.db, "slack_bots")
    _, _, ex = flow(f, fs, "bot")     # the very next requests: 200
    check_rows(ctx.db, "bot", ex, t0, nb)
    flow(c, fs, "bot")

    # Down: a state issued before, a code from Slack.
    state = install(f)
    code = fs.issue_code()
    add_secrets(fs.secrets())
    n_ex = len(fs.exchanges)
    late = []
    PG.stop()
    try:
        notes = []
        line = check_503(redirect(f, state, code), "redirect (FastCGI)")
        notes.append(line)
        line = check_503(redirect(c, state, code), "redirect (CGI)")
        notes.append(line)
        line = check_503(c.request("install"), "install (CGI)")
        notes.append(line)
        a = f.request("install")
        if a.status != 200:     # a FastCGI install that has the key may
            notes.append(check_503(a, "install (FastCGI)"))   # answer 200
        unclear = [ln for ln in notes if not re.search(
            r"PostgreSQL|connect|127\.0\.0\.1", ln)]
        if unclear:     # reported at the end, after the rest was tried
            late.append("%d of %d log lines of a 503 do not say that the "
                        "database is unreachable: %s" % (
                            len(unclear), len(notes), " | ".join(unclear)))
        eq(len(fs.exchanges), n_ex, "codes exchanged while the database "
           "was down")
        r = ctx.admin("check").expect(1)
        no_password("`check` (server stopped)", r.out + r.err)
    finally:
        PG.start()
    # Back: the same state and code now succeed (nothing was consumed),
    # on the same processes.
    a = redirect(f, state, code)
    check(a.status == 200, "first redirect after the server is back: %r" % a)
    add_secrets(fs.secrets())
    flow(f, fs, "org")
    flow(c, fs, "bot")
    eq(f.pids(), pids, "FastCGI processes (they must survive)")
    for prog, s in f.srv.items():
        check(s.alive(), "%s FastCGI process died: %r" % (prog, s.dead()))
    check(not late, "; ".join(late))


@test
def concurrent_first_use(ctx):
    """8 processes at once on an empty database, three times: every one
    answers 200, the schema (version 1, one state key) is made once, and
    every state they issued is accepted."""
    fs = ctx.fs
    for rnd in range(3):
        db = ctx.db if rnd == 0 else PG.new_db("first_use")
        uri = PG.uri(db)
        env = base_env()
        env.update(settings(fs, uri, ctx.conf))
        env.update(cgi_params("install", "", None))
        procs = [subprocess.Popen([INSTALL], env=env, cwd=ctx.tmp,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
                 for _ in range(8)]
        states = []
        for p in procs:
            out, err = p.communicate(timeout=60)
            err = keep_output("stderr of slack-install (first use)", err)
            keep_output("stdout of slack-install (first use)", out, True)
            no_sanitizer("slack-install", err)
            st, headers, _ = parse_cgi_response(out)
            check(p.returncode == 0 and st in (200, 302),
                  "round %d: slack-install: exit %d, status %d: %s"
                  % (rnd, p.returncode, st, redact(err or "")[-400:]))
            a = Answer(st, headers, b"", err)
            states.append(add_state(state_of(a)))
        eq(PG.psql("select id, version from slack_oauth_meta", db),
           [["1", "1"]], "round %d: slack_oauth_meta" % rnd)
        eq(count(db, "slack_oauth_keys"), 1, "round %d: state keys" % rnd)
        h = Cgi(ctx.tmp, fs, uri, ctx.conf)
        fs.shape = "bot"
        for s in states:
            a = redirect(h, s, fs.issue_code())
            check(a.status == 200, "round %d: a state issued during the "
                  "first use was refused: %r" % (rnd, a))
        add_secrets(fs.secrets())


class LosingProxy:
    """A TCP proxy to the server that, once, forwards a statement holding
    marker and then loses the server's answer, closing the connection: a
    statement that ran, whose reply never came. Counts the statements
    holding marker that went through."""

    def __init__(self, port, marker):
        self.port, self.marker = port, marker
        self.seen = 0
        self.fired = False
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.listen_port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.port))
            state = {"lose": False}
            threading.Thread(target=self._up, args=(c, u, state),
                             daemon=True).start()
            threading.Thread(target=self._down, args=(c, u, state),
                             daemon=True).start()

    def _up(self, c, u, state):
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                with self.lock:
                    if self.marker in d:
                        self.seen += 1
                        if not self.fired:
                            self.fired = state["lose"] = True
                u.sendall(d)
        except OSError:
            pass

    def _down(self, c, u, state):
        try:
            while True:
                d = u.recv(65536)
                if not d:
                    break
                if state["lose"]:
                    time.sleep(0.2)      # the statement has run; its answer
                    break                # is lost with the connection
                c.sendall(d)
        except OSError:
            pass
        for x in (c, u):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            x.close()

    def close(self):
        self.lsock.close()


@test
def lost_reply_not_resent(ctx):
    """The connection lost after the statement that records a state as
    used ran but before its answer came: the redirect answers 503, and the
    statement was sent once (sent again, it came back 'already used' and
    a real user's first attempt got invalid_state)."""
    fs = ctx.fs
    proxy = LosingProxy(PG.port, b"INSERT INTO slack_oauth_states")
    try:
        uri = "postgresql://slack:%s@127.0.0.1:%d/%s?connect_timeout=5&" \
              "sslmode=disable" % (PASSWORD, proxy.listen_port, ctx.db)
        h = Cgi(ctx.tmp, fs, uri, ctx.conf)
        fs.shape = "bot"
        state = install(h)
        code = fs.issue_code()
        used = count(ctx.db, "slack_oauth_states")
        a = redirect(h, state, code)
        add_secrets(fs.secrets())
        check(a.status == 503, "the lost reply: want 503, %r" % a)
        eq(proxy.seen, 1, "statements recording the state sent")
        eq(count(ctx.db, "slack_oauth_states"), used + 1,
           "states recorded (the statement ran)")
        eq(len(fs.exchanges), 0, "codes exchanged")
    finally:
        proxy.close()


SIGNING_SECRET = secrets.token_hex(16)
add_secret(SIGNING_SECRET, "signing secret")


def event(ctx, envelope):
    """One signed event to slack-events as CGI, as Slack sends it."""
    body = json.dumps(envelope).encode()
    headers = sign_event(SIGNING_SECRET, body)
    add_secret(headers["X-Slack-Signature"], "request signature")
    env = base_env()
    env.update(settings(ctx.fs, ctx.uri, ctx.conf))
    env.update({"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "POST",
                "CONTENT_TYPE": "application/json",
                "CONTENT_LENGTH": str(len(body)),
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "HTTP_X_SLACK_REQUEST_TIMESTAMP":
                    headers["X-Slack-Request-Timestamp"],
                "HTTP_X_SLACK_SIGNATURE": headers["X-Slack-Signature"]})
    p = subprocess.run([EVENTS], input=body, env=env, capture_output=True,
                       timeout=60, cwd=ctx.tmp)
    log = keep_output("stderr of slack-events (CGI)", p.stderr) or ""
    keep_output("stdout of slack-events (CGI)", p.stdout)
    no_sanitizer("slack-events", log)
    check(p.returncode == 0, "slack-events: exit %d" % p.returncode)
    a = Answer(*parse_cgi_response(p.stdout), log)
    check(a.status == 200 and a.body == "", "event %s: want an empty 200, %r"
          % (envelope["event"]["type"], a))
    return a


@test
def events(ctx):
    """slack-events on PostgreSQL: app_uninstalled for a workspace and an
    org, tokens_revoked of a user and of the bot, a late event kept from a
    reinstall; each checked with the SDK's queries."""
    h, fs, db = ctx.cgi(), ctx.fs, ctx.db
    flow(h, fs, "bot")
    flow(h, fs, "org")
    a = event(ctx, event_envelope({"type": "app_uninstalled"}))
    check('detail="deleted 2 rows"' in a.log, "log: %s" % redact(a.log))
    eq(sdk_installation(db, "", TEAM_ID), None, "the workspace, uninstalled")
    eq(sdk_bot(db, "", TEAM_ID), None, "its bot, uninstalled")
    check(sdk_installation(db, ENTERPRISE_ID, "") is not None,
          "the org went with the workspace")
    event(ctx, event_envelope({"type": "app_uninstalled"}, team_id="T0WS0001",
                              enterprise_id=ENTERPRISE_ID, is_org=True))
    eq(count(db, "slack_installations"), 0, "rows after both uninstalls")
    eq(count(db, "slack_bots"), 0, "bot rows after both uninstalls")

    flow(h, fs, "rotation")           # a bot and a user token
    event(ctx, event_envelope({"type": "tokens_revoked",
                               "tokens": {"bot": [BOT_USER_ID]}}))
    eq(sdk_bot(db, "", TEAM_ID), None, "the bot after tokens_revoked bot")
    row = sdk_installation(db, "", TEAM_ID)
    check(row is not None and row["bot_token"] is None and row["user_token"],
          "the installation keeps its user token, loses the bot's")
    eq(count(db, "slack_installations", "oauth_response is not null"), 0,
       "rows still holding Slack's answer, with the bot token in it")
    event(ctx, event_envelope({"type": "tokens_revoked",
                               "tokens": {"oauth": [HUMAN_USER_ID]}}))
    eq(sdk_installation(db, "", TEAM_ID), None, "after tokens_revoked oauth")

    flow(h, fs, "bot")
    PG.psql("update slack_installations set installed_at = installed_at - "
            "interval '600 seconds'; update slack_bots set installed_at = "
            "installed_at - interval '600 seconds'", db)
    flow(h, fs, "bot")                # the reinstall
    a = event(ctx, event_envelope({"type": "app_uninstalled"},
                                  event_time=int(time.time()) - 300))
    check('detail="deleted 2 rows"' in a.log, "late event: %s"
          % redact(a.log))
    check(sdk_bot(db, "", TEAM_ID) is not None, "the reinstall's bot went")
    eq(count(db, "slack_installations"), 1, "rows left: the reinstall")


@test
def sqlite_never_maps_libpq(ctx):
    """A FastCGI slack-install on SQLite: no libpq in /proc/PID/maps after a
    request; on PostgreSQL (a postgres:// URI): libpq.so.5 mapped."""
    fs = ctx.fs
    for kind, uri in (("sqlite", os.path.join(ctx.tmp, "slack-oauth.db")),
                      ("postgresql", PG.uri(ctx.db, "postgres"))):
        env = base_env()
        env.update(settings(fs, uri, ctx.conf))
        d = os.path.join(ctx.tmp, "maps-" + kind)
        os.makedirs(d)
        srv = FcgiServer(INSTALL, env=env, sock_dir=d, cwd=ctx.tmp)
        try:
            wait_for(lambda: os.path.exists(srv.path), "FastCGI socket")
            st, headers, body, _ = srv.request(cgi_params("install", "", None))
            keep_output("answer of slack-install (%s)" % kind, body, True)
            check(st == 200, "%s: install: status %d: %s" % (
                kind, st, redact(srv.stderr_text())[-300:]))
            add_state(state_of(Answer(st, headers, body, "")))
            libs = sorted(p for p in mapped_files(srv.procs[0].pid)
                          if re.search(r"/libpq[.-][^/]*$", p))
            if kind == "sqlite":
                eq(libs, [], "libpq mapped by a SQLite deployment")
            else:
                check(any("libpq.so.5" in x for x in libs),
                      "PostgreSQL: libpq.so.5 not mapped (%r)" % libs)
        finally:
            srv.stop()
            log = keep_output("log of slack-install (%s)" % kind,
                              srv.stderr_text())
            no_sanitizer("slack-install (%s)" % kind, log)


def final_scan():
    """The password, tokens, codes, client secret: in no output; states only
    in the install endpoint's answers."""
    bad = []
    for where, text, states_ok in OUTPUTS:
        if PASSWORD in text:
            bad.append("%s: the database password" % where)
        found = leaked(text, states=not states_ok)
        if found:
            bad.append("%s: %s" % (where, ", ".join(found)))
    check(len(OUTPUTS) > 20, "only %d outputs were scanned" % len(OUTPUTS))
    check(not bad, "secrets in output: " + "; ".join(bad[:6]))


# ----------------------------------------------------------------- runner
def missing():
    if os.geteuid() != 0:
        return "must run as root (PostgreSQL runs as postgres, nginx as www-data)"
    if pg_bin_dir() is None:
        return "no PostgreSQL server in /usr/lib/postgresql/*/bin (make deploy-deps)"
    try:
        pwd.getpwnam("postgres")
        pwd.getpwnam("www-data")
    except KeyError as e:
        return "no user %s" % e
    need = ["nginx", "spawn-fcgi", "openssl", "psql"]
    gone = [b for b in need if not shutil.which(b) and
            not os.access(os.path.join(pg_bin_dir(), b), os.X_OK)]
    if gone:
        return "missing " + " ".join(gone)
    for p in (INSTALL, REDIRECT, ADMIN):
        if not os.access(p, os.X_OK):
            return "%s is not built (make)" % p
    return None


def main(argv):
    global PG
    only = [argv[i + 1] for i in range(len(argv) - 1) if argv[i] == "-k"]
    run = Runner()
    why = missing()
    if why:
        run.fail("setup", why)
        return run.finish()

    def on_signal(sig, frame):
        raise SystemExit(128 + sig)
    signal.signal(signal.SIGTERM, on_signal)
    t_all = time.monotonic()
    PG = Postgres(pg_bin_dir())
    try:
        try:
            PG.setup()
        except TestFailure as e:
            run.fail("setup: PostgreSQL", e)
            return run.finish()
        for fn in TESTS:
            name = fn.__name__
            if only and not any(o in name for o in only):
                continue
            t0 = time.monotonic()
            ctx = None
            try:
                ctx = getattr(fn, "ctx", lambda: Ctx(name))()
                if not PG.running:
                    PG.start()
                fn(ctx)
                run.ok("%s (%.1fs)" % (name, time.monotonic() - t0))
            except Skip as e:
                run.skip(name, e)
            except TestFailure as e:
                run.fail(name, redact(str(e)).replace("\n", " ")[:1500])
            except Exception as e:  # noqa: BLE001
                import traceback
                tb = traceback.format_exc().strip().splitlines()
                run.fail(name, redact("%s: %s [%s]" % (
                    type(e).__name__, e, " | ".join(tb[-4:-1]))))
            finally:
                if ctx is not None:
                    ctx.close()
        for h in HOSTS.values():
            h.stop()
        if SharedCtx.inst is not None:
            Ctx.close(SharedCtx.inst)
        if not only or any(o in "no_secret_in_any_output" for o in only):
            try:
                final_scan()
                run.ok("no_secret_in_any_output (%d outputs)" % len(OUTPUTS))
            except TestFailure as e:
                run.fail("no_secret_in_any_output", e)
    finally:
        for h in HOSTS.values():
            if True:
                try:
                    h.cleanup()
                except Exception:  # noqa: BLE001
                    pass
        if SharedCtx.inst is not None:
            try:
                Ctx.close(SharedCtx.inst)
            except Exception:  # noqa: BLE001
                pass
        if CERT_DIR[0]:
            shutil.rmtree(CERT_DIR[0], ignore_errors=True)
        PG.cleanup()
        if KEEP:
            print("#   kept " + PG.dir)
    sys.stderr.write("# pg.py: %.1f s\n" % (time.monotonic() - t_all))
    return run.finish()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
