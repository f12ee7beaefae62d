#!/usr/bin/env python3
"""Tests of the admin command bin/slack-oauth (issue 4), and of the promise
that our tables are the Python Slack SDK's SQLite3InstallationStore tables.

Installations are made through the real binaries, as CGI:
cgi-bin/slack-install issues the state, tests/fake_slack.py issues a code,
cgi-bin/slack-oauth-redirect exchanges it and stores the installation. The
admin command then runs against the same fake Slack.

    python3 tests/admin.py               # everything
    python3 tests/admin.py -k refresh    # tests whose name contains "refresh"
    CGI_BIN=build/asan/cgi-bin BIN_DIR=build/asan/bin python3 tests/admin.py

Prints `ok - name` or `FAIL - name: reason` per test and, last, `N passed,
N failed`; exits 1 when any test failed. Python 3 standard library only.
Secrets (tokens, refresh tokens, codes, webhook URLs, the client secret)
are never printed: failure messages are redacted.
"""

import base64
import datetime
import html
import json
import os
import re
import secrets
import shutil
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

from fake_slack import (APP_ID, BOT_ID, BOT_USER_ID, ENTERPRISE_ID,  # noqa: E402
                        ENTERPRISE_NAME, ENTERPRISE_URL, HUMAN_USER_ID,
                        ROTATION_TTL, TEAM_ID, TEAM_NAME, FakeSlack)
from fcgi_client import parse_cgi_response  # noqa: E402
from testlib import (Runner, Skip, TestFailure, add_secret,  # noqa: E402
                     add_secrets, add_state, check, eq, eq_opt, leaked,
                     record_db_modes, record_output, redact)
from testlib import short as _short  # noqa: E402


def _dir(var, default):
    d = os.environ.get(var) or os.path.join(ROOT, default)
    return d if os.path.isabs(d) else os.path.join(ROOT, d)


CGI_BIN = _dir("CGI_BIN", "cgi-bin")
BIN_DIR = _dir("BIN_DIR", "bin")
INSTALL = os.path.join(CGI_BIN, "slack-install")
REDIRECT = os.path.join(CGI_BIN, "slack-oauth-redirect")
ADMIN = os.path.join(BIN_DIR, "slack-oauth")

CLIENT_ID = "1234567890.9876543210"
CLIENT_SECRET = "cs" + secrets.token_hex(16)
BOT_SCOPES = "chat:write,commands"
USER_SCOPES = "search:read"
COOKIE = "slack-app-oauth-state"
PASSTHROUGH_ENV = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
                   "ASAN_SYMBOLIZER_PATH")
INSTALLED_AT_RE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?$")
SANITIZER_RE = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:|"
                          r"UndefinedBehaviorSanitizer")

# The Python Slack SDK's queries (slack_sdk/oauth/installation_store/sqlite3),
# verbatim.
SDK_FIND_INSTALLATION = (
    "select app_id, enterprise_id, enterprise_name, enterprise_url, team_id, "
    "team_name, bot_token, bot_id, bot_user_id, bot_scopes, bot_refresh_token, "
    "bot_token_expires_at, user_id, user_token, user_scopes, "
    "user_refresh_token, user_token_expires_at, incoming_webhook_url, "
    "incoming_webhook_channel, incoming_webhook_channel_id, "
    "incoming_webhook_configuration_url, is_enterprise_install, token_type, "
    "installed_at from slack_installations where client_id = ? and "
    "enterprise_id = ? and team_id = ? order by installed_at desc limit 1")
SDK_FIND_INSTALLATION_USER = (
    "select app_id, enterprise_id, enterprise_name, enterprise_url, team_id, "
    "team_name, bot_token, bot_id, bot_user_id, bot_scopes, bot_refresh_token, "
    "bot_token_expires_at, user_id, user_token, user_scopes, "
    "user_refresh_token, user_token_expires_at, incoming_webhook_url, "
    "incoming_webhook_channel, incoming_webhook_channel_id, "
    "incoming_webhook_configuration_url, is_enterprise_install, token_type, "
    "installed_at from slack_installations where client_id = ? and "
    "enterprise_id = ? and team_id = ? and user_id = ? order by installed_at "
    "desc limit 1")
SDK_FIND_BOT = (
    "select app_id, enterprise_id, enterprise_name, team_id, team_name, "
    "bot_token, bot_id, bot_user_id, bot_scopes, bot_refresh_token, "
    "bot_token_expires_at, is_enterprise_install, installed_at from slack_bots "
    "where client_id = ? and enterprise_id = ? and team_id = ? order by "
    "installed_at desc limit 1")
# find_installation(user_id=…) then re-reads the latest bot token.
SDK_LATEST_BOT = (
    "select bot_token, bot_id, bot_user_id, bot_scopes, bot_refresh_token, "
    "bot_token_expires_at from slack_installations where client_id = ? and "
    "enterprise_id = ? and team_id = ? and bot_token is not null order by "
    "installed_at desc limit 1")
# SQLite3InstallationStore.save() and save_bot(), verbatim (no installed_at:
# the column default applies).
SDK_SAVE = """
                insert into slack_installations (
                    client_id,
                    app_id,
                    enterprise_id,
                    enterprise_name,
                    enterprise_url,
                    team_id,
                    team_name,
                    bot_token,
                    bot_id,
                    bot_user_id,
                    bot_scopes,
                    bot_refresh_token,  -- since v3.8
                    bot_token_expires_at,  -- since v3.8
                    user_id,
                    user_token,
                    user_scopes,
                    user_refresh_token,  -- since v3.8
                    user_token_expires_at,  -- since v3.8
                    incoming_webhook_url,
                    incoming_webhook_channel,
                    incoming_webhook_channel_id,
                    incoming_webhook_configuration_url,
                    is_enterprise_install,
                    token_type
                )
                values
                (
                    ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
                    ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
                );
                """
SDK_SAVE_BOT = """
                insert into slack_bots (
                    client_id,
                    app_id,
                    enterprise_id,
                    enterprise_name,
                    team_id,
                    team_name,
                    bot_token,
                    bot_id,
                    bot_user_id,
                    bot_scopes,
                    bot_refresh_token,  -- since v3.8
                    bot_token_expires_at,  -- since v3.8
                    is_enterprise_install
                )
                values
                (
                    ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
                );
                """
# SQLite3InstallationStore.create_tables(), verbatim.
SDK_CREATE_TABLES = ["""
            create table slack_installations (
                id integer primary key autoincrement,
                client_id text not null,
                app_id text not null,
                enterprise_id text not null default '',
                enterprise_name text,
                enterprise_url text,
                team_id text not null default '',
                team_name text,
                bot_token text,
                bot_id text,
                bot_user_id text,
                bot_scopes text,
                bot_refresh_token text,  -- since v3.8
                bot_token_expires_at datetime,  -- since v3.8
                user_id text not null,
                user_token text,
                user_scopes text,
                user_refresh_token text,  -- since v3.8
                user_token_expires_at datetime,  -- since v3.8
                incoming_webhook_url text,
                incoming_webhook_channel text,
                incoming_webhook_channel_id text,
                incoming_webhook_configuration_url text,
                is_enterprise_install boolean not null default 0,
                token_type text,
                installed_at datetime not null default current_timestamp
            );
            """, """
            create index slack_installations_idx on slack_installations (
                client_id,
                enterprise_id,
                team_id,
                user_id,
                installed_at
            );
            """, """
            create table slack_bots (
                id integer primary key autoincrement,
                client_id text not null,
                app_id text not null,
                enterprise_id text not null default '',
                enterprise_name text,
                team_id text not null default '',
                team_name text,
                bot_token text not null,
                bot_id text not null,
                bot_user_id text not null,
                bot_scopes text,
                bot_refresh_token text,  -- since v3.8
                bot_token_expires_at datetime,  -- since v3.8
                is_enterprise_install boolean not null default 0,
                installed_at datetime not null default current_timestamp
            );
            """, """
            create index slack_bots_idx on slack_bots (
                client_id,
                enterprise_id,
                team_id,
                installed_at
            );
            """]
INST_KEYS = ("app_id enterprise_id enterprise_name enterprise_url team_id "
             "team_name bot_token bot_id bot_user_id bot_scopes "
             "bot_refresh_token bot_token_expires_at user_id user_token "
             "user_scopes user_refresh_token user_token_expires_at "
             "incoming_webhook_url incoming_webhook_channel "
             "incoming_webhook_channel_id incoming_webhook_configuration_url "
             "is_enterprise_install token_type installed_at").split()
BOT_KEYS = ("app_id enterprise_id enterprise_name team_id team_name bot_token "
            "bot_id bot_user_id bot_scopes bot_refresh_token "
            "bot_token_expires_at is_enterprise_install installed_at").split()

# ----------------------------------------------------------- secret keeping
# The registry, redaction and the leak scan are testlib's.
add_secret(CLIENT_SECRET, "client secret")
SCANNED = [0]


# -------------------------------------------------------------- the world
class Run:
    """One run of the admin command."""

    def __init__(self, args, rc, out, err, elapsed):
        self.args, self.rc, self.out, self.err = args, rc, out, err
        self.elapsed = elapsed

    def __repr__(self):
        return "slack-oauth %s: exit %s, stdout %s, stderr %s" % (
            " ".join(self.args), self.rc, _short(self.out, 400),
            _short(self.err, 400))


class FakeSlackRec(FakeSlack):
    """The fake, also recording each successful refresh answer (to know the
    token it issued last)."""

    def __init__(self, *a, **kw):
        FakeSlack.__init__(self, *a, **kw)
        self.refreshes = []     # [(refresh token spent, answer dict)]

    def oauth_v2_access(self, headers, form):
        resp = FakeSlack.oauth_v2_access(self, headers, form)
        if (form.get("grant_type", [None])[0] == "refresh_token"
                and resp.get("ok")):
            with self._lock:
                self.refreshes.append((form.get("refresh_token", [None])[0],
                                       resp))
        return resp

    rotation_context = None     # "org" / "grid_workspace": where a
                                # rotating install happens

    def _context_for_shape(self, shape):
        if shape == "rotation" and self.rotation_context:
            shape = self.rotation_context
        return FakeSlack._context_for_shape(self, shape)

    def revoke_now(self, token):
        """Revokes a token at the fake, as if done elsewhere."""
        r = self.auth_revoke({"authorization": "Bearer " + token}, {})
        check(r.get("ok"), "fake: could not revoke a token beforehand")


def _shell_umask():
    os.umask(0o022)     # an administrator's usual shell


