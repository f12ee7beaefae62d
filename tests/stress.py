#!/usr/bin/env python3
"""Concurrency tests through a real web server.

Two deployments, each from its example file as tests/deploy.py runs them
(paths moved under a temp root, the programs as www-data):

  nginx + spawn-fcgi   nginx-spawn-fcgi-example.conf, 4 processes per program
  nginx + fcgiwrap     nginx-example.conf, fcgiwrap -c 4 (CGI per request)

and for each:

  flows    N full flows at C concurrent clients: GET /slack/install, the
           fake Slack's authorize page and its "Allow" link, GET
           /slack/oauth_redirect with the cookie -> exactly N installations
           stored, N "outcome=ok" log lines, 0 errors; flows/s reported
  replay   one valid state sent by 50 concurrent requests -> exactly one
           200 and 49 400 "expired or was already used", one installation

plus, without a web server:

  schema   16 slack-install processes released at once (a FIFO barrier) on
           a new database file, several rounds: all 200, integrity_check
           ok, user_version set, one signing key (all 16 states redeem)

    python3 tests/stress.py             # 1,000 flows at 64 clients (make stress)
    python3 tests/stress.py --quick     # 100 flows at 16 (make test)
    python3 tests/stress.py --flows 500 --clients 32 -k spawn

Differences from the example files, for a load test from one address over
loopback: plain http instead of https (the client's TLS would be what is
measured), no limit_req (it would turn the load into 503s), nginx with
2 workers and 512 connections each. The fake Slack runs in its own process
(tests/fake_slack.py, listen backlog raised). Needs root (nginx drops to
www-data as in production). Prints "ok - name" / "FAIL - name: reason",
then "N passed, N failed" as the last line; exit status 1 on a failure.
Python 3 standard library only.
"""

import functools
import glob
import grp
import html
import http.client
import os
import pwd
import re
import secrets as _secrets
import shutil
import socket
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
from fcgi_client import parse_cgi_response  # noqa: E402
import testlib  # noqa: E402
from testlib import (free_port, kill_leftovers, port_open,  # noqa: E402
                     processes_under, shell_lines, stop_processes)

CGI_BIN = os.path.join(ROOT, os.environ.get("CGI_BIN") or "cgi-bin")
SECRET = "stress-cs-" + _secrets.token_hex(12)
COOKIE = "slack-app-oauth-state"
EXPIRED_TEXT = "expired or was already used"
PATHS = ["/usr/local/lib/cgi-bin", "/etc/slack-oauth", "/var/lib/slack-oauth",
         "/var/log/nginx", "/var/log/slack-oauth", "/run/slack-oauth",
         "/run/fcgiwrap.socket", "/etc/letsencrypt/live/example.org"]
WORKERS = 4


class Fail(Exception):
    pass


wait_for = functools.partial(testlib.wait_for, exc=Fail)


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def note(msg):
    print("#   " + msg, flush=True)


def client_id_of(text):
    m = re.search(r"SLACK_CLIENT_ID[ =]+([^\s;]+)", text)
    check(m, "the example sets no SLACK_CLIENT_ID")
    return m.group(1)


