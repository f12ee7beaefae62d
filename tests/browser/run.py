#!/usr/bin/env python3
"""Browser test: the install flow in Debian's Chromium.

Starts `make demo`'s script (demo/run.sh: nginx + spawn-fcgi + the fake
Slack) on free loopback ports with its files in a temp dir, installs
playwright-core from package-lock.json when node_modules is missing, runs
flow.mjs (install page -> "Add to Slack" -> approve -> success page; going
back and replaying -> "expired or already used"; cancel -> "Installation
cancelled"), then checks what was stored and what nginx logged, and that
the demo stops on SIGTERM.

Screenshots go to build/browser/; with UPDATE_SCREENSHOTS=1 the ones the
README shows (install, success, expired) are copied to docs/.
Prints "ok - …" / "FAIL - …" lines, then "N passed, N failed".
"""

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
DOCS_SHOTS = ("install.png", "success.png", "expired.png")

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


def main():
    for need in ("/usr/bin/chromium", shutil.which("node") or "node",
                 shutil.which("nginx") or "nginx",
                 shutil.which("spawn-fcgi") or "spawn-fcgi"):
        if not os.path.exists(need):
            fail("browser", "%s is missing (make deps)" % need)
            return
    why = npm_ready()
    if why:
        fail("browser", why)
        return
    os.makedirs(SHOTS, exist_ok=True)
    work = tempfile.mkdtemp(prefix="browser-demo-")
    port, fake_port = free_port(), free_port()
    env = dict(os.environ, DEMO_PORT=str(port), DEMO_FAKE_SLACK_PORT=str(fake_port),
               DEMO_DIR=work)
    for k in ("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET", "SLACK_SCOPES"):
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
    try:
        if not ready.wait(60) or demo.poll() is not None:
            fail("demo starts", "no install URL printed: " + "".join(out)[-500:])
            return
        url = [ln for ln in out if ln.startswith("install URL: ")][0].split(": ", 1)[1].strip()
        base = "http://localhost:%d" % port
        if url != base + "/slack/install":
            fail("demo prints the install URL", url)
        else:
            ok("demo starts and prints the install URL")

        t0 = time.monotonic()
        flow = subprocess.run(["node", os.path.join(HERE, "flow.mjs")], cwd=HERE,
                              env=dict(os.environ, BASE_URL=base, SHOT_DIR=SHOTS),
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
    finally:
        stopped = stop_demo(demo, port, fake_port)
    if stopped:
        fail("demo stops on SIGTERM", stopped)
    else:
        ok("demo stops on SIGTERM: nginx, spawn-fcgi, fake Slack all gone")
    check_results(work)
    collect(work)
    shutil.rmtree(work, ignore_errors=True)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        os.makedirs(os.path.join(ROOT, "docs"), exist_ok=True)
        for f in DOCS_SHOTS:
            shutil.copy(os.path.join(SHOTS, f), os.path.join(ROOT, "docs", f))
        print("# screenshots copied to docs/")


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