class Ctx:
    def __init__(self, name):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix="admin-")
        self.fs = FakeSlackRec(CLIENT_ID, CLIENT_SECRET).start()
        self.conf = os.path.join(self.tmp, "slack-oauth.conf")
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        os.chmod(self.conf, 0o600)
        self.db = os.path.join(self.tmp, "slack-oauth.db")
        self.settings = {
            "SLACK_OAUTH_CONFIG": self.conf,
            "SLACK_OAUTH_DB": self.db,
            "SLACK_CLIENT_ID": CLIENT_ID,
            "SLACK_CLIENT_SECRET": CLIENT_SECRET,
            "SLACK_SCOPES": BOT_SCOPES,
            "SLACK_USER_SCOPES": USER_SCOPES,
            "SLACK_API_URL": self.fs.api_url,
            "SLACK_AUTHORIZE_URL": self.fs.authorize_url,
        }
        self.outputs = []       # (what, text) that must hold no secret
        self.extra_secrets = set()
        self.db_mode_exempt = False  # the test set the database's mode

    def close(self):
        self.fs.stop()
        record_db_modes(self.tmp, self.name, exempt=self.db_mode_exempt)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def base_env(self):
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
        for k in PASSTHROUGH_ENV:
            if k in os.environ:
                env[k] = os.environ[k]
        return env

    def secret(self, v):
        self.extra_secrets.add(v)
        add_secrets([v])
        return v

    # --------------------------------------------------------- the CGIs
    def cgi(self, prog, query="", cookie=None, extra=None):
        env = self.base_env()
        env.update(self.settings)
        env.update({"GATEWAY_INTERFACE": "CGI/1.1",
                    "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_METHOD": "GET",
                    "QUERY_STRING": query, "SERVER_NAME": "localhost",
                    "SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1",
                    "HTTP_HOST": "localhost"})
        if cookie is not None:
            env["HTTP_COOKIE"] = cookie
        env.update(extra or {})
        if not os.access(prog, os.X_OK):
            raise TestFailure("binary missing: %s" % prog)
        try:
            p = subprocess.run([prog], env=env, capture_output=True,
                               timeout=30, cwd=self.tmp)
        except subprocess.TimeoutExpired:
            raise TestFailure("%s did not finish in 30 s" % prog)
        err = p.stderr.decode("utf-8", "replace")
        self.outputs.append(("stderr of %s" % os.path.basename(prog), err))
        record_output("%s: stdout of %s" % (self.name, os.path.basename(prog)),
                      p.stdout, states_ok=prog == INSTALL)
        check(p.returncode == 0 and not SANITIZER_RE.search(err),
              "%s: exit %d; stderr: %s" % (os.path.basename(prog),
                                           p.returncode, err[-800:]))
        return parse_cgi_response(p.stdout), err

    def install(self, shape):
        """One full flow through the real binaries; returns the exchange
        (the fake's oauth.v2.access answer)."""
        self.fs.shape = shape
        (status, headers, _), log = self.cgi(
            INSTALL, extra={"SLACK_DIRECT_INSTALL": "1"})
        check(status == 302, "slack-install: status %d; log: %s"
              % (status, log[-400:]))
        state = None
        for k, v in headers:
            if k.lower() == "set-cookie":
                m = re.match(re.escape(COOKIE) + r"=([^;]+);", v)
                if m:
                    state = m.group(1)
        check(state, "slack-install set no state cookie")
        add_state(state)
        self.last_state = state
        n = len(self.fs.exchanges)
        code = self.fs.issue_code()
        (status, headers, body), log = self.cgi(
            REDIRECT, query=urllib.parse.urlencode(
                {"code": code, "state": state}),
            cookie="%s=%s" % (COOKIE, state))
        check(status == 200, "slack-oauth-redirect (%s): status %d; log: %s"
              % (shape, status, redact(log)[-400:]))
        check(len(self.fs.exchanges) == n + 1,
              "the redirect did not exchange the code")
        add_secrets(self.fs.secrets())
        return self.fs.last_exchange

    # --------------------------------------------------- the admin command
    def admin(self, *args, env=None, unset=(), extra=None, timeout=60):
        e = self.base_env()
        e.update(self.settings)
        for k in unset:
            e.pop(k, None)
        e.update(extra or {})
        if env is not None:
            e = env
        if not os.access(ADMIN, os.X_OK):
            raise TestFailure("binary missing: %s" % ADMIN)
        t0 = time.time()
        try:
            p = subprocess.run([ADMIN] + list(args), env=e,
                               capture_output=True, timeout=timeout,
                               cwd=self.tmp, preexec_fn=_shell_umask)
        except subprocess.TimeoutExpired:
            raise TestFailure("slack-oauth %s did not finish in %d s"
                              % (" ".join(args), timeout))
        return self.finish(args, p.returncode, p.stdout, p.stderr,
                           time.time() - t0)

    def spawn(self, *args):
        e = self.base_env()
        e.update(self.settings)
        return subprocess.Popen([ADMIN] + list(args), env=e,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=self.tmp)

    def finish(self, args, rc, out, err, elapsed=0.0):
        out = out.decode("utf-8", "replace")
        err = err.decode("utf-8", "replace")
        add_secrets(self.fs.secrets())
        r = Run(list(args), rc, out, err, elapsed)
        what = "slack-oauth " + " ".join(args)
        self.outputs.append(("stderr of " + what, err))
        if not args or args[0] != "token":
            self.outputs.append(("stdout of " + what, out))
        if SANITIZER_RE.search(err):
            raise TestFailure("%s: sanitizer report: %s"
                              % (what, redact(err)[-1500:]))
        if rc is not None and rc < 0:
            raise TestFailure("%s: killed by signal %d; stderr: %s"
                              % (what, -rc, redact(err)[-600:]))
        return r

    def expect(self, r, rc, what=None):
        if r.rc != rc:
            raise TestFailure("%s: expected exit %d: %s"
                              % (what or "slack-oauth " + " ".join(r.args),
                                 rc, redact(repr(r))))

    # ------------------------------------------------------------ the DB
    def con(self):
        c = sqlite3.connect(self.db, timeout=10)
        c.row_factory = sqlite3.Row
        return c

    def sdk_installation(self, enterprise_id, team_id, user_id=None,
                         is_enterprise_install=False):
        """SQLite3InstallationStore.find_installation's query, keys as the
        SDK computes them."""
        if is_enterprise_install or team_id is None:
            team_id = ""
        c = self.con()
        try:
            if user_id is None:
                row = c.execute(SDK_FIND_INSTALLATION,
                                [CLIENT_ID, enterprise_id or "",
                                 team_id]).fetchone()
            else:
                row = c.execute(SDK_FIND_INSTALLATION_USER,
                                [CLIENT_ID, enterprise_id or "", team_id,
                                 user_id]).fetchone()
            return dict(row) if row else None
        finally:
            c.close()

    def sdk_bot(self, enterprise_id, team_id, is_enterprise_install=False):
        if is_enterprise_install or team_id is None:
            team_id = ""
        c = self.con()
        try:
            row = c.execute(SDK_FIND_BOT, [CLIENT_ID, enterprise_id or "",
                                           team_id or ""]).fetchone()
            return dict(row) if row else None
        finally:
            c.close()

    def sdk_latest_bot(self, enterprise_id, team_id):
        c = self.con()
        try:
            row = c.execute(SDK_LATEST_BOT, [CLIENT_ID, enterprise_id or "",
                                             team_id or ""]).fetchone()
            return dict(row) if row else None
        finally:
            c.close()

    def rows(self, table, where="1", args=()):
        c = self.con()
        try:
            return [dict(r) for r in c.execute(
                "select * from %s where %s order by id" % (table, where),
                list(args))]
        finally:
            c.close()

    def sdk_save(self, inst):
        """SQLite3InstallationStore.save(installation), statement for
        statement; inst is a dict of Installation attributes."""
        c = sqlite3.connect(self.db, timeout=10)
        try:
            with c:
                c.execute(SDK_SAVE, [
                    CLIENT_ID,
                    inst["app_id"],
                    inst.get("enterprise_id") or "",
                    inst.get("enterprise_name"),
                    inst.get("enterprise_url"),
                    inst.get("team_id") or "",
                    inst.get("team_name"),
                    inst.get("bot_token"),
                    inst.get("bot_id"),
                    inst.get("bot_user_id"),
                    ",".join(inst.get("bot_scopes") or []),
                    inst.get("bot_refresh_token"),
                    inst.get("bot_token_expires_at"),
                    inst["user_id"],
                    inst.get("user_token"),
                    ",".join(inst["user_scopes"]) if inst.get("user_scopes")
                    else None,
                    inst.get("user_refresh_token"),
                    inst.get("user_token_expires_at"),
                    inst.get("incoming_webhook_url"),
                    inst.get("incoming_webhook_channel"),
                    inst.get("incoming_webhook_channel_id"),
                    inst.get("incoming_webhook_configuration_url"),
                    1 if inst.get("is_enterprise_install") else 0,
                    inst.get("token_type"),
                ])
            if inst.get("bot_token") is None:
                return
            with c:
                c.execute(SDK_SAVE_BOT, [
                    CLIENT_ID,
                    inst["app_id"],
                    inst.get("enterprise_id") or "",
                    inst.get("enterprise_name"),
                    inst.get("team_id") or "",
                    inst.get("team_name"),
                    inst.get("bot_token"),
                    inst.get("bot_id"),
                    inst.get("bot_user_id"),
                    ",".join(inst.get("bot_scopes") or []),
                    inst.get("bot_refresh_token"),
                    inst.get("bot_token_expires_at"),
                    bool(inst.get("is_enterprise_install")),
                ])
        finally:
            c.close()


# ------------------------------------------------------------ SDK helpers
def sdk_timestamp(ts, target):
    """slack_sdk.oauth.installation_store.internals._timestamp_to_type, the
    conversion the SDK's models apply to what the queries return."""
    if isinstance(ts, target):
        return target(ts)
    if isinstance(ts, datetime.datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=datetime.timezone.utc)
        return target(ts.timestamp())
    if isinstance(ts, str):
        try:
            return target(ts)
        except ValueError:
            s = ts if "+" in ts else ts + "+00:00"
            return target(datetime.datetime.fromisoformat(s).timestamp())
    raise ValueError("Unsupported data format for timestamp %r" % (ts,))


def check_installed_at(v, what, t0):
    check(isinstance(v, str) and INSTALLED_AT_RE.match(v),
          "%s: installed_at %r is not UTC 'YYYY-MM-DD HH:MM:SS[.fff[fff]]'"
          % (what, v))
    t = sdk_timestamp(v, float)          # as Installation(installed_at=…)
    check(t0 - 5 <= t <= time.time() + 5,
          "%s: installed_at %r is not now (UTC)" % (what, v))


def check_expiry(v, expected_in, what, t0):
    if expected_in is None:
        eq(v, None, what + " (a token that does not expire)")
        return
    check(type(v) is int, "%s: expected an integer (Unix seconds), got %s"
          % (what, _short(v)))
    sdk_timestamp(v, int)                 # as Installation(…expires_at=…)
    check(t0 + expected_in - 5 <= v <= time.time() + expected_in + 5,
          "%s: %r is not now + %d" % (what, v, expected_in))


def mask_of(token):
    """What `list` shows for a token: its kind and its last four characters."""
    return token[:token.index("-") + 1] + "…" + token[-4:]