NGINX_MAIN = """\
user www-data;
worker_processes 2;
pid {dir}/run/nginx.pid;
daemon off;
error_log {dir}/var/log/nginx/error.log;
events {{ worker_connections 512; }}
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

FAKE_LAUNCHER = """\
import sys
sys.path.insert(0, sys.argv[1])
import fake_slack
fake_slack.ThreadingHTTPServer.request_queue_size = 1024
sys.exit(fake_slack.main(sys.argv[2:]))
"""


class Deployment:
    """A temp root standing in for /, nginx + the programs + a fake Slack
    in it, and their clean-up."""

    def __init__(self, kind):
        self.kind = kind  # "spawn-fcgi" | "fcgiwrap"
        self.dir = tempfile.mkdtemp(prefix="stress-%s-" % kind)
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.fake_port = free_port()
        self.procs = []
        self.pidfiles = []
        self.uid = pwd.getpwnam("www-data").pw_uid
        self.gid = grp.getgrnam("www-data").gr_gid
        for d in ("usr/local/lib/cgi-bin", "etc/slack-oauth", "var/log/nginx",
                  "var/log/slack-oauth", "run", "tmp", "nginx"):
            os.makedirs(self.p(d), exist_ok=True)
        os.makedirs(self.p("var/lib/slack-oauth"))
        os.chown(self.p("var/lib/slack-oauth"), self.uid, self.gid)
        os.chmod(self.p("var/lib/slack-oauth"), 0o700)
        self.db = self.p("var/lib/slack-oauth/slack-oauth.db")
        example = {"spawn-fcgi": "nginx-spawn-fcgi-example.conf",
                   "fcgiwrap": "nginx-example.conf"}[kind]
        with open(os.path.join(ROOT, example)) as f:
            self.example = f.read()
        self.client_id = client_id_of(self.example)

    def p(self, *parts):
        return os.path.join(self.dir, *parts)

    def subst(self, text):
        for path in PATHS:
            text = text.replace(path, self.dir + path)
        return text

    def spawn(self, argv, log=None, **kw):
        out = open(log, "ab") if log else subprocess.DEVNULL
        p = subprocess.Popen(argv, stdin=kw.pop("stdin", subprocess.DEVNULL),
                             stdout=out, stderr=out, start_new_session=True,
                             **kw)
        if log:
            out.close()
        self.procs.append(p)
        return p

    # ---------------------------------------------------------------- start
    def start(self):
        for prog in ("slack-install", "slack-oauth-redirect"):
            src = os.path.join(CGI_BIN, prog)
            check(os.access(src, os.X_OK), "%s is not built (run make)" % src)
            shutil.copy(src, self.p("usr/local/lib/cgi-bin", prog))
            os.chmod(self.p("usr/local/lib/cgi-bin", prog), 0o755)
        fake = self.spawn([sys.executable, "-c", FAKE_LAUNCHER, HERE,
                           "--port", str(self.fake_port),
                           "--client-id", self.client_id,
                           "--client-secret", SECRET],
                          log=self.p("var/log/fake-slack.log"))
        wait_for(lambda: fake.poll() is None and port_open(self.fake_port),
                 "the fake Slack")
        conf = self.p("etc/slack-oauth/slack-oauth.conf")
        with open(conf, "w") as f:
            f.write("SLACK_CLIENT_SECRET = %s\n"
                    "SLACK_AUTHORIZE_URL = http://127.0.0.1:%d/oauth/v2/authorize\n"
                    "SLACK_API_URL = http://127.0.0.1:%d/api/\n"
                    % (SECRET, self.fake_port, self.fake_port))
        os.chown(conf, 0, self.gid)
        os.chmod(conf, 0o640)
        if self.kind == "spawn-fcgi":
            self._spawn_fcgi()
        else:
            self._fcgiwrap()
        self._nginx()

    def _spawn_fcgi(self):
        # The events endpoint's line is tests/deploy.py's: no events here.
        cmds = shell_lines(self.example, without="slack-events")
        check(len(cmds) == 3, "want 3 '#$' command lines, got %d" % len(cmds))
        check(all(" -F 2 " in c for c in cmds[1:]), "the example's spawn-fcgi "
              "lines no longer say -F 2")
        for prog in ("slack-install", "slack-oauth-redirect"):
            self.pidfiles.append(self.p("run/slack-oauth/%s.pid" % prog))
        for i, cmd in enumerate(cmds):
            if i:
                cmd = cmd.replace(" -F 2 ", " -F %d " % WORKERS)
            r = subprocess.run(["/bin/sh", "-c", self.subst(cmd)], cwd="/",
                               stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=20)
            check(r.returncode == 0, "%s: exit %d: %s" % (
                cmd[:40], r.returncode, r.stderr.strip()[-300:]))
        self.log = self.p("var/log/slack-oauth/slack-oauth.log")

    def _fcgiwrap(self):
        path = self.p("run/fcgiwrap.socket")
        s = socket.socket(socket.AF_UNIX)
        s.bind(path)
        os.chown(path, self.uid, self.gid)
        os.chmod(path, 0o660)
        s.listen(1024)
        self.log = self.p("var/log/fcgiwrap.journal")
        self.spawn(["/usr/sbin/fcgiwrap", "-c", str(WORKERS)], stdin=s.fileno(),
                   log=self.log, user=self.uid, group=self.gid,
                   extra_groups=[], cwd="/",
                   env={"PATH": "/usr/local/bin:/usr/bin:/bin"})
        s.close()

    def _nginx(self):
        site = self.subst(self.example)
        site = re.sub(r"listen 443 ssl;", "listen 127.0.0.1:%d;" % self.port, site)
        site = re.sub(r"(?m)^\s*(ssl_certificate|ssl_certificate_key|limit_req)"
                      r"\s.*$", "", site)
        check("listen 127.0.0.1:%d;" % self.port in site, "no listen line")
        shutil.copy("/etc/nginx/fastcgi_params", self.p("nginx", "fastcgi_params"))
        with open(self.p("nginx", "site.conf"), "w") as f:
            f.write(site)
        with open(self.p("nginx", "nginx.conf"), "w") as f:
            f.write(NGINX_MAIN.format(dir=self.dir))
        argv = ["nginx", "-p", self.p("nginx"), "-c", self.p("nginx", "nginx.conf"),
                "-e", self.p("var/log/nginx/error.log")]
        t = subprocess.run(argv + ["-t"], capture_output=True, text=True)
        check(t.returncode == 0, "nginx -t: " + t.stderr.strip()[-400:])
        p = self.spawn(argv, log=self.p("var/log/nginx/stderr.log"))
        wait_for(lambda: p.poll() is None and port_open(self.port), "nginx")

    # ------------------------------------------------------------ checking
    def our_processes(self):
        return processes_under(self.dir)

    def log_text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def nginx_errors(self):
        try:
            with open(self.p("var/log/nginx/error.log")) as f:
                return [ln.strip() for ln in f
                        if re.search(r"\[(error|crit|alert|emerg)\]", ln)]
        except OSError:
            return []

    def rows(self):
        if not os.path.exists(self.db):
            return {"installations": 0, "bots": 0, "tokens": 0, "states": 0}
        con = sqlite3.connect(self.db, timeout=10)
        try:
            one = lambda q: con.execute(q).fetchone()[0]  # noqa: E731
            return {"installations": one("select count(*) from slack_installations"),
                    "bots": one("select count(*) from slack_bots"),
                    "tokens": one("select count(distinct bot_token) from slack_bots"),
                    "states": one("select count(*) from slack_oauth_states")}
        finally:
            con.close()

    def integrity(self):
        con = sqlite3.connect(self.db, timeout=10)
        try:
            res = [r[0] for r in con.execute("pragma integrity_check")]
            uv = con.execute("pragma user_version").fetchone()[0]
        finally:
            con.close()
        check(res == ["ok"], "PRAGMA integrity_check: %r" % res[:3])
        check(uv > 0, "user_version %r" % uv)

    def tokens(self):
        con = sqlite3.connect(self.db, timeout=10)
        try:
            return [r[0] for r in con.execute(
                "select bot_token from slack_bots union "
                "select user_token from slack_installations "
                "where user_token is not null")]
        finally:
            con.close()

    # ----------------------------------------------------------------- stop
    def stop(self):
        stop_processes(self.procs, self.pidfiles)
        self.procs = []
        return kill_leftovers(self.dir)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------- the client
def get(port, path, cookie=None, timeout=60):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"User-Agent": "stress-test"}
        if cookie:
            headers["Cookie"] = cookie
        c.request("GET", path, headers=headers)
        r = c.getresponse()
        body = r.read().decode("utf-8", "replace")
        return r.status, r.getheaders(), body
    finally:
        c.close()


def header(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


class FlowError(Exception):
    pass


def begin_flow(d):
    """The install page, then Slack (the fake's authorize page and its
    Allow link). Returns (state, the redirect's query)."""
    st, hdrs, body = get(d.port, "/slack/install")
    if st != 200:
        raise FlowError("install: status %d" % st)
    state = None
    for c in header(hdrs, "Set-Cookie"):
        m = re.match(re.escape(COOKIE) + r"=([A-Za-z0-9_-]+);", c)
        if m:
            state = m.group(1)
    if state is None:
        raise FlowError("install: no state cookie")
    m = re.search(r'<a class="slack" href="([^"]+)">', body)
    if not m:
        raise FlowError("install: no Add to Slack link")
    u = urllib.parse.urlsplit(html.unescape(m.group(1)))
    if urllib.parse.parse_qs(u.query).get("state") != [state]:
        raise FlowError("install: the authorize URL's state is not the cookie's")
    st, _, page = get(d.fake_port, u.path + "?" + u.query)
    m = re.search(r'id="allow" href="([^"]+)"', page)
    if st != 200 or not m:
        raise FlowError("fake authorize page: status %d" % st)
    st, hdrs, _ = get(d.fake_port, html.unescape(m.group(1)))
    loc = header(hdrs, "Location")
    if st != 302 or not loc:
        raise FlowError("fake Allow: status %d" % st)
    back = urllib.parse.urlsplit(loc[0])
    return state, back.query


def one_flow(d):
    """Returns the seconds the flow took; raises FlowError."""
    t0 = time.monotonic()
    state, query = begin_flow(d)
    t1 = time.monotonic()
    st, hdrs, body = get(d.port, "/slack/oauth_redirect?" + query,
                         cookie="%s=%s" % (COOKIE, state))
    t2 = time.monotonic()
    if st != 200 or TEAM_NAME not in body:
        m = re.search(r"<h1>(.*?)</h1>", body)
        raise FlowError("redirect: status %d (%s)" % (st, m.group(1) if m else "?"))
    return t2 - t0, t2 - t1


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))] if xs else 0


