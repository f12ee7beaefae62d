"""What the Python test suites share: failures and skips, checks, the
registry of secrets a suite handed out or saw, redaction and the leak scan,
the record of every output for tests/secrets_scan.py, and the runner that
prints `ok - name` / `FAIL - name: reason` and, last, `N passed, N failed`.

Across the whole suite (tests/run.py sets these):

  SECRETS_FILE  every secret value registered here is appended to it, one
                JSON object a line: {"suite", "kind", "value"}. States are
                kind "state": they belong in the install endpoint's answers
                and nowhere else.
  OUTPUTS_DIR   every output recorded here (log lines, pages, headers,
                server logs) is appended under OUTPUTS_DIR/<suite>.<pid>/:
                outputs.txt, and install-responses.states-ok.txt for the
                install endpoint's answers (which carry the state by design).
                db-modes.jsonl lists the database files the suite's programs
                left, with their modes.
  TEST_SUITE    the suite's name in those files (default: the script's name).

Python 3 standard library only. Never print a secret: use redact().
"""

import html
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse

SUITE = re.sub(r"[^A-Za-z0-9_.-]+", "-", os.environ.get("TEST_SUITE") or
               os.path.splitext(os.path.basename(sys.argv[0] or "tests"))[0])


_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def version():
    """The VERSION file's version."""
    with open(os.path.join(_ROOT, "VERSION")) as f:
        return f.read().strip()


def dist_tarball():
    """The path of the `make dist` tarball (make test builds it)."""
    path = os.path.join(_ROOT, "build", "dist",
                        "slack-oauth-fcgi-%s-linux-%s.tar.gz"
                        % (version(), os.uname().machine))
    check(os.path.exists(path), "%s is missing: run make dist" % path)
    return path


# ------------------------------------------------------------------ asserts
class TestFailure(AssertionError):
    pass