# ------------------------------------------------------------------ tests
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def expected_ids(shape):
    """(enterprise_id, team_id, is_enterprise_install) as the SDK keys."""
    if shape == "org":
        return ENTERPRISE_ID, "", True
    if shape == "grid_workspace":
        return ENTERPRISE_ID, TEAM_ID, False
    return "", TEAM_ID, False


def check_sdk_shape(ctx, shape):
    t0 = time.time()
    ex = ctx.install(shape)
    ent, team, is_org = expected_ids(shape)
    au = ex.get("authed_user") or {}
    bot_token = ex.get("access_token")
    rotating = shape == "rotation"
    w = "%s: slack_installations" % shape

    # find_installation(enterprise_id, team_id, is_enterprise_install)
    row = ctx.sdk_installation(ent or None, team or None,
                               is_enterprise_install=is_org)
    check(row is not None, "%s: the SDK's query found nothing" % w)
    eq(sorted(row), sorted(INST_KEYS), w + ": columns")
    eq(row["app_id"], APP_ID, w + ".app_id")
    eq(row["enterprise_id"], ent, w + ".enterprise_id")
    eq_opt(row["enterprise_name"], ENTERPRISE_NAME if ent else None,
           w + ".enterprise_name")
    eq_opt(row["enterprise_url"], ENTERPRISE_URL if is_org else None,
           w + ".enterprise_url")
    eq(row["team_id"], team, w + ".team_id")
    eq_opt(row["team_name"], TEAM_NAME if team else None, w + ".team_name")
    eq(row["bot_token"], bot_token, w + ".bot_token")
    if bot_token:
        eq(row["bot_id"], BOT_ID, w + ".bot_id (from auth.test)")
        eq(row["bot_user_id"], BOT_USER_ID, w + ".bot_user_id")
        eq(row["bot_scopes"], ex["scope"], w + ".bot_scopes")
        check("," in row["bot_scopes"] and " " not in row["bot_scopes"],
              w + ".bot_scopes: not comma-separated: %r" % row["bot_scopes"])
    else:
        eq_opt(row["bot_id"], None, w + ".bot_id")
        eq_opt(row["bot_user_id"], None, w + ".bot_user_id")
        eq_opt(row["bot_scopes"], None, w + ".bot_scopes")
    eq(row["bot_refresh_token"], ex.get("refresh_token"),
       w + ".bot_refresh_token")
    check_expiry(row["bot_token_expires_at"],
                 ROTATION_TTL if rotating else None,
                 w + ".bot_token_expires_at", t0)
    eq(row["user_id"], HUMAN_USER_ID, w + ".user_id")
    eq(row["user_token"], au.get("access_token"), w + ".user_token")
    eq_opt(row["user_scopes"], au.get("scope"), w + ".user_scopes")
    eq(row["user_refresh_token"], au.get("refresh_token"),
       w + ".user_refresh_token")
    check_expiry(row["user_token_expires_at"],
                 ROTATION_TTL if rotating else None,
                 w + ".user_token_expires_at", t0)
    hook = ex.get("incoming_webhook") or {}
    eq(row["incoming_webhook_url"], hook.get("url"),
       w + ".incoming_webhook_url")
    eq(row["incoming_webhook_channel"], hook.get("channel"),
       w + ".incoming_webhook_channel")
    eq(row["incoming_webhook_channel_id"], hook.get("channel_id"),
       w + ".incoming_webhook_channel_id")
    eq(row["incoming_webhook_configuration_url"],
       hook.get("configuration_url"),
       w + ".incoming_webhook_configuration_url")
    check(type(row["is_enterprise_install"]) is int,
          w + ".is_enterprise_install: not an integer: %r"
          % (row["is_enterprise_install"],))
    eq(row["is_enterprise_install"], 1 if is_org else 0,
       w + ".is_enterprise_install")
    eq(row["token_type"], ex.get("token_type"), w + ".token_type")
    check_installed_at(row["installed_at"], w, t0)
    if shape == "webhook":
        check(hook.get("url"), "the fake sent no webhook")

    # find_installation(…, user_id=U): the same row, then the latest bot.
    urow = ctx.sdk_installation(ent or None, team or None,
                                user_id=HUMAN_USER_ID,
                                is_enterprise_install=is_org)
    eq(urow, row, w + ": the SDK's query with user_id")
    lb = ctx.sdk_latest_bot(ent, team)
    if bot_token:
        check(lb is not None and lb["bot_token"] == bot_token,
              w + ": the SDK's latest-bot query did not find the bot token")
    else:
        eq(lb, None, w + ": the SDK's latest-bot query (user-only)")

    # find_bot(enterprise_id, team_id, is_enterprise_install)
    w = "%s: slack_bots" % shape
    b = ctx.sdk_bot(ent or None, team or None, is_enterprise_install=is_org)
    if not bot_token:
        eq(b, None, w + " (a user-only install writes no bot row)")
        eq(ctx.rows("slack_bots"), [], w + " rows")
    else:
        check(b is not None, "%s: the SDK's query found nothing" % w)
        eq(sorted(b), sorted(BOT_KEYS), w + ": columns")
        for k in BOT_KEYS:
            if k in ("enterprise_url",):
                continue
            if k == "is_enterprise_install":
                check(type(b[k]) is int, w + ".is_enterprise_install: not "
                      "an integer: %r" % (b[k],))
            eq(b[k], row[k], "%s.%s (vs slack_installations)" % (w, k))
        eq(b["bot_id"], BOT_ID, w + ".bot_id")
    n_inst = len(ctx.rows("slack_installations"))
    eq(n_inst, 1, "%s: rows in slack_installations" % shape)

    # The admin command finds the same tokens.
    tid = team or ent
    r = ctx.admin("token", tid)
    if bot_token:
        ctx.expect(r, 0)
        eq(r.out, bot_token + "\n", "%s: `token %s` output" % (shape, tid))
    else:
        ctx.expect(r, 1)
        eq(r.out, "", "%s: `token %s` stdout" % (shape, tid))
    if au.get("access_token"):
        r = ctx.admin("token", "--user", HUMAN_USER_ID, tid)
        ctx.expect(r, 0)
        eq(r.out, au["access_token"] + "\n",
           "%s: `token --user` output" % shape)


def _sdk_shape_test(shape):
    def fn(ctx):
        check_sdk_shape(ctx, shape)
    fn.__name__ = "sdk_compat_" + shape
    return fn


for _shape in ("bot", "user", "user_only", "webhook", "org", "grid_workspace",
               "rotation"):
    test(_sdk_shape_test(_shape))


def wait_next_second():
    """Until the second changes: a row then stamped by SQLite's
    current_timestamp (whole seconds) sorts after ours (which may carry a
    fraction of the previous second)."""
    t = time.time()
    time.sleep(int(t) + 1.05 - t)


@test
def sdk_save_rows_accepted_and_newest_wins(ctx):
    ctx.install("user")
    wait_next_second()
    bot = ctx.secret("xoxb-sdk-" + secrets.token_hex(12))
    user = ctx.secret("xoxp-sdk-" + secrets.token_hex(12))
    try:
        ctx.sdk_save({
            "app_id": APP_ID, "enterprise_id": None, "team_id": TEAM_ID,
            "team_name": TEAM_NAME, "bot_token": bot, "bot_id": BOT_ID,
            "bot_user_id": BOT_USER_ID, "bot_scopes": ["chat:write"],
            "user_id": HUMAN_USER_ID, "user_token": user,
            "user_scopes": ["search:read"], "is_enterprise_install": False,
            "token_type": "bot"})
    except sqlite3.Error as e:
        raise TestFailure("the SDK's save() failed on our tables: %s" % e)
    r = ctx.admin("token", TEAM_ID)
    ctx.expect(r, 0)
    eq(r.out, bot + "\n", "`token` after a newer SDK save()")
    r = ctx.admin("token", "--user", HUMAN_USER_ID, TEAM_ID)
    ctx.expect(r, 0)
    eq(r.out, user + "\n", "`token --user` after a newer SDK save()")
    # …and our own list shows the SDK's row as the latest.
    r = ctx.admin("list", "--json")
    ctx.expect(r, 0)
    lst = json.loads(r.out)
    eq(len(lst), 1, "list --json entries")
    eq(lst[0]["bot"]["token"], mask_of(bot), "list --json: the newest token")
    # The SDK's queries see its own row too.
    row = ctx.sdk_installation(None, TEAM_ID)
    eq(row["bot_token"], bot, "SDK find_installation after its save()")
    # An org-wide SDK row, found by `token E…`.
    org_bot = ctx.secret("xoxb-sdkorg-" + secrets.token_hex(12))
    ctx.sdk_save({
        "app_id": APP_ID, "enterprise_id": ENTERPRISE_ID,
        "enterprise_name": ENTERPRISE_NAME, "enterprise_url": ENTERPRISE_URL,
        "team_id": None, "bot_token": org_bot, "bot_id": BOT_ID,
        "bot_user_id": BOT_USER_ID, "bot_scopes": ["users:read"],
        "user_id": "W0ADMIN01", "is_enterprise_install": True,
        "token_type": "bot"})
    r = ctx.admin("token", ENTERPRISE_ID)
    ctx.expect(r, 0)
    eq(r.out, org_bot + "\n", "`token %s` of an SDK-saved org-wide install"
       % ENTERPRISE_ID)


@test
def sdk_save_older_row_loses(ctx):
    """A row the SDK stored earlier does not shadow our newer one."""
    open(ctx.db, "w").close()
    os.chmod(ctx.db, 0o600)
    c = sqlite3.connect(ctx.db)
    for s in SDK_CREATE_TABLES:
        c.execute(s)
    c.commit()
    c.close()
    old = ctx.secret("xoxb-sdkold-" + secrets.token_hex(12))
    ctx.sdk_save({
        "app_id": APP_ID, "team_id": TEAM_ID, "team_name": TEAM_NAME,
        "bot_token": old, "bot_id": BOT_ID, "bot_user_id": BOT_USER_ID,
        "bot_scopes": ["chat:write"], "user_id": HUMAN_USER_ID,
        "token_type": "bot"})
    wait_next_second()
    # Our binaries adopt the tables the SDK created, and store into them.
    ex = ctx.install("bot")
    r = ctx.admin("token", TEAM_ID)
    ctx.expect(r, 0)
    eq(r.out, ex["access_token"] + "\n", "`token` (our newer row)")
    eq(ctx.sdk_bot(None, TEAM_ID)["bot_token"], ex["access_token"],
       "the SDK's find_bot on adopted tables")
    eq(ctx.sdk_installation(None, TEAM_ID)["bot_id"], BOT_ID,
       "the SDK's find_installation on adopted tables: bot_id")
    r = ctx.admin("check")
    ctx.expect(r, 0)


