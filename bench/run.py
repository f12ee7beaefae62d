#!/usr/bin/env python3
"""The benchmark (issue 6): slack-oauth-fcgi against trivial programs.

Starts on 127.0.0.1, in a temporary directory:

  bench/fake_slack          a minimal fast fake of Slack's Web API (any code)
  spawn-fcgi -F 2           hello-fcgi (the FastCGI floor) and slack-install:
                            two persistent processes each, configured from
                            the environment as in nginx-spawn-fcgi-example.conf
  spawn-fcgi -F 8           slack-oauth-redirect, which spends its time
                            waiting on Slack and on the disk (--redirect-processes)
  fcgiwrap -c 2             runs hello-cgi (the CGI floor) and slack-install
                            as CGI, configured with fastcgi_param as in
                            nginx-example.conf
  nginx                     one server for the FastCGI subjects, one for
                            the fcgiwrap ones (plain HTTP, no rate limit)

then measures each subject with wrk, the same load for all (-t2 -c16 -d10s
by default, after an unmeasured warm-up), samples the memory of every
process while it runs (Private_Clean + Private_Dirty of smaps_rollup, and
RSS), and prints one table: each figure, its floor, the ratio, the target
and pass/fail.  A CGI process lives too short to be sampled: its memory is
read once, at its exit_group(), which strace holds for a moment.

    python3 bench/run.py [--duration 10] [--connections 16] [--threads 2]
                         [--only NAME,...] [--results bench/RESULTS.md]

`make bench` builds what it needs and runs this.  Runs as root (the
servers then run as www-data, as in production) or as any user.
Python 3 standard library only.
"""

import argparse
import functools
import datetime
import grp
import os
import platform
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
import testlib  # noqa: E402
from testlib import free_port, port_open, stop_processes  # noqa: E402

CLIENT_ID = "123456789012.1234567890123"
SECRET = "bench-client-secret-0123456789abcdef"
SCOPES = "chat:write,commands"
COOKIE = "slack-app-oauth-state"

# Targets of issue 6.
T_RATIO = 0.8
T_P99_MS = 2.0
T_FLOWS = 3000
T_FAKE_X = 5
T_PRIV_KB = 2048
T_RSS_INSTALL_KB = 4096


class Fail(Exception):
    pass


wait_for = functools.partial(testlib.wait_for, exc=Fail)


# ------------------------------------------------------------ /proc
def mem_kb(pid):
    """(private kB, rss kB) of a process, from smaps_rollup."""
    priv = rss = 0
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for ln in f:
            k, _, v = ln.partition(":")
            if k in ("Private_Clean", "Private_Dirty"):
                priv += int(v.split()[0])
            elif k == "Rss":
                rss = int(v.split()[0])
    return priv, rss


