#!/usr/bin/env python3
"""Deployment tests: each example file, served by the real web server.

For each of the five deployments the README documents, this starts the real
server (Apache, nginx, fcgiwrap, spawn-fcgi, systemd-socket-activate) on a
loopback port from the example file in the repository, with only its paths
and its port replaced (every example lists what is replaced), against the
fake Slack of tests/fake_slack.py. Then it runs a whole install over HTTPS
through that server:

  GET /slack/install            -> 200, the state cookie, the authorize URL
  the fake's authorize page     -> its "Allow" link -> 302 with code and state
  GET /slack/oauth_redirect?... -> 200 page naming the workspace (with the cookie)
  the same again                -> 400 "expired or was already used"

checks the installation stored in SQLite, then sends Slack's event
deliveries to /slack/events through the same server, signed as Slack signs
them (X-Slack-Signature over the exact bytes sent):

  url_verification              -> 200, the challenge as the body
  the same, 300 KiB of padding  -> 200 (past mod_fcgid's default limit)
  a body over 1 MiB             -> 413 (the server's, or the program's)
  app_uninstalled, wrong secret -> 401, the rows still there
  app_uninstalled               -> 200, empty; the team's rows gone

then, for the nginx examples, floods each OAuth address from one client
address (the burst passes, the rest is nginx's 429; events from that
address still pass), stops the servers, and reads every log the
deployment wrote: the programs' log lines must be there, the code, the
state, the tokens, the client secret, the signing secret and the
signatures must not.

Needs root (the servers drop privileges to www-data, as in production).
Prints "ok - name" / "FAIL - name: reason", then "N passed, N failed".
Python 3 standard library only.
"""

import base64
import glob
import html
import http.client
import json
import os
import pwd
import grp
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import fake_slack  # noqa: E402
from testlib import (Runner, TestFailure, add_secret, add_secrets,  # noqa: E402
                     dist_tarball,
                     add_state, check, free_port, kill_leftovers, kind_of,
                     port_open, processes_under,
                     record_db_modes, record_output, record_tree,
                     secret_values, shell_lines, stop_processes, wait_for)

CGI_BIN = os.path.join(ROOT, "cgi-bin")
PROGRAMS = ("slack-install", "slack-oauth-redirect", "slack-events")
SECRET = "deploy-test-client-secret-" + os.urandom(8).hex()
SIGNING_SECRET = "deploy-test-signing-secret-" + os.urandom(8).hex()
KEEP = os.environ.get("DEPLOY_KEEP") == "1"  # keep the temp dirs to look at

# The paths the examples use; each is moved under the test's directory.
PATHS = ["/usr/local/lib/cgi-bin", "/etc/slack-oauth", "/var/lib/slack-oauth",
         "/var/log/nginx", "/var/log/apache2", "/var/log/slack-oauth",
         "/run/slack-oauth", "/run/fcgiwrap.socket",
         "/etc/letsencrypt/live/example.org", "/home/alice"]


Fail = TestFailure
add_secret(SECRET, "client secret")
add_secret(SIGNING_SECRET, "signing secret")
EVENT_BODY_MAX = 1024 * 1024  # the program's cap (include/lim.h)


class World:
    """A temp root standing in for /, the servers started in it, and their
    clean-up."""

    def __init__(self, name):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="deploy-%s-" % name)
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.procs = []      # Popen objects we started
        self.pidfiles = []   # pid files of daemons we started
        self.user = "www-data"
        self.uid = pwd.getpwnam(self.user).pw_uid
        self.gid = grp.getgrnam(self.user).gr_gid
        for d in ("usr/local/lib/cgi-bin", "etc/slack-oauth", "var/log/nginx",
                  "var/log/apache2", "run", "etc/letsencrypt/live/example.org",
                  "tmp"):
            os.makedirs(self.p(d), exist_ok=True)
        # The database directory: www-data's, 0700 (README, "Deployment").
        os.makedirs(self.p("var/lib/slack-oauth"))
        os.chown(self.p("var/lib/slack-oauth"), self.uid, self.gid)
        os.chmod(self.p("var/lib/slack-oauth"), 0o700)
        for f in ("fullchain.pem", "privkey.pem"):
            shutil.copy(os.path.join(CERT_DIR, f),
                        self.p("etc/letsencrypt/live/example.org", f))
        self.fake = None

    def p(self, *parts):
        return os.path.join(self.dir, *parts)

    def subst(self, text):
        """The example's paths under the temp root, its port the test's."""
        for path in PATHS:
            text = text.replace(path, self.dir + path)
        text = re.sub(r"listen 443 ssl;", "listen 127.0.0.1:%d ssl;" % self.port,
                      text)
        text = text.replace("<VirtualHost *:443>",
                            "<VirtualHost 127.0.0.1:%d>" % self.port)
        return text

    def example(self, relpath):
        with open(os.path.join(ROOT, relpath)) as f:
            return f.read()

    def install_programs(self, src=CGI_BIN, dest="usr/local/lib/cgi-bin",
                         names=None):
        names = names or {"slack-install": "slack-install",
                          "slack-oauth-redirect": "slack-oauth-redirect",
                          "slack-events": "slack-events"}
        for s, d in names.items():
            check(os.access(os.path.join(src, s), os.X_OK),
                  "%s/%s is not built (run make)" % (src, s))
            shutil.copy(os.path.join(src, s), self.p(dest, d))
            os.chmod(self.p(dest, d), 0o755)

    def start_fake(self, client_id):
        self.fake = fake_slack.FakeSlack(client_id, SECRET, shape="bot").start()
        FAKE_PORT[0] = self.fake.port
        return self.fake

    def write_config(self, path, lines, owner_uid=0, group_gid=None,
                     mode=0o640):
        with open(path, "w") as f:
            f.write("".join(line + "\n" for line in lines))
        os.chown(path, owner_uid, self.gid if group_gid is None else group_gid)
        os.chmod(path, mode)

    def fake_lines(self):
        return ["SLACK_AUTHORIZE_URL = " + self.fake.authorize_url,
                "SLACK_API_URL = " + self.fake.api_url]

    def secret_lines(self):
        """The config file's secrets, as the examples say to keep them."""
        return ["SLACK_CLIENT_SECRET = " + SECRET,
                "SLACK_SIGNING_SECRET = " + SIGNING_SECRET]

    def spawn(self, argv, log=None, **kw):
        out = open(log, "ab") if log else subprocess.DEVNULL
        p = subprocess.Popen(argv, stdin=kw.pop("stdin", subprocess.DEVNULL),
                             stdout=out, stderr=out, start_new_session=True,
                             **kw)
        if log:
            out.close()
        self.procs.append(p)
        return p

    def stop(self):
        stop_processes(self.procs, self.pidfiles)
        self.procs = []
        return kill_leftovers(self.dir)

    def our_processes(self):
        return processes_under(self.dir)

    def cleanup(self):
        self.stop()
        # The logs and database modes, for tests/secrets_scan.py.
        record_tree(self.p("var/log"), "deploy %s: var/log" % self.name)
        record_db_modes(self.dir, "deploy " + self.name)
        if self.fake is not None:
            add_secrets(self.fake.secrets())
            self.fake.stop()
            self.fake = None
        if not KEEP:
            shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------- the flow