# ------------------------------------------------------------------ check
@test
def check_ok(ctx):
    ctx.install("bot")
    r = ctx.admin("check")
    ctx.expect(r, 0)
    check(re.search(r"\bok\b", r.out), "check: no 'ok' in %r" % r.out)
    eq(r.err, "", "check: stderr")


@test
def check_missing_secret(ctx):
    ctx.install("bot")
    r = ctx.admin("check", unset=["SLACK_CLIENT_SECRET"])
    ctx.expect(r, 1)
    check("SLACK_CLIENT_SECRET" in r.err,
          "check: the message does not name SLACK_CLIENT_SECRET: %r" % r.err)


@test
def check_missing_client_id(ctx):
    r = ctx.admin("check", unset=["SLACK_CLIENT_ID"])
    ctx.expect(r, 1)
    check("SLACK_CLIENT_ID" in r.err,
          "check: the message does not name SLACK_CLIENT_ID: %r" % r.err)


@test
def check_missing_config_file(ctx):
    missing = os.path.join(ctx.tmp, "nope.conf")
    r = ctx.admin("check", extra={"SLACK_OAUTH_CONFIG": missing})
    ctx.expect(r, 1)
    check(missing in r.err, "check: the message does not name %s: %r"
          % (missing, r.err))


@test
def check_config_file_modes(ctx):
    with open(ctx.conf, "w") as f:
        f.write("SLACK_CLIENT_SECRET = %s\n" % CLIENT_SECRET)
    for mode in (0o666, 0o644):
        os.chmod(ctx.conf, mode)
        r = ctx.admin("check", unset=["SLACK_CLIENT_SECRET"])
        ctx.expect(r, 1, "check with a %o config file holding the secret"
                   % mode)
        check(ctx.conf in r.err, "check: the message does not name the "
              "file: %r" % r.err)
    os.chmod(ctx.conf, 0o640)
    r = ctx.admin("check", unset=["SLACK_CLIENT_SECRET"])
    ctx.expect(r, 0, "check with a 0640 config file")


@test
def check_says_which_config_file(ctx):
    """check names the config file it read and why: SLACK_OAUTH_CONFIG, the
    one in the home directory, or none."""
    r = ctx.admin("check")
    ctx.expect(r, 0)
    check("config file: %s (named by SLACK_OAUTH_CONFIG)" % ctx.conf in r.out,
          "check with SLACK_OAUTH_CONFIG: %r" % r.out)
    home = os.path.join(ctx.tmp, "home")
    conf = os.path.join(home, ".config", "slack-oauth", "slack-oauth.conf")
    os.makedirs(os.path.dirname(conf))
    r = ctx.admin("check", unset=["SLACK_OAUTH_CONFIG"], extra={"HOME": home})
    if os.path.exists("/etc/slack-oauth/slack-oauth.conf"):
        raise Skip("this machine has /etc/slack-oauth/slack-oauth.conf")
    check("config file: none (%s does not exist; "
          "/etc/slack-oauth/slack-oauth.conf does not exist either)" % conf
          in r.out, "check without any config file: %r" % r.out)
    with open(conf, "w") as f:
        f.write("SLACK_STATE_TTL = 300\n")
    os.chmod(conf, 0o600)
    r = ctx.admin("check", unset=["SLACK_OAUTH_CONFIG"], extra={"HOME": home})
    ctx.expect(r, 0)
    check("config file: %s (in the home directory, from HOME)" % conf
          in r.out, "check with a config file in the home: %r" % r.out)
    os.chmod(conf, 0o666)
    r = ctx.admin("check", unset=["SLACK_OAUTH_CONFIG"], extra={"HOME": home})
    ctx.expect(r, 1, "check with a 0666 config file in the home")
    check(conf in r.err, "the message does not name the file: %r" % r.err)


@test
def check_config_file_owner(ctx):
    with open(ctx.conf, "w") as f:
        f.write("SLACK_STATE_TTL = 300\n")
    os.chmod(ctx.conf, 0o644)
    os.chown(ctx.conf, 12345, 0)
    r = ctx.admin("check")
    ctx.expect(r, 1, "check with a config file owned by uid 12345")
    check(ctx.conf in r.err and "12345" in r.err,
          "check: the message names neither the file nor its owner: %r"
          % r.err)
    os.chown(ctx.conf, 0, 0)
    r = ctx.admin("check")
    ctx.expect(r, 0, "check with a config file owned by root")


@test
def check_db_mode_0644(ctx):
    ctx.install("bot")
    os.chmod(ctx.db, 0o644)
    ctx.db_mode_exempt = True       # on purpose
    r = ctx.admin("check")
    ctx.expect(r, 1)
    check("644" in r.err or "mode" in r.err,
          "check: the message does not mention the mode: %r" % r.err)


@test
def check_db_not_created_yet(ctx):
    r = ctx.admin("check")
    ctx.expect(r, 0)
    check(not os.path.exists(ctx.db), "check created the database")


@test
def check_db_dir_missing(ctx):
    ctx.settings["SLACK_OAUTH_DB"] = os.path.join(ctx.tmp, "no", "such",
                                                  "slack-oauth.db")
    r = ctx.admin("check")
    ctx.expect(r, 1)
    check("no/such" in r.err, "check: the message does not name the "
          "directory: %r" % r.err)


@test
def check_db_dir_not_writable(ctx):
    if os.geteuid() == 0:
        raise Skip("running as root: a mode-0500 directory is writable "
                   "(check_db_dir_missing covers the failure)")
    d = os.path.join(ctx.tmp, "ro")
    os.mkdir(d, 0o500)
    ctx.settings["SLACK_OAUTH_DB"] = os.path.join(d, "slack-oauth.db")
    try:
        r = ctx.admin("check")
    finally:
        os.chmod(d, 0o700)
    ctx.expect(r, 1)


@test
def not_a_database(ctx):
    with open(ctx.db, "w") as f:
        f.write("this is not SQLite\n" * 300)
    os.chmod(ctx.db, 0o600)
    for args in (("check",), ("list",), ("token", TEAM_ID), ("purge",)):
        r = ctx.admin(*args)
        ctx.expect(r, 1)
        check(ctx.db in r.err, "%s: the message does not name the database:"
              " %r" % (args[0], r.err))
        if args[0] != "check":
            eq(r.out, "", "%s: stdout" % args[0])


@test
def check_schema_newer(ctx):
    """A file of a newer build (3, the next version, and 99): `check` names
    both versions and exits 1, and neither it nor a command that opens the
    database (`purge`) touches the file."""
    ctx.install("bot")
    before = db_snapshot(ctx)
    for v in (3, 99):
        set_user_version(ctx.db, v)
        r = ctx.admin("check")
        ctx.expect(r, 1, "check on a version-%d file" % v)
        msg = "schema version %d is newer than this program's %d" % (
            v, SQ_VERSION)
        check(msg in r.err, "check: no %r in %r" % (msg, r.err))
        check(ctx.db in r.err, "check: the message does not name the "
              "database: %r" % r.err)
        r = ctx.admin("purge")
        ctx.expect(r, 1, "purge on a version-%d file" % v)
        check(msg in r.err, "purge: no %r in %r" % (msg, r.err))
        eq(r.out, "", "purge on a version-%d file: stdout" % v)
        after = db_snapshot(ctx)
        eq(after["user_version"], v, "user_version after check and purge")
        check(after["schema"] == before["schema"],
              "version %d: check or purge changed the schema" % v)
        check(after["states"] == before["states"],
              "version %d: check or purge changed slack_oauth_states" % v)


# ------------------------------------------------------------------- list
def install_three(ctx):
    """bot+user, webhook (same team, newer) and an org-wide install."""
    exs = {}
    exs["user"] = ctx.install("user")
    exs["webhook"] = ctx.install("webhook")
    exs["org"] = ctx.install("org")
    return exs


@test
def list_text_masked(ctx):
    exs = install_three(ctx)
    r = ctx.admin("list")
    ctx.expect(r, 0)
    check(TEAM_ID in r.out and ENTERPRISE_ID in r.out,
          "list: ids missing: %r" % redact(r.out))
    check(mask_of(exs["webhook"]["access_token"]) in r.out,
          "list: no masked token %s in %r"
          % (mask_of(exs["webhook"]["access_token"]), redact(r.out)))
    check(mask_of(exs["org"]["access_token"]) in r.out,
          "list: no masked org token in %r" % redact(r.out))
    check(mask_of(exs["user"]["access_token"]) not in r.out,
          "list shows a superseded installation: %r" % redact(r.out))
    check("#alerts" in r.out, "list: no webhook channel: %r" % redact(r.out))
    check(not leaked(r.out), "list prints a secret: %s" % leaked(r.out))


def _raw_admin(ctx, *args):
    """The admin command's exit status and raw stdout (bytes)."""
    e = ctx.base_env()
    e.update(ctx.settings)
    p = subprocess.run([ADMIN] + list(args), env=e, capture_output=True,
                       timeout=60, cwd=ctx.tmp)
    record_output("slack-oauth " + args[0], p.stdout.decode("utf-8",
                                                            "replace"))
    return p.returncode, p.stdout


@test
def token_usage(ctx):
    """An option without its value, or an unknown one, is bad usage."""
    for args in (["token", "--user"], ["token", "--json"], ["token"],
                 ["token", "--user", "U1"]):
        r = ctx.admin(*args)
        ctx.expect(r, 2, "slack-oauth " + " ".join(args))
        check("usage:" in r.err, "no usage message: %r" % r.err)


@test
def list_escapes_stored_values(ctx):
    """A row another program wrote, with escape sequences and bytes that
    are not UTF-8 in its names: `list` writes them as \\xNN (nothing
    reaches the terminal raw), `list --json` is valid UTF-8 JSON, and
    `token` refuses to print a stored token holding CR LF."""
    ctx.install("bot")
    hostile = b"\x1b]0;pwned\x07\x1b[2J Caf\xe9 \xff\xfe \xc2\x9b1m"
    con = sqlite3.connect(ctx.db)
    try:
        con.execute("update slack_installations set team_name = "
                    "cast(? as text), enterprise_name = cast(? as text)",
                    [hostile, hostile])
        con.execute("update slack_bots set bot_token = ?",
                    ["xoxb-1\r\nX-Injected: yes"])
        con.commit()
    finally:
        con.close()
    rc, out = _raw_admin(ctx, "list")
    eq(rc, 0, "list")
    for bad in (b"\x1b", b"\x07", b"\xff", b"\xc2\x9b"):
        check(bad not in out, "list wrote %r raw" % bad)
    check(b"\\x1b]0;pwned\\x07\\x1b[2J Caf\\xe9 \\xff\\xfe \\xc2\\x9b1m" in out,
          "list does not show the name escaped: %r" % out[:300])
    rc, out = _raw_admin(ctx, "list", "--json")
    eq(rc, 0, "list --json")
    try:
        lst = json.loads(out.decode("utf-8"))
    except ValueError as e:
        raise TestFailure("list --json is not UTF-8 JSON: %s" % e)
    name = lst[0]["team_name"]
    check("\x1b" in name and "\ufffd" in name and "\x9b" not in name,
          "list --json team_name: %r" % name)
    rc, out = _raw_admin(ctx, "token", TEAM_ID)
    eq((rc, out), (1, b""), "token of a stored token holding CR LF")