def cpu_ticks(pid, children=False):
    """utime+stime (+ cutime+cstime of reaped children) in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    t = int(fields[11]) + int(fields[12])
    if children:
        t += int(fields[13]) + int(fields[14])
    return t


def ticks_of(pids):
    """{pid: cpu_ticks} of (pid, with reaped children) pairs still alive."""
    out = {}
    for pid, children in pids:
        try:
            out[pid] = cpu_ticks(pid, children)
        except OSError:
            pass
    return out


def children_of(pid):
    out = []
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            out = [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


class Sampler(threading.Thread):
    """Samples the memory of some processes every 0.2 s while it runs."""

    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids = list(pids)
        self.stop_ev = threading.Event()
        self.max = {}   # pid -> [priv, rss]

    def run(self):
        while True:
            for pid in self.pids:
                try:
                    p, r = mem_kb(pid)
                except (OSError, ValueError):
                    continue
                m = self.max.setdefault(pid, [0, 0])
                m[0] = max(m[0], p)
                m[1] = max(m[1], r)
            if self.stop_ev.wait(0.2):
                break

    def stop(self):
        self.stop_ev.set()
        self.join()

    def worst(self):
        """(private, rss) of the process with the most private memory."""
        if not self.max:
            return None
        return max(self.max.values())


# ------------------------------------------------------------ wrk
def parse_time(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    if not m:
        return None
    v = float(m.group(1))
    return v * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]


def parse_wrk(out):
    r = {"rps": None, "p50": None, "p99": None, "non2xx": 0, "errors": 0,
         "requests": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", out)
    if m:
        r["requests"] = int(m.group(1))
    for pct in ("50", "99"):
        m = re.search(r"^\s+%s(?:\.000)?%%\s+(\S+)" % pct, out, re.M)
        if m:
            r["p" + pct] = parse_time(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                  r"timeout (\d+)", out)
    if m:
        r["errors"] = sum(int(x) for x in m.groups())
    for k, v in re.findall(r"^flow: (\w+) ([\d.]+)$", out, re.M):
        r["flow_" + k] = float(v)
    return r


# ------------------------------------------------------------ the world
NGINX_CONF = """\
{user}
worker_processes {workers};
pid {dir}/run/nginx.pid;
daemon off;
error_log {dir}/log/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {dir}/tmp/nginx-body;
    proxy_temp_path {dir}/tmp/nginx-proxy;
    fastcgi_temp_path {dir}/tmp/nginx-fastcgi;
    uwsgi_temp_path {dir}/tmp/nginx-uwsgi;
    scgi_temp_path {dir}/tmp/nginx-scgi;
    access_log off;
    keepalive_requests 1000000;

    # Persistent FastCGI servers (nginx-spawn-fcgi-example.conf).
    server {{
        listen 127.0.0.1:{port_fcgi};
        include {dir}/etc/fastcgi_params;
        fastcgi_read_timeout 40s;
        location = /hello {{ fastcgi_pass unix:{dir}/run/hello.sock; }}
        location = /slack/install {{ fastcgi_pass unix:{dir}/run/slack-install.sock; }}
        location = /slack/oauth_redirect {{
            fastcgi_pass unix:{dir}/run/slack-oauth-redirect.sock;
        }}
        location / {{ return 404; }}
    }}

    # CGI through fcgiwrap (nginx-example.conf): configuration as
    # fastcgi_param, the secret in the config file.
    map $uri $program {{
        /hello          {hello_cgi};
        /slack/install  {install};
    }}
    server {{
        listen 127.0.0.1:{port_cgi};
        include {dir}/etc/fastcgi_params;
        fastcgi_param SCRIPT_FILENAME    $program;
        fastcgi_param SLACK_OAUTH_CONFIG {dir}/etc/slack-oauth.conf;
        fastcgi_param SLACK_OAUTH_DB     {dir}/db-cgi/slack-oauth.db;
        fastcgi_param SLACK_CLIENT_ID    {client_id};
        fastcgi_param SLACK_SCOPES       {scopes};
        fastcgi_param SLACK_API_URL      {api_url};
        fastcgi_read_timeout 40s;
        location = /hello {{ fastcgi_pass unix:{dir}/run/fcgiwrap.sock; }}
        location = /slack/install {{ fastcgi_pass unix:{dir}/run/fcgiwrap.sock; }}
        location / {{ return 404; }}
    }}
}}
"""


class World:
    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="slack-oauth-bench-")
        os.chmod(self.dir, 0o755)
        self.procs = []
        self.pidfiles = []
        self.root = os.geteuid() == 0
        if self.root:
            self.user = "www-data"
            self.uid = pwd.getpwnam(self.user).pw_uid
            self.gid = grp.getgrnam(self.user).gr_gid
        else:
            self.user = None
            self.uid, self.gid = os.geteuid(), os.getegid()
        # db-cgi: the CGI subjects' own database, so that no persistent
        # process holds it open (as in a CGI-only deployment, where each
        # run may be the only connection).
        for d in ("run", "log", "db", "db-cgi", "etc", "tmp"):
            os.makedirs(self.p(d))
        for d in ("run", "log", "db", "db-cgi"):
            os.chown(self.p(d), self.uid, self.gid)
        os.chmod(self.p("db"), 0o700)
        os.chmod(self.p("db-cgi"), 0o700)
        self.bin = {
            "hello-fcgi": os.path.join(args.build, "hello-fcgi"),
            "hello-cgi": os.path.join(args.build, "hello-cgi"),
            "fake-slack": os.path.join(args.build, "fake-slack"),
            "slack-install": os.path.join(args.cgi_bin, "slack-install"),
            "slack-oauth-redirect": os.path.join(args.cgi_bin,
                                                 "slack-oauth-redirect"),
        }
        for name, path in self.bin.items():
            if not os.access(path, os.X_OK):
                raise Fail("%s is not built (run make bench)" % path)
        self.port_fcgi = free_port()
        self.port_cgi = free_port()
        self.fake_port = None
        self.groups = {}    # subject -> pids to sample / charge CPU to

    def p(self, *parts):
        return os.path.join(self.dir, *parts)

    def spawn(self, argv, log=None, as_user=False, **kw):
        out = open(log, "ab") if log else subprocess.DEVNULL
        if as_user and self.root:
            kw.update(user=self.uid, group=self.gid, extra_groups=[])
        p = subprocess.Popen(argv, stdin=kw.pop("stdin", subprocess.DEVNULL),
                             stdout=kw.pop("stdout", out), stderr=out,
                             start_new_session=True, **kw)
        if log:
            out.close()
        self.procs.append(p)
        return p

    @property
    def api_url(self):
        return "http://127.0.0.1:%d/api/" % self.fake_port

    def env(self):
        extra = {}
        if self.args.preload:
            extra["LD_PRELOAD"] = self.args.preload
        for kv in self.args.env:
            k, _, v = kv.partition("=")
            extra[k] = v
        return {**extra, "PATH": "/usr/bin:/bin",
                "SLACK_OAUTH_CONFIG": self.p("etc/slack-oauth.conf"),
                "SLACK_OAUTH_DB": self.p("db/slack-oauth.db"),
                "SLACK_CLIENT_ID": CLIENT_ID,
                "SLACK_SCOPES": SCOPES,
                "SLACK_API_URL": self.api_url}

    def start(self):
        # The fake Slack, its port on its first line.
        p = self.spawn([self.bin["fake-slack"], "-p", "0", "-t",
                        str(self.args.fake_threads)],
                       stdout=subprocess.PIPE, log=self.p("log/fake.log"))
        line = p.stdout.readline().decode()
        m = re.match(r"port (\d+)", line)
        if not m:
            raise Fail("fake_slack did not start: %r" % line)
        self.fake_port = int(m.group(1))
        self.groups["fake"] = [p.pid]

        # The config file: the secret, root:www-data 0640 (README).
        conf = self.p("etc/slack-oauth.conf")
        with open(conf, "w") as f:
            f.write("# slack-oauth-fcgi benchmark\nSLACK_CLIENT_SECRET = %s\n"
                    % SECRET)
        os.chown(conf, 0 if self.root else self.uid, self.gid)
        os.chmod(conf, 0o640)
        shutil.copy("/etc/nginx/fastcgi_params", self.p("etc/fastcgi_params"))

        # spawn-fcgi (nginx-spawn-fcgi-example.conf).
        a = self.args
        for name, prog, n in (
                ("hello", "hello-fcgi", a.processes),
                ("slack-install", "slack-install", a.processes),
                ("slack-oauth-redirect", "slack-oauth-redirect",
                 a.redirect_processes)):
            pidfile = self.p("run/%s.pid" % name)
            argv = ["spawn-fcgi", "-s", self.p("run/%s.sock" % name),
                    "-M", "0660", "-F", str(n), "-P", pidfile]
            if self.root:
                argv += ["-u", self.user, "-g", self.user, "-U", self.user,
                         "-G", self.user]
            argv += ["--", "/bin/sh", "-c", 'exec "$0" 2>>"$1"',
                     self.bin[prog], self.p("log/%s.log" % name)]
            r = subprocess.run(argv, env=self.env(), cwd="/",
                               stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=20)
            if r.returncode != 0:
                raise Fail("spawn-fcgi %s: %s" % (name, r.stderr.strip()))
            self.pidfiles.append(pidfile)
            with open(pidfile) as f:
                self.groups["fcgi-" + name] = [int(x) for x in f.read().split()]

        # fcgiwrap -c 2 on a socket passed as fd 0 (as Debian's
        # fcgiwrap.socket does).
        s = socket.socket(socket.AF_UNIX)
        s.bind(self.p("run/fcgiwrap.sock"))
        os.chown(self.p("run/fcgiwrap.sock"), self.uid, self.gid)
        os.chmod(self.p("run/fcgiwrap.sock"), 0o660)
        s.listen(1024)
        fw = self.spawn(["/usr/sbin/fcgiwrap", "-c", str(self.args.processes)],
                        stdin=s.fileno(), log=self.p("log/fcgiwrap.log"),
                        as_user=True, cwd="/",
                        env={"PATH": "/usr/local/bin:/usr/bin:/bin"})
        s.close()
        # fcgiwrap -c 1 serves in its own process, -c N forks N workers.
        workers = self.args.processes if self.args.processes > 1 else 0
        wait_for(lambda: fw.poll() is None
                 and len(children_of(fw.pid)) >= workers, "fcgiwrap workers")
        self.groups["fcgiwrap"] = [fw.pid] + children_of(fw.pid)

        # nginx.
        with open(self.p("etc/nginx.conf"), "w") as f:
            f.write(NGINX_CONF.format(
                user="user %s;" % self.user if self.root else "",
                workers=self.args.nginx_workers, dir=self.dir,
                port_fcgi=self.port_fcgi, port_cgi=self.port_cgi,
                hello_cgi=self.bin["hello-cgi"], install=self.bin["slack-install"],
                client_id=CLIENT_ID, scopes=SCOPES, api_url=self.api_url))
        argv = ["nginx", "-p", self.dir, "-c", self.p("etc/nginx.conf"),
                "-e", self.p("log/nginx-error.log")]
        t = subprocess.run(argv + ["-t"], capture_output=True, text=True)
        if t.returncode != 0:
            raise Fail("nginx -t: " + t.stderr.strip()[-400:])
        ng = self.spawn(argv, log=self.p("log/nginx-stderr.log"))
        wait_for(lambda: ng.poll() is None and port_open(self.port_fcgi)
                 and port_open(self.port_cgi), "nginx")
        self.groups["nginx"] = [ng.pid] + children_of(ng.pid)

    def stop(self):
        stop_processes(self.procs, self.pidfiles)
        self.procs = []

    def cleanup(self):
        self.stop()
        if not self.args.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print("kept", self.dir)

    # -------------------------------------------------------- measuring
    def wrk(self, url, script=None, duration=None, latency=True):
        a = self.args
        argv = ["wrk", "-t%d" % a.threads, "-c%d" % a.connections,
                "-d%ds" % (duration or a.duration)]
        if latency:
            argv.append("--latency")
        if script:
            argv += ["-s", os.path.join(HERE, script)]
        argv.append(url)
        env = dict(os.environ, BENCH_COOKIE=COOKIE)
        r = subprocess.run(argv, capture_output=True, text=True, env=env,
                           timeout=(duration or a.duration) + 60)
        if r.returncode != 0:
            raise Fail("wrk %s: %s" % (url, r.stderr.strip()[-400:]))
        return r.stdout + r.stderr

    def measure(self, name, url, script=None, mem_group=None, cpu_groups=()):
        """Warm-up, then one measured wrk run with memory sampling and CPU
        accounting.  Returns the parsed figures."""
        if self.args.warmup > 0:
            self.wrk(url, script, duration=self.args.warmup, latency=False)
        subject = [(pid, g == "fcgiwrap") for g in cpu_groups
                   for pid in self.groups[g]]
        nginx = [(pid, False) for pid in self.groups["nginx"]]
        t0 = ticks_of(subject + nginx)
        sampler = Sampler(self.groups[mem_group] if mem_group else [])
        sampler.start()
        out = self.wrk(url, script)
        sampler.stop()
        t1 = ticks_of(subject + nginx)

        def spent(pids):
            return sum(t1[p] - t0[p] for p, _ in pids if p in t0 and p in t1)
        r = parse_wrk(out)
        r["raw"] = out
        r["mem"] = sampler.worst()
        r["cpu_s"] = spent(subject) / os.sysconf("SC_CLK_TCK")
        r["cpu_nginx_s"] = spent(nginx) / os.sysconf("SC_CLK_TCK")
        if self.args.verbose:
            print("---", name, "\n" + out)
        if r["rps"] is None:
            raise Fail("%s: no Requests/sec in wrk's output:\n%s" % (name, out))
        if r["non2xx"] or r["errors"]:
            print("warning: %s: %d non-2xx answers, %d socket errors"
                  % (name, r["non2xx"], r["errors"]), file=sys.stderr)
        return r

    def cgi_memory(self, prog, query=""):
        """(private kB, rss kB) of one CGI run of prog at its exit_group(),
        held there by strace for a moment, with the environment fcgiwrap
        gives it."""
        env = self.env()
        env["SLACK_OAUTH_DB"] = self.p("db-cgi/slack-oauth.db")
        env.update({"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET",
                    "QUERY_STRING": query, "SCRIPT_FILENAME": prog,
                    "SCRIPT_NAME": "/slack/install", "REQUEST_URI": "/slack/install",
                    "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": "127.0.0.1",
                    "SERVER_PORT": str(self.port_cgi), "REMOTE_ADDR": "127.0.0.1",
                    "SERVER_SOFTWARE": "nginx", "HTTP_HOST": "127.0.0.1"})
        argv = ["strace", "-qq", "-o", "/dev/null", "-e", "trace=exit_group",
                "-e", "inject=exit_group:delay_enter=500000"]
        if self.root:
            argv = ["setpriv", "--reuid", str(self.uid), "--regid", str(self.gid),
                    "--clear-groups"] + argv
        p = subprocess.Popen(argv + [prog], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd="/")
        # strace's child: the program itself.
        best = None
        t0 = time.monotonic()
        while time.monotonic() - t0 < 5:
            kids = []
            for c in children_of(p.pid):
                kids += [c] + children_of(c)
            for k in kids:
                try:
                    with open("/proc/%d/comm" % k) as f:
                        comm = f.read().strip()
                    if comm == "strace":
                        continue
                    with open("/proc/%d/syscall" % k) as f:
                        sc = f.read().split()[0]
                except OSError:
                    continue
                if sc == "231":   # exit_group, held by strace
                    best = mem_kb(k)
            if best is not None:
                break
            time.sleep(0.02)
        out, err = p.communicate(timeout=10)
        if not out.startswith(b"Status: 200"):
            print("warning: CGI %s: %r %r" % (prog, out[:100], err[:300]),
                  file=sys.stderr)
        return best


# ------------------------------------------------------------ report
def fmt_n(v):
    return "—" if v is None else "{:,.0f}".format(v)


def fmt_ms(v):
    return "—" if v is None else "%.2f ms" % v


def fmt_kb(v):
    return "—" if v is None else "{:,} kB".format(v)


def fmt_x(v):
    return "—" if v is None else "%.2f×" % v


def verdict(ok):
    return "—" if ok is None else ("pass" if ok else "**FAIL**")


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def build_table(res, mem):
    rows = []   # figure, measured, floor, ratio, target, result

    def row(fig, val, floor, rat, target, ok):
        rows.append((fig, val, floor, rat, target, verdict(ok)))

    ff = res.get("fcgi-floor")
    cf = res.get("cgi-floor")
    fi = res.get("fcgi-install")
    ci = res.get("cgi-install")
    fl = res.get("flow")
    fk = res.get("fake")
    if ff:
        row("FastCGI floor: hello-fcgi, spawn-fcgi ×2, req/s", fmt_n(ff["rps"]),
            "", "1.00×", "", None)
        row("FastCGI floor: p50 / p99", "%s / %s" % (fmt_ms(ff["p50"]), fmt_ms(ff["p99"])),
            "", "", "", None)
    if fi:
        r = ratio(fi["rps"], ff and ff["rps"])
        row("install, FastCGI, req/s", fmt_n(fi["rps"]), fmt_n(ff and ff["rps"]),
            fmt_x(r), "≥ %.1f× floor" % T_RATIO, None if r is None else r >= T_RATIO)
        row("install, FastCGI, p50 / p99",
            "%s / %s" % (fmt_ms(fi["p50"]), fmt_ms(fi["p99"])),
            fmt_ms(ff and ff["p99"]), fmt_x(ratio(fi["p99"], ff and ff["p99"])),
            "p99 ≤ %g ms" % T_P99_MS,
            None if fi["p99"] is None else fi["p99"] <= T_P99_MS)
    if cf:
        row("CGI floor: hello-cgi, fcgiwrap -c 2, req/s", fmt_n(cf["rps"]), "",
            "1.00×", "", None)
        row("CGI floor: p50 / p99", "%s / %s" % (fmt_ms(cf["p50"]), fmt_ms(cf["p99"])),
            "", "", "", None)
    if ci:
        r = ratio(ci["rps"], cf and cf["rps"])
        row("install, CGI via fcgiwrap, req/s", fmt_n(ci["rps"]),
            fmt_n(cf and cf["rps"]), fmt_x(r), "≥ %.1f× floor" % T_RATIO,
            None if r is None else r >= T_RATIO)
        row("install, CGI via fcgiwrap, p50 / p99",
            "%s / %s" % (fmt_ms(ci["p50"]), fmt_ms(ci["p99"])),
            fmt_ms(cf and cf["p99"]), fmt_x(ratio(ci["p99"], cf and cf["p99"])), "",
            None)
    flows = None
    if fl:
        flows = fl.get("flow_flows", 0) / fl.get("flow_seconds", 1)
        bad = int(fl.get("flow_bad", 0)) + fl["non2xx"] + fl["errors"]
        row("full flow, FastCGI, flows/s (install + redirect)", fmt_n(flows),
            fmt_n(ff and ff["rps"] / 2 if ff else None) + " (floor req/s ÷ 2)",
            fmt_x(ratio(flows, ff and ff["rps"] / 2)), "≥ {:,}".format(T_FLOWS),
            flows >= T_FLOWS and bad == 0)
        row("full flow: p50 / p99 per request (both kinds)",
            "%s / %s" % (fmt_ms(fl["p50"]), fmt_ms(fl["p99"])), "", "", "", None)
        if bad:
            row("full flow: failed answers", str(bad), "", "", "0", False)
    if fk:
        cap = fk["rps"] / 2
        row("fake Slack alone (2 calls a flow), flows/s", fmt_n(cap),
            fmt_n(flows) + " (flow rate)" if flows else "",
            fmt_x(ratio(cap, flows)), "≥ %d× flow rate" % T_FAKE_X,
            None if flows is None else cap >= T_FAKE_X * flows)

    def mrow(label, m, floor, rss_target=None):
        if m is None:
            return
        fp = floor[0] if floor else None
        fr = floor[1] if floor else None
        row(label + ", private", fmt_kb(m[0]), fmt_kb(fp), fmt_x(ratio(m[0], fp)),
            "≤ %d MB" % (T_PRIV_KB // 1024), m[0] <= T_PRIV_KB)
        row(label + ", RSS", fmt_kb(m[1]), fmt_kb(fr), fmt_x(ratio(m[1], fr)),
            "≤ %d MB" % (rss_target // 1024) if rss_target else "",
            None if rss_target is None else m[1] <= rss_target)

    hf = mem.get("hello-fcgi")
    hc = mem.get("hello-cgi")
    if hf:
        row("memory: hello-fcgi (floor), private / RSS",
            "%s / %s" % (fmt_kb(hf[0]), fmt_kb(hf[1])), "", "", "", None)
    mrow("memory: slack-install, FastCGI", mem.get("fcgi-install"), hf,
         T_RSS_INSTALL_KB)
    mrow("memory: slack-oauth-redirect, FastCGI", mem.get("fcgi-redirect"), hf)
    if hc:
        row("memory: hello-cgi (floor), private / RSS",
            "%s / %s" % (fmt_kb(hc[0]), fmt_kb(hc[1])), "", "", "", None)
    mrow("memory: slack-install, CGI", mem.get("cgi-install"), hc,
         T_RSS_INSTALL_KB)
    return rows


def rate(r):
    """What a run is ranked by: flows/s for the flow, else requests/s."""
    if r.get("flow_seconds"):
        return r.get("flow_flows", 0) / r["flow_seconds"]
    return r["rps"]


def median_run(rs):
    """The run with the median rate; memory is the worst of all runs."""
    rs = sorted(rs, key=rate)
    m = dict(rs[len(rs) // 2])
    mems = [r["mem"] for r in rs if r["mem"]]
    m["mem"] = max(mems) if mems else None
    m["rates"] = [rate(r) for r in rs]
    return m


def cpu_rows(res):
    """CPU time per request of the subject's own processes (informational)."""
    out = []
    for key, label in (("fcgi-floor", "hello-fcgi ×2"),
                       ("fcgi-install", "slack-install ×2 (FastCGI)"),
                       ("cgi-floor", "fcgiwrap + hello-cgi children"),
                       ("cgi-install", "fcgiwrap + slack-install children"),
                       ("flow", "slack-install + slack-oauth-redirect (per flow)"),
                       ("fake", "fake Slack (per call)")):
        r = res.get(key)
        if not r or not r.get("requests"):
            continue
        n = r["requests"]
        if key == "flow":
            n = max(1, r.get("flow_flows", 0))
        out.append((label, "%.1f µs" % (r["cpu_s"] * 1e6 / n)))
    for key, label in (("fcgi-floor", "nginx, for hello-fcgi"),
                       ("fcgi-install", "nginx, for slack-install (FastCGI)"),
                       ("cgi-floor", "nginx, for hello-cgi"),
                       ("cgi-install", "nginx, for slack-install (CGI)")):
        r = res.get(key)
        if r and r.get("requests"):
            out.append((label, "%.1f µs" % (r["cpu_nginx_s"] * 1e6
                                             / r["requests"])))
    return out


