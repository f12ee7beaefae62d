#!/usr/bin/env python3
"""End-to-end tests of cgi-bin/slack-events, the Events API endpoint.

Requests are made the way Slack makes them (tests/fake_slack.py's
event_envelope and sign_event: JSON POSTed with the v0 signature), to the
real binary as CGI and as FastCGI, after real flows through slack-install
and slack-oauth-redirect stored the installations. The tables are then read
with the Python Slack SDK's own queries.

    python3 tests/events.py [-k NAME] [--mode cgi|fcgi]
    CGI_BIN=build/asan/cgi-bin BIN_DIR=build/asan/bin python3 tests/events.py

The plumbing (Ctx, the modes, the final secret and log checks) is
tests/e2e.py's. The last line printed is "N passed, N failed".
"""

import json
import os
import secrets
import sqlite3
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import e2e  # noqa: E402
from e2e import CLIENT_ID, Resp, check, eq, flow, sdk_find  # noqa: E402
from fake_slack import (BOT_USER_ID, ENTERPRISE_ID, HUMAN_USER_ID,  # noqa: E402
                        TEAM_ID, event_envelope, sign_event)
from testlib import TestFailure, add_secret  # noqa: E402

e2e.PROGS["events"] = os.path.join(e2e.CGI_BIN, "slack-events")
e2e.PROG_NAMES["events"] = "slack-events"
e2e.SCRIPT_NAMES["events"] = "/slack/events"
ADMIN = os.path.join(e2e.ROOT, os.environ.get("BIN_DIR") or "bin",
                     "slack-oauth")

SIGNING_SECRET = secrets.token_hex(16)   # as Slack's: 32 hex digits
add_secret(SIGNING_SECRET, "signing secret")
TEAM2 = "T0TEAM002"
USER2 = "U0HUMAN02"

e2e.TESTS[:] = []
test = e2e.test


def setup(ctx, shape="bot"):
    ctx.set(SLACK_SIGNING_SECRET=SIGNING_SECRET)
    ctx.fs.shape = shape
    if shape in ("user", "user_only", "rotation"):
        ctx.set(SLACK_USER_SCOPES="search:read")


def post(ctx, body, headers=None, sign=True, timestamp=None, secret=None,
         ctype="application/json", method="POST", extra=None):
    """One request to slack-events; body is bytes, or an object sent as
    JSON. Signed as Slack signs unless headers replace that."""
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    h = {}
    if sign:
        h = sign_event(secret or SIGNING_SECRET, body, timestamp)
    h.update(headers or {})
    sig = h.get("X-Slack-Signature")
    if sig and len(sig) >= 8:
        add_secret(sig, "request signature")
    rv = {"CONTENT_TYPE": ctype} if ctype is not None else {}
    for k, v in h.items():
        if v is not None:
            rv["HTTP_" + k.upper().replace("-", "_")] = v
    if body == b"":
        rv["CONTENT_LENGTH"] = "0"
    rv.update(extra or {})
    r = ctx.request("events", method, "", body=body, extra=rv)
    for k, v in r.headers:
        check(k.lower() != "set-cookie", "slack-events set a cookie")
    return r


def rows(ctx):
    """(installation rows, bot rows) of our client id."""
    return ([x for x in ctx.table_rows("slack_installations")
             if x["client_id"] == CLIENT_ID],
            [x for x in ctx.table_rows("slack_bots")
             if x["client_id"] == CLIENT_ID])


def snapshot(ctx):
    return (ctx.table_rows("slack_installations"),
            ctx.table_rows("slack_bots"))


def security_headers(r, what):
    for k, v in (("Cache-Control", "no-store"),
                 ("Referrer-Policy", "no-referrer"),
                 ("X-Content-Type-Options", "nosniff"),
                 ("Content-Security-Policy", e2e.CSP)):
        eq(r.header(k), v, "%s: %s" % (what, k))