LIST_KEYS = {"enterprise_id", "enterprise_name", "team_id", "team_name",
             "app_id", "is_enterprise_install", "bot", "user",
             "incoming_webhook", "installed_at"}


@test
def list_json(ctx):
    exs = install_three(ctx)
    r = ctx.admin("list", "--json")
    ctx.expect(r, 0)
    try:
        lst = json.loads(r.out)
    except ValueError as e:
        raise TestFailure("list --json: not JSON (%s): %r" % (e,
                                                              redact(r.out)))
    check(isinstance(lst, list), "list --json: not an array")
    eq(len(lst), 2, "list --json: entries (latest per enterprise/team)")
    for o in lst:
        eq(set(o), LIST_KEYS, "list --json: keys")
    by = {(o["enterprise_id"], o["team_id"]): o for o in lst}
    check(("", TEAM_ID) in by and (ENTERPRISE_ID, "") in by,
          "list --json: ids %r" % sorted(by))
    ws, org = by[("", TEAM_ID)], by[(ENTERPRISE_ID, "")]
    eq(ws["team_name"], TEAM_NAME, "list --json: team_name")
    eq(ws["app_id"], APP_ID, "list --json: app_id")
    eq(ws["is_enterprise_install"], False, "list --json: workspace install")
    eq(org["is_enterprise_install"], True, "list --json: org install")
    eq(org["enterprise_name"], ENTERPRISE_NAME, "list --json: org name")
    eq(ws["bot"]["token"], mask_of(exs["webhook"]["access_token"]),
       "list --json: masked bot token")
    eq(ws["bot"]["bot_id"], BOT_ID, "list --json: bot_id")
    eq(ws["bot"]["scopes"], BOT_SCOPES, "list --json: bot scopes")
    eq(ws["user"]["user_id"], HUMAN_USER_ID, "list --json: user id")
    eq(ws["incoming_webhook"]["channel"], "#alerts", "list --json: webhook")
    check(INSTALLED_AT_RE.match(ws["installed_at"] or ""),
          "list --json: installed_at %r" % ws["installed_at"])
    check(not leaked(r.out), "list --json prints a secret: %s"
          % leaked(r.out))
    r2 = ctx.admin("list", "--json")
    eq(r2.out, r.out, "list --json: two runs differ (not stable)")


@test
def list_json_masks_user_and_rotating_tokens(ctx):
    ex = ctx.install("rotation")
    r = ctx.admin("list", "--json")
    ctx.expect(r, 0)
    o = json.loads(r.out)[0]
    eq(o["bot"]["token"], mask_of(ex["access_token"]),
       "list --json: masked rotating bot token")
    eq(o["user"]["token"], mask_of(ex["authed_user"]["access_token"]),
       "list --json: masked user token")
    check(o["bot"]["expires_at"] and o["user"]["expires_at"],
          "list --json: no expiry for rotating tokens")
    check(not leaked(r.out), "list --json prints a secret: %s"
          % leaked(r.out))


@test
def list_empty(ctx):
    r = ctx.admin("list")
    ctx.expect(r, 0)
    r = ctx.admin("list", "--json")
    ctx.expect(r, 0)
    eq(json.loads(r.out), [], "list --json on an empty database")


# ------------------------------------------------------------------ token
@test
def token_prints_exactly_the_token(ctx):
    ex = ctx.install("user")
    r = ctx.admin("token", TEAM_ID)
    ctx.expect(r, 0)
    eq(r.out, ex["access_token"] + "\n", "token: stdout")
    eq(r.err, "", "token: stderr")
    r = ctx.admin("token", "--user", HUMAN_USER_ID, TEAM_ID)
    ctx.expect(r, 0)
    eq(r.out, ex["authed_user"]["access_token"] + "\n", "token --user: stdout")
    eq(r.err, "", "token --user: stderr")


@test
def token_org_wide_and_grid_workspace(ctx):
    gw = ctx.install("grid_workspace")
    org = ctx.install("org")
    r = ctx.admin("token", ENTERPRISE_ID)
    ctx.expect(r, 0)
    eq(r.out, org["access_token"] + "\n", "token E…: the org-wide install")
    r = ctx.admin("token", TEAM_ID)
    ctx.expect(r, 0)
    eq(r.out, gw["access_token"] + "\n", "token T…: the workspace in the org")


@test
def token_latest_wins(ctx):
    ctx.install("bot")
    ex2 = ctx.install("bot")
    r = ctx.admin("token", TEAM_ID)
    ctx.expect(r, 0)
    eq(r.out, ex2["access_token"] + "\n", "token after a re-install")


@test
def token_nothing_to_print(ctx):
    ctx.install("bot")
    cases = [("token", "T0NOPE0001"), ("token", "E0NOPE0001"),
             ("token", "--user", "U0NOPE0001", TEAM_ID),
             ("token", "--user", HUMAN_USER_ID, TEAM_ID)]   # no user token
    for args in cases:
        r = ctx.admin(*args)
        ctx.expect(r, 1)
        eq(r.out, "", "%s: stdout" % " ".join(args))
        check(r.err.strip(), "%s: no message on stderr" % " ".join(args))
    ctx.install("user_only")
    r = ctx.admin("token", TEAM_ID)        # the newest row has no bot…
    # …but slack_bots still has the older bot: the SDK's find_bot finds it.
    b = ctx.sdk_bot(None, TEAM_ID)
    ctx.expect(r, 0)
    eq(r.out, b["bot_token"] + "\n", "token after a user-only re-install "
       "(the SDK's find_bot answer)")


@test
def usage_errors(ctx):
    ctx.install("bot")
    ctx.fs.clear()
    cases = [(), ("frobnicate",), ("token",), ("token", "a", "b"),
             ("token", "--user", TEAM_ID), ("token", "--usr", "U1", TEAM_ID),
             ("token", "T 1"), ("token", ""), ("list", "--xml"),
             ("list", "--json", "x"), ("check", "x"),
             ("refresh", "--within"), ("refresh", "--within", "abc"),
             ("refresh", "--within", "-5"), ("refresh", "x"), ("revoke",),
             ("revoke", "a", "b"), ("purge", "x")]
    for args in cases:
        r = ctx.admin(*args)
        ctx.expect(r, 2, "slack-oauth %r" % (args,))
        eq(r.out, "", "%r: stdout" % (args,))
        check(r.err.strip(), "%r: no usage message" % (args,))
    check(not ctx.fs.api_requests(), "a usage error called Slack")


@test
def refuses_under_cgi(ctx):
    ex = ctx.install("rotation")
    ctx.fs.clear()
    for args in [("token", TEAM_ID), ("list",), ("list", "--json"),
                 ("check",), ("refresh", "--within", "50000"),
                 ("revoke", TEAM_ID), ("purge",)]:
        r = ctx.admin(*args, extra={"GATEWAY_INTERFACE": "CGI/1.1"})
        check(r.rc != 0, "%r under GATEWAY_INTERFACE: exit 0" % (args,))
        eq(r.out, "", "%r under GATEWAY_INTERFACE: stdout" % (args,))
    eq(ctx.fs.api_requests(), [], "Slack calls under GATEWAY_INTERFACE")
    r = ctx.admin("token", TEAM_ID)
    eq(r.out, ex["access_token"] + "\n", "token unchanged")


# ---------------------------------------------------------------- refresh
def basic(cid, sec):
    return "Basic " + base64.b64encode(("%s:%s" % (cid, sec))
                                       .encode()).decode()


def refresh_requests(fs):
    return [r for r in fs.api_requests("oauth.v2.access")
            if r["form"].get("grant_type") == ["refresh_token"]]


@test
def refresh_rotates_both_tokens(ctx):
    ex = ctx.install("rotation")
    old_bot, old_rt = ex["access_token"], ex["refresh_token"]
    au = ex["authed_user"]
    ctx.fs.clear()
    t0 = time.time()
    r = ctx.admin("refresh", "--within", "50000")
    ctx.expect(r, 0)
    reqs = refresh_requests(ctx.fs)
    eq(len(ctx.fs.api_requests("oauth.v2.access")), 2,
       "oauth.v2.access requests (one per token)")
    eq(sorted(q["form"]["refresh_token"][0] for q in reqs),
       sorted([old_rt, au["refresh_token"]]),
       "refresh tokens sent (the stored ones)")
    for q in reqs:
        eq(q["method"], "POST", "refresh: method")
        eq(q["headers"].get("authorization"), basic(CLIENT_ID, CLIENT_SECRET),
           "refresh: HTTP Basic client credentials")
        check("client_secret" not in q["form"],
              "refresh: client_secret sent in the body too")
    new = {resp["token_type"]: resp for _, resp in ctx.fs.refreshes}
    eq(sorted(new), ["bot", "user"], "refresh answers")
    nb, nu = new["bot"], new["user"]
    # token prints the new ones
    r = ctx.admin("token", TEAM_ID)
    eq(r.out, nb["access_token"] + "\n", "token after refresh")
    r = ctx.admin("token", "--user", HUMAN_USER_ID, TEAM_ID)
    eq(r.out, nu["access_token"] + "\n", "token --user after refresh")
    # new newest rows, in both tables, as the SDK reads them
    b = ctx.sdk_bot(None, TEAM_ID)
    eq(b["bot_token"], nb["access_token"], "slack_bots newest bot_token")
    eq(b["bot_refresh_token"], nb["refresh_token"],
       "slack_bots newest bot_refresh_token")
    check_expiry(b["bot_token_expires_at"], ROTATION_TTL,
                 "slack_bots newest bot_token_expires_at", t0)
    eq(b["bot_id"], BOT_ID, "slack_bots bot_id kept")
    i = ctx.sdk_installation(None, TEAM_ID, user_id=HUMAN_USER_ID)
    eq(i["bot_token"], nb["access_token"], "slack_installations bot_token")
    eq(i["bot_refresh_token"], nb["refresh_token"],
       "slack_installations bot_refresh_token")
    eq(i["user_token"], nu["access_token"], "slack_installations user_token")
    eq(i["user_refresh_token"], nu["refresh_token"],
       "slack_installations user_refresh_token")
    check_expiry(i["user_token_expires_at"], ROTATION_TTL,
                 "slack_installations user_token_expires_at", t0)
    eq(i["bot_id"], BOT_ID, "slack_installations bot_id kept")
    eq(i["team_name"], TEAM_NAME, "slack_installations team_name kept")
    check_installed_at(i["installed_at"], "refreshed row", t0)
    lb = ctx.sdk_latest_bot("", TEAM_ID)
    eq(lb["bot_token"], nb["access_token"], "SDK latest-bot query")
    eq(len(ctx.rows("slack_bots")), 2, "slack_bots rows (history kept)")
    check(len(ctx.rows("slack_installations")) >= 2,
          "slack_installations: no new row")
    check(old_bot != nb["access_token"], "fake issued the same token")
    # A second run: the new tokens are due again (43200 < 50000) and are
    # refreshed with the new refresh tokens, never the spent ones.
    ctx.fs.clear()
    r = ctx.admin("refresh", "--within", "50000")
    ctx.expect(r, 0)
    eq(sorted(q["form"]["refresh_token"][0]
              for q in refresh_requests(ctx.fs)),
       sorted([nb["refresh_token"], nu["refresh_token"]]),
       "second refresh: refresh tokens sent")


