#!/usr/bin/env python3
"""Hostile requests (issue 5, item 5), against the real binaries three ways:

  cgi    plain CGI, one process per request (settings in the environment)
  fcgi   FastCGI, the binary on a listening socket as spawn-fcgi starts it
         (tests/fcgi_client.py; settings as FastCGI request parameters)
  nginx  nginx + spawn-fcgi started from nginx-spawn-fcgi-example.conf the
         way tests/deploy.py does (its helpers), over HTTPS, raw bytes on
         the wire

Each hostile request must get a 4xx: from the program, with the status
SPEC.md fixes, every common header, a valid UTF-8 page with nothing of the
request unescaped, the state cookie cleared (redirect endpoint) and one log
line naming the program and the status, without control characters; or,
through nginx, nginx's own 4xx when nginx stops the request before the
program (the line says "nginx answered"). After each: nothing stored, no
state consumed, no process died.

    python3 tests/hostile.py                 # everything
    python3 tests/hostile.py -k cookie       # cases whose name holds "cookie"
    python3 tests/hostile.py --mode fcgi     # one mode
    CGI_BIN=build/asan/cgi-bin python3 tests/hostile.py

Prints `ok - mode: case (who answered, status)` / `FAIL - …`, then
`N passed, N failed`. Python 3 standard library only; the nginx mode needs
root, as tests/deploy.py does.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import select
import shutil
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import deploy  # noqa: E402
import fcgi_client  # noqa: E402
from fake_slack import APP_ID, TEAM_ID, TEAM_NAME, FakeSlack  # noqa: E402
from fcgi_client import FcgiServer, fcgi_request, parse_cgi_response  # noqa: E402
from testlib import (Runner, Skip, TestFailure, add_secret, add_state,  # noqa: E402
                     check, eq, leaked, record_db_modes, record_output)

CGI_BIN = os.environ.get("CGI_BIN") or os.path.join(ROOT, "cgi-bin")
CGI_BIN = CGI_BIN if os.path.isabs(CGI_BIN) else os.path.join(ROOT, CGI_BIN)
PROGS = {"install": "slack-install", "redirect": "slack-oauth-redirect",
         "events": "slack-events"}
PATHS = {"install": "/slack/install", "redirect": "/slack/oauth_redirect",
         "events": "/slack/events"}
CLIENT_ID = "1234567890.9876543210"
OTHER_CLIENT_ID = "1234567890.1111111111"
SECRET = add_secret("cs-hostile-" + secrets.token_hex(16), "client secret")
# The signing secret tests/deploy.py gives the example it serves, used by
# every mode alike.
SIGNING = add_secret(deploy.SIGNING_SECRET, "signing secret")
# In every event body the cases send: the body must appear in no output.
BODYMARK = add_secret("evbody" + secrets.token_hex(8), "event body")
COOKIE = "slack-app-oauth-state"
CSP = ("default-src 'none'; img-src https://platform.slack-edge.com; "
       "style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'none'")
SANITIZER = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:|"
                       r"UndefinedBehaviorSanitizer")
PASSTHROUGH_ENV = ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")
# execve() refuses one environment string over MAX_ARG_STRLEN (128 KiB):
# no CGI program can be given a longer QUERY_STRING or Cookie header, so
# the CGI mode sends the largest it can.
CGI_MAX = 120 * 1024
MARK = "hx" + secrets.token_hex(4)   # attacker text, to find it reflected


class Resp:
    def __init__(self, status, headers, body, log, who):
        self.status, self.headers, self.body = status, headers, body
        self.log, self.who = log, who

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def header(self, name):
        v = self.all(name)
        return v[0] if v else None


def _b(x):
    return x if isinstance(x, bytes) else x.encode("utf-8")


# ------------------------------------------------------------- the worlds
class World:
    """One mode: the programs, a fake Slack, a database; send() answers a
    Resp."""

    mode = None

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="hostile-")
        self.fs = None
        self.redirect_uri = None

    # helpers every mode shares
    def db_counts(self):
        if not os.path.exists(self.db):
            return (0, 0, 0)
        con = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True,
                              timeout=10)
        try:
            out = []
            for t in ("slack_installations", "slack_bots",
                      "slack_oauth_states"):
                try:
                    out.append(con.execute("select count(*) from " + t)
                               .fetchone()[0])
                except sqlite3.OperationalError:
                    out.append(0)
            return tuple(out)
        finally:
            con.close()

    def issue_state(self, client_id=None):
        r = self.send("install", settings={"SLACK_CLIENT_ID": client_id}
                      if client_id else None)
        eq(r.status, 200, "install (to issue a state)")
        for c in r.all("Set-Cookie"):
            m = re.match(re.escape(COOKIE) + r"=([A-Za-z0-9_-]+);", c)
            if m:
                return add_state(m.group(1))
        raise TestFailure("install set no state cookie")

    def code(self):
        return add_secret(self.fs.issue_code(self.redirect_uri), "code")

    def flow_ok(self, state, what):
        """The state is still good: a normal redirect with it succeeds."""
        r = self.send("redirect", query=urllib.parse.urlencode(
            {"code": self.code(), "state": state}),
            headers={"Cookie": "%s=%s" % (COOKIE, state)})
        check(r.status == 200 and TEAM_NAME in r.body.decode("utf-8",
                                                              "replace"),
              "%s: a normal redirect with the state after it: status %d"
              % (what, r.status))

    def record(self, prog, r):
        record_output("hostile %s %s: headers" % (self.mode, prog),
                      "\n".join("%s: %s" % hv for hv in r.headers),
                      states_ok=prog == "install")
        record_output("hostile %s %s: body" % (self.mode, prog), r.body,
                      states_ok=prog == "install")
        record_output("hostile %s %s: log" % (self.mode, prog), r.log)

    def alive(self):
        return None

    def close(self):
        if self.fs is not None:
            self.fs.stop()
        record_db_modes(self.tmp, "hostile " + str(self.mode))
        shutil.rmtree(self.tmp, ignore_errors=True)


class LocalWorld(World):
    """cgi and fcgi: settings given per request (CGI environment, FastCGI
    parameters), so a case may change them."""

    def __init__(self, mode):
        World.__init__(self)
        self.mode = mode
        self.fs = FakeSlack(CLIENT_ID, SECRET).start()
        self.db = os.path.join(self.tmp, "slack-oauth.db")
        self.conf = os.path.join(self.tmp, "slack-oauth.conf")
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT, 0o600)
        os.close(fd)
        self.settings = {
            "SLACK_OAUTH_CONFIG": self.conf, "SLACK_OAUTH_DB": self.db,
            "SLACK_CLIENT_ID": CLIENT_ID, "SLACK_CLIENT_SECRET": SECRET,
            "SLACK_SIGNING_SECRET": SIGNING,
            "SLACK_SCOPES": "chat:write,commands",
            "SLACK_API_URL": self.fs.api_url,
            "SLACK_AUTHORIZE_URL": self.fs.authorize_url,
        }
        self.servers = {}
        if mode == "fcgi":
            for prog in PROGS:
                env = self.base_env()
                env["SLACK_OAUTH_CONFIG"] = self.conf
                self.servers[prog] = FcgiServer(
                    os.path.join(CGI_BIN, PROGS[prog]), env=env,
                    sock_dir=self.tmp, cwd=self.tmp)

    def base_env(self):
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
        for k in PASSTHROUGH_ENV:
            if k in os.environ:
                env[k] = os.environ[k]
        return env

    def cgi_vars(self, prog, method, query, headers, body, settings,
                 length=None, ctype=None):
        v = {"GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
             "REQUEST_METHOD": method, "QUERY_STRING": query,
             "SCRIPT_NAME": PATHS[prog], "SERVER_NAME": "localhost",
             "SERVER_PORT": "443", "HTTPS": "on", "REMOTE_ADDR": "127.0.0.1",
             "HTTP_HOST": "localhost"}
        # length, ctype: None for what the body implies, False for none,
        # or the value to send.
        if length is None and body:
            length = str(len(body))
        if ctype is None and body:
            ctype = "application/x-www-form-urlencoded"
        if length not in (None, False):
            v["CONTENT_LENGTH"] = length
        if ctype not in (None, False):
            v["CONTENT_TYPE"] = ctype
        for k, val in (headers.items() if isinstance(headers, dict)
                       else headers or ()):
            v["HTTP_" + k.upper().replace("-", "_")] = val
        s = dict(self.settings)
        for k, val in (settings or {}).items():
            if val is None:
                s.pop(k, None)
            else:
                s[k] = val
        v.update(s)
        return {_b(k): _b(val) for k, val in v.items()}

    def send(self, prog, method="GET", query="", headers=None, body=b"",
             settings=None, length=None, ctype=None, dup=()):
        """dup: (name, value) parameters sent after the others, FastCGI
        only (a name given twice, as nginx 1.22 passes a repeated
        header)."""
        v = self.cgi_vars(prog, method, query, headers, body, settings,
                          length, ctype)
        if dup:
            if self.mode == "cgi":
                raise Skip("a CGI environment holds one value a name")
            v = list(v.items()) + [(_b(k), _b(x)) for k, x in dup]
        if self.mode == "cgi":
            env = {_b(k): _b(x) for k, x in self.base_env().items()}
            env.update(v)
            try:
                p = subprocess.run([os.path.join(CGI_BIN, PROGS[prog])],
                                   input=body, env=env, capture_output=True,
                                   timeout=30, cwd=self.tmp)
            except subprocess.TimeoutExpired:
                raise TestFailure("%s (CGI) did not finish in 30 s"
                                  % PROGS[prog])
            log = p.stderr.decode("utf-8", "replace")
            check(p.returncode == 0 and not SANITIZER.search(log),
                  "%s (CGI) exit %d; stderr: %s" % (PROGS[prog], p.returncode,
                                                    log[-600:]))
            status, headers_, rbody = parse_cgi_response(p.stdout)
        else:
            srv = self.servers[prog]
            off = srv.stderr_size()
            try:
                status, headers_, rbody, err = fcgi_request(srv.path, v, body,
                                                            timeout=30)
            except Exception as e:
                raise TestFailure("%s (FastCGI): %s: %s; dead: %r"
                                  % (PROGS[prog], type(e).__name__, e,
                                     srv.dead()))
            deadline = time.time() + 1
            while srv.stderr_size() == off and time.time() < deadline:
                time.sleep(0.01)
            time.sleep(0.01)
            log = (err + srv.stderr_bytes(off)).decode("utf-8", "replace")
            check(not SANITIZER.search(log), "%s (FastCGI): sanitizer: %s"
                  % (PROGS[prog], log[-800:]))
        r = Resp(status, headers_, rbody, log, "program")
        self.record(prog, r)
        return r

    def alive(self):
        for prog, srv in self.servers.items():
            if srv.dead():
                return "FastCGI %s died: %r" % (PROGS[prog], srv.dead())
        return None

    def close(self):
        for srv in self.servers.values():
            srv.stop()
            record_output("hostile fcgi: stderr", srv.stderr_bytes())
        World.close(self)


def complete(raw, head):
    """Whether raw holds a whole HTTP answer by its Content-Length (nginx
    lingers before closing after answering a body it did not read)."""
    h, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", h)
    return m is not None and (head or len(body) >= int(m.group(1)))


class NginxWorld(World):
    """nginx-spawn-fcgi-example.conf, started by tests/deploy.py's helpers:
    settings are the example's; requests are raw bytes over TLS."""

    def __init__(self):
        World.__init__(self)
        self.mode = "nginx"
        self.certs = deploy.setup_certs()
        self.w = deploy.World("hostile")
        try:
            deploy.setup_nginx_spawn_fcgi(self.w)
            self.fs = self.w.fake
            self.redirect_uri = "https://example.org/slack/oauth_redirect"
            self.db = self.w.p("var/lib/slack-oauth/slack-oauth.db")
            self.log = self.w.p("var/log/slack-oauth/slack-oauth.log")
            self.src = 1
            self.procs = len(self.w.our_processes())
        except BaseException:
            # A failed setup leaves no nginx or spawn-fcgi children behind.
            self.fs = None
            self.close()
            raise

    def log_size(self):
        try:
            return os.path.getsize(self.log)
        except OSError:
            return 0

    def raw(self, data, prog):
        """Sends bytes, returns the answer; from 127.0.0.N, a new N each
        time, so that the example's limit_req (per address) is not what
        answers the install endpoint."""
        self.src = self.src % 250 + 1
        off = self.log_size()
        acc = os.path.getsize(self.w.p("var/log/nginx/access.log"))
        # nginx's answers inside location /slack/ (a 413) go to its own log.
        loc_log = self.w.p("var/log/nginx/slack-oauth.access.log")
        acc2 = os.path.getsize(loc_log) if os.path.exists(loc_log) else 0
        s = socket.create_connection(("127.0.0.1", self.w.port), timeout=20,
                                     source_address=("127.0.0.%d" %
                                                     (self.src + 1), 0))
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        t = ctx.wrap_socket(s, server_hostname="example.org")
        try:
            # In pieces, stopping when nginx answers before reading it all
            # (414, 400): what it sent is then still there to read.
            for i in range(0, len(data), 16384):
                if select.select([t], [], [], 0)[0] or t.pending():
                    break
                try:
                    t.sendall(data[i:i + 16384])
                except (OSError, ssl.SSLError):
                    break
            chunks = []
            while True:
                try:
                    c = t.recv(65536)
                except (ConnectionResetError, ssl.SSLError):
                    break
                if not c:
                    break
                chunks.append(c)
                if complete(b"".join(chunks), data.startswith(b"HEAD ")):
                    break   # not waiting out nginx's lingering close (5 s)
        finally:
            t.close()
        raw = b"".join(chunks)
        check(raw.startswith(b"HTTP/1."), "no HTTP answer: %r" % raw[:200])
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = []
        for ln in lines[1:]:
            k, _, v = ln.decode("latin-1").partition(":")
            headers.append((k.strip(), v.strip()))
        who = "program" if any(k.lower() == "content-security-policy"
                               for k, _ in headers) else "nginx"
        # The program's log line, or nginx's access log line (the server's
        # or the location's).
        paths = [(self.log, off)] if who == "program" else \
            [(self.w.p("var/log/nginx/access.log"), acc), (loc_log, acc2)]
        want = (" status=%d " if who == "program" else '" %d ') % status
        deadline = time.time() + 2
        log = ""
        while True:
            for path, o in paths:
                try:
                    with open(path, "rb") as f:
                        f.seek(o)
                        log = f.read().decode("utf-8", "replace")
                except OSError:
                    log = ""
                if want in log:
                    break
            if want in log or time.time() > deadline:
                break
            time.sleep(0.01)
        if who == "nginx":
            check(want in log, "nginx answered %d with no access log line"
                  % status)
        r = Resp(status, headers, body, log, who)
        self.record(prog, r)
        return r

    def send(self, prog, method="GET", query="", headers=None, body=b"",
             settings=None, length=None, ctype=None, dup=()):
        """headers: a dict, or (name, value) pairs (a name may repeat);
        dup: more pairs, sent after them."""
        if settings:
            raise Skip("the example's settings are fixed")
        target = _b(PATHS[prog]) + (b"?" + _b(query) if query else b"")
        base = {"Host": "example.org", "Connection": "close"}
        if isinstance(headers, dict):
            base.update(headers)
        h = list(base.items()) + list(
            () if isinstance(headers, dict) else headers or ()) + list(dup)
        if length is None and body:
            length = str(len(body))
        if ctype is None and body:
            ctype = "application/x-www-form-urlencoded"
        if length not in (None, False):
            h.append(("Content-Length", length))
        if ctype not in (None, False):
            h.append(("Content-Type", ctype))
        req = _b(method) + b" " + target + b" HTTP/1.0\r\n" + b"".join(
            _b(k) + b": " + _b(v) + b"\r\n" for k, v in h) + \
            b"\r\n" + body
        return self.raw(req, prog)

    def alive(self):
        n = len(self.w.our_processes())
        if n < self.procs:
            return "spawn-fcgi children: %d of %d left" % (n, self.procs)
        return None

    def close(self):
        try:
            self.w.cleanup()     # records the logs and database modes
        finally:
            shutil.rmtree(self.certs, ignore_errors=True)
            World.close(self)


