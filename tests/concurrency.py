#!/usr/bin/env python3
"""Concurrency inside one FastCGI process (issue 11; SPEC.md, "Serving many
requests at once", SLACK_OAUTH_CONCURRENCY).

Every test drives the real binaries as FastCGI behind real nginx: the
commands of nginx-spawn-fcgi-example.conf (tests/stress.py's Deployment,
paths moved under a temp root, the programs as www-data) with ONE process
per program (`-F 1`), and tests/fake_slack.py on 127.0.0.1, in this
process, where some codes are answered only after seconds.

  slow_slack_holds_only_its_requests
        8 redirects whose codes Slack answers after 4 s, at once: meanwhile
        installs and full flows with ordinary codes finish in < 1 s each;
        the 8 finish in about one Slack answer (< 4 s + 2 s), all 200, all
        stored; the fake saw >= 8 oauth.v2.access calls at once
  concurrency_2_bounds_it
        the redirect process with SLACK_OAUTH_CONCURRENCY=2, 4 redirects
        waiting D on Slack: the last one ends after >= 1.8 D and before
        2 D + 1.5 s; the fake saw exactly 2 calls at once
  invalid_concurrency_stops_the_process
        SLACK_OAUTH_CONCURRENCY 0, 257, abc, -1, 2^64+: each program (a
        listening socket on fd 0, as spawn-fcgi starts it) exits non-zero at
        once with exactly one log line, naming the key, not the secret
  invalid_concurrency_in_config_file_stops_the_process
        the same with `SLACK_OAUTH_CONCURRENCY = 0` in the config file (0600)
  valid_concurrency_bounds_accepted
        1 and 256 in the environment, 4 in the config file: the process
        runs and serves
  concurrency_never_from_a_request
        a request parameter SLACK_OAUTH_CONCURRENCY=abc changes nothing
  exactly_once_50_concurrent_one_process_sqlite / _postgresql
        one state sent by 50 concurrent redirects to one process with
        SLACK_OAUTH_CONCURRENCY=64, Slack answering after 100 ms: one 200,
        49 x 400 invalid_state, one oauth.v2.access call, one installation
  refresh_concurrent_with_flows
        rotating tokens; a stream of flows through the redirect process while
        4 `slack-oauth refresh --within 50000` run at once: no refresh token
        sent twice, every one accepted, the new pairs stored, every flow 200
  db_locked_8_waiting
        an external BEGIN EXCLUSIVE held past the busy timeout while 8
        redirects wait: each answers 503 with Retry-After within the busy
        timeout (+ margin) of its own start, none queued behind another; an
        install meanwhile is 200 in < 1 s; afterwards the same 8 links are 200
  stalled_fastcgi_clients_do_not_block
        SLACK_OAUTH_CONCURRENCY=10; 8 connections straight to the FastCGI
        socket send BEGIN_REQUEST and part of PARAMS and stall: a request on
        a 9th connection, and a flow through nginx, are answered in < 1 s;
        once they hang up, 10 slow redirects are again served at once
  config_file_changes_under_load
        the config file replaced (rename) 20 times while flows run on 4
        clients and 4 redirects wait on Slack: every request 200
  first_use_by_many_threads
        a new database: 32 installs at once (the schema and the state key
        made by one process's threads together), then 32 redirects at
        once: all 200, one key, integrity_check ok, 32 installations

Every test also requires each line of the programs' log to be whole
("program: outcome=… status=…", "program: warning: …" or "program: not
starting: …"): threads share stderr.

After each test the deployment is stopped and its logs scanned: a line with
"WARNING: ThreadSanitizer", "ERROR: AddressSanitizer", "ERROR:
LeakSanitizer" or "runtime error:" fails the test (TSAN_OPTIONS defaults
to halt_on_error=0:exitcode=66 so that every report surfaces).

    python3 tests/concurrency.py                 # everything
    python3 tests/concurrency.py -k exactly      # names containing "exactly"
    CGI_BIN=build/tsan/cgi-bin BIN_DIR=build/tsan/bin python3 tests/concurrency.py

Needs root (nginx and the programs run as www-data, PostgreSQL as
postgres), nginx, spawn-fcgi; PostgreSQL's server for the _postgresql test
(skipped, saying why, without it). Prints `ok - name` / `FAIL - name:
reason`, then `N passed, N failed`. Every request loop is bounded in count
and time. Python 3 standard library only; never prints a secret.
"""

import glob
import http.client
import os
import re
import secrets as _secrets
import select
import shlex
import shutil
import socket
import sqlite3
import struct
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

os.environ.setdefault("TSAN_OPTIONS", "halt_on_error=0:exitcode=66")

import stress  # noqa: E402
import testlib  # noqa: E402
from fake_slack import TEAM_NAME, FakeSlack  # noqa: E402
from fcgi_client import (FCGI_BEGIN_REQUEST, FCGI_PARAMS,  # noqa: E402
                         FCGI_RESPONDER, FcgiError, FcgiServer, _HDR,
                         _record, encode_params, fcgi_request)
from testlib import (Runner, Skip, TestFailure, add_secret,  # noqa: E402
                     add_secrets, add_state, check, record_db_modes,
                     record_output, record_tree, redact)


def _dir(var, default):
    d = os.environ.get(var) or os.path.join(ROOT, default)
    return d if os.path.isabs(d) else os.path.join(ROOT, d)


CGI_BIN = _dir("CGI_BIN", "cgi-bin")
BIN_DIR = _dir("BIN_DIR", "bin")
stress.CGI_BIN = CGI_BIN      # the Deployment copies the programs from here
INSTALL = os.path.join(CGI_BIN, "slack-install")
REDIRECT = os.path.join(CGI_BIN, "slack-oauth-redirect")
EVENTS = os.path.join(CGI_BIN, "slack-events")
ADMIN = os.path.join(BIN_DIR, "slack-oauth")
SECRET = "conc-cs-" + _secrets.token_hex(12)
SIGNING_SECRET = "conc-ss-" + _secrets.token_hex(12)
COOKIE = "slack-app-oauth-state"
EXPIRED_TEXT = "expired or was already used"
KEY = "SLACK_OAUTH_CONCURRENCY"
SAN_OPTS = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS",
            "ASAN_SYMBOLIZER_PATH")
SAN_RE = re.compile(r"WARNING: ThreadSanitizer|ThreadSanitizer: |"
                    r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|"
                    r"runtime error:|UndefinedBehaviorSanitizer")
LOG_LINE_RE = re.compile(r"^(slack-install|slack-oauth-redirect): "
                         r"(outcome=\S+ status=\d+ |warning: |not starting: )")
add_secret(SECRET, "client secret")
add_secret(SIGNING_SECRET, "signing secret")


def busy_seconds():
    """include/lim.h's LIM_BUSY_MS, the SQLite busy timeout."""
    try:
        with open(os.path.join(ROOT, "include", "lim.h")) as f:
            m = re.search(r"#define\s+LIM_BUSY_MS\s+(\d+)", f.read())
        return int(m.group(1)) / 1000.0 if m else 3.0
    except OSError:
        return 3.0