@test
def refresh_default_window_nothing_due(ctx):
    ex = ctx.install("rotation")
    ctx.fs.clear()
    r = ctx.admin("refresh")
    ctx.expect(r, 0)
    eq(ctx.fs.api_requests(), [], "Slack calls of `refresh` (nothing due)")
    r = ctx.admin("token", TEAM_ID)
    eq(r.out, ex["access_token"] + "\n", "token unchanged")


@test
def refresh_default_window_due(ctx):
    """A token that expires within 2 h is refreshed by a plain `refresh`."""
    ex = ctx.install("rotation")
    soon = int(time.time()) + 600
    c = sqlite3.connect(ctx.db)
    c.execute("update slack_bots set bot_token_expires_at = ?", [soon])
    c.execute("update slack_installations set bot_token_expires_at = ?",
              [soon])
    c.commit()
    c.close()
    ctx.fs.clear()
    r = ctx.admin("refresh")
    ctx.expect(r, 0)
    reqs = refresh_requests(ctx.fs)
    eq([q["form"]["refresh_token"][0] for q in reqs], [ex["refresh_token"]],
       "refresh: only the due bot token")
    nb = ctx.fs.refreshes[-1][1]
    r = ctx.admin("token", TEAM_ID)
    eq(r.out, nb["access_token"] + "\n", "token after refresh")
    r = ctx.admin("token", "--user", HUMAN_USER_ID, TEAM_ID)
    eq(r.out, ex["authed_user"]["access_token"] + "\n",
       "user token (not due) unchanged")


@test
def refresh_org_wide(ctx):
    """A rotating org-wide install (team_id ''): refreshed, stored under the
    same key, found by `token E…` and by the SDK's org-wide queries."""
    ctx.fs.rotation_context = "org"
    ex = ctx.install("rotation")
    eq(ctx.sdk_bot(ENTERPRISE_ID, None, True)["bot_token"],
       ex["access_token"], "org-wide rotating install stored")
    ctx.fs.clear()
    r = ctx.admin("refresh", "--within", "50000")
    ctx.expect(r, 0)
    eq(len(refresh_requests(ctx.fs)), 2, "refresh requests")
    last = {resp["token_type"]: resp for _, resp in ctx.fs.refreshes}
    r = ctx.admin("token", ENTERPRISE_ID)
    eq(r.out, last["bot"]["access_token"] + "\n", "token E… after refresh")
    r = ctx.admin("token", "--user", HUMAN_USER_ID, ENTERPRISE_ID)
    eq(r.out, last["user"]["access_token"] + "\n",
       "token --user U E… after refresh")
    b = ctx.sdk_bot(ENTERPRISE_ID, None, True)
    eq(b["bot_token"], last["bot"]["access_token"], "SDK find_bot (org)")
    eq(b["is_enterprise_install"], 1, "slack_bots.is_enterprise_install")
    i = ctx.sdk_installation(ENTERPRISE_ID, None, HUMAN_USER_ID, True)
    eq(i["user_token"], last["user"]["access_token"],
       "SDK find_installation (org, user)")
    eq(i["enterprise_url"], ENTERPRISE_URL, "enterprise_url kept")
    eq(i["team_id"], "", "team_id of the refreshed org-wide row")


@test
def refresh_non_rotating_untouched(ctx):
    ctx.install("user")
    ctx.fs.clear()
    r = ctx.admin("refresh", "--within", "50000")
    ctx.expect(r, 0)
    eq(ctx.fs.api_requests(), [], "Slack calls for non-rotating tokens")


def _refresh_rejected(ctx, fault, **opts):
    ex = ctx.install("rotation")
    ctx.fs.fault("oauth.v2.access", fault, **opts)
    ctx.fs.clear()
    n_bots = len(ctx.rows("slack_bots"))
    n_inst = len(ctx.rows("slack_installations"))
    r = ctx.admin("refresh", "--within", "50000")
    ctx.expect(r, 1)
    check(TEAM_ID in r.err, "refresh failure: the message does not name the "
          "installation: %r" % redact(r.err))
    check(len(refresh_requests(ctx.fs)) >= 1, "no refresh request was made")
    ctx.fs.fault("oauth.v2.access", None)
    t = ctx.admin("token", TEAM_ID)
    eq(t.out, ex["access_token"] + "\n", "token after a rejected refresh")
    t = ctx.admin("token", "--user", HUMAN_USER_ID, TEAM_ID)
    eq(t.out, ex["authed_user"]["access_token"] + "\n",
       "user token after a rejected refresh")
    eq(len(ctx.rows("slack_bots")), n_bots, "slack_bots rows")
    eq(len(ctx.rows("slack_installations")), n_inst,
       "slack_installations rows")
    b = ctx.sdk_bot(None, TEAM_ID)
    eq(b["bot_refresh_token"], ex["refresh_token"], "old refresh token kept")
    return r


@test
def refresh_rejected_ok_false(ctx):
    r = _refresh_rejected(ctx, "ok_false", error="invalid_refresh_token")
    check("invalid_refresh_token" in r.err,
          "refresh failure: the reason is not given: %r" % redact(r.err))


@test
def refresh_rejected_http_500(ctx):
    _refresh_rejected(ctx, "http_status", status=500)


@test
def refresh_rejected_not_json(ctx):
    _refresh_rejected(ctx, "not_json")


@test
def refresh_rejected_then_retry_succeeds(ctx):
    ex = ctx.install("rotation")
    ctx.fs.fault("oauth.v2.access", "ok_false", once=True,
                 error="internal_error")
    r = ctx.admin("refresh", "--within", "50000")
    ctx.expect(r, 1)
    ctx.fs.clear()
    r = ctx.admin("refresh", "--within", "50000")
    ctx.expect(r, 0)
    sent = sorted(q["form"]["refresh_token"][0]
                  for q in refresh_requests(ctx.fs))
    check(ex["refresh_token"] in sent,
          "retry did not use the kept refresh token")


def _concurrent(ctx, args):
    ctx.fs.fault("oauth.v2.access", "slow", seconds=1)
    ctx.fs.clear()
    procs = [ctx.spawn(*args), ctx.spawn(*args)]
    runs = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise TestFailure("concurrent refresh did not finish in 60 s")
        runs.append(ctx.finish(args, p.returncode, out, err))
    ctx.fs.fault("oauth.v2.access", None)
    return runs


def _check_last_issued(ctx):
    last = {}
    for _, resp in ctx.fs.refreshes:
        last[resp["token_type"]] = resp
    r = ctx.admin("token", TEAM_ID)
    eq(r.out, last["bot"]["access_token"] + "\n",
       "stored bot token (the fake's last issued)")
    r = ctx.admin("token", "--user", HUMAN_USER_ID, TEAM_ID)
    eq(r.out, last["user"]["access_token"] + "\n",
       "stored user token (the fake's last issued)")
    b = ctx.sdk_bot(None, TEAM_ID)
    eq(b["bot_refresh_token"], last["bot"]["refresh_token"],
       "stored bot refresh token (the fake's last issued)")


def _check_serialized(ctx, ex):
    """No refresh token sent twice, every request answered ok, and the
    requests for one token never overlapped (the fake takes 1 s)."""
    reqs = refresh_requests(ctx.fs)
    sent = [q["form"]["refresh_token"][0] for q in reqs]
    twice = len(sent) - len(set(sent))
    eq(twice, 0, "refresh tokens sent more than once")
    eq(len(ctx.fs.refreshes), len(reqs),
       "refresh requests the fake accepted (a spent or unknown refresh "
       "token was sent)")
    # chains: each request spends the original refresh token or one the
    # fake issued before
    issued = {ex["refresh_token"]: "bot",
              ex["authed_user"]["refresh_token"]: "user"}
    for spent, resp in ctx.fs.refreshes:
        check(spent in issued, "refresh with a token the fake never issued")
        issued[resp["refresh_token"]] = resp["token_type"]
    for kind in ("bot", "user"):
        times = sorted(q["time"] for q in reqs
                       if issued.get(q["form"]["refresh_token"][0]) == kind)
        check(times, "no %s refresh" % kind)
        for a, b in zip(times, times[1:]):
            check(b - a >= 0.9, "two %s refreshes overlapped (%.2f s apart):"
                  " no lock" % (kind, b - a))
    return sent


@test
def refresh_concurrent_one_request_per_token(ctx):
    """Two overlapping `refresh --within 50000` runs: every refresh token is
    spent exactly once, one run at a time, both runs succeed, and the stored
    pair is the fake's last. (The new tokens expire in 43200 s, inside the
    window, so the run that waited may rotate once more with the new
    refresh token, as two runs one after the other would.)"""
    ex = ctx.install("rotation")
    runs = _concurrent(ctx, ("refresh", "--within", "50000"))
    for r in runs:
        ctx.expect(r, 0, "concurrent refresh")
    sent = _check_serialized(ctx, ex)
    check(ex["refresh_token"] in sent and
          ex["authed_user"]["refresh_token"] in sent,
          "the stored refresh tokens were not used")
    check(len(sent) == 2, "refresh requests: %d" % len(sent))
    _check_last_issued(ctx)


@test
def refresh_concurrent_default_window(ctx):
    """The cron case: tokens 10 min from expiry, two plain `refresh` runs
    overlap: each token is refreshed once."""
    ex = ctx.install("rotation")
    soon = int(time.time()) + 600
    c = sqlite3.connect(ctx.db)
    for t, cols in (("slack_bots", ("bot_token_expires_at",)),
                    ("slack_installations", ("bot_token_expires_at",
                                             "user_token_expires_at"))):
        for col in cols:
            c.execute("update %s set %s = ?" % (t, col), [soon])
    c.commit()
    c.close()
    runs = _concurrent(ctx, ("refresh",))
    for r in runs:
        ctx.expect(r, 0, "concurrent refresh")
    sent = _check_serialized(ctx, ex)
    eq(sorted(sent), sorted([ex["refresh_token"],
                             ex["authed_user"]["refresh_token"]]),
       "refresh requests of two overlapping runs")
    _check_last_issued(ctx)


# ----------------------------------------------------------------- revoke
def bearer_revokes(fs):
    out = []
    for q in fs.api_requests("auth.revoke"):
        a = q["headers"].get("authorization", "")
        check(a.startswith("Bearer "), "auth.revoke without a Bearer token")
        out.append(a[7:])
    return out