def run_flows(d, n, clients, budget):
    """n flows at `clients` concurrent clients, within budget seconds."""
    lock = threading.Lock()
    state = {"next": 0, "ok": 0}
    errors, lat, red_lat = [], [], []
    deadline = time.monotonic() + budget

    def worker():
        while time.monotonic() < deadline:
            with lock:
                if state["next"] >= n:
                    return
                state["next"] += 1
            try:
                total, red = one_flow(d)
                with lock:
                    state["ok"] += 1
                    lat.append(total)
                    red_lat.append(red)
            except Exception as e:
                with lock:
                    errors.append("%s: %s" % (type(e).__name__, e))
    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(max(1, deadline - time.monotonic() + 70))
    wall = time.monotonic() - t0
    return state["ok"], state["next"], errors, wall, lat, red_lat


# ----------------------------------------------------------------- tests
def flows_test(kind, n, clients, budget):
    def run(d):
        before = d.rows()
        ok, started, errors, wall, lat, red_lat = run_flows(d, n, clients, budget)
        note("%s: %d flows at %d clients: %d ok, %d errors in %.1fs = %.1f flows/s"
             % (kind, n, clients, ok, len(errors), wall, ok / wall if wall else 0))
        if lat:
            note("flow latency p50 %.0f ms, p95 %.0f ms, max %.0f ms; "
                 "oauth_redirect alone p50 %.0f ms, p95 %.0f ms, max %.0f ms"
                 % (pct(lat, 50) * 1e3, pct(lat, 95) * 1e3, max(lat) * 1e3,
                    pct(red_lat, 50) * 1e3, pct(red_lat, 95) * 1e3,
                    max(red_lat) * 1e3))
        for e in errors[:5]:
            note("error: " + e)
        check(started == n, "only %d of %d flows started within %ds"
              % (started, n, budget))
        check(not errors and ok == n, "%d errors in %d flows (first: %s)"
              % (len(errors), n, errors[:1]))
        alive = d.our_processes()
        want = WORKERS * 2 if kind == "spawn-fcgi" else 0
        if kind == "spawn-fcgi":
            check(len(alive) == want, "%d FastCGI processes alive, want %d"
                  % (len(alive), want))
        after = d.rows()
        got = {k: after[k] - before[k] for k in after}
        note("stored: %r" % got)
        check(got == {"installations": n, "bots": n, "tokens": n, "states": n},
              "stored %r, want %d of each" % (got, n))
        d.integrity()
        time.sleep(0.3)
        log = d.log_text()
        red_ok = log.count("slack-oauth-redirect: outcome=ok status=200")
        inst_ok = log.count("slack-install: outcome=ok status=200")
        other = [ln for ln in log.splitlines()
                 if "outcome=" in ln and "outcome=ok status=200" not in ln]
        note("log: %d slack-install and %d slack-oauth-redirect "
             "'outcome=ok status=200' lines, %d others"
             % (inst_ok, red_ok, len(other)))
        check(red_ok == before["installations"] + n and not other,
              "log: %d ok lines of the redirect, want %d; others: %r"
              % (red_ok, before["installations"] + n, other[:3]))
        errs = d.nginx_errors()
        check(not errs, "nginx error.log: %d errors: %s" % (len(errs), errs[:2]))
        toks = d.tokens()
        for f in glob.glob(d.p("var/log/**"), recursive=True):
            if os.path.isfile(f) and not f.endswith("fake-slack.log"):
                with open(f, "rb") as fh:
                    text = fh.read().decode("utf-8", "replace")
                for s in toks + [SECRET]:
                    check(s not in text, "%s holds a token or the secret"
                          % os.path.relpath(f, d.dir))
        return ok / wall
    return run


