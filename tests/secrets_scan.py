#!/usr/bin/env python3
"""Secrets across the whole suite (issue 5, item 6): the last suite of
tests/run.py.

Every suite that uses tests/testlib.py appends each secret it handed out or
saw (the client secret, codes, tokens, refresh tokens, webhook URLs, states)
to $SECRETS_FILE, and each output it collected (the programs' log lines,
pages and headers, the web servers' access and error logs) under
$OUTPUTS_DIR; tests/run.py also saves every suite's stdout there. This scan
fails on any occurrence of any of those secrets, in any of its usual forms
(as is, percent-encoded, HTML-escaped, JSON-escaped), in any of those
outputs. A state is allowed in one place only: the install endpoint's
answers (the Set-Cookie header, the authorize link), which suites keep in
files named *.states-ok.txt. It prints what kind of secret and where (file
and section), never the value.

It also checks that every database file and journal the suites' programs
left behind was mode 0600 (db-modes.jsonl, written by the suites before
they delete their temporary directories), and first that the scanner itself
catches a leak planted in a scratch directory.

    python3 tests/secrets_scan.py      # after python3 tests/run.py …
    SECRETS_FILE=… OUTPUTS_DIR=… python3 tests/secrets_scan.py

Prints `ok - …` / `FAIL - …`, then `N passed, N failed`.
"""

import collections
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from testlib import MIN_LEN, Runner, TestFailure, check, variants  # noqa: E402

BASE = os.path.join(ROOT, "build", "test-outputs", "latest")  # tests/run.py's
SECRETS_FILE = os.environ.get("SECRETS_FILE") or os.path.join(BASE,
                                                              "secrets.jsonl")
OUTPUTS_DIR = os.environ.get("OUTPUTS_DIR") or os.path.join(BASE, "outputs")
STATES_OK = ".states-ok.txt"


def load_secrets(path):
    """{value: (kind, set of suites)}"""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            d = json.loads(line)
            v = d.get("value")
            if not isinstance(v, str) or len(v) < MIN_LEN:
                continue
            kind, suites = out.get(v, (d.get("kind") or "secret", set()))
            suites.add(d.get("suite") or "?")
            out[v] = (kind, suites)
    return out


def section_of(path, offset):
    """The "### where" line above a byte offset of a testlib output file."""
    try:
        with open(path, "rb") as f:
            head = f.read(offset)
    except OSError:
        return ""
    i = head.rfind(b"\n### ")
    if i < 0:
        return ""
    j = head.find(b"\n", i + 1)
    return head[i + 5:j if j >= 0 else None].decode("utf-8", "replace")[:120]