def other_team_row(ctx):
    """An installation of another team, which revoke must leave alone."""
    tok = ctx.secret("xoxb-other-" + secrets.token_hex(12))
    ctx.sdk_save({"app_id": APP_ID, "team_id": "T0OTHER01",
                  "team_name": "Other", "bot_token": tok, "bot_id": "B0OTHER1",
                  "bot_user_id": "U0OTHBOT1", "bot_scopes": ["chat:write"],
                  "user_id": "U0OTHER01", "token_type": "bot"})
    return tok


@test
def revoke_team(ctx):
    first = ctx.install("bot")
    ex = ctx.install("user")
    other = other_team_row(ctx)
    ctx.fs.clear()
    r = ctx.admin("revoke", TEAM_ID)
    ctx.expect(r, 0)
    # Every token of the history that has not expired, the first install's
    # bot token included: none may stay live once its rows are gone.
    live = [first["access_token"], ex["access_token"],
            ex["authed_user"]["access_token"]]
    eq(sorted(bearer_revokes(ctx.fs)), sorted(live),
       "auth.revoke calls (Bearer, one per live token)")
    for t in live:
        check(ctx.fs.token_info(t)["revoked"], "a token was not revoked")
    eq(ctx.rows("slack_installations", "team_id = ?", [TEAM_ID]), [],
       "slack_installations rows left")
    eq(ctx.rows("slack_bots", "team_id = ?", [TEAM_ID]), [],
       "slack_bots rows left")
    r = ctx.admin("token", "T0OTHER01")
    eq(r.out, other + "\n", "another team's installation kept")
    eq(len(ctx.rows("slack_bots")), 1, "slack_bots rows of the other team")
    r = ctx.admin("token", TEAM_ID)
    ctx.expect(r, 1)


@test
def revoke_already_revoked(ctx):
    ex = ctx.install("user")
    ctx.fs.revoke_now(ex["access_token"])
    ctx.fs.clear()
    r = ctx.admin("revoke", TEAM_ID)
    ctx.expect(r, 0)
    eq(len(bearer_revokes(ctx.fs)), 2, "auth.revoke calls")
    eq(ctx.rows("slack_installations"), [], "slack_installations rows left")
    eq(ctx.rows("slack_bots"), [], "slack_bots rows left")


@test
def revoke_unknown(ctx):
    ctx.install("bot")
    ctx.fs.clear()
    for tid in ("T0NOPE0001", "E0NOPE0001"):
        r = ctx.admin("revoke", tid)
        ctx.expect(r, 1)
        check(tid in r.err, "revoke: the message does not name %s: %r"
              % (tid, r.err))
    eq(ctx.fs.api_requests(), [], "Slack calls for an unknown id")
    eq(len(ctx.rows("slack_bots")), 1, "rows kept")


@test
def revoke_org_wide(ctx):
    gw = ctx.install("grid_workspace")
    org = ctx.install("org")
    ctx.fs.clear()
    r = ctx.admin("revoke", ENTERPRISE_ID)
    ctx.expect(r, 0)
    eq(bearer_revokes(ctx.fs), [org["access_token"]],
       "auth.revoke calls for the org-wide install")
    eq(ctx.rows("slack_installations", "team_id = ''"), [],
       "org-wide slack_installations rows left")
    eq(ctx.rows("slack_bots", "team_id = ''"), [],
       "org-wide slack_bots rows left")
    r = ctx.admin("token", TEAM_ID)
    eq(r.out, gw["access_token"] + "\n",
       "the workspace install inside the org is kept")
    check(not ctx.fs.token_info(gw["access_token"])["revoked"],
          "the workspace's token was revoked")


@test
def revoke_slack_fails_keeps_rows(ctx):
    ctx.install("bot")
    ctx.fs.fault("auth.revoke", "http_status", status=500)
    r = ctx.admin("revoke", TEAM_ID)
    ctx.expect(r, 1)
    check(TEAM_ID in r.err, "revoke failure: no id in %r" % r.err)
    eq(len(ctx.rows("slack_bots")), 1, "rows kept after a failed revoke")


@test
def revoke_rotating(ctx):
    ctx.install("rotation")
    r = ctx.admin("refresh", "--within", "50000")
    ctx.expect(r, 0)
    last = {resp["token_type"]: resp for _, resp in ctx.fs.refreshes}
    ctx.fs.clear()
    r = ctx.admin("revoke", TEAM_ID)
    ctx.expect(r, 0)
    sent = bearer_revokes(ctx.fs)
    for k in ("bot", "user"):
        check(last[k]["access_token"] in sent,
              "the current %s token was not revoked" % k)
    eq(ctx.rows("slack_installations"), [], "slack_installations rows left")
    eq(ctx.rows("slack_bots"), [], "slack_bots rows left")


# ------------------------------------------------------------------ purge
@test
def purge_counts(ctx):
    ctx.install("bot")
    c = sqlite3.connect(ctx.db)
    now = int(time.time())
    before = c.execute("select count(*) from slack_oauth_states").fetchone()[0]
    for i in range(3):
        c.execute("insert into slack_oauth_states (hash, expires_at) "
                  "values (?, ?)", [os.urandom(32), now - 10 - i])
    c.execute("insert into slack_oauth_states (hash, expires_at) "
              "values (?, ?)", [os.urandom(32), now + 3600])
    c.commit()
    c.close()
    r = ctx.admin("purge")
    ctx.expect(r, 0)
    check(re.search(r"\b3\b", r.out), "purge: count 3 not printed: %r"
          % r.out)
    c = sqlite3.connect(ctx.db)
    left = c.execute("select count(*) from slack_oauth_states").fetchone()[0]
    c.close()
    eq(left, before + 1, "states left after purge")
    r = ctx.admin("purge")
    ctx.expect(r, 0)
    check(re.search(r"\b0\b", r.out), "purge again: count 0 not printed: %r"
          % r.out)


@test
def purge_fresh_database(ctx):
    # No database yet: nothing to purge, and none is created (it would be
    # owned by whoever ran the command, not the web server).
    r = ctx.admin("purge")
    ctx.expect(r, 0)
    check(re.search(r"\d", r.out), "purge: no count: %r" % r.out)
    check(not os.path.exists(ctx.db), "purge created the database")
    for cmd in (["list"], ["token", TEAM_ID], ["refresh"]):
        ctx.admin(*cmd)
        check(not os.path.exists(ctx.db), "%s created the database" % cmd[0])
    # A database the programs create under umask 022 is still 0600.
    ctx.install("bot")
    r = ctx.admin("purge")
    ctx.expect(r, 0)
    for suffix in ("", "-wal", "-shm"):
        if suffix and not os.path.exists(ctx.db + suffix):
            continue
        mode = os.stat(ctx.db + suffix).st_mode & 0o777
        eq(oct(mode), oct(0o600), "mode of the database%s file the admin "
           "command made (umask 022)" % suffix)


# ------------------------------------------------- schema version 1 -> 2
SQ_VERSION = 2      # the SQLite schema version this build writes
# Version 1's used-state table, as src/db_sqlite.c's schema_v1 made it.
V1_STATES_TABLE = ("CREATE TABLE slack_oauth_states ("
                   " hash blob primary key,"
                   " expires_at integer not null) WITHOUT ROWID")
V1_STATES_INDEX = ("CREATE INDEX slack_oauth_states_expiry"
                   " ON slack_oauth_states (expires_at)")


def set_user_version(path, v):
    c = sqlite3.connect(path, timeout=10)
    try:
        c.execute("PRAGMA user_version = %d" % v)
        c.commit()
    finally:
        c.close()


def norm_sql(sql):
    return re.sub(r"\s+", " ", (sql or "").lower()).replace("( ", "(")


def db_snapshot(ctx):
    """What a migration must keep or change, read with the programs
    stopped. Holds secrets (the key, tokens): compare, never print."""
    c = sqlite3.connect(ctx.db, timeout=10)
    try:
        snap = {
            "user_version": c.execute("PRAGMA user_version").fetchone()[0],
            "integrity": [r[0] for r in
                          c.execute("PRAGMA integrity_check")],
            "schema": sorted(c.execute(
                "select type, name, tbl_name, sql from sqlite_master "
                "where name not like 'sqlite_autoindex%'")),
            "states": sorted(c.execute(
                "select hash, expires_at from slack_oauth_states")),
            "keys": list(c.execute(
                "select id, key, created_at from slack_oauth_keys "
                "order by id")),
            "installations": list(c.execute(
                "select * from slack_installations order by id")),
            "bots": list(c.execute("select * from slack_bots order by id")),
            # (name, pk position) of slack_oauth_states' columns
            "states_pk": sorted((r[5], r[1]) for r in c.execute(
                "PRAGMA table_info(slack_oauth_states)") if r[5]),
        }
    finally:
        c.close()
    try:
        with open(ctx.db + "-key", "rb") as f:
            snap["sidecar"] = f.read()
    except FileNotFoundError:
        snap["sidecar"] = None
    return snap


def states_sql(snap):
    return {name: sql for typ, name, tbl, sql in snap["schema"]
            if tbl in ("slack_oauth_states", "slack_oauth_states_v1")
            or name.startswith("slack_oauth_states")}


def to_schema_v1(ctx):
    """Turns a database the current programs made back into the file a
    version-1 build would have left: slack_oauth_states in the v1 layout
    with its expiry index, the same (hash, expires_at) rows, user_version
    1. Everything else (installations, the key) is as v1 had it."""
    c = sqlite3.connect(ctx.db, timeout=10, isolation_level=None)
    try:
        c.execute("BEGIN IMMEDIATE")
        c.execute("CREATE TEMP TABLE keep AS "
                  "SELECT hash, expires_at FROM slack_oauth_states")
        c.execute("DROP TABLE slack_oauth_states")
        c.execute(V1_STATES_TABLE)
        c.execute(V1_STATES_INDEX)
        c.execute("INSERT INTO slack_oauth_states (hash, expires_at) "
                  "SELECT hash, expires_at FROM keep")
        c.execute("DROP TABLE temp.keep")
        c.execute("PRAGMA user_version = 1")
        c.execute("COMMIT")
    finally:
        c.close()
    snap = db_snapshot(ctx)
    # the file really is version 1 now
    eq(snap["user_version"], 1, "user_version of the rebuilt v1 file")
    eq(snap["states_pk"], [(1, "hash")], "v1 primary key of "
       "slack_oauth_states")
    sqls = states_sql(snap)
    check("slack_oauth_states_expiry" in sqls,
          "the rebuilt v1 file has no slack_oauth_states_expiry index")
    eq(snap["integrity"], ["ok"], "integrity_check of the rebuilt v1 file")
    return snap