# --------------------------------------------------------------- verdicts
def answered_by_nginx(r, want, nginx_may):
    """What every answer holds: headers without CR, LF or NUL; then either
    nginx's own status (one of nginx_may: True) or the program's want with
    the headers every response carries (False)."""
    for k, v in r.headers:
        check(not re.search(r"[\x00\r\n]", k + v), "header %s holds CR/LF/NUL"
              % k)
    if r.who == "nginx":
        check(r.status in nginx_may, "nginx answered %d itself, want the "
              "program's %d%s" % (r.status, want, " or nginx's %s" %
                                  "/".join(map(str, nginx_may))
                                  if nginx_may else ""))
        return True
    eq(r.status, want, "status")
    eq(r.header("Cache-Control"), "no-store", "Cache-Control")
    eq(r.header("Content-Security-Policy"), CSP, "Content-Security-Policy")
    eq(r.header("X-Content-Type-Options"), "nosniff", "X-Content-Type-Options")
    eq(r.header("Referrer-Policy"), "no-referrer", "Referrer-Policy")
    return False


def verify(world, prog, r, want, nginx_may=(), reflect=()):
    """A hostile request's answer. want: the program's status; nginx_may:
    the statuses nginx may answer itself. Returns a note for the ok line."""
    check(400 <= r.status < 500, "status %d, want a 4xx" % r.status)
    if answered_by_nginx(r, want, nginx_may):
        return "nginx answered %d, logged in its access log" % r.status
    eq(r.header("Content-Type"), "text/html; charset=utf-8", "Content-Type")
    check(r.body, "no page")
    try:
        text = r.body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TestFailure("the page is not valid UTF-8 (%s)" % e)
    check(text.lstrip().lower().startswith("<!doctype html>"), "not a page")
    check(not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", text),
          "control characters (C0 or C1) in the page")
    check(MARK not in text or not re.search(r"<[^>]*" + MARK, text),
          "attacker markup in the page unescaped")
    for s in reflect:
        check(s not in text, "reflected unescaped: %r" % s[:60])
    if prog == "redirect":
        want_c = "%s=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax" % COOKIE
        eq(r.all("Set-Cookie"), [want_c], "Set-Cookie (cleared)")
    else:
        eq(r.all("Set-Cookie"), [], "Set-Cookie")
    if r.status == 405:
        eq(r.header("Allow"), "GET, HEAD" if prog == "install" else "GET",
           "Allow")
    lines = [x for x in r.log.split("\n") if x]
    mine = [x for x in lines if x.startswith(PROGS[prog] + ":") and
            " status=%d " % r.status in x]
    check(mine, "no log line naming %s and status %d: %r"
          % (PROGS[prog], r.status, r.log[-300:]))
    for x in lines:
        check(not re.search(r"[\x00-\x1f\x7f-\x9f]", x) and len(x) <= 1024,
              "log line with control characters (C0 or C1) or over 1 KB: %r"
              % x[:200])
        check("\ufffd" not in x, "log line not valid UTF-8: %r" % x[:200])
    return "%s answered %d" % (PROGS[prog], r.status)


