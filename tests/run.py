#!/usr/bin/env python3
"""Runs every test suite of `make test` and prints one closing line,
`N passed, N failed`. A suite that crashes or prints no count counts as
one failure. Output of the suites is passed through as it comes."""

import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COUNT = re.compile(r"(\d+) passed, (\d+) failed")

VALGRIND = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect"]

SUITES = [
    ("man pages", ["sh", "tests/manlint.sh"], {}),
    ("unit", ["build/unit"], {}),
    ("unit under ASan+UBSan", ["build/asan/unit"], {}),
    ("unit under valgrind", VALGRIND + ["build/unit"], {}),
    *[(f"fuzz corpus {f} under ASan+UBSan",
       ["sh", "-c", f"build/asan/fuzz-{f} tests/fuzz/corpus/{f} && "
        f"echo 'fuzz-{f}: 1 passed, 0 failed'"], {})
      for f in ("query", "cookie", "conf", "slack_json", "handler")],
    ("end-to-end", [sys.executable, "tests/e2e.py"], {"CGI_BIN": "cgi-bin"}),
    ("end-to-end under ASan+UBSan", [sys.executable, "tests/e2e.py"],
     {"CGI_BIN": "build/asan/cgi-bin"}),
    # valgrind is slow: the flows and the failure table, CGI and FastCGI.
    ("end-to-end under valgrind",
     [sys.executable, "tests/e2e.py", "-k", "success_", "-k", "failure_table",
      "-k", "replay", "-k", "install_page", "-k", "methods"],
     {"CGI_BIN": "cgi-bin", "CGI_WRAPPER": " ".join(VALGRIND + [
         "--show-leak-kinds=definite,indirect"])}),
    ("admin command", [sys.executable, "tests/admin.py"],
     {"CGI_BIN": "cgi-bin", "BIN_DIR": "bin"}),
    ("admin command under ASan+UBSan", [sys.executable, "tests/admin.py"],
     {"CGI_BIN": "build/asan/cgi-bin", "BIN_DIR": "build/asan/bin"}),
    # The example files under the real servers (Apache, nginx, fcgiwrap,
    # spawn-fcgi, systemd-socket-activate), and the flow in Chromium.
    ("deployments", [sys.executable, "tests/deploy.py"], {}),
    ("browser", [sys.executable, "tests/browser/run.py"], {}),
]


def run(name, argv, extra):
    # Directories given to a suite are absolute: suites may change directory.
    extra = {k: os.path.join(ROOT, v) if k.endswith(("_BIN", "_DIR")) else v
             for k, v in extra.items()}
    env = dict(os.environ, **extra)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    print(f"=== {name}", flush=True)
    t0 = time.monotonic()
    p = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, errors="replace")
    last = None
    for line in p.stdout:
        sys.stdout.write(line)
        m = COUNT.search(line)
        if m:
            last = (int(m.group(1)), int(m.group(2)))
    rc = p.wait()
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