def ok_empty(r, what, outcome=None):
    e2e.eq_status(r, 200, what)
    eq(r.body, b"", what + ": body")
    security_headers(r, what)
    if outcome:
        check("outcome=%s " % outcome in r.log,
              "%s: log line lacks outcome=%s: %s" % (what, outcome,
                                                     r.log.strip()[-300:]))


def refused(r, status, outcome, what):
    e2e.eq_status(r, status, what)
    check("outcome=%s " % outcome in r.log,
          "%s: log line lacks outcome=%s: %s" % (what, outcome,
                                                r.log.strip()[-300:]))
    e2e.check_common(r, what)


def install(ctx, team=None, user=None, what="install"):
    if team:
        ctx.fs.team_id = team
    if user:
        ctx.fs.user_id = user
    flow(ctx, what=what)
    ctx.fs.team_id, ctx.fs.user_id = TEAM_ID, HUMAN_USER_ID


def uninstalled(**kw):
    return event_envelope({"type": "app_uninstalled"}, **kw)


def revoked(oauth=None, bot=None, **kw):
    tokens = {}
    if oauth is not None:
        tokens["oauth"] = oauth
    if bot is not None:
        tokens["bot"] = bot
    return event_envelope({"type": "tokens_revoked", "tokens": tokens}, **kw)


def sdk_finds_nothing(ctx, ent, team, what):
    for table in ("slack_installations", "slack_bots"):
        eq(sdk_find(ctx, table, ent, team), None,
           "%s: the SDK's find query on %s" % (what, table))


def backdate(ctx, seconds):
    """Moves every stored row's installed_at back by seconds."""
    con = ctx.db_connect()
    try:
        for t in ("slack_installations", "slack_bots"):
            con.execute("update %s set installed_at = strftime("
                        "'%%Y-%%m-%%d %%H:%%M:%%f', installed_at, '-%d "
                        "seconds')" % (t, seconds))
        con.commit()
    finally:
        con.close()


def admin(ctx, *args):
    env = {"PATH": "/usr/bin:/bin", "SLACK_OAUTH_CONFIG": ctx.conf}
    for k in ("SLACK_OAUTH_DB", "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET",
              "SLACK_SCOPES", "SLACK_API_URL", "SLACK_SIGNING_SECRET"):
        if k in ctx.settings:
            env[k] = ctx.settings[k]
    for k in e2e.PASSTHROUGH_ENV:
        if k in os.environ:
            env[k] = os.environ[k]
    p = subprocess.run([ADMIN] + list(args), env=env, capture_output=True,
                       timeout=60)
    if args[0] != "token":      # whose output is a token
        e2e.collect("slack-oauth", "stdout", p.stdout)
    e2e.collect("slack-oauth", "log", p.stderr)
    return p


# ------------------------------------------------------------ verification
@test()
def url_verification(ctx):
    setup(ctx)
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    r = post(ctx, {"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": challenge,
                   "type": "url_verification"})
    e2e.eq_status(r, 200, "url_verification")
    eq(r.body, challenge.encode(), "url_verification: the body")
    check((r.header("Content-Type") or "").startswith("text/plain"),
          "url_verification: Content-Type %r" % r.header("Content-Type"))
    security_headers(r, "url_verification")
    check("outcome=url_verification " in r.log, "log: %s" % r.log.strip())


@test()
def url_verification_bad_challenge(ctx):
    setup(ctx)
    for what, ch in (("missing", None), ("empty", ""), ("a number", 12),
                     ("129 bytes", "a" * 129), ("a control byte", "ab\x01c"),
                     ("non-ASCII", "caf\u00e9"), ("CR LF", "a\r\nX-A: b")):
        body = {"type": "url_verification"}
        if ch is not None:
            body["challenge"] = ch
        r = post(ctx, body)
        refused(r, 400, "bad_request", "challenge " + what)
        check(b"X-A" not in r.body, "challenge %s echoed" % what)
    r = post(ctx, {"type": "url_verification", "challenge": "a" * 128})
    eq(r.body, b"a" * 128, "a 128-byte challenge")


