#!/usr/bin/env python3
"""Where a request's cost goes: the per-request path of each FastCGI program
and the start of each CGI program, next to the trivial "hello" floors.

    python3 bench/profile.py [--requests 200] [--only fcgi,cgi] [--keep]

FastCGI (one process each, driven directly over its socket, no nginx):
  - instructions per request (valgrind --tool=callgrind, collecting only
    inside libfcgi's accept and finish and the handler, so that
    start-up is left out), with the top functions, inclusive;
  - system calls per request (strace -c, attached after a first request).
  The redirect is profiled over whole flows: each of its requests carries a
  state issued by a slack-install process, with the code going to
  bench/fake_slack.

CGI (one process per request, as fcgiwrap runs them):
  - wall and CPU time per run (perf stat -r, or a timed loop without perf),
    page faults, shared objects loaded, LD_DEBUG=statistics (the dynamic
    linker's relocation time), system calls of one run (strace -c).

Needs valgrind, strace; perf when present.  `make bench` builds what this uses
(build/bench/*, cgi-bin/*).  Python 3 standard library only.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
import fcgi_client  # noqa: E402

CLIENT_ID = "123456789012.1234567890123"
SECRET = "bench-client-secret-0123456789abcdef"
COOKIE = "slack-app-oauth-state"


def cgi_params(path, query="", cookie=None):
    p = {"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET",
         "QUERY_STRING": query, "SCRIPT_NAME": path,
         "REQUEST_URI": path + ("?" + query if query else ""),
         "DOCUMENT_URI": path, "SERVER_PROTOCOL": "HTTP/1.1",
         "SERVER_SOFTWARE": "nginx/1.22.1", "SERVER_NAME": "127.0.0.1",
         "SERVER_PORT": "8080", "SERVER_ADDR": "127.0.0.1",
         "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000",
         "HTTP_HOST": "127.0.0.1:8080", "HTTP_USER_AGENT": "bench",
         "CONTENT_TYPE": "", "CONTENT_LENGTH": ""}
    if cookie:
        p["HTTP_COOKIE"] = cookie
    return p


class Env:
    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="slack-oauth-profile-")
        os.makedirs(self.p("db"), mode=0o700)
        self.conf = self.p("slack-oauth.conf")
        with open(self.conf, "w") as f:
            f.write("SLACK_CLIENT_SECRET = %s\n" % SECRET)
        os.chmod(self.conf, 0o600)
        self.fake = subprocess.Popen([os.path.join(args.build, "fake-slack"), "-p", "0"],
                                     stdout=subprocess.PIPE)
        m = re.match(rb"port (\d+)", self.fake.stdout.readline())
        self.api = "http://127.0.0.1:%d/api/" % int(m.group(1))
        self.servers = []

    def p(self, *a):
        return os.path.join(self.dir, *a)

    def env(self):
        return {"PATH": "/usr/bin:/bin", "SLACK_OAUTH_CONFIG": self.conf,
                "SLACK_OAUTH_DB": self.p("db", "slack-oauth.db"),
                "SLACK_CLIENT_ID": CLIENT_ID, "SLACK_SCOPES": "chat:write,commands",
                "SLACK_API_URL": self.api}

    def server(self, binary, wrapper=()):
        s = fcgi_client.FcgiServer(binary, env=self.env(), sock_dir=self.dir,
                                   wrapper=wrapper)
        self.servers.append(s)
        return s

    def cleanup(self):
        for s in self.servers:
            s.stop(grace=20)
        self.fake.terminate()
        self.fake.wait()
        if self.args.keep:
            print("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def issue_state(srv):
    st, hdrs, _, _ = srv.request(cgi_params("/slack/install"))
    for k, v in hdrs:
        if k.lower() == "set-cookie" and v.startswith(COOKIE + "="):
            return v.split(";")[0].split("=", 1)[1]
    raise SystemExit("profile: slack-install issued no state (status %d)" % st)


def drive(e, name, srv, n, installer):
    """n requests of the subject to srv."""
    for i in range(n):
        if name == "hello-fcgi":
            st, _, _, _ = srv.request(cgi_params("/hello"))
        elif name == "slack-install":
            st, _, _, _ = srv.request(cgi_params("/slack/install"))
        else:
            state = issue_state(installer)
            st, _, body, _ = srv.request(cgi_params(
                "/slack/oauth_redirect", "code=bench-%d&state=%s" % (i, state),
                "%s=%s" % (COOKIE, state)))
            if st == 200 and b"Example Team" not in body:
                st = -1
        if st != 200:
            raise SystemExit("profile: %s answered %d" % (name, st))


FCGI = {"hello-fcgi": ("build", "hello-fcgi"),
        "slack-install": ("cgi_bin", "slack-install"),
        "slack-oauth-redirect": ("cgi_bin", "slack-oauth-redirect")}


def binary(args, name):
    where, f = FCGI.get(name, (None, None)) if name in FCGI else (None, None)
    if where is None:
        where, f = {"hello-cgi": ("build", "hello-cgi")}.get(name, ("cgi_bin", name))
    return os.path.join(getattr(args, where), f)


def callgrind_run(e, name, n, installer):
    out = e.p("callgrind.%s.%d" % (name, n))
    srv = e.server(binary(e.args, name),
                   wrapper=("valgrind", "--tool=callgrind", "-q",
                            "--callgrind-out-file=" + out,
                            # Only the per-request path: libfcgi's accept and
                            # finish, the handler (serve.c's one(); the hello's
                            # FCGX_PutStr).
                            "--collect-atstart=no",
                            "--toggle-collect=FCGX_Accept_r",
                            "--toggle-collect=FCGX_Finish_r",
                            "--toggle-collect=one",
                            "--toggle-collect=FCGX_PutStr"))
    # Valgrind starts slowly: the first request waits for it.
    drive(e, name, srv, n, installer)
    srv.stop(grace=30)
    total = 0
    with open(out) as f:
        for ln in f:
            if ln.startswith("totals:") or ln.startswith("summary:"):
                total = int(ln.split()[1])
    return total, out


def annotate(path, per, n):
    r = subprocess.run(["callgrind_annotate", "--inclusive=yes", path],
                       capture_output=True, text=True)
    rows = []
    for ln in r.stdout.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S.*)$", ln)
        if not m:
            continue
        ir = int(m.group(1).replace(",", ""))
        fn = m.group(2)
        rows.append((ir, fn))
    return rows


def strace_run(e, name, n, installer):
    """System calls of n requests to a running process (strace attached after
    a first request), as {name: calls}."""
    out = e.p("strace.%s.%d" % (name, n))
    srv = e.server(binary(e.args, name))
    drive(e, name, srv, 1, installer)
    pid = srv.procs[0].pid
    st = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p", str(pid)],
                          stderr=subprocess.PIPE)
    st.stderr.readline()    # "strace: Process N attached"
    drive(e, name, srv, n, installer)
    st.send_signal(signal.SIGINT)
    st.wait(timeout=20)
    srv.stop(grace=10)
    counts = {}
    with open(out) as f:
        for ln in f:
            parts = ln.split()
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                counts[parts[-1]] = int(parts[3])
    return counts


def profile_fcgi(args):
    n = args.requests
    e = Env(args)
    try:
        installer = e.server(binary(args, "slack-install"))
        issue_state(installer)   # creates the database
        for name in ("hello-fcgi", "slack-install", "slack-oauth-redirect"):
            print("== %s, FastCGI: per request (marginal over %d requests)" % (name, n))
            irn, path = callgrind_run(e, name, n, installer)
            per = irn / n
            print("instructions per request: {:,.0f}".format(per))
            rows = annotate(path, per, n)
            if rows:
                print("top functions, inclusive, instructions per request:")
                shown = 0
                for ir, fn in rows:
                    if ir / n < per * 0.02 or shown >= args.top:
                        continue
                    print("  %12s  %s" % ("{:,.0f}".format(ir / n), fn[:110]))
                    shown += 1
            cn = strace_run(e, name, n, installer)
            diff = {k: v / n for k, v in cn.items()}
            diff = {k: v for k, v in diff.items() if v >= 0.05}
            print("system calls per request: %.1f: %s" % (
                sum(diff.values()), ", ".join(
                    "%s %.2g" % (k, v) for k, v in
                    sorted(diff.items(), key=lambda kv: -kv[1]))))
            print()
    finally:
        e.cleanup()


def profile_cgi(args):
    e = Env(args)
    try:
        # A database with its key, as in production.
        inst = e.server(binary(args, "slack-install"))
        issue_state(inst)
        inst.stop()
        perf = shutil.which("perf")
        for name in ("hello-cgi", "slack-install"):
            b = binary(args, name)
            env = dict(e.env(), **cgi_params("/slack/install"))
            env["SCRIPT_FILENAME"] = b
            print("== %s, CGI: one run" % name)
            r = subprocess.run(["ldd", b], capture_output=True, text=True)
            libs = [ln.split()[0] for ln in r.stdout.splitlines() if "=>" in ln
                    or ln.strip().startswith("/")]
            print("shared objects: %d (%s)" % (len(libs), " ".join(
                os.path.basename(x) for x in libs)))
            if perf:
                r = subprocess.run([perf, "stat", "-r", str(args.runs), "-x,", "-e",
                                    "task-clock,page-faults,instructions:u", b],
                                   env=env, capture_output=True, text=True,
                                   stdin=subprocess.DEVNULL)
                for ln in r.stderr.splitlines():
                    f = ln.split(",")
                    if len(f) > 3 and f[2] in ("task-clock", "page-faults",
                                               "instructions:u"):
                        unit = " ms" if f[2] == "task-clock" else ""
                        print("%s per run: %s%s" % (f[2], f[0], unit))
            r = subprocess.run([b], env=dict(env, LD_DEBUG="statistics"),
                               capture_output=True, text=True)
            stats = [re.sub(r"^\s*\d+:\s*", "", ln) for ln in r.stderr.splitlines()
                     if "relocation" in ln or "objects" in ln or "total startup" in ln]
            for s in stats:
                print("ld.so: " + re.sub(r"\s+", " ", s.strip()))
            out = e.p("strace.cgi." + name)
            subprocess.run(["strace", "-f", "-c", "-o", out, b], env=env,
                           capture_output=True)
            with open(out) as f:
                calls = [(ln.split()[-1], int(ln.split()[3])) for ln in f
                         if len(ln.split()) >= 5 and ln.split()[0][0].isdigit()
                         and ln.split()[-1] != "total"]
            print("system calls: %d: %s" % (sum(c for _, c in calls), ", ".join(
                "%s %d" % kv for kv in sorted(calls, key=lambda kv: -kv[1]))))
            print()
    finally:
        e.cleanup()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--runs", type=int, default=300, help="perf stat -r, CGI")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--only", default="fcgi,cgi")
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "bench"))
    ap.add_argument("--cgi-bin", default=os.path.join(ROOT, "cgi-bin"))
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    args.cgi_bin = os.path.abspath(args.cgi_bin)
    only = args.only.split(",")
    if "fcgi" in only:
        profile_fcgi(args)
    if "cgi" in only:
        profile_cgi(args)


if __name__ == "__main__":
    main()
