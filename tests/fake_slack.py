#!/usr/bin/env python3
"""A faithful local fake of Slack's OAuth v2 endpoints, for tests and `make demo`.

It listens on 127.0.0.1 only and serves:

  GET  /oauth/v2/authorize       a stand-in consent page (Allow / Cancel)
  POST /api/oauth.v2.access      code exchange and token refresh
  POST /api/auth.test            identity of a token it issued
  POST /api/auth.revoke          revokes a token it issued

Shapes of a successful exchange follow SLACK-API.md section 1.5 (A..F).
Faults can be injected per endpoint (see FakeSlack.fault).  Codes can be
given their own delay (issue_code(delay=…), delay_code), refreshes one too
(refresh_delay), so that some requests wait on "Slack" while others are
answered at once; each request is served in its own thread, and the number
of API calls in flight at once is recorded per method (max_inflight).
Python 3 standard library only.

Imported:
    fs = FakeSlack(client_id, client_secret, shape="bot")
    fs.start(); ... fs.api_url, fs.authorize_url ...; fs.stop()
Standalone:
    python3 tests/fake_slack.py --port 8081 --client-id X --client-secret Y
"""

import argparse
import base64
import binascii
import email.parser
import hashlib
import hmac
import email.policy
import html
import json
import secrets as _secrets
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TEAM_ID = "T0TEAM001"
TEAM_NAME = "Example Team"
TEAM_DOMAIN = "example"
ENTERPRISE_ID = "E0ORG0001"
ENTERPRISE_NAME = "Example Org"
ENTERPRISE_URL = "https://example-org.enterprise.slack.com/"
APP_ID = "A0APP0001"
BOT_USER_ID = "U0BOT0001"
BOT_ID = "B0BOT0001"
HUMAN_USER_ID = "U0HUMAN01"

SHAPES = ("bot", "user", "user_only", "webhook", "org", "grid_workspace",
          "rotation")
FAULT_KINDS = ("ok_false", "http_status", "not_json", "wrong_types", "slow",
               "oversized", "reset", "trickle", "redirect")
ENDPOINTS = ("oauth.v2.access", "auth.test", "auth.revoke")

CODE_TTL = 600
ROTATION_TTL = 43200
MAX_BODY = 16 * 1024 * 1024


def _rand_digits(n):
    return "".join(str(_secrets.randbelow(10)) for _ in range(n))


def _rand_alnum(n):
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(_secrets.choice(alphabet) for _ in range(n))