@test()
def signature_failures(ctx):
    """Every way the signature fails is 401 and changes nothing."""
    setup(ctx)
    install(ctx)
    before = snapshot(ctx)
    body = json.dumps(uninstalled()).encode()
    good = sign_event(SIGNING_SECRET, body)
    now = int(time.time())
    other = sign_event(SIGNING_SECRET, body + b" ")
    wrong = sign_event("0" * 32, body)
    sig = good["X-Slack-Signature"]
    cases = [
        ("no headers", {"X-Slack-Request-Timestamp": None,
                        "X-Slack-Signature": None}, "stale_timestamp"),
        ("no signature", {"X-Slack-Signature": None}, "bad_signature"),
        ("no timestamp", {"X-Slack-Request-Timestamp": None},
         "stale_timestamp"),
        ("another secret", {"X-Slack-Signature": wrong["X-Slack-Signature"]},
         "bad_signature"),
        ("another body's", {"X-Slack-Signature": other["X-Slack-Signature"]},
         "bad_signature"),
        ("uppercase hex", {"X-Slack-Signature": "v0=" + sig[3:].upper()},
         "bad_signature"),
        ("v1=", {"X-Slack-Signature": "v1=" + sig[3:]}, "bad_signature"),
        ("truncated", {"X-Slack-Signature": sig[:-1]}, "bad_signature"),
        ("one more digit", {"X-Slack-Signature": sig + "0"}, "bad_signature"),
        ("empty", {"X-Slack-Signature": ""}, "bad_signature"),
        ("hex alone", {"X-Slack-Signature": sig[3:]}, "bad_signature"),
        ("repeated", {"X-Slack-Signature": sig + "," + sig}, "bad_signature"),
        ("timestamp changed", {"X-Slack-Request-Timestamp": str(now - 1)},
         "bad_signature"),
    ]
    for what, h, outcome in cases:
        hh = dict(good)
        hh.update(h)
        r = post(ctx, body, headers=hh, sign=False)
        refused(r, 401, outcome, what)
    # each timestamp relative to the moment it is sent
    for what, ts in (("301 s old", lambda t: t - 301),
                     ("301 s ahead", lambda t: t + 301),
                     ("10^30", lambda t: 10 ** 30), ("negative", lambda t: -5),
                     ("zero", lambda t: 0), ("not a number", lambda t: "12ab"),
                     ("with a space", lambda t: " %d" % t),
                     ("decimal", lambda t: "%d.5" % t),
                     ("empty", lambda t: "")):
        r = post(ctx, body, timestamp=ts(int(time.time())))
        refused(r, 401, "stale_timestamp", "timestamp " + what)
    eq(snapshot(ctx), before, "the tables after refused requests")
    for what, d in (("299 s old", -299), ("299 s ahead", 299)):
        r = post(ctx, {"type": "event_callback",
                       "event": {"type": "message"}},
                 timestamp=int(time.time()) + d)
        ok_empty(r, "timestamp " + what, "message")


@test()
def signature_checked_before_anything(ctx):
    """An unsigned body is never parsed: malformed JSON, a non-JSON type or
    a url_verification without a signature are all 401."""
    setup(ctx)
    for body, ctype in ((b"{{{", "application/json"),
                        (b"x=1", "application/x-www-form-urlencoded"),
                        (b'{"type":"url_verification","challenge":"abc"}',
                         "application/json")):
        r = post(ctx, body, sign=False, ctype=ctype)
        refused(r, 401, "stale_timestamp", "unsigned %r" % body[:10])
        check(b"abc" not in r.body, "unsigned challenge answered")