def replay_test(kind, n=50):
    def run(d):
        before = d.rows()
        state, query = begin_flow(d)
        path = "/slack/oauth_redirect?" + query
        conns = [http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
                 for _ in range(n)]
        for c in conns:
            c.connect()
        barrier = threading.Barrier(n)
        res = [None] * n

        def go(i):
            try:
                barrier.wait(10)
                conns[i].request("GET", path, headers={
                    "Cookie": "%s=%s" % (COOKIE, state)})
                r = conns[i].getresponse()
                res[i] = (r.status, r.read().decode("utf-8", "replace"))
            except Exception as e:
                res[i] = (None, "%s: %s" % (type(e).__name__, e))
            finally:
                conns[i].close()
        ts = [threading.Thread(target=go, args=(i,), daemon=True)
              for i in range(n)]
        t0 = time.monotonic()
        for t in ts:
            t.start()
        for t in ts:
            t.join(90)
        wall = time.monotonic() - t0
        ok = [r for r in res if r and r[0] == 200 and TEAM_NAME in r[1]]
        used = [r for r in res if r and r[0] == 400 and EXPIRED_TEXT in r[1]]
        other = [r for r in res if r not in ok and r not in used]
        note("%s: one state sent by %d concurrent requests: %d x 200, %d x 400 "
             "'already used', %d other, in %.2fs"
             % (kind, n, len(ok), len(used), len(other), wall))
        check(len(ok) == 1 and len(used) == n - 1,
              "want 1 x 200 and %d x 400; other: %r"
              % (n - 1, [(r[0], (r[1] or "")[:80]) if r else None
                         for r in other[:3]]))
        after = d.rows()
        check(after["installations"] == before["installations"] + 1,
              "installations: %d -> %d" % (before["installations"],
                                          after["installations"]))
        d.integrity()
        time.sleep(0.3)
        log = d.log_text()
        inval = log.count("outcome=invalid_state status=400")
        note("log: %d 'outcome=invalid_state status=400' lines, e.g.: %s"
             % (inval, next((ln for ln in log.splitlines()
                             if "outcome=invalid_state" in ln), "-")))
        check(inval >= n - 1, "log: %d invalid_state lines, want %d"
              % (inval, n - 1))
    return run