class FakeSlack:
    """A fake Slack server.  All public methods are thread-safe."""

    def __init__(self, client_id, client_secret, shape="bot",
                 default_redirect_uri=None, host="127.0.0.1", port=0,
                 bot_scopes="chat:write,commands", user_scopes="search:read",
                 team_name=TEAM_NAME, enterprise_name=ENTERPRISE_NAME,
                 verbose=False, ssl_context=None):
        if shape not in SHAPES:
            raise ValueError("unknown shape %r" % (shape,))
        self.client_id = client_id
        self.client_secret = client_secret
        self.shape = shape
        self.default_redirect_uri = default_redirect_uri
        self.host = host
        self._want_port = port
        self.bot_scopes = bot_scopes
        self.user_scopes = user_scopes
        self.team_name = team_name
        self.enterprise_name = enterprise_name
        self.verbose = verbose
        self.ssl_context = ssl_context   # serve https with this (tests of TLS)
        self.code_ttl = CODE_TTL
        self.team_id = TEAM_ID          # the workspace the next grant is for
        self.user_id = HUMAN_USER_ID    # the user who approves it

        self._lock = threading.RLock()
        self.requests = []        # every request, see _record
        self.exchanges = []       # [{"code":…, "response": dict}] successful ones
        self._codes = {}          # code -> {redirect_uri, expires, used, scope, user_scope}
        self._tokens = {}         # access token -> info dict
        self._refresh = {}        # refresh token -> info dict
        self._faults = {}         # endpoint -> {kind, once, opts}
        self._code_delay = {}     # code -> seconds oauth.v2.access waits
        self.refresh_delay = 0.0  # seconds a grant_type=refresh_token waits
        self._inflight = {}       # API method -> calls being answered now
        self._max_inflight = {}   # API method -> the most at once
        self._secrets = {client_secret} if client_secret else set()
        self._httpd = None
        self._thread = None
        self.port = None

    # ------------------------------------------------------------------ life
    def start(self):
        fs = self

        class Handler(_Handler):
            fake = fs

        class Server(ThreadingHTTPServer):
            # A thread per connection (a delayed answer holds only its own
            # request); a deep backlog, for many connections at once.
            daemon_threads = True
            block_on_close = False
            allow_reuse_address = True
            request_queue_size = max(ThreadingHTTPServer.request_queue_size,
                                     1024)

            def handle_error(self, request, client_address):
                if fs.verbose:
                    ThreadingHTTPServer.handle_error(self, request,
                                                     client_address)

        self._httpd = Server((self.host, self._want_port), Handler)
        if self.ssl_context is not None:
            self._httpd.socket = self.ssl_context.wrap_socket(
                self._httpd.socket, server_side=True)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def serve_forever(self):
        """Standalone use: bind and serve in the calling thread."""
        self.start()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def base_url(self):
        return "%s://%s:%d" % ("https" if self.ssl_context else "http",
                               self.host, self.port)

    @property
    def api_url(self):
        return self.base_url + "/api/"

    @property
    def authorize_url(self):
        return self.base_url + "/oauth/v2/authorize"

    # ------------------------------------------------------------ test API
    def clear(self):
        """Forgets the recorded requests (not the issued codes/tokens)."""
        with self._lock:
            self.requests.clear()

    def api_requests(self, method=None):
        """Recorded requests under /api/ (optionally for one API method)."""
        with self._lock:
            out = []
            for r in self.requests:
                if not r["path"].startswith("/api/"):
                    continue
                if method is not None and r["path"] != "/api/" + method:
                    continue
                out.append(r)
            return out

    def fault(self, endpoint, kind, once=False, **opts):
        """Injects a fault on an API endpoint ("oauth.v2.access", "auth.test",
        "auth.revoke"); kind None clears it.

        kinds and options:
          ok_false     error="…" [, headers={…}]       HTTP 200 {"ok":false,"error":…}
          http_status  status=500 [, body=b"…", content_type=…]
          not_json     [body=b"…"]                     HTTP 200 text/html
          wrong_types  [fields={…}]                    normal answer with fields
                                                       overwritten (default: team as a
                                                       string, access_token 123)
          slow         seconds=N                       sleep, then answer normally
          oversized    [size=2 MiB, chunked=False]     normal answer padded past size
          reset        close without answering (RST)
          trickle      [interval=0.5, chunk=4]         normal answer, sent slowly
          redirect     [location=…, status=302]        redirect elsewhere
        once=True clears the fault after it fired once.
        """
        if endpoint not in ENDPOINTS:
            raise ValueError("unknown endpoint %r" % (endpoint,))
        with self._lock:
            if kind is None:
                self._faults.pop(endpoint, None)
                return
            if kind not in FAULT_KINDS:
                raise ValueError("unknown fault kind %r" % (kind,))
            self._faults[endpoint] = {"kind": kind, "once": once, "opts": opts}

    def _take_fault(self, endpoint):
        with self._lock:
            f = self._faults.get(endpoint)
            if f is not None and f["once"]:
                del self._faults[endpoint]
            return f

    def delay_code(self, code, seconds):
        """oauth.v2.access with this code waits seconds before answering
        (other codes are answered at once); None or 0 clears it."""
        with self._lock:
            if seconds:
                self._code_delay[code] = float(seconds)
            else:
                self._code_delay.pop(code, None)

    def inflight(self, method="oauth.v2.access"):
        """API calls of method being answered right now."""
        with self._lock:
            return self._inflight.get(method, 0)

    def max_inflight(self, method="oauth.v2.access"):
        """The most API calls of method answered at once since the last
        reset_inflight()."""
        with self._lock:
            return self._max_inflight.get(method, 0)

    def reset_inflight(self):
        with self._lock:
            self._max_inflight = dict(self._inflight)

    def _enter(self, method):
        with self._lock:
            n = self._inflight.get(method, 0) + 1
            self._inflight[method] = n
            if n > self._max_inflight.get(method, 0):
                self._max_inflight[method] = n

    def _leave(self, method):
        with self._lock:
            self._inflight[method] = self._inflight.get(method, 1) - 1

    def _delay_of(self, method, form):
        if method != "oauth.v2.access":
            return 0.0
        with self._lock:
            if form.get("grant_type", [None])[0] == "refresh_token":
                return float(self.refresh_delay or 0)
            code = form.get("code", [None])[0]
            return self._code_delay.get(code, 0.0) if code else 0.0

    def issue_code(self, redirect_uri=None, scope=None, user_scope=None,
                   delay=None):
        """Returns a fresh, valid, single-use code, as the authorize page
        would; delay: seconds oauth.v2.access waits before answering it."""
        code = "%s.%s.%s" % (_rand_digits(10), _rand_digits(13),
                             _secrets.token_hex(32))
        with self._lock:
            if delay:
                self._code_delay[code] = float(delay)
            self._codes[code] = {
                "redirect_uri": redirect_uri,
                "expires": time.time() + self.code_ttl,
                "used": False,
                "scope": scope,
                "user_scope": user_scope,
            }
            self._secrets.add(code)
        return code

    def secrets(self):
        """Every code, token, refresh token and webhook URL ever issued, and the
        client secret."""
        with self._lock:
            return set(self._secrets)

    @property
    def last_exchange(self):
        """The JSON (dict) of the last successful oauth.v2.access answer."""
        with self._lock:
            return self.exchanges[-1]["response"] if self.exchanges else None

    def token_info(self, token):
        with self._lock:
            info = self._tokens.get(token)
            return dict(info) if info else None

    # --------------------------------------------------------- token minting
    def _new_secret(self, value):
        self._secrets.add(value)
        return value

    def _mint_access(self, kind, rotating):
        prefix = {"bot": "xoxb-", "user": "xoxp-"}[kind]
        if rotating:
            tok = "xoxe." + prefix + "1-" + _rand_alnum(40)
        else:
            tok = prefix + _rand_digits(13) + "-" + _rand_digits(13) + "-" + \
                _rand_alnum(24)
        return self._new_secret(tok)

    def _mint_refresh(self):
        return self._new_secret("xoxe-1-" + _rand_alnum(60))

    def _mint_webhook(self):
        return self._new_secret("https://hooks.slack.com/services/%s/B0HOOK001/%s"
                                % (TEAM_ID, _rand_alnum(24)))

    def _context_for_shape(self, shape):
        team = {"id": self.team_id, "name": self.team_name}
        ent = {"id": ENTERPRISE_ID, "name": self.enterprise_name}
        if shape == "org":
            return None, ent, True
        if shape == "grid_workspace":
            return team, ent, False
        return team, None, False

    def _register_token(self, token, kind, team, ent, is_org, rotating, scope,
                        refresh=None):
        info = {
            "kind": kind,
            "team_id": team["id"] if team else None,
            "team_name": team["name"] if team else None,
            "enterprise_id": ent["id"] if ent else None,
            "enterprise_name": ent["name"] if ent else None,
            "is_enterprise_install": is_org,
            "rotating": rotating,
            "scope": scope,
            "revoked": False,
        }
        self._tokens[token] = info
        if refresh is not None:
            self._refresh[refresh] = dict(info, used=False)

    def _build_exchange(self, code_info):
        """Builds (and registers the tokens of) one successful exchange."""
        shape = self.shape
        team, ent, is_org = self._context_for_shape(shape)
        rotating = shape == "rotation"
        bot_scope = (code_info or {}).get("scope") or self.bot_scopes
        user_scope = (code_info or {}).get("user_scope") or self.user_scopes
        resp = {"ok": True, "app_id": APP_ID}
        authed = {"id": self.user_id}
        if shape != "user_only":
            bot_tok = self._mint_access("bot", rotating)
            resp["access_token"] = bot_tok
            resp["token_type"] = "bot"
            resp["scope"] = bot_scope
            resp["bot_user_id"] = BOT_USER_ID
            refresh = None
            if rotating:
                refresh = self._mint_refresh()
                resp["expires_in"] = ROTATION_TTL
                resp["refresh_token"] = refresh
            self._register_token(bot_tok, "bot", team, ent, is_org, rotating,
                                 bot_scope, refresh)
        resp["team"] = team
        resp["enterprise"] = ent
        resp["is_enterprise_install"] = is_org
        if shape in ("user", "user_only", "rotation"):
            utok = self._mint_access("user", rotating)
            authed["scope"] = user_scope
            authed["access_token"] = utok
            authed["token_type"] = "user"
            urefresh = None
            if rotating:
                urefresh = self._mint_refresh()
                authed["expires_in"] = ROTATION_TTL
                authed["refresh_token"] = urefresh
            self._register_token(utok, "user", team, ent, is_org, rotating,
                                 user_scope, urefresh)
        resp["authed_user"] = authed
        if shape == "webhook":
            resp["incoming_webhook"] = {
                "channel": "#alerts",
                "channel_id": "C0CHAN001",
                "configuration_url": "https://%s.slack.com/services/B0HOOK001"
                                     % TEAM_DOMAIN,
                "url": self._mint_webhook(),
            }
        return resp

    def _build_refresh(self, rinfo):
        kind = rinfo["kind"]
        team = ({"id": rinfo["team_id"], "name": rinfo["team_name"]}
                if rinfo["team_id"] else None)
        ent = ({"id": rinfo["enterprise_id"], "name": rinfo["enterprise_name"]}
               if rinfo["enterprise_id"] else None)
        tok = self._mint_access(kind, True)
        refresh = self._mint_refresh()
        self._register_token(tok, kind, team, ent,
                             rinfo["is_enterprise_install"], True,
                             rinfo["scope"], refresh)
        resp = {"ok": True, "app_id": APP_ID, "token_type": kind}
        if kind == "user":
            resp["id"] = HUMAN_USER_ID
        resp.update({
            "access_token": tok,
            "refresh_token": refresh,
            "expires_in": ROTATION_TTL,
            "scope": rinfo["scope"],
        })
        if kind == "bot":
            resp["bot_user_id"] = BOT_USER_ID
        resp["team"] = team
        resp["enterprise"] = ent
        resp["is_enterprise_install"] = rinfo["is_enterprise_install"]
        return resp

    # ------------------------------------------------------------ endpoints
    def _client_auth(self, headers, form):
        """Returns (client_id, client_secret) from Basic auth or the body."""
        auth = headers.get("authorization", "")
        if auth[:6].lower() == "basic ":
            try:
                raw = base64.b64decode(auth[6:].strip(), validate=True)
                cid, _, sec = raw.decode("utf-8").partition(":")
                return (urllib.parse.unquote_plus(cid),
                        urllib.parse.unquote_plus(sec))
            except (binascii.Error, UnicodeDecodeError, ValueError):
                return None, None
        cid = form.get("client_id", [None])[0]
        sec = form.get("client_secret", [None])[0]
        return cid, sec

    def oauth_v2_access(self, headers, form):
        """Returns the JSON dict answer of oauth.v2.access (no faults)."""
        cid, sec = self._client_auth(headers, form)
        if cid != self.client_id:
            return {"ok": False, "error": "invalid_client_id"}
        if sec is None or not _secrets.compare_digest(
                sec.encode(), self.client_secret.encode()):
            return {"ok": False, "error": "bad_client_secret"}
        grant = form.get("grant_type", ["authorization_code"])[0]
        with self._lock:
            if grant == "refresh_token":
                rt = form.get("refresh_token", [None])[0]
                rinfo = self._refresh.get(rt) if rt else None
                if rinfo is None or rinfo["used"]:
                    return {"ok": False, "error": "invalid_refresh_token"}
                rinfo["used"] = True
                return self._build_refresh(rinfo)
            if grant != "authorization_code":
                return {"ok": False, "error": "invalid_grant_type"}
            code = form.get("code", [None])[0]
            cinfo = self._codes.get(code) if code else None
            if (cinfo is None or cinfo["used"]
                    or cinfo["expires"] < time.time()):
                return {"ok": False, "error": "invalid_code"}
            sent_ru = form.get("redirect_uri", [None])[0]
            if cinfo["redirect_uri"] is not None and \
                    sent_ru != cinfo["redirect_uri"]:
                return {"ok": False, "error": "bad_redirect_uri"}
            cinfo["used"] = True
            resp = self._build_exchange(cinfo)
            self.exchanges.append({"code": code, "response": resp})
            return resp

    def _bearer(self, headers, form):
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        return form.get("token", [None])[0]

    def auth_test(self, headers, form):
        tok = self._bearer(headers, form)
        with self._lock:
            info = self._tokens.get(tok) if tok else None
            if info is None or info["revoked"]:
                return {"ok": False, "error": "invalid_auth"}
            if info["is_enterprise_install"]:
                url = ENTERPRISE_URL
                team = info["enterprise_name"]
                team_id = info["enterprise_id"]
            else:
                url = "https://%s.slack.com/" % TEAM_DOMAIN
                team = info["team_name"]
                team_id = info["team_id"]
            resp = {"ok": True, "url": url, "team": team}
            if info["kind"] == "bot":
                resp["user"] = "examplebot"
                resp["team_id"] = team_id
                resp["user_id"] = BOT_USER_ID
                resp["bot_id"] = BOT_ID
            else:
                resp["user"] = "human"
                resp["team_id"] = team_id
                resp["user_id"] = HUMAN_USER_ID
            if info["enterprise_id"]:
                resp["enterprise_id"] = info["enterprise_id"]
            resp["is_enterprise_install"] = info["is_enterprise_install"]
            return resp

    def auth_revoke(self, headers, form):
        tok = self._bearer(headers, form)
        with self._lock:
            info = self._tokens.get(tok) if tok else None
            if info is None or info["revoked"]:
                return {"ok": False, "error": "invalid_auth"}
            info["revoked"] = True
            return {"ok": True, "revoked": True}

    def _record(self, method, path, query, headers, body, form):
        with self._lock:
            self.requests.append({
                "method": method,
                "path": path,
                "query": query,
                "headers": dict(headers),
                "body": body,
                "form": form,
                "time": time.time(),
            })