BUSY_S = busy_seconds()


def note(msg):
    print("#   " + redact(msg), flush=True)


def san_env():
    return {k: os.environ[k] for k in SAN_OPTS if k in os.environ}


def san_lines(text):
    return [ln for ln in (text or "").splitlines() if SAN_RE.search(ln)]


# ------------------------------------------------------------- the fake
class Fake(FakeSlack):
    """The fake, also recording each refresh answer: (refresh token sent,
    the answer); with fresh_teams, each code exchanged installs the app in
    a workspace of its own (T0C000001, …), so that flows do not overtake
    one another's installation."""

    def __init__(self, *a, **kw):
        FakeSlack.__init__(self, *a, **kw)
        self.refreshes = []
        self.fresh_teams = False
        self._teams = 0
        self._team_now = None

    def _build_exchange(self, code_info):
        with self._lock:
            if self.fresh_teams and code_info is not None:
                self._teams += 1
                self._team_now = {"id": "T0C%06d" % self._teams,
                                  "name": TEAM_NAME}
            try:
                return FakeSlack._build_exchange(self, code_info)
            finally:
                self._team_now = None

    def _context_for_shape(self, shape):
        team, ent, org = FakeSlack._context_for_shape(self, shape)
        if self._team_now is not None and team is not None:
            team = dict(self._team_now)
        return team, ent, org

    def oauth_v2_access(self, headers, form):
        resp = FakeSlack.oauth_v2_access(self, headers, form)
        if form.get("grant_type", [None])[0] == "refresh_token":
            with self._lock:
                self.refreshes.append((form.get("refresh_token", [None])[0],
                                       resp))
        return resp


# ----------------------------------------------------------- the site
class Site(stress.Deployment):
    """nginx + spawn-fcgi from nginx-spawn-fcgi-example.conf (stress.py's
    Deployment), one process per program, extra environment per program
    (env_install, env_redirect: put after the example's `env -i PATH=…`),
    the fake Slack in this process; db_uri: the database in the config file
    instead of the example's SLACK_OAUTH_DB (PostgreSQL)."""

    def __init__(self, name, env_install=None, env_redirect=None,
                 db_uri=None, shape="bot"):
        stress.Deployment.__init__(self, "spawn-fcgi")
        self.name = name
        self.env_prog = {"slack-install": dict(env_install or {}),
                         "slack-oauth-redirect": dict(env_redirect or {})}
        self.db_uri = db_uri
        self.shape = shape
        self.fs = None
        self.conf = self.p("etc/slack-oauth/slack-oauth.conf")
        self.sock = {prog: self.p("run/slack-oauth/%s.sock" % prog)
                     for prog in self.env_prog}

    def start(self):
        for prog in self.env_prog:
            src = os.path.join(CGI_BIN, prog)
            check(os.access(src, os.X_OK), "%s is not built (run make)" % src)
            shutil.copy(src, self.p("usr/local/lib/cgi-bin", prog))
            os.chmod(self.p("usr/local/lib/cgi-bin", prog), 0o755)
        self.fs = Fake(self.client_id, SECRET, shape=self.shape).start()
        self.fake_port = self.fs.port
        with open(self.conf, "w") as f:
            f.write("SLACK_CLIENT_SECRET = %s\n"
                    "SLACK_AUTHORIZE_URL = %s\nSLACK_API_URL = %s\n"
                    % (SECRET, self.fs.authorize_url, self.fs.api_url))
            if self.db_uri:
                f.write("SLACK_OAUTH_DB = %s\n" % self.db_uri)
            if self.shape == "rotation":
                f.write("SLACK_USER_SCOPES = search:read\n")
        os.chown(self.conf, 0, self.gid)
        os.chmod(self.conf, 0o640)
        self._spawn_fcgi()
        self._nginx()
        # The sanitizer options reached the programs through `env -i`.
        for prog in self.env_prog:
            want = {k + "=" + v for k, v in
                    dict(san_env(), **self.env_prog[prog]).items()}
            pid = self.pid(prog)
            check(pid, "%s: no pid file" % prog)
            with open("/proc/%d/environ" % pid, "rb") as f:
                have = set(f.read().decode("utf-8", "replace").split("\0"))
            check(want <= have, "%s: %s not in its environment" % (
                prog, ", ".join(sorted(w.split("=")[0] for w in want - have))))

    def _spawn_fcgi(self):
        # The events endpoint's line is tests/deploy.py's: no events here.
        cmds = testlib.shell_lines(self.example, without="slack-events")
        check(len(cmds) == 3, "want 3 '#$' command lines, got %d" % len(cmds))
        for i, cmd in enumerate(cmds):
            cmd = self.subst(cmd)
            if i:
                prog = ("slack-install" if "slack-install.sock" in cmd
                        else "slack-oauth-redirect")
                check(" -F 2 " in cmd, "the example's spawn-fcgi lines no "
                      "longer say -F 2")
                cmd = cmd.replace(" -F 2 ", " -F 1 ")
                if self.db_uri:
                    cmd, n = re.subn(r"SLACK_OAUTH_DB=\S+\s+", "", cmd)
                    check(n == 1, "example command %d: no SLACK_OAUTH_DB=" % i)
                # Ours last on env's command line, so that they win over
                # the example's own (SLACK_OAUTH_CONCURRENCY=32).
                extra = dict(san_env(), **self.env_prog[prog])
                check(cmd.startswith("env -i ") and cmd.count(" spawn-fcgi ")
                      == 1, "example command %d: not `env -i … spawn-fcgi "
                      "…`" % i)
                cmd = cmd.replace(" spawn-fcgi ", " " + "".join(
                    "%s=%s " % (k, shlex.quote(v)) for k, v in extra.items())
                    + "spawn-fcgi ")
                self.pidfiles.append(self.p("run/slack-oauth/%s.pid" % prog))
            r = subprocess.run(["/bin/sh", "-c", cmd], cwd="/",
                               stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=20)
            check(r.returncode == 0, "%s: exit %d: %s" % (
                cmd[:40], r.returncode, r.stderr.strip()[-300:]))
        self.log = self.p("var/log/slack-oauth/slack-oauth.log")

    def pid(self, prog):
        try:
            with open(self.p("run/slack-oauth/%s.pid" % prog)) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def alive(self):
        """The FastCGI processes that are not running (should be [])."""
        gone = []
        for prog in self.env_prog:
            pid = self.pid(prog)
            if pid is None or not os.path.exists("/proc/%d" % pid):
                gone.append(prog)
        return gone

    def rows(self):
        if self.db_uri:
            r = {}
            for k, q in (("installations", "slack_installations"),
                         ("bots", "slack_bots"),
                         ("states", "slack_oauth_states")):
                r[k] = int(PGBOX.pg.one("select count(*) from %s" % q,
                                        PGBOX.db_of(self.db_uri)))
            return r
        return stress.Deployment.rows(self)

    def stored_tokens(self):
        """{bot tokens} | {user tokens}, {refresh tokens} stored."""
        if self.db_uri:
            db = PGBOX.db_of(self.db_uri)
            toks = {r[0] for r in PGBOX.pg.psql(
                "select bot_token from slack_bots union select user_token "
                "from slack_installations where user_token is not null", db)}
            return toks, set()
        con = sqlite3.connect(self.db, timeout=10)
        try:
            toks = {r[0] for r in con.execute(
                "select bot_token from slack_bots union select user_token "
                "from slack_installations where user_token is not null")}
            rts = {r[0] for r in con.execute(
                "select bot_refresh_token from slack_bots union "
                "select user_refresh_token from slack_installations union "
                "select bot_refresh_token from slack_installations")
                if r[0]}
            return toks, rts
        finally:
            con.close()

    def finish(self):
        """Stops everything; returns the problems seen in the logs (a
        sanitizer report, a process that died) as a list of strings."""
        problems = []
        gone = self.alive() if self.procs else []
        if gone:
            problems.append("FastCGI process(es) no longer running before "
                            "the stop: %s" % ", ".join(gone))
        left = self.stop()
        if left:
            problems.append("processes left running, killed: %r" % left)
        if self.fs is not None:
            add_secrets(self.fs.secrets())
            self.fs.stop()
        text = self.log_text()
        bad = san_lines(text)
        if bad:
            problems.append("sanitizer report in the programs' log (%d "
                            "lines), first: %s" % (len(bad), bad[0][:300]))
        else:
            # Threads write the log at once: each line whole, one a line.
            torn = [ln for ln in text.splitlines()
                    if not LOG_LINE_RE.match(ln)]
            if torn or (text and not text.endswith("\n")):
                problems.append("%d log lines not of the form 'program: …' "
                                "(torn or interleaved?), first: %r"
                                % (len(torn), redact(torn[0] if torn else
                                                     text[-80:])[:200]))
        record_tree(self.p("var/log"), "concurrency %s" % self.name)
        record_db_modes(self.p("var/lib"), self.name)
        shutil.rmtree(self.dir, ignore_errors=True)
        return problems