def schema_test(rounds, nprocs=16):
    """nprocs slack-install CGI processes released at once on a new file."""
    def run(_unused):
        fs = FakeSlack("1234567890.1111111111", SECRET).start()
        tmp = tempfile.mkdtemp(prefix="stress-schema-")
        try:
            env0 = {"PATH": "/usr/bin:/bin",
                    "SLACK_OAUTH_CONFIG": os.path.join(tmp, "empty.conf"),
                    "SLACK_CLIENT_ID": fs.client_id,
                    "SLACK_CLIENT_SECRET": SECRET,
                    "SLACK_SCOPES": "chat:write",
                    "SLACK_API_URL": fs.api_url,
                    "SLACK_AUTHORIZE_URL": fs.authorize_url,
                    "GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET",
                    "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.1"}
            with open(os.open(env0["SLACK_OAUTH_CONFIG"],
                              os.O_WRONLY | os.O_CREAT, 0o600), "w"):
                pass
            for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
                if k in os.environ:
                    env0[k] = os.environ[k]
            for rnd in range(rounds):
                db = os.path.join(tmp, "new%d.db" % rnd)
                fifo = os.path.join(tmp, "go%d" % rnd)
                os.mkfifo(fifo)
                env = dict(env0, SLACK_OAUTH_DB=db)
                procs = [subprocess.Popen(
                    ["/bin/sh", "-c", 'read _ < "$1"; exec "$0"',
                     os.path.join(CGI_BIN, "slack-install"), fifo],
                    env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, cwd=tmp) for _ in range(nprocs)]
                time.sleep(0.3)  # all blocked opening the FIFO
                check(not os.path.exists(db), "the file exists before the start")
                os.close(os.open(fifo, os.O_WRONLY))  # releases them all
                outs = []
                for p in procs:
                    try:
                        out, err = p.communicate(timeout=30)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        out, err = p.communicate()
                    outs.append((p.returncode, out, err.decode("utf-8", "replace")))
                states = []
                for rc, out, err in outs:
                    check(rc == 0, "round %d: exit status %d: %s" % (rnd, rc, err[-300:]))
                    st, hdrs, _ = parse_cgi_response(out)
                    check(st == 200, "round %d: status %d: %s" % (rnd, st,
                                                                  err.strip()[-300:]))
                    for k, v in hdrs:
                        m = re.match(re.escape(COOKIE) + r"=([A-Za-z0-9_-]+);", v)
                        if k.lower() == "set-cookie" and m:
                            states.append(m.group(1))
                check(len(states) == nprocs, "round %d: %d states" % (rnd, len(states)))
                con = sqlite3.connect(db, timeout=10)
                try:
                    ic = [r[0] for r in con.execute("pragma integrity_check")]
                    uv = con.execute("pragma user_version").fetchone()[0]
                    jm = con.execute("pragma journal_mode").fetchone()[0]
                    keys = con.execute("select count(*) from slack_oauth_keys"
                                       ).fetchone()[0]
                finally:
                    con.close()
                check(ic == ["ok"], "round %d: integrity_check %r" % (rnd, ic[:3]))
                check(uv >= 1 and jm == "wal" and keys == 1,
                      "round %d: user_version %r, journal_mode %r, %d keys"
                      % (rnd, uv, jm, keys))
                # Every state verifies: the 16 processes signed with one key.
                for i, s in enumerate(states):
                    q = urllib.parse.urlencode({"code": fs.issue_code(), "state": s})
                    p = subprocess.run(
                        [os.path.join(CGI_BIN, "slack-oauth-redirect")],
                        env=dict(env, QUERY_STRING=q,
                                 HTTP_COOKIE="%s=%s" % (COOKIE, s)),
                        stdin=subprocess.DEVNULL, capture_output=True,
                        timeout=30, cwd=tmp)
                    st = parse_cgi_response(p.stdout)[0] if p.stdout else None
                    check(p.returncode == 0 and st == 200,
                          "round %d: the state of process %d: status %r: %s"
                          % (rnd, i, st, p.stderr.decode()[-200:].strip()))
            note("%d rounds of %d processes on a new file: all 200, "
                 "integrity_check ok, user_version %d, one key, every state "
                 "redeemed" % (rounds, nprocs, uv))
        finally:
            fs.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    return run