@test()
def not_configured(ctx):
    setup(ctx)
    ctx.set(SLACK_SIGNING_SECRET=None)
    r = post(ctx, uninstalled())
    refused(r, 500, "server_error", "no signing secret")
    check("not configured" in r.text.lower() or "not set up" in r.text,
          "500 page does not say it is not configured")
    check("SLACK_SIGNING_SECRET" in r.log, "log does not name the key")
    bad = "sp ace" + secrets.token_hex(8)
    add_secret(bad, "signing secret")
    ctx.set(SLACK_SIGNING_SECRET=bad)
    r = post(ctx, uninstalled(), secret=bad)
    refused(r, 500, "server_error", "invalid signing secret")
    check("SLACK_SIGNING_SECRET" in r.log, "log does not name the key")


@test(modes=("cgi",))
def signing_secret_file_rules(ctx):
    """The signing secret in a config file readable by others is refused,
    as the client secret is; 0640 serves."""
    setup(ctx)
    ctx.set(SLACK_SIGNING_SECRET=None)
    ctx.write_conf("SLACK_SIGNING_SECRET = %s\n" % SIGNING_SECRET, 0o644)
    r = post(ctx, {"type": "url_verification", "challenge": "c1"})
    refused(r, 500, "server_error", "signing secret in a 0644 file")
    check("readable by others" in r.log and "SLACK_SIGNING_SECRET" in r.log,
          "log does not say why: %s" % r.log.strip()[-200:])
    ctx.write_conf("SLACK_SIGNING_SECRET = %s\n" % SIGNING_SECRET, 0o640)
    r = post(ctx, {"type": "url_verification", "challenge": "c1"})
    eq(r.body, b"c1", "challenge with the secret from a 0640 file")


@test()
def methods(ctx):
    setup(ctx)
    for m in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS"):
        r = post(ctx, b"", sign=False, method=m)
        e2e.eq_status(r, 405, m)
        eq(r.header("Allow"), "POST", m + ": Allow")


@test()
def body_lengths(ctx):
    setup(ctx)
    install(ctx)
    before = snapshot(ctx)
    body = json.dumps(uninstalled()).encode()
    r = post(ctx, body, extra={"CONTENT_LENGTH": ""})
    refused(r, 411, "bad_request", "no Content-Length")
    r = post(ctx, body, extra={"CONTENT_LENGTH": str(1024 * 1024 + 1)})
    refused(r, 413, "bad_request", "Content-Length over 1 MiB")
    r = post(ctx, body, extra={"CONTENT_LENGTH": str(len(body) + 10)})
    refused(r, 400, "bad_request", "a body shorter than announced")
    r = post(ctx, body, extra={"CONTENT_LENGTH": "12x"})
    refused(r, 400, "bad_request", "a Content-Length that is not a number")
    eq(snapshot(ctx), before, "the tables after refused bodies")
    # exactly 1 MiB, signed: read whole, verified, then parsed
    pad = {"type": "event_callback", "event": {"type": "message"},
           "x": ""}
    pad["x"] = "a" * (1024 * 1024 - len(json.dumps(pad)))
    big = json.dumps(pad).encode()
    eq(len(big), 1024 * 1024, "the padded body's length")
    ok_empty(post(ctx, big), "a 1 MiB event", "message")


@test()
def not_json(ctx):
    setup(ctx)
    for what, body, ctype in (
            ("form-encoded", b"payload=%7B%7D",
             "application/x-www-form-urlencoded"),
            ("no Content-Type", json.dumps(uninstalled()).encode(), None),
            ("text/plain", json.dumps(uninstalled()).encode(), "text/plain"),
            ("malformed", b'{"type": "event_callback",', "application/json"),
            ("an array", b"[]", "application/json"),
            ("a string", b'"x"', "application/json"),
            ("trailing bytes", b'{"type":"x"} x', "application/json"),
            ("a NUL", b'{"type":"x"}\x00', "application/json"),
            ("empty", b"", "application/json"),
            ("deep", b"[" * 100000, "application/json")):
        r = post(ctx, body, ctype=ctype)
        refused(r, 400, "bad_request", what)
    r = post(ctx, {"type": "event_callback", "event": {"type": "message"}},
             ctype="Application/JSON; charset=utf-8")
    ok_empty(r, "application/json with a charset", "message")
    # a backslash and "u0000" as text is no NUL
    r = post(ctx, {"type": "event_callback",
                   "event": {"type": "message", "text": "\\u0000"}})
    ok_empty(r, "a message whose text is \\u0000", "message")


