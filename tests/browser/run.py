#!/usr/bin/env python3
"""Browser test: the install flow in Debian's Chromium.

Starts `make demo`'s script (demo/run.sh: nginx + spawn-fcgi + the fake
Slack) on free loopback ports with its files in a temp dir, installs
playwright-core from package-lock.json when node_modules is missing, runs
flow.mjs (install page -> "Add to Slack" -> approve -> success page; going
back and replaying -> "expired or already used"; cancel -> "Installation
cancelled"), then checks what was stored and what nginx logged, and that
the demo stops on SIGTERM. Then the same with DEMO_HTTPS=1: the demo on
https://localhost with the certificate it makes (its names, its key's
mode, kept and made again), the flow in Chromium accepting that one
certificate.

Screenshots go to build/browser/; with UPDATE_SCREENSHOTS=1 the ones the
README shows (install, success, expired) are copied to docs/.
Prints "ok - …" / "FAIL - …" lines, then "N passed, N failed".
"""

import base64
import hashlib
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
sys.dont_write_bytecode = True
from testlib import add_secret, free_port, record_db_modes, record_tree  # noqa: E402
SHOTS = os.path.join(ROOT, "build", "browser")
DOCS_SHOTS = ("install.png", "success.png", "expired.png", "https-success.png")

passed = failed = 0


def ok(name):
    global passed
    passed += 1
    print("ok - " + name, flush=True)


def fail(name, why):
    global failed
    failed += 1
    print("FAIL - %s: %s" % (name, why), flush=True)


def listening(port):
    s = socket.socket()
    s.settimeout(0.5)
    try:
        return s.connect_ex(("127.0.0.1", port)) == 0
    finally:
        s.close()


def npm_ready():
    if os.path.isdir(os.path.join(HERE, "node_modules", "playwright-core")):
        return None
    r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=300)
    if r.returncode != 0:
        return "npm ci: " + (r.stderr or r.stdout).strip()[-400:]
    return None