def grep(patterns, top, exclude=None):
    """[(file, byte offset, matched text)] of every literal pattern in
    every file under top (GNU grep -F: one pass, however many)."""
    if not patterns:
        return []
    fd, patfile = tempfile.mkstemp(prefix="secrets-scan-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("".join(p + "\n" for p in sorted(patterns)))
        argv = ["grep", "-r", "-F", "-a", "-o", "-b", "--null", "-f", patfile]
        if exclude:
            argv.append("--exclude=" + exclude)
        r = subprocess.run(argv + ["--", top], capture_output=True)
        if r.returncode not in (0, 1):
            raise TestFailure("grep failed: %s"
                              % r.stderr.decode("utf-8", "replace")[-300:])
    finally:
        os.unlink(patfile)
    hits = []
    for line in r.stdout.split(b"\n"):
        if not line:
            continue
        fname, _, rest = line.partition(b"\0")
        off, _, text = rest.partition(b":")
        hits.append((fname.decode("utf-8", "replace"), int(off),
                     text.decode("utf-8", "replace")))
    return hits


def scan(secrets, top):
    """Descriptions of every leak under top: kind, whose secret, where."""
    plain, states = {}, {}
    for v, (kind, suites) in secrets.items():
        for var in variants(v):
            if len(var) >= MIN_LEN:
                (states if kind == "state" else plain)[var] = (kind, suites)
    found = collections.OrderedDict()
    for table, exclude in ((plain, None), (states, "*" + STATES_OK)):
        for fname, off, text in grep(set(table), top, exclude):
            kind, suites = table.get(text, ("secret", {"?"}))
            where = os.path.relpath(fname, top)
            sect = section_of(fname, off)
            key = "a %s (of %s) in %s%s" % (kind, ",".join(sorted(suites)),
                                            where, " [%s]" % sect if sect
                                            else "")
            found[key] = found.get(key, 0) + 1
    return ["%s%s" % (k, " (%d times)" % n if n > 1 else "")
            for k, n in found.items()]


# ------------------------------------------------------------------ tests
def t_scanner_catches_planted_leak():
    """The scanner on a scratch directory: a token percent-encoded in a log,
    a state HTML-escaped in a page, a state where it belongs (no hit)."""
    d = tempfile.mkdtemp(prefix="secrets-scan-self-")
    try:
        tok = "xoxb-" + os.urandom(12).hex()
        st = "Zq" + os.urandom(40).hex() + "-_"
        secrets = {tok: ("bot token", {"self"}), st: ("state", {"self"}),
                   "short": ("secret", {"self"})}
        os.makedirs(os.path.join(d, "s.1"))
        with open(os.path.join(d, "s.1", "outputs.txt"), "w") as f:
            f.write("\n### log\nnothing here short\n### page\n<a href="
                    "\"x?state=%s\">\n### url\nq=%s&x\n"
                    % (st.replace("-", "-"), tok.replace("-", "%2D")
                       .replace("xoxb%2D", "xoxb-")))
            f.write("\n### json\n\"t\": \"%s\"\n" % tok)
        with open(os.path.join(d, "s.1", "install" + STATES_OK), "w") as f:
            f.write("\n### install\nSet-Cookie: c=%s\n" % st)
        found = scan(secrets, d)
        check(any("a bot token (of self) in s.1/outputs.txt [json]" in x
                  for x in found), "the planted token was not found: %r"
              % found)
        check(any("a state (of self) in s.1/outputs.txt [page]" in x
                  for x in found), "the planted state was not found: %r"
              % found)
        check(not any(STATES_OK in x for x in found),
              "a state in an install answer was reported: %r" % found)
        check(tok not in repr(found) and st not in repr(found),
              "the report shows a secret's value")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def t_collected():
    check(os.path.exists(SECRETS_FILE), "no %s: run the suites through "
          "tests/run.py (which sets SECRETS_FILE and OUTPUTS_DIR)"
          % os.path.relpath(SECRETS_FILE, ROOT))
    secrets = load_secrets(SECRETS_FILE)
    by_suite = collections.Counter()
    kinds = collections.Counter()
    for v, (kind, suites) in secrets.items():
        kinds[kind] += 1
        for s in suites:
            by_suite[s] += 1
    outs = collections.Counter()
    for f in glob.glob(os.path.join(OUTPUTS_DIR, "**", "*"), recursive=True):
        if os.path.isfile(f):
            outs[os.path.relpath(f, OUTPUTS_DIR).split(os.sep)[0]
                 .rsplit(".", 1)[0]] += os.path.getsize(f)
    print("# secrets: %s" % ", ".join("%d %s" % (n, k) for k, n in
                                      sorted(kinds.items())))
    print("# secrets by suite: %s" % ", ".join("%s %d" % kv for kv in
                                               sorted(by_suite.items())))
    print("# outputs scanned: %s" % ", ".join("%s %d KB" % (k, (n + 1023)
                                                             // 1024)
                                              for k, n in sorted(outs.items())))
    check(secrets, "no secret was registered")
    check(outs, "no output was recorded under %s" % OUTPUTS_DIR)
    return secrets


def t_no_leak(secrets):
    found = scan(secrets, OUTPUTS_DIR)
    check(not found, "%d leaks: %s" % (len(found), "; ".join(found[:20])))


def t_db_modes():
    n = 0
    bad = []
    for f in glob.glob(os.path.join(OUTPUTS_DIR, "*", "db-modes.jsonl")):
        with open(f) as fh:
            for line in fh:
                d = json.loads(line)
                n += 1
                if not d.get("exempt") and int(d["mode"], 8) & 0o077:
                    bad.append("%s: %s %s mode %s" % (d["suite"], d["where"],
                                                      d["file"], d["mode"]))
    check(n > 0, "no suite recorded its database files")
    print("# %d database files checked" % n)
    check(not bad, "%d not 0600: %s" % (len(bad), "; ".join(bad[:10])))


def main():
    run = Runner()
    run.run("scanner catches a planted leak (token, state; not a state in an "
            "install answer)", t_scanner_catches_planted_leak)
    secrets = {}

    def collected():
        secrets.update(t_collected())
    if run.run("secrets and outputs were collected from the suites",
               collected):
        run.run("no client secret, token, refresh token, code, state or "
                "webhook URL in any log, page or test output",
                t_no_leak, secrets)
    run.run("database files and journals left by the suites are 0600",
            t_db_modes)
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