# --------------------------------------------------------------- deletions
def _uninstall_test(shape, via_authorizations, name):
    def fn(ctx):
        setup(ctx, shape)
        install(ctx)
        org = shape == "org"
        ent = ENTERPRISE_ID if shape in ("org", "grid_workspace") else None
        team = "" if org else TEAM_ID
        inst, bots = rows(ctx)
        check(len(inst) == 1 and len(bots) == (0 if shape == "user_only"
                                                 else 1),
              "stored: %d installations, %d bots" % (len(inst), len(bots)))
        # another workspace and another app's rows stay
        install(ctx, team=TEAM2) if not org else None
        ctx.fs.shape = shape
        other = sqlite3.connect(ctx.db)
        other.execute("insert into slack_installations (client_id, app_id, "
                      "enterprise_id, team_id, user_id, bot_token) values "
                      "('other.app', 'A2', ?, ?, 'U1', null)",
                      [ent or "", team])
        other.commit()
        other.close()
        r = post(ctx, uninstalled(team_id=TEAM_ID, enterprise_id=ent,
                                  is_org=org,
                                  authorizations=via_authorizations))
        ok_empty(r, "app_uninstalled", "app_uninstalled")
        check(("enterprise=%s" % ENTERPRISE_ID if org else
               "team=%s" % TEAM_ID) in r.log, "log lacks the installation: %s"
              % r.log.strip())
        n = 1 + (0 if shape == "user_only" else 1)
        check('detail="deleted %d row%s"' % (n, "s"[:n - 1]) in r.log,
              "log does not count %d rows: %s" % (n, r.log.strip()))
        sdk_finds_nothing(ctx, ent, team, "after app_uninstalled")
        inst, bots = rows(ctx)
        eq(sorted(x["team_id"] for x in inst), [] if org else [TEAM2],
           "installations left")
        eq(len(ctx.table_rows("slack_installations")) - len(inst), 1,
           "another app's row")
        # a retry finds nothing more to do
        r = post(ctx, uninstalled(team_id=TEAM_ID, enterprise_id=ent,
                                  is_org=org,
                                  authorizations=via_authorizations),
                 headers={"X-Slack-Retry-Num": "1",
                          "X-Slack-Retry-Reason": "http_timeout"})
        ok_empty(r, "app_uninstalled retried", "app_uninstalled")
        check('detail="deleted 0 rows"' in r.log, "retry: %s" % r.log.strip())
        p = admin(ctx, "token", ENTERPRISE_ID if org else TEAM_ID)
        eq((p.returncode, p.stdout), (1, b""),
           "slack-oauth token after the uninstall")
    fn.__name__ = name
    return fn


for _shape, _auth in (("bot", True), ("bot", False), ("user", True),
                      ("user_only", True), ("webhook", True),
                      ("grid_workspace", True), ("grid_workspace", False),
                      ("org", True), ("org", False), ("rotation", True)):
    test()(_uninstall_test(_shape, _auth, "app_uninstalled_%s%s" % (
        _shape, "" if _auth else "_envelope")))


@test()
def tokens_revoked_user(ctx):
    """oauth lists users: their rows go, the others' and the bots stay."""
    setup(ctx, "user")
    install(ctx)
    install(ctx, user=USER2)
    install(ctx, user="U0HUMAN03")
    inst, bots = rows(ctx)
    eq((len(inst), len(bots)), (3, 3), "rows stored")
    r = post(ctx, revoked(oauth=[HUMAN_USER_ID, "U0HUMAN03", "U0NEVER01"]))
    ok_empty(r, "tokens_revoked", "tokens_revoked")
    check('detail="deleted 2 rows"' in r.log, "log: %s" % r.log.strip())
    inst, bots = rows(ctx)
    eq([x["user_id"] for x in inst], [USER2], "installations left")
    eq(len(bots), 3, "bot rows")
    p = admin(ctx, "token", "--user", HUMAN_USER_ID, TEAM_ID)
    eq((p.returncode, p.stdout), (1, b""), "token --user of a revoked user")
    p = admin(ctx, "token", "--user", USER2, TEAM_ID)
    eq(p.returncode, 0, "token --user of the other user")
    p = admin(ctx, "token", TEAM_ID)
    eq(p.returncode, 0, "the bot token")