def v1_database(ctx, shape="user"):
    """A full flow by the current programs, then the file turned back into
    version 1. Returns (the state that flow used, the v1 snapshot)."""
    ctx.install(shape)
    state = ctx.last_state
    before = db_snapshot(ctx)
    eq(before["user_version"], SQ_VERSION, "user_version the programs made")
    check(len(before["states"]) >= 1, "the flow recorded no used state")
    check(before["keys"], "the flow stored no key")
    check(before["installations"] and before["bots"],
          "the flow stored no installation")
    v1 = to_schema_v1(ctx)
    check(v1["states"] == before["states"],
          "rebuilding the v1 table changed its rows")
    return state, v1


def redirect_with(ctx, state, code=None):
    """The redirect with state as both parameter and cookie and a fresh
    code: (status, body text, log)."""
    code = code or ctx.fs.issue_code()
    (status, _, body), log = ctx.cgi(
        REDIRECT, query=urllib.parse.urlencode({"code": code,
                                                "state": state}),
        cookie="%s=%s" % (COOKIE, state))
    return status, body.decode("utf-8", "replace"), log


def expect_replay_rejected(ctx, state, what):
    n = len(ctx.fs.exchanges)
    ctx.fs.clear()
    status, body, log = redirect_with(ctx, state)
    check(status == 400 and "outcome=invalid_state" in log,
          "%s: expected 400 invalid_state, got %d; log: %s"
          % (what, status, redact(log)[-400:]))
    check("already used" in body, "%s: the page does not say the link "
          "was used" % what)
    eq(len(ctx.fs.exchanges), n, "%s: codes exchanged" % what)
    eq(ctx.fs.api_requests("oauth.v2.access"), [],
       "%s: oauth.v2.access calls" % what)


def check_v2_layout(ctx, snap, what):
    eq(snap["user_version"], SQ_VERSION, what + ": user_version")
    eq(snap["states_pk"], [(1, "expires_at"), (2, "hash")],
       what + ": primary key of slack_oauth_states (position, column)")
    sqls = states_sql(snap)
    eq(sorted(sqls), ["slack_oauth_states"], what + ": the used-state "
       "table's schema entries (no slack_oauth_states_expiry index, no "
       "slack_oauth_states_v1 table)")
    sql = norm_sql(sqls["slack_oauth_states"])
    check("primary key (expires_at, hash)" in sql and
          sql.endswith("without rowid"),
          "%s: slack_oauth_states is not the v2 table: %r" % (what, sql))
    names = [name for _, name, _, _ in snap["schema"]]
    for gone in ("slack_oauth_states_expiry", "slack_oauth_states_v1"):
        check(gone not in names, "%s: %s left behind" % (what, gone))
    eq(snap["integrity"], ["ok"], what + ": PRAGMA integrity_check")


@test
def schema_v1_check_reports_upgrade(ctx):
    """`check` on a version-1 file: exit 0, "schema version 1, will be
    upgraded on first use", and the file is left at version 1 (check only
    reads)."""
    _, v1 = v1_database(ctx)
    r = ctx.admin("check")
    ctx.expect(r, 0, "check on a version-1 file")
    check(re.search(r"\bschema version 1, will be upgraded on first use\b",
                    r.out),
          "check: no 'schema version 1, will be upgraded on first use' in "
          "%r" % r.out)
    eq(r.err, "", "check on a version-1 file: stderr")
    after = db_snapshot(ctx)
    eq(after["user_version"], 1, "user_version after check")
    check(after["schema"] == v1["schema"], "check changed the schema")
    # …and on the current version, no upgrade is announced.
    set_user_version(ctx.db, SQ_VERSION)
    r = ctx.admin("check")
    ctx.expect(r, 0, "check on a version-%d file" % SQ_VERSION)
    check("schema version %d," % SQ_VERSION in r.out and
          "upgraded" not in r.out,
          "check on a current file: %r" % r.out)


@test
def schema_v1_migrates_keeping_used_states(ctx):
    """The redirect is the first program to open a version-1 file: the
    replayed, already used state is still refused (its record survived the
    copy), and the file is version 2 with the v2 table, the same rows, the
    same key and installations, and nothing of v1 left."""
    state, v1 = v1_database(ctx)
    expect_replay_rejected(ctx, state, "replay on a version-1 file")
    after = db_snapshot(ctx)
    check_v2_layout(ctx, after, "after the first use")
    eq(len(after["states"]), len(v1["states"]),
       "slack_oauth_states rows after the migration and a refused replay")
    check(after["states"] == v1["states"],
          "slack_oauth_states: the migration changed the rows")
    check(after["keys"] == v1["keys"], "slack_oauth_keys changed")
    check(after["sidecar"] == v1["sidecar"], "the key file changed")
    eq(len(after["installations"]), len(v1["installations"]),
       "slack_installations rows")
    eq(len(after["bots"]), len(v1["bots"]), "slack_bots rows")
    check(after["installations"] == v1["installations"] and
          after["bots"] == v1["bots"], "installation rows changed")
    # every other table and index is as version 1 had it
    eq([e[:3] for e in after["schema"] if e[2] != "slack_oauth_states"],
       [e[:3] for e in v1["schema"] if e[2] != "slack_oauth_states"],
       "the other tables and indexes")
    r = ctx.admin("check")
    ctx.expect(r, 0, "check after the migration")
    check("schema version %d," % SQ_VERSION in r.out and
          "upgraded" not in r.out,
          "check after the migration: %r" % r.out)


@test
def schema_v1_then_new_flow(ctx):
    """After the migration, a new install works and its state is single-use
    in the v2 table; the old state stays refused."""
    state, v1 = v1_database(ctx)
    expect_replay_rejected(ctx, state, "replay on a version-1 file")
    migrated = db_snapshot(ctx)
    eq(migrated["user_version"], SQ_VERSION, "user_version after first use")
    ctx.install("bot")       # 200, and the code exchanged (checked there)
    fresh = ctx.last_state
    check(fresh != state, "the new flow got the old state")
    after = db_snapshot(ctx)
    eq(len(after["states"]), len(migrated["states"]) + 1,
       "slack_oauth_states rows after a new flow")
    check(set(migrated["states"]) < set(after["states"]),
          "the new flow lost the migrated rows")
    eq(len(after["installations"]), len(v1["installations"]) + 1,
       "slack_installations rows after a new flow")
    expect_replay_rejected(ctx, fresh, "replay of the new state")
    expect_replay_rejected(ctx, state, "the old state again")
    final = db_snapshot(ctx)
    check(final["states"] == after["states"],
          "refused replays changed slack_oauth_states")
    check_v2_layout(ctx, final, "after a new flow")


def add_states(ctx, rows):
    c = sqlite3.connect(ctx.db, timeout=10)
    try:
        with c:
            for h, exp in rows:
                c.execute("insert into slack_oauth_states (hash, expires_at) "
                          "values (?, ?)", [h, exp])
    finally:
        c.close()


def purge_and_check(ctx, expired, future, before, what):
    r = ctx.admin("purge")
    ctx.expect(r, 0, what)
    eq(r.out.strip(), "deleted %d expired state%s"
       % (len(expired), "" if len(expired) == 1 else "s"),
       what + ": output")
    after = db_snapshot(ctx)
    check_v2_layout(ctx, after, what)
    eq(len(after["states"]), len(before["states"]) + len(future),
       what + ": rows left")
    left = set(after["states"])
    check(not left & set(expired), what + ": an expired row is left")
    check(set(before["states"]) | set(future) == left,
          what + ": a row that had not expired is gone")
    r = ctx.admin("purge")
    ctx.expect(r, 0, what + ", again")
    eq(r.out.strip(), "deleted 0 expired states", what + ", again: output")


@test
def schema_v1_purge_after_migration(ctx):
    """`purge` on a migrated file deletes the expired rows and only those."""
    state, _ = v1_database(ctx)
    expect_replay_rejected(ctx, state, "replay on a version-1 file")
    before = db_snapshot(ctx)
    eq(before["user_version"], SQ_VERSION, "user_version after first use")
    now = int(time.time())
    expired = [(os.urandom(32), now - 60)]
    future = [(os.urandom(32), now + 3600)]
    add_states(ctx, expired + future)
    purge_and_check(ctx, expired, future, before, "purge after the migration")
    expect_replay_rejected(ctx, state, "replay after the purge")


@test
def schema_v1_purge_first_use(ctx):
    """`purge` as the first program to open a version-1 file holding
    expired and live rows (in the v1 table): it migrates, then deletes the
    expired ones only."""
    state, v1 = v1_database(ctx)
    now = int(time.time())
    expired = [(os.urandom(32), now - 60), (os.urandom(32), now - 1)]
    future = [(os.urandom(32), now + 3600)]
    add_states(ctx, expired + future)
    purge_and_check(ctx, expired, future, v1, "purge on a version-1 file")
    expect_replay_rejected(ctx, state, "replay after the purge")


# ----------------------------------------------------- secrets, overall
ALL_OUTPUTS = []


def scan(ctx):
    bad = []
    for what, text in ctx.outputs:
        SCANNED[0] += 1
        ALL_OUTPUTS.append((ctx.name, what, text))
        record_output("%s: %s" % (ctx.name, what), text)
        found = leaked(text)
        if found:
            bad.append("%s: %s" % (what, ", ".join(sorted(found))))
    return bad


def final_secret_scan():
    """Every output of the run, against every secret of the run (a token
    issued by one test's fake may only be known after another ran)."""
    bad = []
    for name, what, text in ALL_OUTPUTS:
        found = leaked(text)
        if found:
            bad.append("%s: %s: %s" % (name, what, ", ".join(sorted(found))))
    check(SCANNED[0] > 0, "no output was scanned")
    check(not bad, "secrets in output: " + "; ".join(bad[:5]))


# ----------------------------------------------------------------- runner
def main(argv):
    only = None
    if len(argv) >= 2 and argv[0] == "-k":
        only = argv[1]
    run = Runner()
    for p in (INSTALL, REDIRECT, ADMIN):
        if not os.access(p, os.X_OK):
            run.fail("setup", "%s is missing (run make)" % p)
            return run.finish()
    t0 = time.time()
    for fn in TESTS:
        name = fn.__name__
        if only and only not in name:
            continue
        ctx = Ctx(name)
        try:
            fn(ctx)
            bad = scan(ctx)
            if bad:
                raise TestFailure("secret in output: " + "; ".join(bad[:5]))
            run.ok(name)
        except Skip as e:
            scan(ctx)
            run.skip(name, e)
        except TestFailure as e:
            scan(ctx)
            run.fail(name, redact(str(e)))
        except Exception:
            scan(ctx)
            run.fail(name, redact(traceback.format_exc())
                     .strip().replace("\n", "\n    "))
        finally:
            add_secrets(ctx.fs.secrets())
            ctx.close()
    if not only or only in "no_secret_in_any_output":
        try:
            final_secret_scan()
            run.ok("no_secret_in_any_output (%d outputs)" % SCANNED[0])
        except TestFailure as e:
            run.fail("no_secret_in_any_output", e)
    sys.stderr.write("# %.1f s\n" % (time.time() - t0))
    return run.finish()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