def main(argv):
    quick = "--quick" in argv
    n, clients, rounds = (100, 16, 3) if quick else (1000, 64, 10)
    only = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--flows", "--clients", "--rounds") and i + 1 < len(argv):
            v = int(argv[i + 1])
            if a == "--flows":
                n = v
            elif a == "--clients":
                clients = v
            else:
                rounds = v
            i += 2
            continue
        if a == "-k" and i + 1 < len(argv):
            only.append(argv[i + 1])
            i += 2
            continue
        if not a.startswith("--"):
            only.append(a)
        i += 1
    budget = 120 if quick else 600
    if os.geteuid() != 0:
        print("FAIL - stress: must run as root (nginx drops to www-data)")
        print("0 passed, 1 failed")
        return 1
    missing = [b for b in ("nginx", "spawn-fcgi", "/usr/sbin/fcgiwrap")
               if not shutil.which(b)]
    if missing:
        print("FAIL - stress: missing %s (make deploy-deps)" % " ".join(missing))
        print("0 passed, 1 failed")
        return 1
    tests = [("schema created by 16 processes at once, %d rounds" % rounds,
              None, schema_test(rounds))]
    for kind in ("spawn-fcgi", "fcgiwrap"):
        tests.append(("nginx + %s: %d flows at %d clients" % (kind, n, clients),
                      kind, flows_test(kind, n, clients, budget)))
        tests.append(("nginx + %s: one state, 50 concurrent requests" % kind,
                      kind, replay_test(kind)))
    passed = failed = 0
    deployments = {}
    t_all = time.monotonic()
    try:
        for title, kind, fn in tests:
            if only and not any(o in title for o in only):
                continue
            t0 = time.monotonic()
            try:
                d = None
                if kind is not None:
                    d = deployments.get(kind)
                    if d is None:
                        # one deployment at a time: stop the other one
                        for k in list(deployments):
                            deployments.pop(k).cleanup()
                        d = deployments[kind] = Deployment(kind)
                        d.start()
                fn(d)
                print("ok - %s (%.1fs)" % (title, time.monotonic() - t0),
                      flush=True)
                passed += 1
            except Fail as e:
                print("FAIL - %s: %s" % (title, e), flush=True)
                failed += 1
            except Exception as e:
                print("FAIL - %s: %s: %s" % (title, type(e).__name__, e))
                traceback.print_exc(file=sys.stdout)
                failed += 1
    finally:
        for d in deployments.values():
            left = d.stop()
            if left:
                print("#   processes left running, killed: %r" % left)
            d.cleanup()
        deployments.clear()
    print("# stress took %.1fs" % (time.monotonic() - t_all))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