@test()
def tokens_revoked_bot(ctx):
    """bot not empty: no bot token of the installation stays; user tokens
    and the rows' other columns do."""
    setup(ctx, "user")
    install(ctx)
    bot_tokens = [x["bot_token"] for x in rows(ctx)[0]]
    install(ctx, team=TEAM2)
    r = post(ctx, revoked(bot=[BOT_USER_ID]))
    ok_empty(r, "tokens_revoked bot", "tokens_revoked")
    inst, bots = rows(ctx)
    eq([b["team_id"] for b in bots], [TEAM2], "bot rows left")
    mine = [x for x in inst if x["team_id"] == TEAM_ID]
    eq(len(mine), 1, "installation rows of the workspace")
    for col in ("bot_token", "bot_id", "bot_user_id", "bot_scopes",
                "bot_refresh_token", "bot_token_expires_at"):
        eq(mine[0][col], None, col + " after tokens_revoked bot")
    eq(mine[0]["oauth_response"], None, "Slack's saved answer (it holds the "
       "bot token)")
    check(mine[0]["user_token"], "the user token went too")
    con = ctx.db_connect()
    try:
        dump = "\n".join(con.iterdump())
    finally:
        con.close()
    for tok in bot_tokens:
        check(tok not in dump, "a revoked bot token is still in the database")
    eq(mine[0]["team_name"], ctx.fs.team_name, "team_name kept")
    eq(sdk_find(ctx, "slack_bots", None, TEAM_ID), None, "SDK find_bot")
    found = sdk_find(ctx, "slack_installations", None, TEAM_ID)
    check(found is not None and found["bot_token"] is None,
          "SDK find_installation: %r" % (found and "bot token kept"))
    p = admin(ctx, "token", TEAM_ID)
    eq((p.returncode, p.stdout), (1, b""), "slack-oauth token (bot)")
    p = admin(ctx, "token", "--user", HUMAN_USER_ID, TEAM_ID)
    eq(p.returncode, 0, "the user token")
    p = admin(ctx, "token", TEAM2)
    eq(p.returncode, 0, "another workspace's bot token")


@test()
def tokens_revoked_org(ctx):
    setup(ctx, "org")
    ctx.set(SLACK_USER_SCOPES="search:read")
    install(ctx)
    r = post(ctx, revoked(oauth=[HUMAN_USER_ID], bot=[BOT_USER_ID],
                          team_id="T0WORKSP1", enterprise_id=ENTERPRISE_ID,
                          is_org=True))
    ok_empty(r, "tokens_revoked org-wide", "tokens_revoked")
    check("enterprise=%s" % ENTERPRISE_ID in r.log, "log: %s" % r.log)
    sdk_finds_nothing(ctx, ENTERPRISE_ID, "", "after tokens_revoked org-wide")


@test()
def tokens_revoked_empty(ctx):
    setup(ctx, "user")
    install(ctx)
    before = snapshot(ctx)
    for ev in (revoked(), revoked(oauth=[], bot=[]), revoked(oauth=None)):
        ok_empty(post(ctx, ev), "tokens_revoked with no ids", "tokens_revoked")
    eq(snapshot(ctx), before, "the tables")