class Skip(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def short(v, n=240):
    r = repr(v)
    return r if len(r) <= n else r[:n] + "…(%d chars)" % len(r)


def eq(actual, expected, what, n=240):
    if actual != expected:
        raise TestFailure("%s: expected %s, got %s"
                          % (what, short(expected, n), short(actual, n)))


def eq_opt(actual, expected, what, n=240):
    """eq, but an expected None also accepts '' (a field Slack did not
    send)."""
    if expected is None:
        check(actual in (None, ""), "%s: expected NULL or '', got %s"
              % (what, short(actual, n)))
    else:
        eq(actual, expected, what, n)


# ----------------------------------------------------------- the registry
_LOCK = threading.Lock()
SECRETS = {}        # value -> kind; never printed
STATES = set()      # states issued by the install endpoint (also in SECRETS)
MIN_LEN = 8         # shorter values are not scanned for (too many false hits)
_files = {}


def kind_of(value):
    """What a secret is, from its shape (fake_slack.py's formats)."""
    v = value
    if v.startswith("xoxe.xoxb-") or v.startswith("xoxb-"):
        return "bot token"
    if v.startswith("xoxe.xoxp-") or v.startswith("xoxp-"):
        return "user token"
    if v.startswith("xoxe-"):
        return "refresh token"
    if v.startswith("xox"):
        return "token"
    if "hooks." in v or "/services/" in v:
        return "webhook URL"
    if re.match(r"^\d+\.\d+\.[0-9a-f]+$", v):
        return "code"
    return "secret"


def _append(name, line):
    path = os.environ.get(name)
    if not path:
        return
    f = _files.get(path)
    if f is None:
        d = os.path.dirname(path)
        if d:
            os.makedirs(d, mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        f = _files[path] = os.fdopen(fd, "a", encoding="utf-8",
                                     errors="replace")
    f.write(line)
    f.flush()


def add_secret(value, kind=None):
    """Registers a value that must appear in no output; returns it."""
    if not value or not isinstance(value, str):
        return value
    with _LOCK:
        if value in SECRETS:
            return value
        SECRETS[value] = kind or kind_of(value)
        _append("SECRETS_FILE", json.dumps(
            {"suite": SUITE, "kind": SECRETS[value], "value": value}) + "\n")
    return value


def add_secrets(values, kind=None):
    for v in values:
        add_secret(v, kind)


def add_state(value):
    """A state issued by the install endpoint: allowed in that endpoint's
    answers only."""
    if value:
        with _LOCK:
            STATES.add(value)
        add_secret(value, "state")
    return value


def secret_values():
    with _LOCK:
        return dict(SECRETS)


def variants(s):
    """The forms a value takes in a page, a URL, JSON or a log."""
    return {s, urllib.parse.quote(s, safe=""), urllib.parse.quote_plus(s),
            html.escape(s), json.dumps(s)[1:-1]}


def redact(text, extra=()):
    """text with every registered secret (and extra) replaced."""
    if not text:
        return text
    vals = set(secret_values()) | set(extra)
    for v in sorted(vals, key=len, reverse=True):
        if len(v) >= 6:
            for var in variants(v):
                if var in text:
                    text = text.replace(var, "<redacted>")
    return text


def leaked(text, states=True, extra=()):
    """Descriptions (kind and length, never the value) of the registered
    secrets found in text; states skipped when states is False."""
    if not text:
        return []
    out = []
    vals = secret_values()
    for v in extra:
        vals.setdefault(v, kind_of(v))
    for v, kind in vals.items():
        if len(v) < MIN_LEN or (kind == "state" and not states):
            continue
        if any(var in text for var in variants(v)):
            out.append("%s (%d chars)" % (kind, len(v)))
    return sorted(out)


# -------------------------------------------------------------- outputs
def _out_dir():
    base = os.environ.get("OUTPUTS_DIR")
    if not base:
        return None
    d = os.path.join(base, "%s.%d" % (SUITE, os.getpid()))
    os.makedirs(d, mode=0o700, exist_ok=True)
    return d


def record_output(where, text, states_ok=False):
    """Keeps an output (log, page, headers, server log) for the scan across
    the suite. states_ok: an answer of the install endpoint."""
    if not text or not os.environ.get("OUTPUTS_DIR"):
        return
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    fname = "install-responses.states-ok.txt" if states_ok else "outputs.txt"
    with _LOCK:
        d = _out_dir()
        _append_path(os.path.join(d, fname),
                     "\n### %s\n%s\n" % (where.replace("\n", " "), text))


def _append_path(path, line):
    f = _files.get(path)
    if f is None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        f = _files[path] = os.fdopen(fd, "a", encoding="utf-8",
                                     errors="replace")
    f.write(line)
    f.flush()


def record_file(path, where=None, states_ok=False):
    """Keeps a whole file (a web server's log) for the scan."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return
    record_output(where or path, data, states_ok)


def record_tree(top, where, skip=(".db", ".db-wal", ".db-shm", ".conf",
                                  ".pem", ".sock", ".pid")):
    """Keeps every regular file under top (logs), except databases,
    configuration, keys, sockets."""
    for dp, _, fns in os.walk(top):
        for fn in sorted(fns):
            p = os.path.join(dp, fn)
            if fn.endswith(skip) or "-journal" in fn or not os.path.isfile(p):
                continue
            record_file(p, "%s: %s" % (where, os.path.relpath(p, top)))


DB_FILE_RE = re.compile(r"\.db(-wal|-shm|-journal)?$")


def db_files(top):
    """[(path, mode, uid)] of the SQLite files (database, -wal, -shm,
    -journal) under top."""
    out = []
    for dp, _, fns in os.walk(top):
        for fn in sorted(fns):
            if DB_FILE_RE.search(fn):
                p = os.path.join(dp, fn)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    out.append((p, stat.S_IMODE(st.st_mode), st.st_uid))
    return out


def record_db_modes(top, where, exempt=False):
    """Notes the modes of the database files the programs left under top,
    for tests/secrets_scan.py (each must be 0600). exempt: the test itself
    changed or made them (e.g. chmod 0644 on purpose)."""
    if not os.environ.get("OUTPUTS_DIR"):
        return
    files = db_files(top)
    if not files:
        return
    with _LOCK:
        d = _out_dir()
        for p, mode, uid in files:
            _append_path(os.path.join(d, "db-modes.jsonl"), json.dumps(
                {"suite": SUITE, "where": where, "file": os.path.basename(p),
                 "mode": "%04o" % mode, "exempt": bool(exempt)}) + "\n")


# ---------------------------------------------------------------- runner
# ------------------------------------------------------------ processes
def free_port():
    """A loopback TCP port nobody listens on now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def mapped_files(pid):
    """The paths of the files process pid maps (/proc/PID/maps)."""
    with open("/proc/%d/maps" % pid) as f:
        return {ln.split()[-1] for ln in f if len(ln.split()) >= 6}


def port_open(port):
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


def wait_for(pred, what, timeout=10.0, exc=TestFailure):
    """Polls pred (OSError counts as not yet) until it is true; raises exc
    after timeout seconds."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise exc("timed out waiting for " + what)


def shell_lines(text, without=None):
    """The "#$ " command lines of an example file, continuation lines
    joined; without: leave out the commands that mention it (a program
    the suite does not serve)."""
    cmds, cur = [], ""
    for ln in text.splitlines():
        if not ln.startswith("#$ "):
            continue
        ln = ln[3:]
        if ln.rstrip().endswith("\\"):
            cur += ln.rstrip()[:-1] + " "
            continue
        cmds.append(cur + ln)
        cur = ""
    if without:
        cmds = [c for c in cmds if without not in c]
    return cmds


def processes_under(top):
    """Pids of the processes whose executable lies under the directory top
    (a test's own copies of the programs)."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            exe = os.readlink("/proc/%s/exe" % d)
        except OSError:
            continue
        if exe.startswith(top + "/"):
            pids.append(int(d))
    return pids


def kill_leftovers(top, grace=3.0):
    """Waits up to grace seconds for the processes under top to end, then
    kills those left (mod_fcgid's and spawn-fcgi's children). Returns
    their pids."""
    deadline = time.monotonic() + grace
    left = processes_under(top)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = processes_under(top)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def stop_processes(procs, pidfiles=(), grace=3.0):
    """Stops what a test started: SIGTERM to the pids in pidfiles and to
    the process group of each of procs (each started with
    start_new_session=True, so forked workers go too), a wait, then SIGKILL
    to whatever is left of the groups."""
    for pf in pidfiles:
        try:
            with open(pf) as f:
                pids = [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            continue
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for p in reversed(procs):
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    deadline = time.monotonic() + grace
    for p in procs:
        while _group_alive(p.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class Runner:
    """Counts and prints results; last line `N passed, N failed`."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def ok(self, name, note=""):
        self.passed += 1
        print("ok - %s%s" % (name, note), flush=True)

    def skip(self, name, why, note=""):
        self.passed += 1
        print("ok - %s # skip %s%s" % (name, why, note), flush=True)

    def fail(self, name, reason, extra=()):
        self.failed += 1
        print("FAIL - %s: %s" % (name, redact(str(reason), extra)),
              flush=True)

    def run(self, name, fn, *args, **kw):
        """fn(*args): ok, skip or FAIL; an exception is a failure with the
        line it came from. Returns True when it passed."""
        try:
            fn(*args, **kw)
        except Skip as e:
            self.skip(name, e)
            return True
        except TestFailure as e:
            self.fail(name, str(e).replace("\n", " ")[:1500])
            return False
        except Exception as e:
            tb = traceback.format_exc(limit=3).strip().splitlines()
            self.fail(name, "%s: %s [%s]" % (type(e).__name__, e,
                                             tb[-3].strip() if len(tb) >= 3
                                             else ""))
            return False
        self.ok(name)
        return True

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        return 1 if self.failed else 0
