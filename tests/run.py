#!/usr/bin/env python3
"""Runs every test suite of `make test` and prints one closing line,
`N passed, N failed`. A suite that crashes or prints no count counts as
one failure. Output of the suites is passed through as it comes."""

import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COUNT = re.compile(r"(\d+) passed, (\d+) failed")

VALGRIND = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect"]

SUITES = [
    ("man pages", ["sh", "tests/manlint.sh"], {}),
    ("format", ["sh", "tests/format.sh"], {}),
    ("unit", ["build/unit"], {}),
    ("unit under ASan+UBSan", ["build/asan/unit"], {}),
    ("unit under valgrind", VALGRIND + ["build/unit"], {}),
    *[(f"fuzz corpus {f} under ASan+UBSan",
       ["sh", "-c", f"build/asan/fuzz-{f} tests/fuzz/corpus/{f} && "
        f"echo 'fuzz-{f}: 1 passed, 0 failed'"], {})
      for f in ("query", "cookie", "conf", "slack_json", "handler",
                "events")],
    ("end-to-end", [sys.executable, "tests/e2e.py"], {"CGI_BIN": "cgi-bin"}),
    ("end-to-end under ASan+UBSan", [sys.executable, "tests/e2e.py"],
     {"CGI_BIN": "build/asan/cgi-bin"}),
    # valgrind is slow: the flows and the failure table, CGI and FastCGI,
    # and 20 requests at once to FastCGI processes of 32 workers each.
    ("end-to-end under valgrind",
     [sys.executable, "tests/e2e.py", "-k", "success_", "-k", "failure_table",
      "-k", "replay", "-k", "install_page", "-k", "methods",
      "-k", "concurrent"],
     {"CGI_BIN": "cgi-bin", "CGI_WRAPPER": " ".join(VALGRIND + [
         "--show-leak-kinds=definite,indirect"])}),
    # The events endpoint (issue 12): signed requests as Slack sends them,
    # after real flows stored the installations; CGI and FastCGI.
    ("events endpoint", [sys.executable, "tests/events.py"],
     {"CGI_BIN": "cgi-bin", "BIN_DIR": "bin"}),
    ("events endpoint under ASan+UBSan", [sys.executable, "tests/events.py"],
     {"CGI_BIN": "build/asan/cgi-bin", "BIN_DIR": "build/asan/bin"}),
    ("events endpoint under ThreadSanitizer",
     [sys.executable, "tests/events.py", "-k", "concurrent"],
     {"CGI_BIN": "build/tsan/cgi-bin", "BIN_DIR": "build/tsan/bin",
      "TSAN_OPTIONS": "halt_on_error=0:exitcode=66:second_deadlock_stack=1"}),
    ("events endpoint under valgrind",
     [sys.executable, "tests/events.py", "-k", "url_verification",
      "-k", "signature_failures", "-k", "app_uninstalled_bot",
      "-k", "tokens_revoked_user", "-k", "not_json", "-k", "concurrent"],
     {"CGI_BIN": "cgi-bin", "BIN_DIR": "bin", "CGI_WRAPPER": " ".join(
         VALGRIND + ["--show-leak-kinds=definite,indirect"])}),
    ("admin command", [sys.executable, "tests/admin.py"],
     {"CGI_BIN": "cgi-bin", "BIN_DIR": "bin"}),
    ("admin command under ASan+UBSan", [sys.executable, "tests/admin.py"],
     {"CGI_BIN": "build/asan/cgi-bin", "BIN_DIR": "build/asan/bin"}),
    # PostgreSQL (issue 7): a real server started by the test; the flows,
    # two nginx + spawn-fcgi hosts on one database, a server restart.
    ("postgresql", [sys.executable, "tests/pg.py"],
     {"CGI_BIN": "cgi-bin", "BIN_DIR": "bin"}),
    ("postgresql under ASan+UBSan", [sys.executable, "tests/pg.py"],
     {"CGI_BIN": "build/asan/cgi-bin", "BIN_DIR": "build/asan/bin"}),
    # Faults (Slack hangs, resets, trickles, 5xx, bad JSON, 10 MB; the
    # database locked, read-only, corrupt, on a full disk; a worker killed),
    # and concurrency through nginx, quick version (`make stress`: 1,000).
    ("faults", [sys.executable, "tests/faults.py"],
     {"CGI_BIN": "cgi-bin", "BIN_DIR": "bin"}),
    ("faults under ASan+UBSan", [sys.executable, "tests/faults.py"],
     {"CGI_BIN": "build/asan/cgi-bin", "BIN_DIR": "build/asan/bin"}),
    ("concurrency (quick)", [sys.executable, "tests/stress.py", "--quick"],
     {"CGI_BIN": "cgi-bin"}),
    # Concurrency inside one FastCGI process (issue 11): requests waiting on
    # Slack or on a lock hold only themselves; SLACK_OAUTH_CONCURRENCY;
    # exactly-once within one process; under ASan+UBSan and under
    # ThreadSanitizer (`make BUILD=build/tsan CGIDIR=build/tsan/cgi-bin
    # BINDIR=build/tsan/bin SAN=thread all`), where any report fails it.
    ("one process, many requests", [sys.executable, "tests/concurrency.py"],
     {"CGI_BIN": "cgi-bin", "BIN_DIR": "bin"}),
    ("one process, many requests under ASan+UBSan",
     [sys.executable, "tests/concurrency.py"],
     {"CGI_BIN": "build/asan/cgi-bin", "BIN_DIR": "build/asan/bin"}),
    ("one process, many requests under ThreadSanitizer",
     [sys.executable, "tests/concurrency.py"],
     {"CGI_BIN": "build/tsan/cgi-bin", "BIN_DIR": "build/tsan/bin",
      "TSAN_OPTIONS": "halt_on_error=0:exitcode=66:second_deadlock_stack=1"}),
    # The example files under the real servers (Apache, nginx, fcgiwrap,
    # spawn-fcgi, systemd-socket-activate), and the flow in Chromium.
    ("deployments", [sys.executable, "tests/deploy.py"], {}),
    # The `make dist` tarball (issue 14) in a minimal root without libcjson,
    # libfcgi or /etc/slack-oauth, run as CGI by an unprivileged user with
    # no HOME, configured from ~/.config; what its programs need (readelf).
    ("shared hosting tarball", [sys.executable, "tests/dist.py"], {}),
    ("browser", [sys.executable, "tests/browser/run.py"], {}),
    # Hostile requests as CGI, FastCGI and through nginx + spawn-fcgi
    # (nginx-spawn-fcgi-example.conf); under ASan+UBSan as CGI and FastCGI.
    ("hostile requests", [sys.executable, "tests/hostile.py"],
     {"CGI_BIN": "cgi-bin"}),
    ("hostile requests under ASan+UBSan",
     [sys.executable, "tests/hostile.py", "--mode", "cgi", "--mode", "fcgi"],
     {"CGI_BIN": "build/asan/cgi-bin"}),
    # Last: every secret the suites above handed out or saw, against every
    # log, page and output they collected (and their stdout); database modes.
    ("secrets across the suite", [sys.executable, "tests/secrets_scan.py"],
     {}),
]