@test()
def late_event_keeps_reinstall(ctx):
    """Rows installed after event_time are a reinstall that overtook a late
    or retried event: kept, with their tokens."""
    setup(ctx, "user")
    install(ctx)
    backdate(ctx, 600)
    install(ctx)                                   # the reinstall, now
    t = int(time.time()) - 300                    # the uninstall, between
    r = post(ctx, uninstalled(event_time=t),
             headers={"X-Slack-Retry-Num": "3",
                      "X-Slack-Retry-Reason": "http_error"})
    ok_empty(r, "a late app_uninstalled", "app_uninstalled")
    inst, bots = rows(ctx)
    eq((len(inst), len(bots)), (1, 1), "rows left (the reinstall)")
    check(inst[0]["installed_at"] > time.strftime(
        "%Y-%m-%d %H:%M:%S", time.gmtime(t)), "the older row was kept")
    r = post(ctx, revoked(oauth=[HUMAN_USER_ID], bot=[BOT_USER_ID],
                          event_time=t))
    ok_empty(r, "a late tokens_revoked", "tokens_revoked")
    eq(rows(ctx), (inst, bots), "the reinstall after a late tokens_revoked")
    p = admin(ctx, "token", TEAM_ID)
    eq(p.returncode, 0, "the reinstall's bot token")
    # the same second as the event counts as before it
    r = post(ctx, uninstalled(event_time=int(time.time())))
    ok_empty(r, "app_uninstalled now", "app_uninstalled")
    eq(rows(ctx), ([], []), "rows after an app_uninstalled now")


@test()
def unrelated_events(ctx):
    setup(ctx)
    install(ctx)
    before = snapshot(ctx)
    for body in (event_envelope({"type": "message", "text": "hi",
                                 "user": HUMAN_USER_ID}),
                 event_envelope({"type": "app_mention",
                                 "text": "app_uninstalled"}),
                 event_envelope({"type": "app_home_opened"}),
                 event_envelope({"type": "grid_migration_started"}),
                 {"type": "app_rate_limited", "team_id": TEAM_ID,
                  "minute_rate_limited": 1518467820,
                  "api_app_id": "A0APP0001"},
                 {"type": "event_callback", "team_id": TEAM_ID},
                 {"type": "something_new", "event": {"type":
                                                     "app_uninstalled"}},
                 {"no": "type"}):
        # The outcome is the event's type, else the envelope's.
        want = (body.get("event") or {}).get("type") \
            if body.get("type") == "event_callback" else body.get("type")
        r = post(ctx, body)
        ok_empty(r, "unrelated %s" % body.get("type"), want or "ignored")
        check('detail="ignored: not app_uninstalled or tokens_revoked"'
              in r.log, "log: %s" % r.log.strip())
    eq(snapshot(ctx), before, "the tables after unrelated events")


@test()
def malformed_installation(ctx):
    """The two events without a usable installation are 400 and change
    nothing (Slack always names one)."""
    setup(ctx)
    install(ctx)
    before = snapshot(ctx)
    cases = [
        ("no team", dict(uninstalled(authorizations=False), team_id=None)),
        ("a lowercase team", uninstalled(team_id="t0team001")),
        ("a team with a quote", uninstalled(team_id="T0' OR 1=1")),
        ("a team of 40", uninstalled(team_id="T" * 40)),
        ("a number", uninstalled(team_id=12)),
        ("org-wide without an enterprise",
         uninstalled(is_org=True, enterprise_id=None)),
        ("a bad enterprise", uninstalled(enterprise_id="E\u00e9")),
        ("event_time a string", uninstalled(event_time="1700000000")),
        ("event_time 1e30", uninstalled(event_time=1e30)),
        ("event_time fractional", uninstalled(event_time=1700000000.5)),
        ("tokens a list", event_envelope({"type": "tokens_revoked",
                                          "tokens": ["U1"]})),
        ("oauth a string", revoked(oauth="U1")),
        ("a bad user id", revoked(oauth=["U1", "u2"])),
        ("a bot id a number", revoked(bot=[1])),
        ("a team with \\u0000", uninstalled(team_id=TEAM_ID + "\x00X")),
        ("a user with \\u0000", revoked(oauth=[HUMAN_USER_ID + "\x00"])),
    ]
    for what, body in cases:
        r = post(ctx, body)
        refused(r, 400, "bad_request", what)
    eq(snapshot(ctx), before, "the tables after malformed events")