def hostile(world, prog, want, nginx_may=(), reflect=(), consumed=0, **req):
    """Sends one hostile request, verifies it and that nothing changed."""
    before = world.db_counts()
    r = world.send(prog, **req)
    note = verify(world, prog, r, want, nginx_may, reflect)
    after = world.db_counts()
    eq(after[:2], before[:2], "installation rows (before, after)")
    eq(after[2] - before[2], consumed, "states consumed")
    dead = world.alive()
    check(dead is None, dead or "")
    return note


# ------------------------------------------------------------------ cases
def big(n, mode):
    return min(n, CGI_MAX) if mode == "cgi" else n


def c_query_1mb(w):
    n = big(1 << 20, w.mode)
    q = "state=" + "A" * (n - 6)
    a = hostile(w, "install", 400, (414,), query=q)
    b = hostile(w, "redirect", 400, (414,), query=q)
    return "%s; %s%s" % (a, b, " (%d KB: the CGI limit)" % (n // 1024)
                         if n < 1 << 20 else "")


def c_params_10000(w):
    q = "&".join("p%d=%d" % (i, i) for i in range(10000))
    check(len(q) < CGI_MAX, "query too long for CGI")
    a = hostile(w, "install", 400, (414,), query=q)
    b = hostile(w, "redirect", 400, (414,), query=q)
    # Within the byte cap (4 KiB), over the pair cap (64).
    q = "&".join("p=%d" % (i % 10) for i in range(1000))[:4000]
    c = hostile(w, "redirect", 400, query=q)
    return "%s; %s; 1000 short pairs: %s" % (a, b, c)


def c_nul_control_encoded(w):
    notes = []
    st = "S" * 98
    for q in ("state=%s%%00x&code=c" % st[:97], "code=ab%%00cd&state=%s" % st,
              "code=ab%%01cd&state=%s" % st, "error=x%%1b%%5b31m&state=%s" % st,
              "unknown=%%7f", "team=T%%00AB", "x%%00=1"):
        for prog in ("install", "redirect"):
            notes.append(hostile(w, prog, 400, query=q,
                                 headers={"Cookie": "%s=%s" % (COOKIE, st)}))
    # U+009B, the 8-bit CSI, is a control character too (C1); the install
    # endpoint ignores error= (an unknown key there).
    notes.append(hostile(w, "redirect", 400, query="error=x%C2%9B31m" + MARK))
    return "; ".join(sorted(set(notes)))


def c_nul_control_raw(w):
    notes = []
    cases = [b"code=ab\x01cd&state=x", b"error=a\x1b[31mb", b"team=T\x7fAB",
             b"code=a\tb"]
    if w.mode != "cgi":
        # No NUL in a CGI environment; libfcgi cuts a parameter at a NUL
        # (C strings), leaving "team=T": still refused at both.
        cases.append(b"team=T\x00AB&code=ab\x00cd")
    for q in cases:
        for prog in ("install", "redirect"):
            notes.append(hostile(w, prog, 400, (400,), query=q))
    return "; ".join(sorted(set(notes)))


def c_invalid_utf8(w):
    notes = []
    # The redirect endpoint shows error= in its page; the install endpoint
    # ignores keys it does not know (SPEC), so only team= is hostile there.
    for prog, q in (("redirect", "error=%FF%FE%C0%AF" + MARK),
                    ("redirect", "error=%ED%A0%80"),
                    ("redirect", "error=%C3%28%E2%82"),
                    ("redirect", "code=%FF%FE&state=" + "S" * 98),
                    ("install", "team=T%C3%28"), ("install", "team=T%FFAB")):
        notes.append(hostile(w, prog, 400, query=q))
    # Raw bytes, not %-encoded.
    for prog, q in (("redirect", b"error=\xff\xfe" + MARK.encode()),
                    ("install", b"team=T\xff\xfeAB")):
        notes.append(hostile(w, prog, 400, (400,), query=q))
    return "; ".join(sorted(set(notes)))


def c_cookie_100kb(w):
    state = w.issue_state()
    n = big(100 * 1024, w.mode)
    cookie = "%s=%s; pad=%s" % (COOKIE, state, "x" * (n - 200))
    note = hostile(w, "redirect", 400, (400, 431, 494), query=urllib.parse
                   .urlencode({"code": w.code(), "state": state}),
                   headers={"Cookie": cookie})
    w.flow_ok(state, "after a 100 KB cookie")
    return note


def c_cookies_same_name(w):
    state = w.issue_state()
    other = w.issue_state()
    notes = []
    for cookie in ("; ".join(["%s=%s" % (COOKIE, state)] * 50),
                   "%s=%s; %s=%s" % (COOKIE, other, COOKIE, state),
                   "%s=%s; %s=%s" % (COOKIE, state, COOKIE, other)):
        notes.append(hostile(w, "redirect", 400, query=urllib.parse.urlencode(
            {"code": w.code(), "state": state}), headers={"Cookie": cookie}))
    w.flow_ok(state, "after repeated cookies")
    return "; ".join(sorted(set(notes)))


def c_method_1kb(w):
    m = "G" * 1024
    a = hostile(w, "install", 405, (400, 405), method=m)
    b = hostile(w, "redirect", 405, (400, 405), method=m)
    c = hostile(w, "redirect", 405, (400, 405), method="GET" + "T" * 1021)
    return "%s; %s; %s" % (a, b, c)


def c_post_body(w):
    state = w.issue_state()
    form = urllib.parse.urlencode({"code": w.code(), "state": state}).encode()
    notes = []
    for body in (form, form + b"&pad=" + b"x" * (256 * 1024)):
        for prog in ("install", "redirect"):
            notes.append(hostile(w, prog, 405, method="POST", body=body,
                                 query=form.decode() if prog == "redirect"
                                 else "", headers={"Cookie": "%s=%s"
                                                   % (COOKIE, state)}))
    w.flow_ok(state, "after POSTs carrying it")
    return "; ".join(sorted(set(notes)))


def c_forged_state(w):
    real = w.issue_state()
    raw = bytearray(base64.urlsafe_b64decode(real + "=" * (-len(real) % 4)))
    forged = []
    rnd = base64.urlsafe_b64encode(os.urandom(len(raw))).rstrip(b"=").decode()
    forged.append(("random bytes", rnd))
    for what, i in (("one MAC byte flipped", len(raw) - 1),
                    ("expiry moved", 40), ("nonce changed", 5),
                    ("version changed", 0)):
        b = bytearray(raw)
        b[i] ^= 0x01
        forged.append((what, base64.urlsafe_b64encode(bytes(b)).rstrip(b"=")
                       .decode()))
    b = bytearray(raw)
    b[33:41] = b"\x7f" + b"\xff" * 7                  # expiry far away
    forged.append(("expiry far away", base64.urlsafe_b64encode(bytes(b))
                   .rstrip(b"=").decode()))
    notes = []
    for what, s in forged:
        eq(len(s), len(real), "length of the forged state (%s)" % what)
        check(re.match(r"^[A-Za-z0-9_-]+$", s), "not base64url")
        notes.append(hostile(w, "redirect", 400, query=urllib.parse.urlencode(
            {"code": w.code(), "state": s}),
            headers={"Cookie": "%s=%s" % (COOKIE, s)}))
    w.flow_ok(real, "the real state after its forgeries")
    return "%d forgeries: %s" % (len(forged), "; ".join(sorted(set(notes))))


def c_state_other_client_id(w):
    if w.mode == "nginx":
        raise Skip("one client ID in the example; done as CGI and FastCGI")
    state = w.issue_state(client_id=OTHER_CLIENT_ID)
    note = hostile(w, "redirect", 400, query=urllib.parse.urlencode(
        {"code": w.code(), "state": state}),
        headers={"Cookie": "%s=%s" % (COOKIE, state)})
    # And the other way round: ours, redeemed under the other ID.
    mine = w.issue_state()
    hostile(w, "redirect", 400, query=urllib.parse.urlencode(
        {"code": w.code(), "state": mine}),
        headers={"Cookie": "%s=%s" % (COOKIE, mine)},
        settings={"SLACK_CLIENT_ID": OTHER_CLIENT_ID})
    w.flow_ok(mine, "our state after it was tried under another client ID")
    return note


EVIL = {"Host": "evil.example", "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "http", "X-Forwarded-For": "6.6.6.6",
        "X-Forwarded-Server": "evil.example", "Forwarded":
        "host=evil.example;proto=http", "X-Original-URL": "//evil.example/",
        "X-Rewrite-URL": "//evil.example/"}


def no_evil(r, what):
    blob = "\n".join("%s: %s" % hv for hv in r.headers) + \
        r.body.decode("utf-8", "replace")
    check("evil.example" not in blob and "6.6.6.6" not in blob,
          "%s: the forwarded headers reached the answer" % what)


def c_forwarded_headers(w):
    """Host and X-Forwarded-* change no redirect target: the install link
    and Location, the failure and success Locations come from the
    configuration."""
    hdr = dict(EVIL)
    if w.mode == "nginx":
        hdr.pop("Host")      # nginx would pick another server block
    r = w.send("install", headers=hdr)
    eq(r.status, 200, "install status")
    no_evil(r, "install page")
    links = re.findall(r'href="([^"]+)"', r.body.decode())
    check(any(x.startswith(w.fs.authorize_url + "?") for x in links)
          if w.mode != "nginx" else any(
              x.startswith("http://127.0.0.1:%d/oauth/v2/authorize?"
                           % w.fs.port) for x in links),
          "install link is not the configured authorize URL")
    for c in r.all("Set-Cookie"):
        add_state(c.split("=", 1)[1].split(";")[0])
    if w.mode == "nginx":
        hostile(w, "redirect", 400, headers=hdr, query="state=x&code=y")
        return "install link and redirect pages from the configuration"
    r = w.send("install", headers=hdr, settings={"SLACK_DIRECT_INSTALL": "1"})
    eq(r.status, 302, "direct install status")
    check(r.header("Location").startswith(w.fs.authorize_url + "?"),
          "direct install Location is not the configured authorize URL")
    no_evil(r, "direct install")
    for c in r.all("Set-Cookie"):
        add_state(c.split("=", 1)[1].split(";")[0])
    fail = {"SLACK_FAILURE_URL": "/failed", "SLACK_SUCCESS_URL": "/done"}
    r = w.send("redirect", headers=hdr, query="state=x&code=y",
               settings=fail)
    eq((r.status, r.header("Location")), (302, "/failed?error=invalid_state"),
       "failure Location")
    no_evil(r, "failure redirect")
    before = w.db_counts()
    state = w.issue_state()
    h = dict(hdr, Cookie="%s=%s" % (COOKIE, state))
    r = w.send("redirect", headers=h, settings=fail, query=urllib.parse
               .urlencode({"code": w.code(), "state": state}))
    eq((r.status, r.header("Location")), (302, "/done"), "success Location")
    no_evil(r, "success redirect")
    eq(w.db_counts()[0], before[0] + 1, "the installation with those headers")
    return "Location from the configuration only (install, failure, success)"


def c_error_html_crlf(w):
    st = "S" * 98
    notes = []
    html_err = "<script>alert('%s')</script>\"><img src=x onerror=alert(1)>" \
        % MARK
    r_note = hostile(w, "redirect", 400, query=urllib.parse.urlencode(
        {"error": html_err}), reflect=("<script", "<img src=x"))
    notes.append(r_note)
    # Not Slack's shape ([a-z_]{1,64}): not shown at all, escaped or not.
    r = w.send("redirect", query=urllib.parse.urlencode({"error": html_err}))
    t = r.body.decode("utf-8", "replace")
    check(MARK not in t and "script" not in t,
          "the error value is shown on the page")
    for q in ("error=x%0d%0aSet-Cookie:%20" + MARK + "=1",
              "error=x%0aLocation:%20http://evil.example/",
              "error=%0d%0a%0d%0a<html>" + MARK,
              "error=access_denied%0d%0aX-" + MARK + ":%201",
              "state=" + st + "%0d%0aX-" + MARK + ":1&code=c"):
        notes.append(hostile(w, "redirect", 400, query=q,
                             headers={"Cookie": "%s=%s" % (COOKIE, st)}))
        r = w.send("redirect", query=q)
        check(not any(MARK in k or MARK in v or "evil" in v
                      for k, v in r.headers), "header injection")
    return "; ".join(sorted(set(notes)))


def c_over_caps(w):
    state = w.issue_state()
    notes = []
    for q in (urllib.parse.urlencode({"state": state + "A" * 31,
                                      "code": w.code()}),
              urllib.parse.urlencode({"state": "A" * 129, "code": "c"}),
              urllib.parse.urlencode({"state": state, "code": "1." * 128 + "x"}),
              urllib.parse.urlencode({"error": "e" * 129, "state": state}),
              urllib.parse.urlencode({"state": state, "code": "c"}) +
              "&state=" + state,
              urllib.parse.urlencode({"state": state, "code": "c"}) +
              "&code=c"):
        notes.append(hostile(w, "redirect", 400, query=q,
                             headers={"Cookie": "%s=%s" % (COOKIE, state)}))
    # A code within its cap but not printable ASCII: refused before Slack,
    # once the (good) state is consumed (SPEC's order of checks).
    notes.append(hostile(w, "redirect", 400, consumed=1,
                         query=urllib.parse.urlencode(
                             {"state": state, "code": "c" * 250 + "\u00e9"}),
                         headers={"Cookie": "%s=%s" % (COOKIE, state)}))
    return "; ".join(sorted(set(notes)))


# ----------------------------------------------------------- slack-events
MIB = 1 << 20


def sign(body, ts=None, secret=SIGNING):
    """(timestamp, signature) as Slack makes them; the signature is
    registered as a secret (it must appear in no output)."""
    ts = str(int(time.time())) if ts is None else ts
    mac = hmac.new(_b(secret), b"v0:" + _b(ts) + b":" + _b(body),
                   hashlib.sha256).hexdigest()
    return ts, add_secret("v0=" + mac, "signature")


def signed(body, ts=None, **over):
    """The two headers of a request signed over body (at ts, default now);
    over (ts=, sig=) replaces either, None removes it."""
    t, sig = sign(body, ts)
    h = {"X-Slack-Request-Timestamp": t, "X-Slack-Signature": sig}
    for k, v in over.items():
        k = {"ts": "X-Slack-Request-Timestamp",
             "sig": "X-Slack-Signature"}[k]
        if v is None:
            h.pop(k)
        else:
            h[k] = v
    return h


def uninstall(team=TEAM_ID, **extra):
    """An app_uninstalled for the installation the cases keep: were it
    acted on, the rows would go."""
    d = {"token": BODYMARK, "team_id": team, "api_app_id": APP_ID,
         "event": {"type": "app_uninstalled"}, "type": "event_callback",
         "event_id": "Ev" + secrets.token_hex(5).upper(),
         "event_time": int(time.time())}
    d.update(extra)
    return json.dumps(d).encode()


def challenge(ch="c" + secrets.token_hex(8), **extra):
    d = {"token": BODYMARK, "challenge": ch, "type": "url_verification"}
    d.update(extra)
    return json.dumps(d).encode()


def padded(body, n):
    """A JSON object of exactly n bytes: body with a "pad" member."""
    head = body[:-1] + b', "pad": "'
    check(len(head) + 2 <= n, "padded: too short")
    return head + b"p" * (n - len(head) - 2) + b'"}'


def ev_installed(w):
    """At least one row of TEAM_ID, so that an event wrongly acted on
    shows (the count of installation rows drops)."""
    if w.db_counts()[0] == 0:
        w.flow_ok(w.issue_state(), "an installation for the events cases")
    check(w.db_counts()[0] > 0, "no installation row")


def ev_verify(w, r, want, outcome, nginx_may=(), text=None, head=False):
    """An answer of slack-events: want, or nginx's own in nginx_may. text:
    the body of a 200 (the challenge; None: empty)."""
    if answered_by_nginx(r, want, nginx_may):
        return "nginx answered %d" % r.status
    eq(r.all("Set-Cookie"), [], "Set-Cookie")
    if want == 200:
        if text is None:
            eq(r.body, b"", "body of the 200")
        else:
            eq(r.header("Content-Type"), "text/plain; charset=utf-8",
               "Content-Type of the challenge")
            eq(r.body, _b(text), "body: the challenge")
    elif head:
        eq(r.body, b"", "body of a HEAD")
    else:
        eq(r.header("Content-Type"), "text/html; charset=utf-8",
           "Content-Type")
        try:
            page = r.body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise TestFailure("the page is not valid UTF-8 (%s)" % e)
        check(page.lstrip().lower().startswith("<!doctype html>"),
              "not a page")
        check(not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", page),
              "control characters (C0 or C1) in the page")
    if want == 405:
        eq(r.header("Allow"), "POST", "Allow")
    lines = [x for x in r.log.split("\n") if x]
    mine = [x for x in lines if x.startswith("slack-events: outcome=%s "
                                             % outcome) and
            " status=%d " % r.status in x]
    check(mine, "no log line 'slack-events: outcome=%s ... status=%d': %r"
          % (outcome, r.status, r.log[-300:]))
    for x in lines:
        check(not re.search(r"[\x00-\x1f\x7f-\x9f]", x) and len(x) <= 1024,
              "log line with control characters (C0 or C1) or over 1 KB: %r"
              % x[:200])
        check("\ufffd" not in x, "log line not valid UTF-8: %r" % x[:200])
    # The signing secret, the signatures and the bodies (BODYMARK): in no
    # header, page or log line.
    found = leaked("\n".join("%s: %s" % hv for hv in r.headers) + "\n" +
                   r.body.decode("utf-8", "replace") + "\n" + r.log)
    check(not found, "leaked: %s" % ", ".join(found))
    return "%d %s" % (r.status, outcome)


def ev(w, want, outcome, body=b"", headers=None, nginx_may=(), text=None,
       method="POST", ctype="application/json", deletes=False, **kw):
    """One request to slack-events, its answer verified; unless deletes,
    the installation rows are as before."""
    before = w.db_counts()
    r = w.send("events", method=method, headers=headers, body=body,
               ctype=ctype, **kw)
    note = ev_verify(w, r, want, outcome, nginx_may, text,
                     head=method == "HEAD")
    after = w.db_counts()
    if not deletes:
        eq(after[:2], before[:2], "installation rows (before, after)")
    dead = w.alive()
    check(dead is None, dead or "")
    return note


def notes(ns):
    return "%d requests: %s" % (len(ns), "; ".join(sorted(set(ns))))


def c_ev_sizes(w):
    ev_installed(w)
    ns = []
    ns.append(ev(w, 400, "bad_request", b"", signed(b""), length="0"))
    ns.append(ev(w, 400, "bad_request", b"{", signed(b"{")))
    ch = "exactly-1-MiB-" + secrets.token_hex(4)
    body = padded(challenge(ch), MIB)
    eq(len(body), MIB, "length")
    ns.append(ev(w, 200, "url_verification", body, signed(body), text=ch))
    body = padded(uninstall(), MIB)
    ns.append(ev(w, 401, "bad_signature", body,
                 signed(body, sig="v0=" + "0" * 64)))
    body = padded(uninstall(), MIB + 1)
    ns.append(ev(w, 413, "bad_request", body, signed(body),
                 nginx_may=(413,)))
    body = padded(uninstall(), 4 * MIB)
    ns.append(ev(w, 413, "bad_request", body, signed(body),
                 nginx_may=(413,)))
    return notes(ns)


def c_ev_lengths(w):
    ev_installed(w)
    ns = []
    body = uninstall()
    h = signed(body)
    ns.append(ev(w, 411, "bad_request", b"", signed(b""), length=False,
                 nginx_may=(411,)))
    for cl, want in (("-1", 400), ("abc", 400), ("1e3", 400), ("0x10", 400),
                     ("+%d" % len(body), 400), (str(1 << 40), 413),
                     (str(MIB + 1), 413)):
        ns.append(ev(w, want, "bad_request", body, h, length=cl,
                     nginx_may=(400, 413)))
    # Over 1 MiB, past what a long long holds: still "over 1 MiB", 413.
    for cl in ("99999999999999999999", str((1 << 62) + 1)):
        ns.append(ev(w, 413, "bad_request", body, h, length=cl,
                     nginx_may=(400, 413)))
    if w.mode == "nginx":
        ns.append(ev(w, 400, "bad_request", body, h, length="",
                     nginx_may=(400,)))
        # No length larger or smaller than the body: nginx would wait for
        # the rest (client_body_timeout), or take it for another request.
        return notes(ns) + " (lengths that differ from the body: CGI and " \
            "FastCGI only)"
    ns.append(ev(w, 411, "bad_request", body, h, length=""))
    # Announced larger than sent: the body ends early.
    for cl in (str(len(body) + 1), str(MIB)):
        ns.append(ev(w, 400, "bad_request", body, h, length=cl))
    # Announced smaller: exactly that many bytes are read, and the
    # signature over the whole body does not match them.
    ns.append(ev(w, 401, "bad_signature", body, h, length=str(len(body) - 1)))
    return notes(ns)


def c_ev_no_read(w):
    """413 decided before reading: the body never comes (stdin, or the
    FastCGI stream, left open) and the whole answer comes anyway; as CGI,
    the program then ends with its stdin."""
    if w.mode == "nginx":
        raise Skip("nginx answers an oversized body itself; done as CGI and "
                   "FastCGI")
    ns = []
    for cl, want in ((str(MIB + 1), 413), (str(1 << 40), 413)):
        h = signed(b"")
        v = w.cgi_vars("events", "POST", "", h, b"", None, cl,
                       "application/json")
        if w.mode == "cgi":
            env = {_b(k): _b(x) for k, x in w.base_env().items()}
            env.update(v)
            p = subprocess.Popen([os.path.join(CGI_BIN, PROGS["events"])],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=env, cwd=w.tmp)
            try:
                # The whole answer while the body is held back (the
                # program may then wait for the body, to drain it).
                deadline = time.time() + 10
                chunks = []
                while not complete(b"".join(chunks), False):
                    check(time.time() < deadline, "no answer in 10 s with "
                          "the body held back: it waits to read it")
                    if select.select([p.stdout], [], [], 0.2)[0]:
                        c = os.read(p.stdout.fileno(), 65536)
                        check(c, "stdout closed before a whole answer: %r"
                              % b"".join(chunks)[:200])
                        chunks.append(c)
                p.stdin.close()
                try:
                    check(p.wait(timeout=10) == 0, "exit status %r"
                          % p.returncode)
                except subprocess.TimeoutExpired:
                    raise TestFailure("still running 10 s after the end of "
                                      "its (empty) body")
                log = p.stderr.read().decode("utf-8", "replace")
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                if not p.stdin.closed:
                    p.stdin.close()
                p.stdout.close()
                p.stderr.close()
            check(not SANITIZER.search(log), "sanitizer: " + log[-600:])
            status, hdrs, rbody = parse_cgi_response(b"".join(chunks))
        else:
            srv = w.servers["events"]
            off = srv.stderr_size()
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(10)
            try:
                sock.connect(srv.path)
                sock.sendall(fcgi_client._record(
                    fcgi_client.FCGI_BEGIN_REQUEST, 1, bytes(
                        [0, fcgi_client.FCGI_RESPONDER, 0, 0, 0, 0, 0, 0])) +
                    fcgi_client._stream(fcgi_client.FCGI_PARAMS, 1,
                                        fcgi_client.encode_params(v)))
                out = []
                while True:
                    try:
                        hdr = fcgi_client._recv_exact(sock, 8)
                    except socket.timeout:
                        raise TestFailure("no answer in 10 s with the body "
                                          "held back: it waits to read it")
                    _, rtype, _, clen, plen = fcgi_client._HDR.unpack(hdr)
                    content = fcgi_client._recv_exact(sock, clen + plen)
                    if rtype == fcgi_client.FCGI_STDOUT:
                        out.append(content[:clen])
                    elif rtype == fcgi_client.FCGI_END_REQUEST:
                        break
            finally:
                sock.close()
            deadline = time.time() + 1
            while srv.stderr_size() == off and time.time() < deadline:
                time.sleep(0.01)
            log = srv.stderr_bytes(off).decode("utf-8", "replace")
            check(not SANITIZER.search(log), "sanitizer: " + log[-600:])
            status, hdrs, rbody = parse_cgi_response(b"".join(out))
        r = Resp(status, hdrs, rbody, log, "program")
        w.record("events", r)
        ns.append(ev_verify(w, r, want, "bad_request"))
        dead = w.alive()
        check(dead is None, dead or "")
    return notes(ns) + " without the body"


def c_ev_keys(w):
    ev_installed(w)
    ns = []
    keys = b",".join(b'"k%06d":0' % i for i in range(87000))
    ch = "keys-" + secrets.token_hex(4)
    body = padded(b"{" + keys + b"," + challenge(ch)[1:], MIB)
    ns.append(ev(w, 200, "url_verification", body, signed(body), text=ch))
    body = padded(b"{" + keys + b"," + uninstall(event={
        "type": "message", "text": "hi"})[1:], MIB)
    ns.append(ev(w, 200, "message", body, signed(body)))
    # The same key 40,000 times.
    body = padded(b"{" + b",".join([b'"type":"event_callback"'] * 40000) +
                  b"," + uninstall(team="T0NOTOURS")[1:], MIB)
    ns.append(ev(w, 200, "app_uninstalled", body, signed(body)))
    # 80,000 user ids to revoke, none of ours.
    body = uninstall(event={"type": "tokens_revoked", "tokens": {
        "oauth": ["U%07d" % i for i in range(80000)]}}, team="T0NOTOURS")
    check(len(body) <= MIB, "ids body over 1 MiB")
    ns.append(ev(w, 200, "tokens_revoked", body, signed(body)))
    return notes(ns) + " (1 MiB each, or nearly)"


def c_ev_deep(w):
    ev_installed(w)
    ns = []
    for body in (b"[" * 100000, b'{"a":' * 100000, b'{"type":"x","a":' +
                 b"[" * 100000 + b"]" * 100000 + b"}",
                 b"]" * 1000 + b"[" * 100000,
                 uninstall()[:-1] + b', "deep": ' + b"[" * 65 + b"]" * 65 +
                 b"}"):
        ns.append(ev(w, 400, "bad_request", body, signed(body)))
        # Unsigned: refused before it is parsed.
        ns.append(ev(w, 401, "bad_signature", body,
                     signed(body, sig="v0=" + "f" * 64)))
    return notes(ns)


def c_ev_bytes(w):
    ev_installed(w)
    ns = []
    for body in (challenge("\xff\xfe").replace(b"\\u00ff\\u00fe",
                                               b"\xff\xfe"),
                 uninstall(team="T0TEAM00\x01").replace(b"\\u0001", b"\xc3"),
                 uninstall().replace(b'"' + TEAM_ID.encode() + b'"',
                                     b'"' + TEAM_ID.encode() + b'\xed\xa0\x80"'),
                 challenge("\ud800x").replace(b"\\ud800", b"\xed\xa0\x80"),
                 challenge("x").replace(b'"x"', b'"x\\ud800"'),
                 uninstall() + b"\x00", b"\x00", b"\x00" + uninstall(),
                 uninstall().replace(b'"event_callback"',
                                     b'"event_call\x00back"'),
                 challenge("nul").replace(b'"nul"', b'"n\x00ul"')):
        ns.append(ev(w, 400, "bad_request", body, signed(body)))
    # Not ours to judge: an event type of invalid UTF-8 is some other event
    # (ignored), and the log shows it escaped.
    body = uninstall(event={"type": "x"}).replace(b'"x"', b'"app_\xff\x1b[31m"')
    ns.append(ev(w, 200, "app_\\xff\\x1b[31m", body, signed(body)))
    return notes(ns)


def c_ev_timestamps(w):
    ev_installed(w)
    ns = []
    body = uninstall()
    # Each made from the time just before it is sent: a late request only
    # makes a past one staler; the future one is 310 s ahead, not 301.
    digits = {ord("0") + i: 0x660 + i for i in range(10)}   # Arabic-Indic
    for make in (lambda now: "1" + "0" * 30, lambda now: "-1",
                 lambda now: "-0", lambda now: "0", lambda now: "abc",
                 lambda now: "1.7e9", lambda now: "%d.0" % now,
                 lambda now: "+%d" % now, lambda now: "0x%x" % now,
                 lambda now: "%dx" % now, lambda now: "9999999999",
                 lambda now: "99999999999", lambda now: str(now + 310),
                 lambda now: str(now - 301), lambda now: str(now - 31536000),
                 lambda now: "17", lambda now: str(now).translate(digits)):
        ts = make(int(time.time()))
        ns.append(ev(w, 401, "stale_timestamp", body, signed(body, ts=ts)))
    ns.append(ev(w, 401, "stale_timestamp", body,
                 {"X-Slack-Signature": sign(body)[1]}))
    ns.append(ev(w, 401, "stale_timestamp", body, signed(body, ts="")))
    return notes(ns)


def c_ev_signatures(w):
    ev_installed(w)
    ns = []
    body = uninstall()
    ts, good = sign(body)
    bad = [
        ("for another body", sign(body + b" ")[1]),
        ("for another team", sign(uninstall(team="T0OTHER01"))[1]),
        ("uppercase hex", "v0=" + good[3:].upper()),
        ("v1=", "v1=" + good[3:]),
        ("V0=", "V0=" + good[3:]),
        ("no v0=", good[3:]),
        ("63 hex", good[:-1]),
        ("65 hex", good + "0"),
        ("a space after", good + " "),
        ("empty", ""),
        ("v0= alone", "v0="),
        ("under the client secret", sign(body, ts, secret=SECRET)[1]),
        ("over another timestamp", sign(body, str(int(ts) - 1))[1]),
        ("two, comma-separated", good + "," + good),
        ("base64", "v0=" + base64.b64encode(bytes.fromhex(good[3:]))
         .decode()),
    ]
    for what, sig in bad:
        if w.mode == "nginx" and sig != sig.strip():
            continue   # nginx trims header values
        ns.append(ev(w, 401, "bad_signature", body,
                     {"X-Slack-Request-Timestamp": ts,
                      "X-Slack-Signature": sig}))
    ns.append(ev(w, 401, "bad_signature", body,
                 {"X-Slack-Request-Timestamp": ts}))
    # A valid signature replayed after 301 s: made with the old timestamp.
    old = str(int(time.time()) - 301)
    ns.append(ev(w, 401, "stale_timestamp", body, signed(body, ts=old)))
    # And one made for the future (310 s: a slow request would bring 301
    # into the window).
    ns.append(ev(w, 401, "stale_timestamp", body,
                 signed(body, ts=str(int(time.time()) + 310))))
    return notes(ns)


def c_ev_repeated(w):
    ev_installed(w)
    body = uninstall()
    ts, good = sign(body)
    bad = "v0=" + "0" * 64
    stale = str(int(ts) - 400)
    ns = []
    if w.mode == "nginx":
        ns.append(ev(w, 401, "bad_signature", body, [
            ("X-Slack-Request-Timestamp", ts), ("X-Slack-Signature", bad),
            ("X-Slack-Signature", good)]))
        ns.append(ev(w, 401, "stale_timestamp", body, [
            ("X-Slack-Request-Timestamp", stale),
            ("X-Slack-Request-Timestamp", ts), ("X-Slack-Signature", good)]))
        # Two copies of the good one: nginx 1.22 passes both (the program
        # reads the first), later nginx joins them with ", ": 200 or 401.
        before = w.db_counts()
        r = w.send("events", method="POST", body=body,
                   ctype="application/json", headers=[
                       ("X-Slack-Request-Timestamp", ts),
                       ("X-Slack-Signature", good),
                       ("X-Slack-Signature", good)])
        if r.status == 200:
            ns.append(ev_verify(w, r, 200, "app_uninstalled") +
                      " (the same good signature twice)")
            check(w.db_counts()[0] < before[0], "200 but nothing deleted")
            ev_installed(w)
        else:
            ns.append(ev_verify(w, r, 401, "bad_signature") +
                      " (the same good signature twice)")
        return notes(ns)
    # FastCGI: the parameter twice, as nginx 1.22 sends a repeated header.
    ns.append(ev(w, 401, "bad_signature", body,
                 {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": bad},
                 dup=[("HTTP_X_SLACK_SIGNATURE", good)]))
    ns.append(ev(w, 401, "stale_timestamp", body,
                 {"X-Slack-Request-Timestamp": stale,
                  "X-Slack-Signature": good},
                 dup=[("HTTP_X_SLACK_REQUEST_TIMESTAMP", ts)]))
    return notes(ns)


def c_ev_methods(w):
    ev_installed(w)
    ns = []
    body = uninstall()
    for m in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS", "post", "G" * 1024):
        ns.append(ev(w, 405, "bad_request", body if m != "GET" else b"",
                     signed(body if m != "GET" else b""), method=m,
                     nginx_may=(400, 405)))
    ch = "ct-" + secrets.token_hex(4)
    body = challenge(ch)
    for ct in (False, "text/plain", "application/x-www-form-urlencoded",
               "application/jsonx", "json",
               "multipart/form-data; boundary=x"):
        ns.append(ev(w, 400, "bad_request", body, signed(body), ctype=ct))
    ns.append(ev(w, 200, "url_verification", body, signed(body),
                 ctype="Application/JSON; charset=utf-8", text=ch))
    return notes(ns)


def c_ev_not_configured(w):
    if w.mode == "nginx":
        raise Skip("the example's settings are fixed; done as CGI and "
                   "FastCGI")
    ev_installed(w)
    body = uninstall()
    ns = []
    for val in (None, "a secret with spaces", "x" * 257):
        ns.append(ev(w, 500, "server_error", body, signed(body),
                     settings={"SLACK_SIGNING_SECRET": val}))
    return notes(ns)


def c_ev_u0000(w):
    r"""\u0000 (an escaped NUL) in the challenge and in the ids: SPEC wants
    printable ASCII (challenge) and [A-Z0-9] ids, else 400 and nothing
    changed (cJSON would decode \u0000 to a NUL and the program read the
    string up to it: "ab" answered, "T…\u0000x" taken for T…)."""
    ev_installed(w)
    ns, dev = [], []
    cases = [
        ("challenge", challenge("abc").replace(b'"abc"', b'"ab\\u0000cd"')),
        ("team_id", uninstall(team=TEAM_ID + "\x00x")),
        ("event type", uninstall(event={"type": "app_uninstalled\x00x"})),
        ("a user id", uninstall(event={"type": "tokens_revoked", "tokens":
                                       {"oauth": ["U0HUMAN01\x00x"]}})),
    ]
    for what, body in cases:
        check(b"\\u0000" in body, "no \\u0000 in the body")
        before = w.db_counts()
        r = w.send("events", method="POST", headers=signed(body), body=body,
                   ctype="application/json")
        after = w.db_counts()
        if r.who == "program" and r.status == 200:
            ev_verify(w, r, 200, {"challenge": "url_verification",
                                  "a user id": "tokens_revoked"}
                      .get(what, "app_uninstalled"),
                      text=r.body if what == "challenge" else None)
            dev.append("%s: 200%s" % (what, ", %d row(s) deleted"
                                      % (before[0] - after[0])
                                      if after[0] != before[0] else
                                      ", answered %r" % r.body))
            ev_installed(w)
            continue
        ns.append(ev_verify(w, r, 400, "bad_request"))
        eq(after[:2], before[:2], "installation rows (before, after)")
    dead = w.alive()
    check(dead is None, dead or "")
    check(not dev, "want 400: " + "; ".join(dev))
    return notes(ns)


def c_ev_control(w):
    """The checks above can see a deletion: a signed app_uninstalled (a
    retry, twice) deletes every row of the installation, then none."""
    ev_installed(w)
    before = w.db_counts()
    body = uninstall()
    retry = dict(signed(body), **{"X-Slack-Retry-Num": "1",
                                  "X-Slack-Retry-Reason": "http_timeout"})
    a = ev(w, 200, "app_uninstalled", body, retry, deletes=True)
    mid = w.db_counts()
    eq(mid[0], 0, "installation rows after a signed app_uninstalled")
    check(before[0] > 0, "there was nothing to delete")
    retry = dict(signed(body), **{"X-Slack-Retry-Num": "2"})
    ev(w, 200, "app_uninstalled", body, retry)
    ev_installed(w)
    return "%s, %d rows deleted; again: none" % (a, before[0])


CASES = [
    ("a 1 MB query string", c_query_1mb),
    ("10,000 parameters", c_params_10000),
    ("NUL and control bytes, %-encoded", c_nul_control_encoded),
    ("NUL and control bytes, raw", c_nul_control_raw),
    ("invalid UTF-8", c_invalid_utf8),
    ("a 100 KB cookie header (the state still good after)", c_cookie_100kb),
    ("many cookies of the same name", c_cookies_same_name),
    ("a method of 1 KB", c_method_1kb),
    ("a POST with a body, both endpoints", c_post_body),
    ("a forged state of the right shape", c_forged_state),
    ("a state issued for another SLACK_CLIENT_ID", c_state_other_client_id),
    ("Host and X-Forwarded-* headers", c_forwarded_headers),
    ("error= carrying HTML and CRLF", c_error_html_crlf),
    ("state, code and error over their caps", c_over_caps),
    ("events: bodies of 0, 1, 1 MiB, 1 MiB + 1 and 4 MiB", c_ev_sizes),
    ("events: Content-Length missing, huge, negative, not a number, wrong",
     c_ev_lengths),
    ("events: 413 before reading the body", c_ev_no_read),
    ("events: floods of keys and ids, signed", c_ev_keys),
    ("events: deep nesting, signed and unsigned", c_ev_deep),
    ("events: invalid UTF-8 and NUL bytes, signed", c_ev_bytes),
    ("events: malformed and stale timestamps", c_ev_timestamps),
    ("events: forged, replayed and malformed signatures", c_ev_signatures),
    ("events: repeated signature and timestamp headers", c_ev_repeated),
    ("events: methods and content types", c_ev_methods),
    ("events: no or an invalid signing secret", c_ev_not_configured),
    ("events: \\u0000 in the challenge and the ids", c_ev_u0000),
    ("events: a signed app_uninstalled deletes (control)", c_ev_control),
]


def main(argv):
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", action="append", default=[])
    ap.add_argument("--mode", choices=("cgi", "fcgi", "nginx"),
                    action="append", default=[])
    args = ap.parse_args(argv)
    run = Runner()
    t0 = time.time()
    for mode in ("cgi", "fcgi", "nginx"):
        if args.mode and mode not in args.mode:
            continue
        cases = [(n, f) for n, f in CASES
                 if not args.k or any(k in n for k in args.k)]
        if not cases:
            continue
        if mode == "nginx":
            why = deploy.missing_tools()
            if why:
                run.fail("nginx: hostile requests", why)
                continue
        try:
            w = NginxWorld() if mode == "nginx" else LocalWorld(mode)
        except Exception as e:
            run.fail("%s: setup" % mode, "%s: %s" % (type(e).__name__, e))
            continue
        try:
            for name, fn in cases:
                label = "%s: %s" % (mode, name)
                note = []
                try:
                    note.append(fn(w))
                except Skip as e:
                    run.skip(label, e)
                    continue
                except TestFailure as e:
                    run.fail(label, str(e).replace("\n", " ")[:1200])
                    continue
                except Exception as e:
                    run.fail(label, "%s: %s" % (type(e).__name__, e))
                    continue
                run.ok(label, " (%s)" % note[0] if note[0] else "")
        finally:
            w.close()
    print("# %.1fs" % (time.time() - t0))
    return run.finish()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