def start_demo(work, extra):
    """demo/run.sh with its files in work; returns (process, its output so
    far, the install URL it printed), or (process, output, None)."""
    env = dict(os.environ, DEMO_DIR=work, **extra)
    for k in ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "SLACK_SCOPES",
              "SLACK_REDIRECT_URI", "DEMO_HTTPS", "SLACK_APP_NAME"):
        if k not in extra:
            env.pop(k, None)
    demo = subprocess.Popen(["sh", os.path.join(ROOT, "demo", "run.sh")],
                            cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    out = []
    ready = threading.Event()

    def reader():
        for line in demo.stdout:
            out.append(line)
            if line.startswith("install URL: "):
                ready.set()
        ready.set()

    threading.Thread(target=reader, daemon=True).start()
    if not ready.wait(60) or demo.poll() is not None:
        return demo, out, None
    url = [ln for ln in out if ln.startswith("install URL: ")][0]
    return demo, out, url.split(": ", 1)[1].strip()


def run_flow(base, extra):
    """flow.mjs against base; its ok/FAIL lines become ours."""
    t0 = time.monotonic()
    flow = subprocess.run(["node", os.path.join(HERE, "flow.mjs")], cwd=HERE,
                          env=dict(os.environ, BASE_URL=base, SHOT_DIR=SHOTS,
                                   **extra),
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=150)
    counted = 0
    for line in flow.stdout.splitlines():
        if line.startswith("ok - "):
            ok(line[5:])
            counted += 1
        elif line.startswith("FAIL - "):
            name, _, why = line[7:].partition(": ")
            fail(name, why)
            counted += 1
        else:
            print(line)
    if flow.returncode != 0 and (counted == 0 or "FAIL" not in flow.stdout):
        fail("browser", "flow.mjs exit %d: %s" % (flow.returncode,
                                                 flow.stderr.strip()[-600:]))
    print("# chromium flows took %.1fs" % (time.monotonic() - t0))


def main():
    for need in ("/usr/bin/chromium", shutil.which("node") or "node",
                 shutil.which("nginx") or "nginx",
                 shutil.which("spawn-fcgi") or "spawn-fcgi",
                 shutil.which("openssl") or "openssl"):
        if not os.path.exists(need):
            fail("browser", "%s is missing (make deps)" % need)
            return
    why = npm_ready()
    if why:
        fail("browser", why)
        return
    os.makedirs(SHOTS, exist_ok=True)

    # http://localhost: the default demo, the whole set of flows
    work = tempfile.mkdtemp(prefix="browser-demo-")
    port, fake_port = free_port(), free_port()
    demo, out, url = start_demo(work, {"DEMO_PORT": str(port),
                                       "DEMO_FAKE_SLACK_PORT": str(fake_port)})
    try:
        base = "http://localhost:%d" % port
        if url is None:
            fail("demo starts", "no install URL printed: " + "".join(out)[-500:])
            return
        if url != base + "/slack/install":
            fail("demo prints the install URL", url)
        else:
            ok("demo starts and prints the install URL")
        run_flow(base, {})
        name = "after the install the demo says how to list it and run a bot"
        want = ("bin/slack-oauth list",
                "SLACK_BOT_TOKEN=$(SLACK_OAUTH_CONFIG=")
        for _ in range(50):
            text = "".join(out)
            if all(w in text for w in want) and "token T0TEAM001)" in text:
                ok(name)
                break
            time.sleep(0.1)
        else:
            fail(name, "".join(out)[-600:])
    finally:
        stopped = stop_demo(demo, port, fake_port)
    if stopped:
        fail("demo stops on SIGTERM", stopped)
    else:
        ok("demo stops on SIGTERM: nginx, spawn-fcgi, fake Slack all gone")
    check_results(work)
    collect(work)
    shutil.rmtree(work, ignore_errors=True)

    https_demo()
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        os.makedirs(os.path.join(ROOT, "docs"), exist_ok=True)
        for f in DOCS_SHOTS:
            shutil.copy(os.path.join(SHOTS, f), os.path.join(ROOT, "docs", f))
        print("# screenshots copied to docs/")


def openssl(*args, data=None):
    r = subprocess.run(["openssl"] + list(args), input=data,
                       capture_output=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (args[0], r.stderr[-300:]))
    return r.stdout


def spki_of(cert):
    """base64 SHA-256 of the certificate's SubjectPublicKeyInfo, as
    Chromium's --ignore-certificate-errors-spki-list wants it."""
    pub = openssl("x509", "-in", cert, "-noout", "-pubkey")
    der = openssl("pkey", "-pubin", "-outform", "der", data=pub)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def check_cert(work, name):
    """The demo's certificate: for localhost, 127.0.0.1 and ::1, valid for
    a year from about now; its key 0600."""
    cert = os.path.join(work, "localhost.crt")
    key = os.path.join(work, "localhost.key")
    why = []
    text = openssl("x509", "-in", cert, "-noout", "-ext", "subjectAltName",
                   "-enddate").decode()
    for want in ("DNS:localhost", "IP Address:127.0.0.1",
                 "IP Address:0:0:0:0:0:0:0:1"):
        if want not in text:
            why.append("no %s in the certificate's names" % want)
    end = re.search(r"notAfter=(.*)", text).group(1).strip()
    left = time.mktime(time.strptime(end, "%b %d %H:%M:%S %Y GMT")) - \
        time.mktime(time.gmtime())
    if not 364 * 86400 < left <= 366 * 86400:
        why.append("valid for %.1f days, not a year" % (left / 86400))
    mode = os.stat(key).st_mode & 0o777
    if mode != 0o600:
        why.append("the key is mode %o, not 0600" % mode)
    if why:
        fail(name, "; ".join(why))
    else:
        ok(name)
    return cert


def https_demo():
    """DEMO_HTTPS=1: the demo on https://localhost with the certificate it
    makes, the fake Slack, SLACK_APP_NAME; the flow in Chromium, which
    accepts that one certificate; the certificate kept on a second start,
    made again when it is about to expire."""
    work = tempfile.mkdtemp(prefix="browser-https-")
    port, fake_port = free_port(), free_port()
    extra = {"DEMO_HTTPS": "1", "DEMO_HTTPS_PORT": str(port),
             "DEMO_FAKE_SLACK_PORT": str(fake_port),
             "SLACK_APP_NAME": "Acme Demo"}
    base = "https://localhost:%d" % port
    demo, out, url = start_demo(work, extra)
    try:
        if url != base + "/slack/install":
            fail("https demo starts and prints its https install URL",
                 "%r: %s" % (url, "".join(out)[-500:]))
            return
        ok("https demo starts and prints its https install URL")
        if not any("made a certificate for localhost, 127.0.0.1 and ::1"
                   in ln for ln in out):
            fail("https demo says it made a certificate", "".join(out)[-400:])
        cert = check_cert(work, "https demo certificate: localhost, "
                          "127.0.0.1, ::1, a year; key 0600")
        first = spki_of(cert)
        run_flow(base, {"HTTPS_SPKI": first, "APP_NAME": "Acme Demo",
                        "ONLY_SUCCESS": "1"})
    finally:
        stopped = stop_demo(demo, port, fake_port)
    if stopped:
        fail("https demo stops on SIGTERM", stopped)

    # Started again: the same certificate.
    demo, out, url = start_demo(work, extra)
    stop_demo(demo, port, fake_port)
    same = spki_of(os.path.join(work, "localhost.crt")) == first
    if url and same and not any("made a certificate" in ln for ln in out):
        ok("https demo started again keeps its certificate")
    else:
        fail("https demo started again keeps its certificate",
             "url %r, same key %s" % (url, same))

    # A certificate about to expire is made again.
    crt, key = (os.path.join(work, f) for f in ("localhost.crt",
                                                "localhost.key"))
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-keyout", key, "-out", crt)
    os.chmod(key, 0o600)
    old = spki_of(crt)
    demo, out, url = start_demo(work, extra)
    stop_demo(demo, port, fake_port)
    if url and spki_of(crt) != old:
        check_cert(work, "https demo makes a new certificate when the old "
                   "one expires")
    else:
        fail("https demo makes a new certificate when the old one expires",
             "url %r, key unchanged" % url)
    collect(work)
    shutil.rmtree(work, ignore_errors=True)


def stop_demo(demo, port, fake_port):
    if demo.poll() is not None:
        return "the demo had already exited (%d)" % demo.returncode
    demo.send_signal(signal.SIGTERM)
    try:
        demo.wait(timeout=15)
    except subprocess.TimeoutExpired:
        demo.kill()
        demo.wait()
        return "the demo did not exit within 15 s of SIGTERM"
    for _ in range(20):
        if not listening(port) and not listening(fake_port):
            return None
        time.sleep(0.1)
    return "something still listens on port %d or %d" % (port, fake_port)


def collect(work):
    """For tests/secrets_scan.py: the demo's secrets (client secret from its
    config file, every token and webhook URL stored), its logs (the
    programs', nginx's access and error logs) and its database modes.
    flow.mjs adds the codes and states the browser carried."""
    try:
        with open(os.path.join(work, "slack-oauth.conf")) as f:
            for line in f:
                k, _, v = line.partition("=")
                if k.strip() == "SLACK_CLIENT_SECRET":
                    add_secret(v.strip(), "client secret")
        con = sqlite3.connect("file:%s?mode=ro" % os.path.join(
            work, "slack-oauth.db"), uri=True)
        for row in con.execute(
                "SELECT bot_token, user_token, bot_refresh_token, "
                "user_refresh_token, incoming_webhook_url FROM "
                "slack_installations"):
            for v in row:
                add_secret(v)
        con.close()
    except (OSError, sqlite3.Error) as e:
        print("# collecting the demo's secrets: %s" % e)
    record_tree(work, "browser demo")
    record_db_modes(work, "browser demo")


def check_results(work):
    db = os.path.join(work, "slack-oauth.db")
    name = "one installation stored, for the workspace approved"
    try:
        con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
        rows = con.execute("SELECT team_id, team_name, bot_id FROM "
                           "slack_installations").fetchall()
        con.close()
        if rows == [("T0TEAM001", "Example Team", "B0BOT0001")]:
            ok(name)
        else:
            fail(name, "rows: %r" % (rows,))
    except sqlite3.Error as e:
        fail(name, "%s: %s" % (db, e))

    try:
        with open(os.path.join(work, "access.log")) as f:
            log = f.read()
    except OSError as e:
        fail("nginx access log", str(e))
        return
    lines = log.splitlines()
    redirects = [ln for ln in lines if "/slack/oauth_redirect" in ln]
    name = "nginx access log: no /favicon.ico request"
    if not redirects:
        fail(name, "the log has no /slack/oauth_redirect line: is it written?")
    elif any("favicon" in ln for ln in lines):
        fail(name, [ln for ln in lines if "favicon" in ln][0])
    else:
        ok(name)
    name = "nginx access log: paths without code or state"
    bad = [ln for ln in lines if re.search(r"[?&](code|state|error)=", ln)]
    if bad:
        fail(name, bad[0])
    else:
        ok(name)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a crash counts as a failure
        fail("browser", "%s: %s" % (type(e).__name__, e))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