def markdown(rows):
    head = ("figure", "measured", "floor", "ratio", "target", "result")
    lines = ["| " + " | ".join(head) + " |",
             "| " + " | ".join("---" for _ in head) + " |"]
    for r in rows:
        lines.append("| " + " | ".join(r) + " |")
    return "\n".join(lines)


def machine():
    mem = 0
    with open("/proc/meminfo") as f:
        for ln in f:
            if ln.startswith("MemTotal:"):
                mem = int(ln.split()[1])
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    cpu = ln.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%d cores (nproc), %.1f GiB memory, %s, Linux %s" % (
        os.cpu_count(), mem / 1048576, cpu or platform.machine(), platform.release())


def versions():
    out = []
    for argv in (["nginx", "-v"], ["wrk", "-v"]):
        try:
            r = subprocess.run(argv, capture_output=True, text=True)
            out.append((r.stdout + r.stderr).strip().splitlines()[0])
        except (OSError, IndexError):
            pass
    return "; ".join(out)


# ------------------------------------------------------------ main
SUBJECTS = ("fcgi-floor", "fcgi-install", "cgi-floor", "cgi-install", "flow",
            "fake")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per run")
    ap.add_argument("--warmup", type=int, default=2, help="unmeasured seconds first")
    ap.add_argument("--rounds", type=int, default=3,
                    help="runs of each subject; the median one is reported")
    ap.add_argument("--threads", type=int, default=2, help="wrk -t")
    ap.add_argument("--connections", type=int, default=16, help="wrk -c")
    ap.add_argument("--processes", type=int, default=2,
                    help="spawn-fcgi -F and fcgiwrap -c")
    ap.add_argument("--redirect-processes", type=int, default=8,
                    help="spawn-fcgi -F for slack-oauth-redirect")
    ap.add_argument("--nginx-workers", default="1")
    ap.add_argument("--fake-threads", type=int, default=1)
    ap.add_argument("--only", default=",".join(SUBJECTS),
                    help="comma-separated subset of " + ",".join(SUBJECTS))
    ap.add_argument("--results", help="write the table to this Markdown file")
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "bench"))
    ap.add_argument("--cgi-bin", default=os.path.join(ROOT, "cgi-bin"))
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--preload", help="what-if experiments: LD_PRELOAD for the "
                    "spawn-fcgi programs (FastCGI subjects only)")
    ap.add_argument("--env", action="append", default=[], metavar="K=V",
                    help="more environment for the spawn-fcgi programs")
    ap.add_argument("-v", "--verbose", action="store_true", help="wrk's output")
    args = ap.parse_args()
    # The servers run in /: absolute paths.
    args.build = os.path.abspath(args.build)
    args.cgi_bin = os.path.abspath(args.cgi_bin)
    only = args.only.split(",")
    for s in only:
        if s not in SUBJECTS:
            ap.error("unknown subject %r" % s)
    for tool in ("wrk", "nginx", "spawn-fcgi", "strace"):
        if shutil.which(tool) is None and not os.path.exists("/usr/sbin/" + tool):
            sys.exit("bench: %s is missing (make bench installs it)" % tool)

    w = World(args)
    res, mem = {}, {}
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        w.start()
        f, c = "http://127.0.0.1:%d" % w.port_fcgi, "http://127.0.0.1:%d" % w.port_cgi
        plan = [
            ("fcgi-floor", f + "/hello", None, "fcgi-hello", ["fcgi-hello"]),
            ("fcgi-install", f + "/slack/install", None, "fcgi-slack-install",
             ["fcgi-slack-install"]),
            ("cgi-floor", c + "/hello", None, None, ["fcgiwrap"]),
            ("cgi-install", c + "/slack/install", None, None, ["fcgiwrap"]),
            ("flow", f + "/", "flow.lua", "fcgi-slack-oauth-redirect",
             ["fcgi-slack-install", "fcgi-slack-oauth-redirect"]),
            ("fake", "http://127.0.0.1:%d/api/" % w.fake_port, "fake.lua", None,
             ["fake"]),
        ]
        # Every subject once per round, in turn; each figure is then the
        # run with the median rate (the machine's neighbours come and go).
        runs = {}
        for rnd in range(args.rounds):
            for name, url, script, mg, cg in plan:
                if name not in only:
                    continue
                print("bench: %s (round %d of %d) ..." % (name, rnd + 1,
                      args.rounds), file=sys.stderr, flush=True)
                runs.setdefault(name, []).append(
                    w.measure(name, url, script, mg, cg))
        for name, rs in runs.items():
            res[name] = median_run(rs)
        if "fcgi-floor" in res:
            mem["hello-fcgi"] = res["fcgi-floor"]["mem"]
        if "fcgi-install" in res:
            mem["fcgi-install"] = res["fcgi-install"]["mem"]
        if "flow" in res:
            mem["fcgi-redirect"] = res["flow"]["mem"]
        if "cgi-floor" in only:
            mem["hello-cgi"] = w.cgi_memory(w.bin["hello-cgi"])
        if "cgi-install" in only:
            mem["cgi-install"] = w.cgi_memory(w.bin["slack-install"])
    finally:
        w.cleanup()

    rows = build_table(res, mem)
    table = markdown(rows)
    settings = ("wrk -t%d -c%d -d%ds --latency (after a %ds warm-up) for every "
                "subject, %d rounds, the median run reported; spawn-fcgi -F %d (slack-oauth-redirect: -F %d), "
                "fcgiwrap -c %d, nginx %s worker(s), fake Slack %d thread(s)" % (
                    args.threads, args.connections, args.duration, args.warmup,
                    args.rounds, args.processes, args.redirect_processes, args.processes,
                    args.nginx_workers, args.fake_threads))
    cpu = cpu_rows(res)
    cpu_md = "\n".join(["| processes | CPU per request |", "| --- | --- |"] +
                       ["| %s | %s |" % (a, b) for a, b in cpu])
    cpu_md += "\n\n" + "\n".join(
        ["| subject | rate of each round (req/s; flows/s for the flow) |",
         "| --- | --- |"] +
        ["| %s | %s |" % (k, " / ".join(fmt_n(x) for x in res[k]["rates"]))
         for k in SUBJECTS if k in res])
    print()
    print(table)
    print()
    print(cpu_md)
    print()
    print(settings)
    failed = [r for r in rows if r[5] == "**FAIL**"]
    print("%d targets met, %d missed" % (
        sum(1 for r in rows if r[5] == "pass"), len(failed)))
    if args.results:
        write_results(args.results, started, table, cpu_md, settings)
        print("wrote", args.results)
    return 0


def write_results(path, started, table, cpu_md, settings):
    head = """# Benchmark results

`make bench` (bench/run.py) on 127.0.0.1: each subject behind nginx, measured
with the same wrk load, against the trivial programs in bench/ (the floors).
Ratios are taken within one run; absolute figures move from run to run and
from machine to machine.

"""
    runs = []
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
        # Keep earlier runs below the newest.
        m = re.search(r"^## Run .*", old, re.M | re.S)
        if m:
            runs.append(m.group(0).rstrip() + "\n")
    body = "## Run of %s\n\nMachine: %s.\nTools: %s.\nLoad: %s.\n\n%s\n\n%s\n" % (
        started.strftime("%Y-%m-%d %H:%M UTC"), machine(), versions(), settings,
        table, cpu_md)
    with open(path, "w") as f:
        f.write(head + body + ("\n" + runs[0] if runs else ""))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Fail as e:
        sys.exit("bench: " + str(e))