# ---------------------------------------------------------- the client
class Answer:
    def __init__(self, status=None, headers=(), body="", t0=0.0, t1=0.0,
                 error=None):
        self.status, self.headers, self.body = status, list(headers), body
        self.t0, self.t1, self.error = t0, t1, error

    @property
    def elapsed(self):
        return self.t1 - self.t0

    def header(self, name):
        v = [b for a, b in self.headers if a.lower() == name.lower()]
        return v[0] if v else None

    def __repr__(self):
        if self.error:
            return "<%s after %.2fs>" % (self.error, self.elapsed)
        m = re.search(r"<h1>(.*?)</h1>", self.body or "")
        return "<%s %s in %.2fs>" % (self.status, m.group(1) if m else "",
                                     self.elapsed)


def get(port, path, cookie=None, timeout=10.0, where=None):
    t0 = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"User-Agent": "concurrency-test"}
        if cookie:
            headers["Cookie"] = cookie
        c.request("GET", path, headers=headers)
        r = c.getresponse()
        body = r.read().decode("utf-8", "replace")
        a = Answer(r.status, r.getheaders(), body, t0, time.monotonic())
    except (OSError, http.client.HTTPException) as e:
        return Answer(t0=t0, t1=time.monotonic(),
                      error="%s: %s" % (type(e).__name__, e))
    finally:
        c.close()
    record_output("concurrency: GET %s" % (where or path.split("?")[0]),
                  "\n".join("%s: %s" % hv for hv in a.headers) + "\n\n" +
                  a.body, states_ok=path.startswith("/slack/install"))
    return a


def state_of(a):
    for k, v in a.headers:
        m = re.match(re.escape(COOKIE) + r"=([A-Za-z0-9_-]+);", v)
        if k.lower() == "set-cookie" and m:
            return add_state(m.group(1))
    return None


def new_state(d, tmax=None):
    a = get(d.port, "/slack/install", timeout=5)
    check(a.status == 200, "install: %r" % a)
    s = state_of(a)
    check(s, "install: no state cookie")
    if tmax is not None:
        check(a.elapsed < tmax, "install took %.2fs (want < %.1fs)"
              % (a.elapsed, tmax))
    return s


def redirect_path(state, code):
    return "/slack/oauth_redirect?" + urllib.parse.urlencode(
        {"code": code, "state": state})


def redirect(d, state, code, timeout=10.0):
    return get(d.port, redirect_path(state, code),
               cookie="%s=%s" % (COOKIE, state), timeout=timeout)


def is_ok(a):
    return a.status == 200 and TEAM_NAME in (a.body or "")


def full_flow(d, timeout=3.0):
    """install, the fake's authorize page and Allow link (a code answered
    at once), the redirect: returns (Answer of the redirect, seconds of the
    whole flow)."""
    t0 = time.monotonic()
    try:
        state, query = stress.begin_flow(d)
    except stress.FlowError as e:
        return Answer(t0=t0, t1=time.monotonic(), error=str(e)), \
            time.monotonic() - t0
    add_state(state)
    for v in urllib.parse.parse_qs(query).get("code", []):
        add_secret(v, "code")
    a = get(d.port, "/slack/oauth_redirect?" + query,
            cookie="%s=%s" % (COOKIE, state), timeout=timeout)
    return a, time.monotonic() - t0


def at_once(fns, timeout):
    """Runs each of fns in its own thread, released together; returns their
    results (None for one still running after timeout seconds)."""
    res = [None] * len(fns)
    barrier = threading.Barrier(len(fns) + 1)

    def run(i):
        try:
            barrier.wait(10)
        except threading.BrokenBarrierError:
            return
        try:
            res[i] = fns[i]()
        except Exception as e:  # noqa: BLE001
            res[i] = Answer(error="%s: %s" % (type(e).__name__, e))
    ts = [threading.Thread(target=run, args=(i,), daemon=True)
          for i in range(len(fns))]
    for t in ts:
        t.start()
    barrier.wait(10)
    deadline = time.monotonic() + timeout
    for t in ts:
        t.join(max(0.0, deadline - time.monotonic()))
    return res


def summary(answers):
    out = {}
    for a in answers:
        k = ("none" if a is None else a.error.split(":")[0] if a.error
             else str(a.status))
        out[k] = out.get(k, 0) + 1
    return ", ".join("%d x %s" % (n, k) for k, n in sorted(out.items()))


def log_outcomes(d, prog="slack-oauth-redirect"):
    text = d.log_text()
    return re.findall(r"^%s: outcome=(\S+) status=(\d+)" % re.escape(prog),
                      text, re.M)


# ============================================================== tests
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def with_site(**kw):
    """The test gets a started Site; its problems (sanitizer reports, dead
    processes) fail the test."""
    def deco(fn):
        def run(name):
            d = Site(name, **kw)
            err = None
            try:
                try:
                    d.start()
                except stress.Fail as e:
                    raise TestFailure("setup: %s" % e)
                fn(d)
            except BaseException as e:  # noqa: BLE001
                err = e
            finally:
                problems = d.finish()
            if err is not None:
                if problems:
                    note("also: " + "; ".join(problems))
                raise err
            if problems:
                raise TestFailure("; ".join(problems))
        run.__name__ = fn.__name__
        run.__doc__ = fn.__doc__
        return run
    return deco