# Where the suites leave, through tests/testlib.py, the secrets they used and
# the outputs they saw, for tests/secrets_scan.py; run() adds each suite's
# stdout under OUTPUTS_DIR/stdout/. One directory per run (runs may overlap
# on a shared machine); the latest is build/test-outputs/latest.
COLLECT_TOP = os.path.join(ROOT, "build", "test-outputs")
COLLECT = os.path.join(COLLECT_TOP, "run-%d" % os.getpid())
SCAN_SUITE = "secrets across the suite"


def slug(name):
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()


def run(name, argv, extra):
    # Directories given to a suite are absolute: suites may change directory.
    extra = {k: os.path.join(ROOT, v) if k.endswith(("_BIN", "_DIR")) else v
             for k, v in extra.items()}
    env = dict(os.environ, **extra)
    env.setdefault("SECRETS_FILE", os.path.join(COLLECT, "secrets.jsonl"))
    env.setdefault("OUTPUTS_DIR", os.path.join(COLLECT, "outputs"))
    env["TEST_SUITE"] = slug(name)
    saved = None
    if name != SCAN_SUITE:
        d = os.path.join(env["OUTPUTS_DIR"], "stdout")
        os.makedirs(d, mode=0o700, exist_ok=True)
        saved = open(os.path.join(d, slug(name) + ".log"), "a")
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    print(f"=== {name}", flush=True)
    t0 = time.monotonic()
    p = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, errors="replace")
    last = None
    for line in p.stdout:
        sys.stdout.write(line)
        if saved:
            saved.write(line)
        m = COUNT.search(line)
        if m:
            last = (int(m.group(1)), int(m.group(2)))
    rc = p.wait()
    if saved:
        saved.close()
    took = time.monotonic() - t0
    if last is None:
        print(f"=== {name}: no count (exit {rc}): counted as 1 failure")
        return 0, 1
    passed, failed = last
    if rc != 0 and failed == 0:
        print(f"=== {name}: exit {rc} with no failed test: counted as 1 failure")
        failed = 1
    print(f"=== {name}: {passed} passed, {failed} failed in {took:.1f}s",
          flush=True)
    return passed, failed


def main():
    only = sys.argv[1:]
    total_p = total_f = 0
    global COLLECT
    os.makedirs(COLLECT_TOP, mode=0o700, exist_ok=True)
    latest = os.path.join(COLLECT_TOP, "latest")
    if only and all(o in SCAN_SUITE for o in only) and os.path.isdir(latest):
        COLLECT = os.path.realpath(latest)   # the scan alone: the last run's
    else:
        # A fresh collection; those of runs no longer running go.
        for d in os.listdir(COLLECT_TOP):
            m = re.match(r"^run-(\d+)$", d)
            if m and not os.path.exists("/proc/" + m.group(1)):
                shutil.rmtree(os.path.join(COLLECT_TOP, d), ignore_errors=True)
        os.makedirs(COLLECT, mode=0o700, exist_ok=True)
        try:
            os.unlink(latest)
        except OSError:
            pass
        os.symlink(os.path.basename(COLLECT), latest)
    for name, argv, extra in SUITES:
        if only and not any(o in name for o in only):
            continue
        p, f = run(name, argv, extra)
        total_p += p
        total_f += f
    print(f"{total_p} passed, {total_f} failed")
    return 1 if total_f else 0


if __name__ == "__main__":
    sys.exit(main())