FAKE_PORT = [None]


def client_tls():
    """One TLS context for every request (making one loads the system's CA
    certificates: some 20 ms each time)."""
    if not TLS_CTX:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        TLS_CTX.append(ctx)
    return TLS_CTX[0]


TLS_CTX = []


def request(port, path, cookie=None, host="127.0.0.1", tls=True, source=None):
    """GET path; source: the client address to send from (a loopback one)."""
    src = (source, 0) if source else None
    if tls:
        c = http.client.HTTPSConnection(host, port, timeout=15,
                                        context=client_tls(),
                                        source_address=src)
    else:
        c = http.client.HTTPConnection(host, port, timeout=15,
                                       source_address=src)
    headers = {"User-Agent": "deploy-test"}
    if cookie:
        headers["Cookie"] = cookie
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    body = r.read().decode("utf-8", "replace")
    out = (r.status, r.getheaders(), body)
    c.close()
    if port != FAKE_PORT[0]:
        # What our programs (through the server) answered; the fake
        # Slack's pages carry the state and the code by design.
        record_output("deploy: GET %s" % path.split("?")[0], "\n".join(
            "%s: %s" % hv for hv in out[1]) + "\n\n" + body,
            states_ok=path.startswith("/slack/install"))
    return out


def header(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


def run_flow(w):
    """The install flow through the server; returns what the logs must not
    hold."""
    fs = w.fake
    st, hdrs, body = request(w.port, "/slack/install")
    check(st == 200, "GET /slack/install: status %d: %s" % (st, body[:300]))
    cookies = header(hdrs, "Set-Cookie")
    check(len(cookies) == 1, "install: want one Set-Cookie, got %r" % cookies)
    attrs = [a.strip() for a in cookies[0].split(";")]
    name, _, state = attrs[0].partition("=")
    for a in ("Secure", "HttpOnly", "SameSite=Lax", "Path=/"):
        check(a in attrs, "install: cookie lacks %s: %r" % (a, cookies[0]))
    m = re.search(r'<a class="slack" href="([^"]+)">', body)
    check(m, "install: no Add to Slack link in the page")
    authorize = html.unescape(m.group(1))
    check(authorize.startswith(fs.authorize_url + "?"),
          "install: link is not the fake's authorize URL: %s" % authorize)
    aq = urllib.parse.parse_qs(urllib.parse.urlsplit(authorize).query)
    check(aq.get("state") == [state], "install: state in URL != cookie")
    add_state(state)

    u = urllib.parse.urlsplit(authorize)
    st, _, page = request(fs.port, u.path + "?" + u.query, tls=False)
    check(st == 200, "fake authorize page: status %d: %s" % (st, page[:200]))
    m = re.search(r'id="allow" href="([^"]+)"', page)
    check(m, "fake authorize page: no Allow link")
    st, hdrs, _ = request(fs.port, html.unescape(m.group(1)), tls=False)
    loc = header(hdrs, "Location")
    check(st == 302 and loc, "Allow: want a 302, got %d" % st)
    back = urllib.parse.urlsplit(loc[0])
    check(back.path == "/slack/oauth_redirect",
          "Allow: redirected to %s, not /slack/oauth_redirect" % loc[0])
    bq = urllib.parse.parse_qs(back.query)
    code = add_secret(bq["code"][0], "code")

    target = "/slack/oauth_redirect?" + back.query
    st, hdrs, body = request(w.port, target, cookie="%s=%s" % (name, state))
    check(st == 200, "GET /slack/oauth_redirect: status %d: %s"
          % (st, re.sub(r"\s+", " ", body)[:300]))
    check(fake_slack.TEAM_NAME in body,
          "success page does not name the workspace")
    cleared = header(hdrs, "Set-Cookie")
    check(any(c.startswith(name + "=;") or "Max-Age=0" in c for c in cleared),
          "redirect: state cookie not cleared: %r" % cleared)

    st, _, body = request(w.port, target, cookie="%s=%s" % (name, state))
    check(st == 400 and "expired or was already used" in body,
          "replayed redirect: want 400 'expired or already used', got %d" % st)
    st, _, _ = request(w.port, "/slack/other")
    check(st in (403, 404), "GET /slack/other: status %d, want 403 or 404" % st)
    return {"code": code, "state": state}


# ------------------------------------------------------------- the events
def sign(body, secret=SIGNING_SECRET):
    """Slack's headers for body (bytes), now (fake_slack.sign_event). The
    signature is registered as a secret: no log may hold it."""
    headers = fake_slack.sign_event(secret, body)
    add_secret(headers["X-Slack-Signature"], "signature")
    headers["Content-Type"] = "application/json"
    return headers


def post_event(w, body, secret=SIGNING_SECRET, source=None, method="POST"):
    """POSTs body (bytes) to /slack/events as Slack does, signed under
    secret; (status, headers, body) of the answer."""
    src = (source, 0) if source else None
    c = http.client.HTTPSConnection("127.0.0.1", w.port, timeout=15,
                                    context=client_tls(), source_address=src)
    headers = {"User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"}
    headers.update(sign(body, secret))
    try:
        c.request(method, "/slack/events", body=body, headers=headers)
        r = c.getresponse()
        out = (r.status, r.getheaders(), r.read().decode("utf-8", "replace"))
    finally:
        c.close()
    record_output("deploy: POST /slack/events", "\n".join(
        "%s: %s" % hv for hv in out[1]) + "\n\n" + out[2])
    return out


def url_verification():
    """The request Slack sends when the Request URL is saved, and its
    challenge."""
    challenge = base64.b64encode(os.urandom(39)).decode()
    return challenge, json.dumps({
        "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": challenge,
        "type": "url_verification"}).encode()


def app_uninstalled(team_id):
    """An app_uninstalled delivery for team_id, as Slack sends it."""
    return json.dumps(fake_slack.event_envelope(
        {"type": "app_uninstalled"}, team_id=team_id)).encode()


QUERY_PY = """\
import json, sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=10)
print(json.dumps(con.execute(sys.argv[2], sys.argv[3:]).fetchall()))
"""


def query(w, db, sql, *args):
    """The rows of sql on the database, read as the programs' user while
    they run (a reader as root could leave its -wal or -shm root's), by
    the system's python3 (make deps): the one running this may live where
    that user cannot read (a pyenv under /root)."""
    check(os.path.exists(db), "no database at %s" % db)
    py = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    check(py, "no python3 in /usr/local/bin:/usr/bin:/bin (make deps)")
    r = subprocess.run([py, "-c", QUERY_PY, db, sql] + list(args),
                       user=w.uid, group=w.gid, extra_groups=[], cwd="/",
                       env={"PATH": "/usr/bin:/bin"}, capture_output=True,
                       text=True, timeout=20)
    check(r.returncode == 0, "reading the database: " + r.stderr[-300:])
    return [tuple(row) for row in json.loads(r.stdout)]


def team_rows(w, db, team_id):
    """(rows in slack_installations, rows in slack_bots) of team_id."""
    return tuple(query(w, db, "SELECT count(*) FROM %s WHERE team_id = ?"
                       % t, team_id)[0][0]
                 for t in ("slack_installations", "slack_bots"))


def run_events(w, db, cgid=False):
    """Slack's deliveries through the server, after the flow stored the
    installation (the signatures sent are registered secrets). cgid: the
    program runs under Apache's mod_cgid (see the body over 1 MiB)."""
    def post(body, secret=SIGNING_SECRET):
        return post_event(w, body, secret)

    challenge, body = url_verification()
    st, hdrs, text = post(body)
    check(st == 200, "url_verification: status %d: %s"
          % (st, re.sub(r"\s+", " ", text)[:300]))
    check(text == challenge, "url_verification: the body is not exactly the "
          "challenge: %r" % text[:200])
    ctype = header(hdrs, "Content-Type")
    check(ctype and ctype[0].startswith("text/plain"),
          "url_verification: Content-Type %r, want text/plain" % ctype)

    # Past mod_fcgid's default FcgidMaxRequestLen (128 KiB) and nginx's
    # client body buffer: whitespace the JSON allows, signed like the rest.
    padded = body[:-1] + b" " * (300 * 1024) + b"}"
    st, _, text = post(padded)
    check(st == 200 and text == challenge, "url_verification of %d KiB: "
          "status %d: %s" % (len(padded) // 1024, st,
                             re.sub(r"\s+", " ", text)[:200]))
    # One byte over the program's cap: 413, from nginx itself
    # (client_max_body_size) or from the program, which answers without
    # reading the body, then reads and drops it (serve.c, drain): under
    # mod_cgid the program's stdin and stdout are one unix socket, and an
    # exit with the body unread would reset it and lose the answer
    # (AH02651). Several times, since that loss came one time in three.
    big = body[:-1] + b" " * (EVENT_BODY_MAX + 1 - len(body)) + b"}"
    for i in range(5 if cgid else 1):
        st, _, _ = post(big)
        check(st == 413, "a body of 1 MiB + 1 byte (%d): status %d, want 413"
              % (i + 1, st))
    # Another method with a body the program never reads: its 405 arrives
    # (fcgiwrap gave up writing a body past the pipe's size, and answered
    # 502, before the program drained it).
    st, _, _ = post_event(w, padded, method="PUT")
    check(st == 405, "PUT with a 300 KiB body: status %d, want 405" % st)

    team = fake_slack.TEAM_ID
    before = team_rows(w, db, team)
    check(before == (1, 1), "before the events, rows of %s: %r, want (1, 1)"
          % (team, before))
    gone = app_uninstalled(team)
    st, _, text = post(gone, secret="not-the-" + SIGNING_SECRET)
    check(st == 401, "app_uninstalled signed with another secret: status %d,"
          " want 401" % st)
    after = team_rows(w, db, team)
    check(after == before, "app_uninstalled with a bad signature changed the "
          "rows of %s: %r -> %r" % (team, before, after))
    st, _, text = post(gone)
    check(st == 200 and text == "", "app_uninstalled: status %d, body %r, "
          "want 200 and an empty body" % (st, text[:200]))
    after = team_rows(w, db, team)
    check(after == (0, 0), "after app_uninstalled, rows of %s "
          "(slack_installations, slack_bots): %r, want none" % (team, after))


EVENT_LOG = [
    "slack-events: outcome=url_verification status=200 ",
    "slack-events: outcome=bad_signature status=401 ",
    re.compile(r"slack-events: outcome=app_uninstalled status=200 team=%s "
               r"enterprise=- ms=[0-9.]+ detail=\"deleted 2 rows\""
               % fake_slack.TEAM_ID),
]


def event_log(path):
    """What the events program's log (path) must hold."""
    return [(path, text) for text in EVENT_LOG]


def check_rate_limit(w, example):
    """The example's limit_req, for real: a flood from one client address
    gets 429 from nginx once its burst is spent, on both addresses, and
    the first burst+1 requests pass. From 127.0.0.2 and .3, so that what
    the flow sent from 127.0.0.1 does not count; 127.0.0.1 is still
    served after the flood (the limit is per address), and so are events
    from the flooding addresses (their own zone)."""
    text = w.example(example)
    m = re.search(r"(?m)^limit_req_zone \$binary_remote_addr "
                  r"zone=(\w+):\S+ rate=(\d+)r/s;", text)
    check(m, "%s: no limit_req_zone per address in r/s" % example)
    zone, rate = m.group(1), int(m.group(2))
    m = re.search(r"(?m)^\s*limit_req zone=%s burst=(\d+) nodelay;" % zone,
                  text)
    check(m, "%s: no 'limit_req zone=%s burst=N nodelay'" % (example, zone))
    burst = int(m.group(1))
    check(re.search(r"(?m)^\s*limit_req_status 429;", text),
          "%s: no limit_req_status 429" % example)
    for path, n, src in (("/slack/install", 200, "127.0.0.2"),
                         ("/slack/oauth_redirect?code=c&state=s", 80,
                          "127.0.0.3")):
        t0 = time.monotonic()
        got = []
        for _ in range(n):
            st, hdrs, body = request(w.port, path, source=src)
            m = re.search(r'<a class="slack" href="[^"]*state=([^"&]+)', body)
            if m:
                add_state(m.group(1))
            # Every answer of the programs has a CSP; nginx's 429 none.
            got.append((st, bool(header(hdrs, "Content-Security-Policy"))))
        elapsed = time.monotonic() - t0
        where = "%s from %s" % (path.split("?")[0], src)
        want = 200 if path == "/slack/install" else 400
        check(got[:burst + 1] == [(want, True)] * (burst + 1),
              "%s: the first %d (the burst) should pass: %r"
              % (where, burst + 1, sorted(set(got[:burst + 1]))))
        check(set(got) <= {(want, True), (429, False)},
              "%s: answers other than %d and nginx's 429: %r"
              % (where, want, sorted(set(got))))
        passed = sum(1 for st, _ in got if st == want)
        # nginx lets rate/s more through as time passes; one for rounding.
        most = burst + 1 + int(rate * elapsed) + 1
        check(passed <= most, "%s: %d of %d passed in %.1fs, want at most %d"
              % (where, passed, n, elapsed, most))
    st, _, _ = request(w.port, "/slack/install")
    check(st == 200, "after a flood from another address, GET /slack/install "
          "from 127.0.0.1: status %d" % st)
    # Slack's deliveries have a zone of their own: the floods spent these
    # addresses' OAuth allowance, not their events'.
    for src in ("127.0.0.2", "127.0.0.3"):
        challenge, body = url_verification()
        st, _, text = post_event(w, body, source=src)
        check(st == 200 and text == challenge, "url_verification from %s "
              "right after its OAuth flood: status %d (the events under the "
              "OAuth rate limit?)" % (src, st))


def check_stored(w, db):
    """The installation the flow stored (while the servers run)."""
    fs = w.fake
    check(os.path.exists(db), "no database at %s" % db)
    st = os.stat(db)
    check(st.st_mode & 0o077 == 0, "database mode %o, want 0600" % (st.st_mode & 0o777))
    check(st.st_uid == w.uid, "database owned by uid %d, not %s: the programs "
          "did not run as the web server's user" % (st.st_uid, w.user))
    rows = query(w, db,
                 "SELECT client_id, enterprise_id, team_id, team_name, "
                 "bot_token, bot_id, bot_user_id FROM slack_installations")
    bots = query(w, db, "SELECT team_id, bot_token FROM slack_bots")
    check(len(rows) == 1, "want 1 installation row, got %d" % len(rows))
    ex = fs.last_exchange
    check(ex is not None, "the fake saw no successful exchange")
    want = (fs.client_id, "", fake_slack.TEAM_ID, fake_slack.TEAM_NAME,
            ex["access_token"], fake_slack.BOT_ID, fake_slack.BOT_USER_ID)
    check(rows[0] == want, "stored %r, want %r" % (rows[0], want))
    check(bots == [(fake_slack.TEAM_ID, ex["access_token"])],
          "slack_bots: %r" % (bots,))


def scan_logs(w, secrets, must_have, logdirs):
    """Every file under logdirs: no secret; each must_have (file, text)."""
    files = []
    for d in logdirs:
        for dp, _, fns in os.walk(d):
            files += [os.path.join(dp, f) for f in fns]
    texts = {}
    for f in files:
        with open(f, "rb") as fh:
            texts[f] = fh.read().decode("utf-8", "replace")
    for f, t in texts.items():
        for s in secrets:
            if s and s in t:
                raise Fail("%s holds a %s (%d chars)"
                           % (os.path.relpath(f, w.dir),
                              secret_values().get(s) or kind_of(s), len(s)))
        if "FastCGI sent in stderr" in t:
            raise Fail("%s: the programs' stderr reached nginx"
                       % os.path.relpath(f, w.dir))
    for rel, text in must_have:
        f = w.p(rel)
        check(f in texts, "no log file %s" % rel)
        if hasattr(text, "search"):
            check(text.search(texts[f]), "%s lacks a line matching %r"
                  % (rel, text.pattern))
        else:
            check(text in texts[f], "%s lacks %r" % (rel, text))


def secrets_of(w, flow):
    """What no log may hold: the flow's, the fake's, our secrets, and
    every signature sent."""
    sigs = {v for v, kind in secret_values().items() if kind == "signature"}
    return sorted(w.fake.secrets() | sigs |
                  {flow["code"], flow["state"], SECRET, SIGNING_SECRET})


# ------------------------------------------------------------ the servers
NGINX_MAIN = """\
{user}
worker_processes 1;
pid {dir}/run/nginx.pid;
daemon off;
error_log {dir}/var/log/nginx/error.log;
events {{ worker_connections 64; }}
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


def start_nginx(w, example):
    os.makedirs(w.p("nginx"))
    shutil.copy("/etc/nginx/fastcgi_params", w.p("nginx", "fastcgi_params"))
    with open(w.p("nginx", "site.conf"), "w") as f:
        f.write(w.subst(w.example(example)))
    with open(w.p("nginx", "nginx.conf"), "w") as f:
        f.write(NGINX_MAIN.format(dir=w.dir, user="user www-data;"))
    argv = ["nginx", "-p", w.p("nginx"), "-c", w.p("nginx", "nginx.conf"),
            "-e", w.p("var/log/nginx/error.log")]
    t = subprocess.run(argv + ["-t"], capture_output=True, text=True)
    check(t.returncode == 0, "nginx -t: " + t.stderr.strip()[-400:])
    p = w.spawn(argv, log=w.p("var/log/nginx/stderr.log"))
    wait_for(lambda: p.poll() is None and port_open(w.port), "nginx")


APACHE_MAIN = """\
ServerRoot {dir}/apache
ServerName localhost
PidFile {dir}/run/apache2.pid
DefaultRuntimeDir {dir}/run
Mutex file:{dir}/run default
User www-data
Group www-data
Listen 127.0.0.1:{port}
ErrorLog {dir}/var/log/apache2/error.log
LogLevel warn
LoadModule mpm_event_module {mods}/mod_mpm_event.so
LoadModule authz_core_module {mods}/mod_authz_core.so
LoadModule alias_module {mods}/mod_alias.so
LoadModule setenvif_module {mods}/mod_setenvif.so
LoadModule socache_shmcb_module {mods}/mod_socache_shmcb.so
LoadModule ssl_module {mods}/mod_ssl.so
{extra}
"""
APACHE_MODS = "/usr/lib/apache2/modules"


def start_apache(w, extra, home=None):
    """Apache with extra configuration; home=(dir, mountpoint): in a mount
    namespace of its own where dir is mounted on mountpoint."""
    os.makedirs(w.p("apache"))
    conf = w.p("apache", "httpd.conf")
    with open(conf, "w") as f:
        f.write(APACHE_MAIN.format(dir=w.dir, port=w.port, mods=APACHE_MODS,
                                   extra=extra))
    argv = ["apache2", "-d", w.p("apache"), "-f", conf]
    if home is not None:
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh",
                home[0], home[1]] + argv
    t = subprocess.run(argv + ["-t"], capture_output=True, text=True)
    check(t.returncode == 0, "apache2 -t: " + (t.stderr + t.stdout).strip()[-400:])
    p = w.spawn(argv + ["-DFOREGROUND"], log=w.p("var/log/apache2/stderr.log"))
    wait_for(lambda: p.poll() is None and port_open(w.port), "apache2")


def client_id_of(text):
    m = re.search(r"SLACK_CLIENT_ID[ =]+([^\s;]+)", text)
    check(m, "the example sets no SLACK_CLIENT_ID")
    return m.group(1)


# ------------------------------------------------------------ deployments
def apache_fcgid(w):
    text = w.example("apache-example.conf")
    w.install_programs()
    w.start_fake(client_id_of(text))
    w.write_config(w.p("etc/slack-oauth/slack-oauth.conf"),
                   w.secret_lines() + w.fake_lines())
    with open(w.p("site.conf"), "w") as f:
        f.write(w.subst(text))
    start_apache(w, "LoadModule fcgid_module {m}/mod_fcgid.so\n"
                    "FcgidIPCDir {d}/fcgid\n"
                    "FcgidProcessTableFile {d}/run/fcgid-shm\n"
                    "Include {d}/site.conf\n".format(m=APACHE_MODS, d=w.dir))
    flow = run_flow(w)
    db = w.p("var/lib/slack-oauth/slack-oauth.db")
    check_stored(w, db)
    run_events(w, db)
    w.stop()
    scan_logs(w, secrets_of(w, flow), [
        ("var/log/apache2/slack-oauth.access.log", "GET /slack/oauth_redirect HTTP"),
        ("var/log/apache2/slack-oauth.access.log", "POST /slack/events HTTP"),
        ("var/log/apache2/error.log", "slack-oauth-redirect: outcome=ok status=200"),
    ] + event_log("var/log/apache2/error.log"), [w.p("var/log")])


def apache_cgi_htaccess(w):
    """Shared hosting: the `make dist` tarball unpacked in the home of the
    user the programs run as, its cgi-bin/ renamed to public_html/slack
    and htaccess-example to .htaccess there, as its INSTALL says; the
    config file in ~/.config/slack-oauth/, found from the password
    database (mod_cgid passes no HOME, as suexec does not). www-data
    stands for the customer: Apache runs in a mount namespace of its own
    where the test's home directory is mounted on www-data's home,
    /var/www. The host's log honours "dontlog"."""
    text = w.example("htaccess-example")
    home = w.p("home/alice")           # the customer's home, seen from here
    inside = pwd.getpwuid(w.uid).pw_dir   # and as the programs see it
    os.makedirs(home + "/public_html")
    r = subprocess.run(["tar", "-xzf", dist_tarball(), "-C", home],
                       capture_output=True, text=True)
    check(r.returncode == 0, "tar: " + r.stderr[-300:])
    top = glob.glob(home + "/slack-oauth-fcgi-*")
    check(len(top) == 1, "the tarball's top directory: %r" % top)
    # INSTALL's two renames, and its directories.
    os.rename(top[0] + "/cgi-bin", home + "/public_html/slack")
    os.rename(home + "/public_html/slack/htaccess-example",
              home + "/public_html/slack/.htaccess")
    with open(home + "/public_html/slack/.htaccess") as f:
        check(f.read() == text, "the tarball's htaccess-example is not "
              "the repository's")
    for d in ("slack-oauth", ".config/slack-oauth"):
        os.makedirs(home + "/" + d, mode=0o700)
    for dirpath, dirs, names in os.walk(home):
        for n in dirs + names:
            os.lchown(os.path.join(dirpath, n), w.uid, w.gid)
    os.chown(home, w.uid, w.gid)
    # The config file as the example shows it, with the fake's secret, our
    # signing secret and, for the test only, the fake's addresses.
    m = re.search(r"slack-oauth\.conf \(chmod 0600\), for example:\n#\n"
                  r"((?:#   .*\n)+)", text)
    check(m, "htaccess-example: no config file sample")
    sample = [ln[4:] for ln in m.group(1).splitlines()]
    for placeholder in ("<the app's client secret>",
                        "<the app's signing secret>"):
        check(any(placeholder in ln for ln in sample),
              "htaccess-example: the config file sample has no %s"
              % placeholder)
    sample = [ln.replace("/home/alice", inside)
              .replace("<the app's client secret>", SECRET)
              .replace("<the app's signing secret>", SIGNING_SECRET)
              for ln in sample]
    w.start_fake(client_id_of(m.group(1)))
    w.write_config(home + "/.config/slack-oauth/slack-oauth.conf",
                   sample + w.fake_lines(), owner_uid=w.uid, group_gid=w.gid,
                   mode=0o600)
    host = """\
LoadModule cgid_module {m}/mod_cgid.so
LoadModule rewrite_module {m}/mod_rewrite.so
ScriptSock {d}/run/cgid.sock
LogFormat "%h %l %u %t \\"%r\\" %>s %O \\"%{{Referer}}i\\" \\"%{{User-Agent}}i\\"" combined
<VirtualHost 127.0.0.1:{port}>
    ServerName example.org
    SSLEngine on
    SSLCertificateFile {d}/etc/letsencrypt/live/example.org/fullchain.pem
    SSLCertificateKeyFile {d}/etc/letsencrypt/live/example.org/privkey.pem
    DocumentRoot {home}/public_html
    <Directory {home}/public_html>
        AllowOverride All
        Require all granted
    </Directory>
    CustomLog {d}/var/log/apache2/access.log combined env=!dontlog
</VirtualHost>
""".format(m=APACHE_MODS, d=w.dir, port=w.port, home=inside)
    start_apache(w, host, home=(home, inside))
    flow = run_flow(w)
    # Nothing but the three programs is served from there.
    for path in ("/slack/lib/libcjson.so.1", "/slack/lib/", "/slack/.htaccess",
                 "/slack/slack-install.bak"):
        st = request(w.port, path)[0]
        check(st in (403, 404), "GET %s: status %d, want 403" % (path, st))
    db = home + "/slack-oauth/slack-oauth.db"
    check_stored(w, db)
    run_events(w, db, cgid=True)
    w.stop()
    scan_logs(w, secrets_of(w, flow), [
        ("var/log/apache2/access.log", "GET /slack/install HTTP"),
        ("var/log/apache2/access.log", "POST /slack/events HTTP"),
        ("var/log/apache2/error.log", "slack-oauth-redirect: outcome=ok status=200"),
    ] + event_log("var/log/apache2/error.log") + [
        ("var/log/apache2/error.log",
         "slack-events: outcome=bad_request status=413 "),
    ], [w.p("var/log")])
    with open(w.p("var/log/apache2/access.log")) as f:
        check("oauth_redirect" not in f.read(),
              "the host logged /slack/oauth_redirect despite dontlog")


def nginx_fcgiwrap(w):
    setup_nginx_fcgiwrap(w)
    flow = run_flow(w)
    db = w.p("var/lib/slack-oauth/slack-oauth.db")
    check_stored(w, db)
    run_events(w, db)
    check_rate_limit(w, "nginx-example.conf")
    w.stop()
    scan_logs(w, secrets_of(w, flow), [
        ("var/log/nginx/slack-oauth.access.log", "GET /slack/oauth_redirect HTTP"),
        ("var/log/nginx/slack-oauth.access.log", "POST /slack/events HTTP"),
        ("var/log/fcgiwrap.journal", "slack-oauth-redirect: outcome=ok status=200"),
    ] + event_log("var/log/fcgiwrap.journal"), [w.p("var/log")])


def setup_nginx_fcgiwrap(w):
    """nginx-example.conf under nginx, fcgiwrap behind it (also used by
    tests/hostile.py). The programs' log: var/log/fcgiwrap.journal."""
    text = w.example("nginx-example.conf")
    check("fastcgi_param SCRIPT_FILENAME" in text, "no SCRIPT_FILENAME")
    w.install_programs()
    w.start_fake(client_id_of(text))
    w.write_config(w.p("etc/slack-oauth/slack-oauth.conf"),
                   w.secret_lines() + w.fake_lines())
    # fcgiwrap as Debian's fcgiwrap.socket/.service run it (socket on fd 0,
    # 0660 www-data, user www-data) with the DAEMON_OPTS the example says
    # (no -f; -c, how many at once); its stderr is the journal's stand-in.
    m = re.search(r"echo 'DAEMON_OPTS=([^']*)' > /etc/default/fcgiwrap", text)
    check(m, "nginx-example.conf: no DAEMON_OPTS for /etc/default/fcgiwrap")
    opts = shlex.split(m.group(1))
    check("-f" not in opts, "the example's DAEMON_OPTS has -f")
    check("-c" in opts, "the example's DAEMON_OPTS sets no -c")
    sock_path = w.subst("/run/fcgiwrap.socket")
    s = socket.socket(socket.AF_UNIX)
    s.bind(sock_path)
    os.chown(sock_path, w.uid, w.gid)
    os.chmod(sock_path, 0o660)
    s.listen(64)
    w.spawn(["/usr/sbin/fcgiwrap"] + opts, stdin=s.fileno(),
            log=w.p("var/log/fcgiwrap.journal"), user=w.uid, group=w.gid,
            extra_groups=[], cwd="/",
            env={"PATH": "/usr/local/bin:/usr/bin:/bin"})
    s.close()
    start_nginx(w, "nginx-example.conf")


def nginx_spawn_fcgi(w):
    setup_nginx_spawn_fcgi(w)
    flow = run_flow(w)
    db = w.p("var/lib/slack-oauth/slack-oauth.db")
    check_stored(w, db)
    run_events(w, db)
    check_rate_limit(w, "nginx-spawn-fcgi-example.conf")
    w.stop()
    scan_logs(w, secrets_of(w, flow), [
        ("var/log/nginx/slack-oauth.access.log", "GET /slack/oauth_redirect HTTP"),
        ("var/log/nginx/slack-oauth.access.log", "POST /slack/events HTTP"),
        ("var/log/slack-oauth/slack-oauth.log",
         "slack-oauth-redirect: outcome=ok status=200"),
    ] + event_log("var/log/slack-oauth/slack-oauth.log"), [w.p("var/log")])


def setup_nginx_spawn_fcgi(w):
    """nginx-spawn-fcgi-example.conf: its "#$" commands, then nginx (also
    used by tests/hostile.py). The programs' log:
    var/log/slack-oauth/slack-oauth.log."""
    text = w.example("nginx-spawn-fcgi-example.conf")
    cmds = shell_lines(text)
    check(len(cmds) == 4, "want 4 '#$' command lines, got %d" % len(cmds))
    w.install_programs()
    w.start_fake(client_id_of(text))
    w.write_config(w.p("etc/slack-oauth/slack-oauth.conf"),
                   w.secret_lines() + w.fake_lines())
    for sock in PROGRAMS:
        w.pidfiles.append(w.p("run/slack-oauth/%s.pid" % sock))
    for cmd in cmds:
        r = subprocess.run(["/bin/sh", "-c", w.subst(cmd)], cwd="/",
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=20)
        check(r.returncode == 0, "%s: exit %d: %s" % (cmd[:40], r.returncode,
                                                      r.stderr.strip()[-300:]))
    for sock in PROGRAMS:
        st = os.stat(w.p("run/slack-oauth/%s.sock" % sock))
        check(st.st_uid == w.uid and st.st_mode & 0o777 == 0o660,
              "%s.sock: not 0660 www-data" % sock)
    start_nginx(w, "nginx-spawn-fcgi-example.conf")


def unit_file(path):
    """[Section] -> list of (key, value), as systemd reads it (enough of it)."""
    out, sect = {}, None
    with open(path) as f:
        for ln in f:
            ln = ln.strip()
            if not ln or ln[0] in "#;":
                continue
            if ln.startswith("["):
                sect = ln.strip("[]")
                continue
            k, _, v = ln.partition("=")
            out.setdefault(sect, []).append((k.strip(), v.strip()))
    return out


def systemd_socket(w):
    """systemd/*.socket + *.service, run as systemd would: the socket made
    by systemd-socket-activate with the unit's owner and mode, the program
    exec'd on the first connection with the listening socket on fd 0
    (StandardInput=socket), only the unit's Environment=, as its User=;
    nginx in front with nginx-spawn-fcgi-example.conf."""
    w.install_programs()
    units = w.p("units")
    os.makedirs(units)
    cid = None
    for prog in PROGRAMS:
        for ext in ("socket", "service"):
            src = os.path.join(ROOT, "systemd", "%s.%s" % (prog, ext))
            with open(src) as f:
                text = f.read()
            cid = cid or (client_id_of(text) if ext == "service" else None)
            with open(os.path.join(units, "%s.%s" % (prog, ext)), "w") as f:
                f.write(w.subst(text))
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "verify"] +
                           sorted(glob.glob(units + "/*")),
                           capture_output=True, text=True, cwd=units)
        bad = [ln for ln in (r.stdout + r.stderr).splitlines()
               if ln.strip() and "Failed to connect to bus" not in ln]
        check(r.returncode == 0 and not bad,
              "systemd-analyze verify: " + " | ".join(bad)[-400:])
    w.start_fake(cid)
    w.write_config(w.p("etc/slack-oauth/slack-oauth.conf"),
                   w.secret_lines() + w.fake_lines())
    for prog in PROGRAMS:
        sock = dict(unit_file(os.path.join(units, prog + ".socket"))["Socket"])
        svc = unit_file(os.path.join(units, prog + ".service"))["Service"]
        sv = dict(svc)
        check(sv.get("StandardInput") == "socket", "%s: no StandardInput=socket"
              % prog)
        check(sock.get("Accept", "no") == "no", "%s: Accept=yes" % prog)
        path = sock["ListenStream"]
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        argv = ["systemd-socket-activate", "--inetd", "-l", path]
        for k, v in svc:
            if k == "Environment":
                for item in shlex.split(v):
                    argv += ["-E", item]
        argv += ["--", "setpriv", "--reuid=" + sv["User"],
                 "--regid=" + sv["Group"], "--clear-groups", "--"]
        argv += shlex.split(sv["ExecStart"])
        w.spawn(argv, log=w.p("var/log/journal-%s.log" % prog), cwd="/")
        wait_for(lambda: os.path.exists(path), path)
        os.chown(path, pwd.getpwnam(sock["SocketUser"]).pw_uid,
                 grp.getgrnam(sock["SocketGroup"]).gr_gid)
        os.chmod(path, int(sock["SocketMode"], 8))
    start_nginx(w, "nginx-spawn-fcgi-example.conf")
    flow = run_flow(w)
    db = w.p("var/lib/slack-oauth/slack-oauth.db")
    check_stored(w, db)
    run_events(w, db)
    w.stop()
    scan_logs(w, secrets_of(w, flow), [
        ("var/log/nginx/slack-oauth.access.log", "GET /slack/oauth_redirect HTTP"),
        ("var/log/nginx/slack-oauth.access.log", "POST /slack/events HTTP"),
        ("var/log/journal-slack-oauth-redirect.log",
         "slack-oauth-redirect: outcome=ok status=200"),
        ("var/log/journal-slack-install.log", "slack-install: outcome=ok status=200"),
    ] + event_log("var/log/journal-slack-events.log"), [w.p("var/log")])