@test
@with_site()
def slow_slack_holds_only_its_requests(d):
    """8 redirects wait 4 s on Slack; meanwhile installs and full flows
    are fast; the 8 end together after about one Slack answer."""
    slow, n = 4.0, 8
    fs = d.fs
    a, _ = full_flow(d)                         # warm: the database exists
    check(is_ok(a), "first flow: %r" % a)
    before = d.rows()
    pairs = []
    for _ in range(n):
        s = new_state(d)
        pairs.append((s, add_secret(fs.issue_code(delay=slow), "code")))
    fs.reset_inflight()
    box = {}

    def fire():
        box["slow"] = at_once([lambda s=s, c=c: redirect(d, s, c, slow + 4)
                               for s, c in pairs], slow + 5)
    t0 = time.monotonic()
    th = threading.Thread(target=fire, daemon=True)
    th.start()
    t_wait = time.monotonic()
    while fs.inflight() < n and time.monotonic() - t_wait < 2.0:
        time.sleep(0.02)
    reached = fs.inflight()
    note("oauth.v2.access calls in flight %.2fs after the start: %d"
         % (time.monotonic() - t0, reached))
    fast = []                                   # (what, Answer, seconds)
    for i in range(3):
        a = get(d.port, "/slack/install", timeout=2.0)
        state_of(a)
        fast.append(("install %d" % (i + 1), a, a.elapsed))
        a, took = full_flow(d, timeout=2.0)
        fast.append(("full flow %d" % (i + 1), a, took))
    t_fast = time.monotonic() - t0
    pending = fs.inflight()
    th.join(slow + 8)
    res = box.get("slow") or [None] * n
    ends = [r.t1 - t0 for r in res if r is not None and r.t1]
    note("fast requests while the slow ones waited: %s"
         % ", ".join("%s %s %.0f ms" % (w, a.status if a.status else a.error,
                                        s * 1e3) for w, a, s in fast))
    note("the %d slow redirects: %s; last ended %.2fs after the start; "
         "%d still in flight when the fast ones were done (%.2fs); "
         "max in flight at the fake: %d"
         % (n, summary(res), max(ends) if ends else -1, pending, t_fast,
            fs.max_inflight()))
    bad_fast = [(w, a, s) for w, a, s in fast
                if s >= 1.0 or a.status != 200 or
                (w.startswith("full") and not is_ok(a))]
    check(not bad_fast, "ordinary requests not served at once while the "
          "slow ones waited: %s" % ", ".join("%s: %r" % (w, a)
                                             for w, a, _ in bad_fast))
    check(pending == n and t_fast < slow, "the fast requests were not done "
          "while the %d slow ones were pending (%d in flight at %.2fs)"
          % (n, pending, t_fast))
    check(all(r is not None and is_ok(r) for r in res),
          "slow redirects: %s (want %d x 200)" % (summary(res), n))
    check(max(ends) <= slow + 2.0, "the slow redirects ended %.2fs after "
          "the start (want <= %.1f s: one Slack answer, not %d in a row)"
          % (max(ends), slow + 2.0, n))
    check(fs.max_inflight() >= n, "at most %d oauth.v2.access calls at once "
          "(want >= %d)" % (fs.max_inflight(), n))
    toks, _ = d.stored_tokens()
    issued = {e["code"]: e["response"] for e in fs.exchanges}
    missing = [i for i, (_, c) in enumerate(pairs)
               if issued.get(c, {}).get("access_token") not in toks]
    check(not missing, "installations of slow redirects %r not stored"
          % missing)
    after = d.rows()
    check(after["installations"] - before["installations"] == n + 3,
          "installations stored: %d, want %d"
          % (after["installations"] - before["installations"], n + 3))


@test
@with_site(env_redirect={KEY: "2"})
def concurrency_2_bounds_it(d):
    """SLACK_OAUTH_CONCURRENCY=2: 4 redirects waiting D on Slack take
    about 2 D, 2 at a time."""
    D, n = 2.0, 4
    fs = d.fs
    a, _ = full_flow(d)
    check(is_ok(a), "first flow: %r" % a)
    pairs = [(new_state(d), add_secret(fs.issue_code(delay=D), "code"))
             for _ in range(n)]
    fs.reset_inflight()
    t0 = time.monotonic()
    res = at_once([lambda s=s, c=c: redirect(d, s, c, n * D + 4)
                   for s, c in pairs], n * D + 5)
    ends = sorted(r.t1 - t0 for r in res if r is not None and r.t1)
    note("4 redirects, Slack answering after %.1fs: %s; ended at %s s; "
         "max in flight at the fake: %d"
         % (D, summary(res), ", ".join("%.2f" % e for e in ends),
            fs.max_inflight()))
    check(all(r is not None and is_ok(r) for r in res),
          "redirects: %s (want %d x 200)" % (summary(res), n))
    check(ends[-1] >= 1.8 * D, "the last ended after %.2fs: more than 2 at "
          "once (want >= %.1f s)" % (ends[-1], 1.8 * D))
    check(ends[-1] <= 2 * D + 1.5, "the last ended after %.2fs: fewer than "
          "2 at once (want <= %.1f s)" % (ends[-1], 2 * D + 1.5))
    check(fs.max_inflight() == 2, "%d oauth.v2.access calls at once, want 2"
          % fs.max_inflight())
    a, took = full_flow(d)
    check(is_ok(a), "a flow afterwards: %r" % a)


# ------------------------------------------------- the setting at start
def fcgi_env(tmp, conf, extra=None):
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin",
           "SLACK_OAUTH_CONFIG": conf,
           "SLACK_OAUTH_DB": os.path.join(tmp, "slack-oauth.db"),
           "SLACK_CLIENT_ID": "1234567890.1111111111",
           "SLACK_CLIENT_SECRET": SECRET,
           "SLACK_SIGNING_SECRET": SIGNING_SECRET,
           "SLACK_SCOPES": "chat:write",
           "SLACK_API_URL": "http://127.0.0.1:9/api/",
           "SLACK_AUTHORIZE_URL": "http://127.0.0.1:9/oauth/v2/authorize"}
    env.update(san_env())
    env.update(extra or {})
    return env


def write_conf(path, lines):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(ln + "\n" for ln in lines))
    os.chmod(path, 0o600)


def programs():
    progs = [INSTALL, REDIRECT]
    if os.access(EVENTS, os.X_OK):
        progs.append(EVENTS)
    return progs