# ------------------------------------------------------------- Events API
# How Slack delivers an event to the app's Request URL (SLACK-API.md 1.9):
# a JSON envelope POSTed with Content-Type: application/json, signed with
# the app's signing secret over the exact bytes sent.

def event_envelope(event, team_id=TEAM_ID, enterprise_id=None, is_org=False,
                   event_time=None, authorizations=True, api_app_id=APP_ID):
    """The event_callback envelope Slack sends for event (a dict with
    "type"). For an org-wide installation (is_org) authorizations[0] has
    is_enterprise_install true and team_id null, and the envelope names a
    workspace of the org. authorizations=False leaves the list out, as in
    Slack's app_uninstalled example."""
    env = {
        "token": "vt" + _rand_alnum(22),   # deprecated: never to be trusted
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": "Ev" + _rand_alnum(9).upper(),
        "event_time": int(time.time()) if event_time is None else event_time,
        "is_ext_shared_channel": False,
        "event_context": "4-" + _rand_alnum(40),
    }
    if enterprise_id:
        env["enterprise_id"] = enterprise_id
    if is_org:
        env["is_enterprise_install"] = True
    if authorizations:
        env["authorizations"] = [{
            "enterprise_id": enterprise_id,
            "team_id": None if is_org else team_id,
            "user_id": BOT_USER_ID,
            "is_bot": True,
            "is_enterprise_install": bool(is_org),
        }]
    return env