@test()
def database_busy_is_503(ctx):
    setup(ctx)
    install(ctx)
    con = sqlite3.connect(ctx.db, timeout=10, isolation_level=None)
    try:
        con.execute("BEGIN EXCLUSIVE")
        r = post(ctx, uninstalled())
    finally:
        con.execute("ROLLBACK")
        con.close()
    refused(r, 503, "server_error", "app_uninstalled, database locked")
    ra = r.header("Retry-After")
    check(ra is not None and ra.isdigit(), "503 without Retry-After")
    check(r.elapsed < 3, "answered after %.1f s: past Slack's 3 s"
          % r.elapsed)
    eq(len(rows(ctx)[0]), 1, "rows while locked")
    ok_empty(post(ctx, uninstalled()), "the retry", "app_uninstalled")
    eq(rows(ctx), ([], []), "rows after the retry")


@test()
def database_failure_is_500(ctx):
    setup(ctx)
    ctx.set(SLACK_OAUTH_DB=os.path.join(ctx.tmp, "missing", "x.db"))
    r = post(ctx, uninstalled())
    refused(r, 500, "server_error", "app_uninstalled, no database directory")
    r = post(ctx, {"type": "url_verification", "challenge": "c"})
    eq(r.body, b"c", "url_verification needs no database")


@test(modes=("fcgi",))
def concurrent_events(ctx):
    """One FastCGI process answers events side by side, each uninstall
    deleting its own workspace."""
    setup(ctx)
    teams = ["T0PAR%04d" % i for i in range(12)]
    for t in teams:
        install(ctx, team=t)
    eq(len(rows(ctx)[0]), len(teams), "installations stored")
    out = [None] * len(teams)

    def one(i):
        try:
            out[i] = post(ctx, uninstalled(team_id=teams[i]))
        except Exception as e:   # reported below
            out[i] = e
    th = [threading.Thread(target=one, args=(i,)) for i in range(len(teams))]
    for t in th:
        t.start()
    for t in th:
        t.join(60)
    for i, r in enumerate(out):
        check(isinstance(r, Resp), "event %d: %s" % (i, r))
        ok_empty(r, "concurrent app_uninstalled %d" % i, "app_uninstalled")
    eq(rows(ctx), ([], []), "rows after the concurrent uninstalls")


@test(modes=("cgi",))
def linked_libs(ctx):
    """slack-events links libfcgi, SQLite and cJSON, never libcurl (it
    never calls Slack) nor libpq."""
    have = set(e2e.elf_needed(e2e.PROGS["events"]))
    want = {"libfcgi.so.0", "libsqlite3.so.0", "libcjson.so.1"}
    check(want <= have, "DT_NEEDED lacks %s: %r" % (sorted(want - have),
                                                   sorted(have)))
    check(not have & {"libcurl.so.4", e2e.LIBPQ},
          "slack-events links libcurl or libpq: %r" % sorted(have))
    setup(ctx)
    install(ctx)


@test(modes=("cgi",))
def check_reports_events_endpoint(ctx):
    setup(ctx)
    p = admin(ctx, "check")
    check(p.returncode == 0 and b"events endpoint: configured" in p.stdout,
          "check with a signing secret: %r" % p.stdout[-300:])
    ctx.set(SLACK_SIGNING_SECRET=None)
    p = admin(ctx, "check")
    check(p.returncode == 0 and b"events endpoint: not configured" in
          p.stdout, "check without: %r" % p.stdout[-300:])


if __name__ == "__main__":
    try:
        sys.exit(e2e.main(sys.argv[1:]))
    except TestFailure as e:
        print("not ok - %s" % e)
        print("0 passed, 1 failed")
        sys.exit(1)