DEPLOYMENTS = [
    ("apache + mod_fcgid (apache-example.conf)", "apache-fcgid", apache_fcgid),
    ("apache + CGI, .htaccess (htaccess-example)", "apache-cgi",
     apache_cgi_htaccess),
    ("nginx + fcgiwrap (nginx-example.conf)", "nginx-fcgiwrap", nginx_fcgiwrap),
    ("nginx + spawn-fcgi (nginx-spawn-fcgi-example.conf)", "nginx-spawn-fcgi",
     nginx_spawn_fcgi),
    ("nginx + systemd socket units (systemd/)", "systemd", systemd_socket),
]


def make_cert(d):
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", os.path.join(d, "privkey.pem"),
                        "-out", os.path.join(d, "fullchain.pem"), "-days", "2",
                        "-subj", "/CN=localhost"], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("openssl: " + r.stderr)


CERT_DIR = None


def setup_certs():
    """A self-signed certificate for the examples' TLS (CERT_DIR)."""
    global CERT_DIR
    CERT_DIR = tempfile.mkdtemp(prefix="deploy-cert-")
    make_cert(CERT_DIR)
    return CERT_DIR


def missing_tools():
    """Why the deployment tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "must run as root (the servers drop to www-data as in production)"
    missing = [b for b in ("nginx", "apache2", "spawn-fcgi", "openssl", "setpriv",
                           "systemd-socket-activate", "/usr/sbin/fcgiwrap")
               if not shutil.which(b)]
    if missing or not os.path.exists(APACHE_MODS + "/mod_fcgid.so"):
        return "missing %s (make deps)" % " ".join(missing or ["mod_fcgid"])
    return None


def main():
    only = sys.argv[1:]
    run = Runner()
    why = missing_tools()
    if why:
        run.fail("deployments", why)
        return run.finish()
    certs = setup_certs()
    try:
        for title, short, fn in DEPLOYMENTS:
            if only and not any(o in short for o in only):
                continue
            t0 = time.monotonic()
            w = World(short)
            try:
                fn(w)
                left = w.stop()
                check(not left, "processes left running: %r" % left)
                run.ok("%s (%.1fs)" % (title, time.monotonic() - t0))
            except Fail as e:
                run.fail(title, e)
            except Exception as e:  # a crash is a failure of that deployment
                run.fail(title, "%s: %s" % (type(e).__name__, e))
                traceback.print_exc(file=sys.stdout)
            finally:
                w.cleanup()
                if KEEP:
                    print("#   kept " + w.dir)
    finally:
        shutil.rmtree(certs, ignore_errors=True)
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