def sign_event(signing_secret, body, timestamp=None):
    """Slack's headers for body (bytes): X-Slack-Request-Timestamp and the
    v0 X-Slack-Signature, HMAC-SHA256 over "v0:<timestamp>:<body>"."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    mac = hmac.new(signing_secret.encode(), b"v0:" + ts.encode() + b":" + body,
                   hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + mac}


def _parse_body(headers, body):
    """Parses a form-encoded, JSON or multipart body into a dict of lists."""
    ctype = headers.get("content-type", "")
    mime = ctype.split(";")[0].strip().lower()
    try:
        if mime == "application/json":
            obj = json.loads(body.decode("utf-8") or "{}")
            out = {}
            if isinstance(obj, dict):
                for k, v in obj.items():
                    out[str(k)] = [v if isinstance(v, str) else json.dumps(v)]
            return out
        if mime == "multipart/form-data":
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + body)
            out = {}
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if name is None:
                    continue
                payload = part.get_payload(decode=True) or b""
                out.setdefault(name, []).append(payload.decode("utf-8",
                                                               "replace"))
            return out
        return urllib.parse.parse_qs(body.decode("utf-8", "replace"),
                                     keep_blank_values=True)
    except (ValueError, UnicodeDecodeError):
        return {}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeSlack/1.0"
    sys_version = ""
    fake = None  # set by FakeSlack.start

    def log_message(self, fmt, *args):
        if self.fake.verbose:
            sys.stderr.write("fake_slack: " + (fmt % args) + "\n")

    # -------------------------------------------------------------- plumbing
    def _read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if te.lower() == "chunked":
            chunks = []
            total = 0
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    raise ValueError("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, status, body, ctype="application/json; charset=utf-8",
              headers=None, reason=None):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.send_response(status, reason)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if self.command != "HEAD":
            try:
                self.wfile.write(body)
            except OSError:
                pass

    def _send_json(self, obj, status=200, headers=None):
        self._send(status, json.dumps(obj), headers=headers)

    def _reset(self):
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True

    def _trickle(self, body, interval, chunk):
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.flush()
            for i in range(0, len(body), chunk):
                self.wfile.write(body[i:i + chunk])
                self.wfile.flush()
                time.sleep(interval)
        except OSError:
            pass
        self.close_connection = True

    def _send_chunked(self, body):
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            step = 64 * 1024
            for i in range(0, len(body), step):
                piece = body[i:i + step]
                self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
        self.close_connection = True

    # -------------------------------------------------------------- dispatch
    def do_GET(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def _dispatch(self):
        fs = self.fake
        split = urllib.parse.urlsplit(self.path)
        path, query = split.path, split.query
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self._send(400, "bad request", "text/plain")
            return
        form = _parse_body(headers, body) if body else {}
        if query and path.startswith("/api/"):
            for k, v in urllib.parse.parse_qs(query,
                                              keep_blank_values=True).items():
                form.setdefault(k, []).extend(v)
        fs._record(self.command, path, query, headers, body, form)

        if path == "/oauth/v2/authorize":
            return self._authorize_page(query)
        if path in ("/oauth/v2/authorize/allow", "/oauth/v2/authorize/deny"):
            return self._authorize_decision(path.endswith("allow"), query)
        if path.startswith("/redirected/"):
            # Target of the "redirect" fault: a client that follows redirects
            # would get a valid-looking success here.
            with fs._lock:
                resp = fs._build_exchange(None)
            return self._send_json(resp)
        if path.startswith("/api/"):
            method = path[len("/api/"):]
            if self.command != "POST" and method in ENDPOINTS:
                # Slack accepts GET too for most methods; keep it simple.
                pass
            return self._api(method, headers, form)
        self._send(404, "not found", "text/plain")

    def _api(self, method, headers, form):
        fs = self.fake
        if method not in ENDPOINTS:
            return self._api_answer(method, headers, form)
        fs._enter(method)
        try:
            delay = fs._delay_of(method, form)
            if delay > 0:
                time.sleep(delay)
            return self._api_answer(method, headers, form)
        finally:
            fs._leave(method)

    def _api_answer(self, method, headers, form):
        fs = self.fake
        handlers = {
            "oauth.v2.access": fs.oauth_v2_access,
            "auth.test": fs.auth_test,
            "auth.revoke": fs.auth_revoke,
        }
        handler = handlers.get(method)
        if handler is None:
            return self._send_json({"ok": False, "error": "unknown_method"})
        f = fs._take_fault(method)
        if f is None:
            return self._send_json(handler(headers, form))
        kind, opts = f["kind"], f["opts"]
        if kind == "ok_false":
            return self._send_json({"ok": False,
                                    "error": opts.get("error", "internal_error")},
                                   headers=opts.get("headers"))
        if kind == "http_status":
            status = int(opts.get("status", 500))
            body = opts.get("body", b"<html><body>Internal Server Error"
                                    b"</body></html>")
            return self._send(status, body,
                              opts.get("content_type", "text/html"))
        if kind == "not_json":
            return self._send(200, opts.get("body", b"<html><body>Slack is "
                                                    b"having trouble</body></html>"),
                              "text/html; charset=utf-8")
        if kind == "reset":
            return self._reset()
        if kind == "redirect":
            loc = opts.get("location",
                           fs.base_url + "/redirected/" + method)
            return self._send(int(opts.get("status", 302)),
                              "", None, headers={"Location": loc})
        if kind == "slow":
            time.sleep(float(opts.get("seconds", 5)))
            return self._send_json(handler(headers, form))
        resp = handler(headers, form)
        if kind == "wrong_types":
            fields = opts.get("fields")
            if fields is None:
                fields = ({"team": TEAM_ID, "access_token": 123}
                          if method == "oauth.v2.access"
                          else {"bot_id": 123, "url": ["x"]})
            resp = dict(resp)
            resp.update(fields)
            return self._send_json(resp)
        if kind == "oversized":
            size = int(opts.get("size", 2 * 1024 * 1024))
            resp = dict(resp)
            resp["padding"] = "x" * size
            body = json.dumps(resp).encode()
            if opts.get("chunked"):
                return self._send_chunked(body)
            return self._send(200, body)
        if kind == "trickle":
            body = json.dumps(resp).encode()
            return self._trickle(body, float(opts.get("interval", 0.5)),
                                 int(opts.get("chunk", 4)))
        return self._send_json(resp)

    # ------------------------------------------------------- authorize pages
    def _authorize_page(self, query):
        fs = self.fake
        q = urllib.parse.parse_qs(query, keep_blank_values=True)

        def one(k):
            v = q.get(k)
            return v[0] if v else None

        cid = one("client_id")
        scope = one("scope") or ""
        user_scope = one("user_scope") or ""
        redirect_uri = one("redirect_uri")
        state = one("state")
        team = one("team")
        esc = html.escape
        if cid != fs.client_id:
            return self._page(400, "Error: invalid_client_id",
                              "<p>Unknown client_id.</p>")
        if not scope and not user_scope:
            return self._page(400, "Error: no_scopes",
                              "<p>No scope or user_scope requested.</p>")
        if not redirect_uri and not fs.default_redirect_uri:
            return self._page(400, "Error: bad_redirect_uri",
                              "<p>No redirect_uri was sent and none is "
                              "configured.</p>")
        params = {}
        if redirect_uri:
            params["redirect_uri"] = redirect_uri
        if state is not None:
            params["state"] = state
        if scope:
            params["scope"] = scope
        if user_scope:
            params["user_scope"] = user_scope
        qs = urllib.parse.urlencode(params)
        allow = "/oauth/v2/authorize/allow?" + qs
        deny = "/oauth/v2/authorize/deny?" + qs
        body = (
            "<p><strong>This is a local stand-in for Slack's authorization "
            "page, not Slack.</strong></p>\n"
            "<p>App <code>%s</code> asks to be installed%s.</p>\n"
            "<p>Bot scopes: <code>%s</code></p>\n"
            "<p>User scopes: <code>%s</code></p>\n"
            "<p>Redirect URI: <code>%s</code></p>\n"
            "<p><a id=\"allow\" href=\"%s\">Allow</a> &nbsp; "
            "<a id=\"cancel\" href=\"%s\">Cancel</a></p>\n"
        ) % (esc(cid), (" in workspace <code>%s</code>" % esc(team)) if team
             else "", esc(scope) or "(none)", esc(user_scope) or "(none)",
             esc(redirect_uri or fs.default_redirect_uri), esc(allow),
             esc(deny))
        return self._page(200, "Fake Slack: authorize app", body)

    def _page(self, status, title, body):
        doc = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
               "<meta name=\"viewport\" content=\"width=device-width\">"
               "<link rel=\"icon\" href=\"data:,\">"
               "<title>%s</title></head>\n<body>\n<h1>%s</h1>\n%s</body></html>\n"
               % (html.escape(title), html.escape(title), body))
        self._send(status, doc, "text/html; charset=utf-8",
                   headers={"Cache-Control": "no-store",
                            "Referrer-Policy": "no-referrer"})

    def _authorize_decision(self, allow, query):
        fs = self.fake
        q = urllib.parse.parse_qs(query, keep_blank_values=True)

        def one(k):
            v = q.get(k)
            return v[0] if v else None

        sent_ru = one("redirect_uri")
        target = sent_ru or fs.default_redirect_uri
        if not target:
            return self._page(400, "Error: bad_redirect_uri", "")
        state = one("state")
        if allow:
            code = fs.issue_code(redirect_uri=sent_ru, scope=one("scope"),
                                 user_scope=one("user_scope"))
            params = [("code", code)]
        else:
            params = [("error", "access_denied")]
        if state is not None:
            params.append(("state", state))
        frag = ""
        if "#" in target:
            target, frag = target.split("#", 1)
            frag = "#" + frag
        sep = "&" if "?" in target else "?"
        if target.endswith("?") or target.endswith("&"):
            sep = ""
        loc = target + sep + urllib.parse.urlencode(params) + frag
        self._send(302, "", None, headers={"Location": loc,
                                           "Cache-Control": "no-store"})


def main(argv=None):
    ap = argparse.ArgumentParser(description="Local fake of Slack's OAuth v2 "
                                 "endpoints (binds 127.0.0.1 only).")
    ap.add_argument("--port", type=int, default=8081)
    ap.add_argument("--client-id", required=True)
    ap.add_argument("--client-secret", required=True)
    ap.add_argument("--shape", default="bot", choices=SHAPES)
    ap.add_argument("--default-redirect-uri", default=None,
                    help="where Allow/Cancel go when the authorize URL has "
                         "no redirect_uri")
    ap.add_argument("--bot-scopes", default="chat:write,commands")
    ap.add_argument("--user-scopes", default="search:read")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    fs = FakeSlack(args.client_id, args.client_secret, shape=args.shape,
                   default_redirect_uri=args.default_redirect_uri,
                   port=args.port, bot_scopes=args.bot_scopes,
                   user_scopes=args.user_scopes, verbose=args.verbose)
    fs.start()
    print("fake Slack (not Slack) on %s" % fs.base_url)
    print("  SLACK_AUTHORIZE_URL=%s" % fs.authorize_url)
    print("  SLACK_API_URL=%s" % fs.api_url)
    sys.stdout.flush()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fs.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