def start_and_expect_exit(tmp, cases, wait=5.0):
    """cases: [(label, binary, env)]. Starts each as FastCGI (a listening
    socket on fd 0) at once; returns the problems."""
    servers = []
    problems = []
    try:
        for label, binary, env in cases:
            srv = FcgiServer(binary, env=env, nprocs=1, sock_dir=tmp, cwd=tmp)
            servers.append((label, srv, time.monotonic()))
        deadline = time.monotonic() + wait
        for label, srv, t0 in servers:
            p = srv.procs[0]
            try:
                p.wait(max(0.01, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for label, srv, t0 in servers:
            p = srv.procs[0]
            rc = p.poll()
            err = srv.stderr_text()
            record_output("concurrency: stderr of %s" % label, err)
            lines = [ln for ln in err.splitlines() if ln.strip()]
            if rc is None:
                problems.append("%s: still running after %.0fs" % (label,
                                                                   wait))
                continue
            why = []
            if rc == 0:
                why.append("exit status 0")
            if rc < 0:
                why.append("killed by signal %d" % -rc)
            if len(lines) != 1:
                why.append("%d log lines" % len(lines))
            if not any(KEY in ln for ln in lines):
                why.append("no line names %s" % KEY)
            if any(s in err for s in (SECRET, SIGNING_SECRET)):
                why.append("a secret in the log")
            if san_lines(err):
                why.append("sanitizer report")
            if why:
                problems.append("%s: %s (exit %s; log: %s)" % (
                    label, ", ".join(why), rc, redact(" | ".join(lines))[:300]))
            else:
                note("%s: exit %d: %s" % (label, rc, redact(lines[0])[:200]))
    finally:
        for _, srv, _ in servers:
            srv.stop()
    return problems


INVALID = ("0", "257", "abc", "-1", "18446744073709551617")


@test
def invalid_concurrency_stops_the_process(name):
    """Each invalid value in the process environment: every program exits
    at start, non-zero, with one log line naming the key."""
    tmp = tempfile.mkdtemp(prefix="conc-invalid-")
    try:
        conf = os.path.join(tmp, "empty.conf")
        write_conf(conf, [])
        cases = [("%s with %s=%s" % (os.path.basename(b), KEY, v), b,
                  fcgi_env(tmp, conf, {KEY: v}))
                 for b in programs() for v in INVALID]
        problems = start_and_expect_exit(tmp, cases)
        check(not problems, "; ".join(problems))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def invalid_concurrency_in_config_file_stops_the_process(name):
    """`SLACK_OAUTH_CONCURRENCY = 0` in the config file (0600, with the
    client secret): every program exits at start."""
    tmp = tempfile.mkdtemp(prefix="conc-invalid-conf-")
    try:
        conf = os.path.join(tmp, "slack-oauth.conf")
        write_conf(conf, ["# the only setting that is wrong",
                          "SLACK_CLIENT_SECRET = " + SECRET,
                          "%s = 0" % KEY])
        cases = []
        for b in programs():
            env = fcgi_env(tmp, conf)
            env.pop("SLACK_CLIENT_SECRET")
            cases.append(("%s with %s = 0 in the config file"
                          % (os.path.basename(b), KEY), b, env))
        problems = start_and_expect_exit(tmp, cases)
        check(not problems, "; ".join(problems))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def install_params(extra=None):
    p = {"GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
         "REQUEST_METHOD": "GET", "QUERY_STRING": "",
         "SCRIPT_NAME": "/slack/install", "REQUEST_URI": "/slack/install",
         "SERVER_NAME": "localhost", "SERVER_PORT": "443", "HTTPS": "on",
         "REMOTE_ADDR": "127.0.0.1"}
    p.update(extra or {})
    return p


def serve_one(tmp, label, env, params=None):
    """Starts slack-install as FastCGI with env; it must stay up and answer
    one request 200 with no line about the setting."""
    srv = FcgiServer(INSTALL, env=env, nprocs=1, sock_dir=tmp, cwd=tmp)
    try:
        time.sleep(0.5)
        check(srv.alive(), "%s: the process exited (%r): %s" % (
            label, srv.dead(), redact(srv.stderr_text())[-300:]))
        try:
            st, hd, body, err = fcgi_request(srv.path, install_params(params),
                                             timeout=5)
        except (FcgiError, OSError) as e:
            raise TestFailure("%s: %s: %s" % (label, type(e).__name__, e))
        for k, v in hd:
            if k.lower() == "set-cookie":
                m = re.match(re.escape(COOKIE) + r"=([A-Za-z0-9_-]+);", v)
                if m:
                    add_state(m.group(1))
        record_output("concurrency: %s" % label, "\n".join(
            "%s: %s" % kv for kv in hd) + "\n\n" + body.decode(
                "utf-8", "replace"), states_ok=True)
        time.sleep(0.1)
        log = srv.stderr_text()
        record_output("concurrency: stderr of %s" % label, log)
        check(st == 200, "%s: status %d; log: %s" % (label, st,
                                                     redact(log)[-300:]))
        check(KEY not in log, "%s: the log names %s: %s"
              % (label, KEY, redact(log)[-300:]))
        check(not san_lines(log), "%s: sanitizer report: %s"
              % (label, redact(log)[-300:]))
    finally:
        srv.stop()


@test
def valid_concurrency_bounds_accepted(name):
    """1 and 256 (the bounds) in the environment, 4 in the config file."""
    tmp = tempfile.mkdtemp(prefix="conc-valid-")
    try:
        conf = os.path.join(tmp, "empty.conf")
        write_conf(conf, [])
        for v in ("1", "256"):
            serve_one(tmp, "%s=%s" % (KEY, v), fcgi_env(tmp, conf, {KEY: v}))
        conf2 = os.path.join(tmp, "slack-oauth.conf")
        write_conf(conf2, ["%s = 4" % KEY])
        serve_one(tmp, "%s = 4 in the config file" % KEY,
                  fcgi_env(tmp, conf2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@test
def concurrency_never_from_a_request(name):
    """A request parameter SLACK_OAUTH_CONCURRENCY=abc (nginx
    fastcgi_param) is not read: the install is 200, no line about it."""
    tmp = tempfile.mkdtemp(prefix="conc-param-")
    try:
        conf = os.path.join(tmp, "empty.conf")
        write_conf(conf, [])
        serve_one(tmp, "request parameter %s=abc" % KEY, fcgi_env(tmp, conf),
                  params={KEY: "abc"})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------ exactly once
def exactly_once(d, n=50):
    fs = d.fs
    a, _ = full_flow(d)
    check(is_ok(a), "first flow: %r" % a)
    before = d.rows()
    state = new_state(d)
    code = add_secret(fs.issue_code(delay=0.1), "code")
    fs.clear()
    path = redirect_path(state, code)
    conns = [http.client.HTTPConnection("127.0.0.1", d.port, timeout=20)
             for _ in range(n)]
    for c in conns:
        c.connect()

    def go(c):
        t0 = time.monotonic()
        try:
            c.request("GET", path, headers={"Cookie": "%s=%s"
                                            % (COOKIE, state)})
            r = c.getresponse()
            body = r.read().decode("utf-8", "replace")
            return Answer(r.status, r.getheaders(), body, t0,
                          time.monotonic())
        except (OSError, http.client.HTTPException) as e:
            return Answer(t0=t0, t1=time.monotonic(),
                          error="%s: %s" % (type(e).__name__, e))
        finally:
            c.close()
    t0 = time.monotonic()
    res = at_once([lambda c=c: go(c) for c in conns], 30)
    wall = time.monotonic() - t0
    for r in res:
        if r is not None:
            record_output("concurrency: replayed redirect", r.body)
    ok = [r for r in res if r is not None and is_ok(r)]
    used = [r for r in res if r is not None and r.status == 400 and
            EXPIRED_TEXT in r.body]
    calls = fs.api_requests("oauth.v2.access")
    note("one state sent by %d concurrent requests: %s (%d x 200, %d x 400 "
         "'already used') in %.2fs; oauth.v2.access calls: %d"
         % (n, summary(res), len(ok), len(used), wall, len(calls)))
    check(len(ok) == 1 and len(used) == n - 1,
          "want 1 x 200 and %d x 400: %s" % (n - 1, summary(res)))
    check(len(calls) == 1, "%d oauth.v2.access calls, want 1" % len(calls))
    after = d.rows()
    check(after["installations"] == before["installations"] + 1,
          "installations: %d -> %d" % (before["installations"],
                                       after["installations"]))
    pid = d.pid("slack-oauth-redirect")
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            mem = {ln.split(":")[0]: int(ln.split()[1]) for ln in f
                   if ln.split(":")[0] in ("Rss", "Private_Clean",
                                           "Private_Dirty")}
        with open("/proc/%d/status" % pid) as f:
            thr = re.search(r"^Threads:\s+(\d+)", f.read(), re.M).group(1)
        note("the redirect process after %d at once: %s threads, Rss %d kB, "
             "private %d kB" % (n, thr, mem.get("Rss", 0),
                                mem.get("Private_Clean", 0) +
                                mem.get("Private_Dirty", 0)))
    except (OSError, AttributeError, ValueError):
        pass
    time.sleep(0.3)
    outs = log_outcomes(d)[-n:]
    inval = sum(1 for o, s in outs if (o, s) == ("invalid_state", "400"))
    check(inval == n - 1, "log: %d invalid_state lines among the last %d, "
          "want %d" % (inval, n, n - 1))


@test
@with_site(env_redirect={KEY: "64"})
def exactly_once_50_concurrent_one_process_sqlite(d):
    exactly_once(d)


class PgBox:
    """tests/pg.py's PostgreSQL server, started on first use."""

    def __init__(self):
        self.pg = None
        self.why = None
        self.pgmod = None

    def get(self):
        if self.pg is None and self.why is None:
            try:
                import pg as pgmod
            except Exception as e:  # noqa: BLE001
                self.why = "tests/pg.py does not import: %s" % e
                return None
            bindir = pgmod.pg_bin_dir()
            if bindir is None or not shutil.which("psql"):
                self.why = "no PostgreSQL server (/usr/lib/postgresql/*/bin)"
                return None
            self.pgmod = pgmod
            server = pgmod.Postgres(bindir)
            try:
                server.setup()
            except Exception as e:  # noqa: BLE001
                server.cleanup()
                self.why = "PostgreSQL did not start: %s" % e
                return None
            self.pg = server
        return self.pg

    def db_of(self, uri):
        return urllib.parse.urlsplit(uri).path.lstrip("/")

    def cleanup(self):
        if self.pg is not None:
            self.pg.cleanup()
            self.pg = None


PGBOX = PgBox()


@test
def exactly_once_50_concurrent_one_process_postgresql(name):
    server = PGBOX.get()
    if server is None:
        raise Skip(PGBOX.why)
    db = server.new_db("conc")
    uri = server.uri(db)

    @with_site(env_redirect={KEY: "64"}, db_uri=uri)
    def run(d):
        exactly_once(d)
    run(name)


# ---------------------------------------------------------- refresh
@test
@with_site(shape="rotation")
def refresh_concurrent_with_flows(d):
    """Rotating tokens, each flow a workspace of its own; flows keep coming
    through the redirect process while 4 `slack-oauth refresh --within
    50000` run at once: each due token is refreshed by one of them."""
    fs = d.fs
    fs.fresh_teams = True
    for _ in range(4):
        a, _ = full_flow(d)
        check(is_ok(a), "flow before: %r" % a)
    check(os.access(ADMIN, os.X_OK), "%s is not built" % ADMIN)
    fs.refresh_delay = 0.2
    stop = threading.Event()
    flows = []
    lock = threading.Lock()

    def stream():
        t_end = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < t_end:
            with lock:
                if len(flows) >= 40:
                    return
            a, took = full_flow(d, timeout=10)
            with lock:
                flows.append(a)
            time.sleep(0.1)
    streams = [threading.Thread(target=stream, daemon=True) for _ in range(2)]
    for t in streams:
        t.start()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin",
           "SLACK_OAUTH_CONFIG": d.conf, "SLACK_OAUTH_DB": d.db,
           "SLACK_CLIENT_ID": d.client_id, "SLACK_SCOPES": "chat:write,commands",
           "HOME": d.dir}
    env.update(san_env())
    time.sleep(0.2)
    procs = [subprocess.Popen([ADMIN, "refresh", "--within", "50000"],
                              env=env, cwd=d.dir, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              user=d.uid, group=d.gid, extra_groups=[])
             for _ in range(4)]
    runs = []
    deadline = time.monotonic() + 60
    for p in procs:
        try:
            out, err = p.communicate(timeout=max(1, deadline -
                                                 time.monotonic()))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            out, err = p.communicate()
        runs.append((p.returncode, out.decode("utf-8", "replace"),
                     err.decode("utf-8", "replace")))
    time.sleep(0.3)
    stop.set()
    for t in streams:
        t.join(15)
    add_secrets(fs.secrets())
    said = {}
    for rc, out, err in runs:
        record_output("concurrency: slack-oauth refresh stdout", out)
        record_output("concurrency: slack-oauth refresh stderr", err)
        for ln in (out + err).splitlines():
            k = re.sub(r"^\S+: (bot token|user token of \S+): ", "", ln)
            k = re.sub(r", expires .*", "", k)
            said[k] = said.get(k, 0) + 1
    note("what the runs said: %s" % ", ".join(
        "%d x %r" % (v, k[:60]) for k, v in sorted(said.items())))
    sent = [rt for rt, _ in fs.refreshes]
    accepted = [resp for _, resp in fs.refreshes if resp.get("ok")]
    note("4 concurrent `slack-oauth refresh` runs: exit %s; %d refresh "
         "requests at the fake, %d distinct, %d accepted; %d flows meanwhile: "
         "%s" % ([r[0] for r in runs], len(sent), len(set(sent)),
                 len(accepted), len(flows), summary(flows)))
    for rc, out, err in runs:
        check(rc == 0, "slack-oauth refresh: exit %s: %s"
              % (rc, redact(err)[-400:]))
        check(not san_lines(err), "slack-oauth refresh: sanitizer report: %s"
              % redact(err)[-600:])
    check(len(sent) == len(set(sent)), "%d refresh tokens sent more than "
          "once" % (len(sent) - len(set(sent))))
    check(len(accepted) == len(sent), "%d refresh requests refused by the "
          "fake (a spent or unknown refresh token)"
          % (len(sent) - len(accepted)))
    check(len(accepted) >= 2, "only %d refreshes" % len(accepted))
    check(flows and all(is_ok(a) for a in flows),
          "flows during the refreshes: %s" % summary(flows))
    toks, rts = d.stored_tokens()
    lost = [r["token_type"] for r in accepted
            if r["access_token"] not in toks or r["refresh_token"] not in rts]
    check(not lost, "%d refreshed pairs not stored (%s)"
          % (len(lost), ", ".join(lost[:4])))


# ------------------------------------------------- locks and stalls
def lock_db(path):
    code = ("import sqlite3, sys\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None, "
            "timeout=10)\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n"
            "c.execute('ROLLBACK')\n")
    p = subprocess.Popen([sys.executable, "-c", code, path],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    ready, _, _ = select.select([p.stdout], [], [], 10)
    if not (ready and p.stdout.readline().strip() == "locked"):
        p.kill()
        p.wait()
        raise TestFailure("the lock holder did not get its lock")

    def release():
        try:
            p.stdin.close()
            p.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            p.kill()
            p.wait()
    return release


@test
@with_site()
def db_locked_8_waiting(d):
    """BEGIN EXCLUSIVE held past the busy timeout while 8 redirects wait:
    each is 503 with Retry-After after its own busy timeout (none queued
    behind another); an install meanwhile is 200 at once."""
    n = 8
    hold = BUSY_S + 2.0
    fs = d.fs
    a, _ = full_flow(d)
    check(is_ok(a), "first flow: %r" % a)
    check(os.path.exists(d.db + "-key"), "no -key sidecar after a flow")
    pairs = [(new_state(d), add_secret(fs.issue_code(), "code"))
             for _ in range(n)]
    fs.clear()
    release = lock_db(d.db)
    t_lock = time.monotonic()
    box = {}
    try:
        def fire():
            box["res"] = at_once([lambda s=s, c=c: redirect(d, s, c, 15)
                                  for s, c in pairs], 20)
        th = threading.Thread(target=fire, daemon=True)
        th.start()
        time.sleep(0.5)
        inst = get(d.port, "/slack/install", timeout=3)
        state_of(inst)
        while time.monotonic() - t_lock < hold:
            time.sleep(0.05)
        calls_locked = len(fs.api_requests("oauth.v2.access"))
    finally:
        t_rel = time.monotonic()    # the holder's ROLLBACK comes after this
        release()
    t_gone = time.monotonic()       # and before this
    th.join(20)
    res = box.get("res") or [None] * n
    note("lock held %.1fs (busy timeout %.1fs); the %d redirects: %s; "
         "answered after %s s (each from its own start); install during "
         "the lock: %r"
         % (t_gone - t_lock, BUSY_S, n, summary(res),
            ", ".join("%.2f" % r.elapsed for r in res if r is not None),
            inst))
    check(inst.status == 200 and inst.elapsed < 1.0,
          "install while the database was locked: %r (want 200 in < 1 s)"
          % inst)
    bad = []
    for i, r in enumerate(res):
        if r is None or r.error:
            bad.append("%d: %r" % (i, r))
        elif r.status == 503:
            ra = r.header("Retry-After") or ""
            if not ra.isdigit():
                bad.append("%d: 503 without a numeric Retry-After" % i)
            if r.t1 > t_gone + 0.2:
                bad.append("%d: 503 after the lock was gone" % i)
        elif r.status == 200:
            if r.t1 < t_rel:
                bad.append("%d: 200 while the lock was held" % i)
        else:
            bad.append("%d: %r" % (i, r))
        if r is not None and r.elapsed > BUSY_S + 1.5:
            bad.append("%d: answered after %.2fs (want <= %.1fs: its own "
                       "busy timeout, not queued behind the others)"
                       % (i, r.elapsed, BUSY_S + 1.5))
        if r is not None and r.status == 503 and r.elapsed < BUSY_S - 0.5:
            bad.append("%d: 503 after %.2fs, before the busy timeout"
                       % (i, r.elapsed))
    check(not bad, "; ".join(bad[:6]))
    check(calls_locked == 0, "%d oauth.v2.access calls while the database "
          "was locked" % calls_locked)
    # The 503s promised a retry: the same links now work, all at once.
    again = at_once([lambda s=s, c=c: redirect(d, s, c, 10)
                     for (s, c), r in zip(pairs, res)
                     if r is not None and r.status == 503], 12)
    if again:
        note("the %d links answered 503, again: %s" % (len(again),
                                                       summary(again)))
        check(all(r is not None and is_ok(r) for r in again),
              "the same links after the lock: %s (want 200)"
              % summary(again))


def stall(path):
    """A FastCGI connection that sent BEGIN_REQUEST and part of a PARAMS
    record, and then nothing."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    body = encode_params({"REQUEST_METHOD": "GET", "QUERY_STRING": "x" * 200})
    s.sendall(_record(FCGI_BEGIN_REQUEST, 1,
                      struct.pack("!HB5x", FCGI_RESPONDER, 0)) +
              _HDR.pack(1, FCGI_PARAMS, 1, len(body), 0) + body[:20])
    return s


@test
@with_site(env_redirect={KEY: "10"})
def stalled_fastcgi_clients_do_not_block(d):
    """SLACK_OAUTH_CONCURRENCY=10: 8 FastCGI connections stall mid-PARAMS;
    a 9th connection and nginx are still answered at once."""
    fs = d.fs
    a, _ = full_flow(d)
    check(is_ok(a), "first flow: %r" % a)
    sock = d.sock["slack-oauth-redirect"]
    stalled = [stall(sock) for _ in range(8)]
    try:
        time.sleep(0.5)
        state = new_state(d)
        code = add_secret(fs.issue_code(), "code")
        params = {"GATEWAY_INTERFACE": "CGI/1.1",
                  "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_METHOD": "GET",
                  "QUERY_STRING": urllib.parse.urlencode(
                      {"code": code, "state": state}),
                  "SCRIPT_NAME": "/slack/oauth_redirect",
                  "REQUEST_URI": "/slack/oauth_redirect",
                  "SERVER_NAME": "localhost", "SERVER_PORT": "443",
                  "HTTPS": "on", "REMOTE_ADDR": "127.0.0.1",
                  "HTTP_COOKIE": "%s=%s" % (COOKIE, state)}
        t0 = time.monotonic()
        try:
            st, hd, body, err = fcgi_request(sock, params, timeout=2.0)
            r9 = Answer(st, hd, body.decode("utf-8", "replace"), t0,
                        time.monotonic())
        except (FcgiError, OSError) as e:
            r9 = Answer(t0=t0, t1=time.monotonic(),
                        error="%s: %s" % (type(e).__name__, e))
        record_output("concurrency: redirect on a 9th FastCGI connection",
                      r9.body)
        via_nginx, took = full_flow(d, timeout=2.0)
        note("8 FastCGI connections stalled mid-PARAMS; a 9th: %r; a flow "
             "through nginx: %r (%.0f ms in all)" % (r9, via_nginx,
                                                    took * 1e3))
        check(is_ok(r9) and r9.elapsed < 1.0, "the 9th connection: %r (want "
              "200 in < 1 s)" % r9)
        check(is_ok(via_nginx) and took < 1.0, "a flow through nginx: %r in "
              "%.2fs (want 200 in < 1 s)" % (via_nginx, took))
    finally:
        for s in stalled:
            s.close()
    # The stalled ones gone, their workers serve again: 10 redirects that
    # wait 1 s on Slack, at once, are all served at once.
    time.sleep(0.3)
    pairs = [(new_state(d), add_secret(fs.issue_code(delay=1.0), "code"))
             for _ in range(10)]
    fs.reset_inflight()
    t0 = time.monotonic()
    res = at_once([lambda s=s, c=c: redirect(d, s, c, 8)
                   for s, c in pairs], 10)
    ends = [r.t1 - t0 for r in res if r is not None and r.t1]
    note("after the stalled clients left, 10 redirects waiting 1 s on Slack: "
         "%s, the last after %.2fs, %d at once at the fake"
         % (summary(res), max(ends) if ends else -1, fs.max_inflight()))
    check(all(r is not None and is_ok(r) for r in res),
          "10 redirects after the stalled clients left: %s" % summary(res))
    check(fs.max_inflight() == 10 and max(ends) < 2.5,
          "after the stalled clients left: %d served at once, the last after "
          "%.2fs (want 10, < 2.5 s)" % (fs.max_inflight(), max(ends)))


# ------------------------------------------------- changes under load
def rewrite_conf(d, extra):
    """Replaces the config file as an administrator would (a new file,
    root:www-data 0640, renamed over the old one)."""
    with open(d.conf) as f:
        base = [ln for ln in f.read().splitlines()
                if not ln.startswith("SLACK_STATE_TTL")]
    tmp = d.conf + ".new"
    with open(tmp, "w") as f:
        f.write("\n".join(base + extra) + "\n")
    os.chown(tmp, 0, d.gid)
    os.chmod(tmp, 0o640)
    os.rename(tmp, d.conf)


@test
@with_site()
def config_file_changes_under_load(d):
    """The config file replaced 20 times while flows run on 4 clients and
    4 redirects wait on Slack: every request 200 (each thread sees a whole
    configuration, old or new)."""
    fs = d.fs
    a, _ = full_flow(d)
    check(is_ok(a), "first flow: %r" % a)
    pairs = [(new_state(d), add_secret(fs.issue_code(delay=1.0), "code"))
             for _ in range(4)]
    stop = threading.Event()
    flows, lock = [], threading.Lock()

    def stream():
        t_end = time.monotonic() + 15
        while not stop.is_set() and time.monotonic() < t_end:
            with lock:
                if len(flows) >= 80:
                    return
            a, _ = full_flow(d, timeout=10)
            with lock:
                flows.append(a)
    box = {}

    def slow():
        box["slow"] = at_once([lambda s=s, c=c: redirect(d, s, c, 8)
                               for s, c in pairs], 10)
    ts = [threading.Thread(target=stream, daemon=True) for _ in range(4)]
    ts.append(threading.Thread(target=slow, daemon=True))
    for t in ts:
        t.start()
    for i in range(20):
        rewrite_conf(d, ["SLACK_STATE_TTL = %d" % (600 + 300 * (i % 2))])
        time.sleep(0.06)
    stop.set()
    for t in ts:
        t.join(15)
    res = box.get("slow") or [None] * len(pairs)
    note("20 config file replacements: %d flows meanwhile: %s; 4 slow "
         "redirects: %s" % (len(flows), summary(flows), summary(res)))
    check(flows and all(is_ok(a) for a in flows),
          "flows while the config file changed: %s" % summary(flows))
    check(all(r is not None and is_ok(r) for r in res),
          "slow redirects while the config file changed: %s" % summary(res))


@test
@with_site()
def first_use_by_many_threads(d):
    """A new database: 32 installs at once (one process, its threads make
    the schema and the state key together), then 32 redirects at once:
    every state redeems (one key), one installation each."""
    n = 32
    fs = d.fs
    check(not os.path.exists(d.db), "the database exists before the start")
    res = at_once([lambda: get(d.port, "/slack/install", timeout=10)
                   for _ in range(n)], 15)
    states = [state_of(r) if r is not None and r.status == 200 else None
              for r in res]
    note("%d installs at once on a new database: %s" % (n, summary(res)))
    check(all(states) and len(set(states)) == n, "installs: %s, %d distinct "
          "states" % (summary(res), len({s for s in states if s})))
    con = sqlite3.connect(d.db, timeout=10)
    try:
        ic = [r[0] for r in con.execute("pragma integrity_check")]
        uv = con.execute("pragma user_version").fetchone()[0]
        keys = con.execute("select count(*) from slack_oauth_keys"
                           ).fetchone()[0]
    finally:
        con.close()
    check(ic == ["ok"] and uv >= 1 and keys == 1,
          "integrity_check %r, user_version %r, %d state keys (want ok, "
          ">= 1, 1)" % (ic[:2], uv, keys))
    pairs = [(s, add_secret(fs.issue_code(), "code")) for s in states]
    res = at_once([lambda s=s, c=c: redirect(d, s, c, 10)
                   for s, c in pairs], 15)
    note("%d redirects at once: %s" % (n, summary(res)))
    check(all(r is not None and is_ok(r) for r in res),
          "redirects: %s (want %d x 200)" % (summary(res), n))
    eq_rows = d.rows()
    check(eq_rows["installations"] == n, "%d installations stored, want %d"
          % (eq_rows["installations"], n))


# ------------------------------------------------------------ runner
def main(argv):
    only = [argv[i + 1] for i in range(len(argv) - 1) if argv[i] == "-k"]
    only += [a for i, a in enumerate(argv)
             if not a.startswith("-") and (i == 0 or argv[i - 1] != "-k")]
    run = Runner()
    why = None
    if os.geteuid() != 0:
        why = "must run as root (nginx and the programs run as www-data)"
    else:
        gone = [b for b in ("nginx", "spawn-fcgi") if not shutil.which(b)]
        if gone:
            why = "missing %s (make deploy-deps)" % " ".join(gone)
    for p in (INSTALL, REDIRECT, ADMIN):
        if why is None and not os.access(p, os.X_OK):
            why = "%s is not built (make)" % p
    if why:
        run.fail("setup", why)
        return run.finish()
    t_all = time.monotonic()
    try:
        for fn in TESTS:
            name = fn.__name__
            if only and not any(o in name for o in only):
                continue
            t0 = time.monotonic()
            print("# %s" % name, flush=True)
            try:
                fn(name)
            except Skip as e:
                run.skip(name, e)
                continue
            except TestFailure as e:
                run.fail(name, str(e).replace("\n", " ")[:1500])
                continue
            except stress.Fail as e:
                run.fail(name, str(e).replace("\n", " ")[:1500])
                continue
            except Exception as e:  # noqa: BLE001
                tb = traceback.format_exc().strip().splitlines()
                run.fail(name, "%s: %s [%s]" % (type(e).__name__, e,
                                                " | ".join(tb[-4:-1])))
                continue
            run.ok("%s (%.1fs)" % (name, time.monotonic() - t0))
    finally:
        PGBOX.cleanup()
    print("# concurrency took %.1fs" % (time.monotonic() - t_all), flush=True)
    return run.finish()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
