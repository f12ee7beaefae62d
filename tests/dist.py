#!/usr/bin/env python3
"""The `make dist` tarball on a host without a compiler, as shared hosting
runs it.

The tarball (build/dist/slack-oauth-fcgi-<version>-linux-<arch>.tar.gz) is
unpacked into a minimal root that holds only glibc, libcurl and its
dependencies, and libsqlite3: no libcjson, no libfcgi, no /etc/slack-oauth.
It is set up the way its INSTALL says (cgi-bin/ renamed to
~/public_html/slack, the config file in ~/.config/slack-oauth/), and the
programs run there as CGI under chroot as an unprivileged user with no HOME
in their environment, the way suexec runs them: a whole flow against the
fake Slack, an event, the admin command's check and list, then the config
file with bad modes and another owner. Before that, what the tarball's
programs need at run time is read with readelf and objdump.

Needs root (chroot, mount). Prints "ok - …" / "FAIL - …", then
"N passed, N failed".
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.parse

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from fake_slack import TEAM_ID, FakeSlack, event_envelope, sign_event  # noqa: E402
from fcgi_client import parse_cgi_response  # noqa: E402
from testlib import (Runner, TestFailure, add_secret, add_state, check,  # noqa: E402
                     dist_tarball, eq, record_output, redact, version)

UID = GID = 12345
USER = "site"
HOME = "/home/" + USER
CLIENT_ID = "1234567890.1357924680"
CLIENT_SECRET = "cs" + os.urandom(16).hex()
SIGNING_SECRET = os.urandom(16).hex()
add_secret(CLIENT_SECRET, "client secret")
add_secret(SIGNING_SECRET, "signing secret")
GLIBC_MAX = (2, 34)       # what a Debian 12 build needs at least
# What the host must have; the rest travels in the tarball.
HOST_LIBS = {"libc.so.6", "libcurl.so.4", "libsqlite3.so.0"}
BUNDLED = {"libcjson.so.1", "libfcgi.so.0"}


def elf(path):
    """(DT_NEEDED, DT_RUNPATH, the highest GLIBC_ version referenced)."""
    d = subprocess.run(["readelf", "-d", path], capture_output=True,
                       text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", d)
    runpath = re.findall(r"\((?:RUNPATH|RPATH)\)\s+Library r\w*path: "
                         r"\[([^\]]*)\]", d)
    t = subprocess.run(["objdump", "-T", path], capture_output=True,
                       text=True, check=True).stdout
    vers = {tuple(int(x) for x in v.split("."))
            for v in re.findall(r"GLIBC_(\d+\.\d+(?:\.\d+)?)", t)}
    return needed, runpath, max(vers) if vers else None


# ---------------------------------------------------------------- the root
def host_closure(libs):
    """Every file the loader maps for libs on this machine: (path as the
    loader found it, real file)."""
    out = {}
    for lib in libs:
        r = subprocess.run(["ldd", lib], capture_output=True, text=True,
                           check=True)
        for m in re.finditer(r"(?:=>\s*)?(/\S+)\s+\(0x", r.stdout):
            out[m.group(1)] = os.path.realpath(m.group(1))
        out[lib] = os.path.realpath(lib)
    return out


def find_lib(name):
    for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
              "/lib64", "/usr/lib64", "/lib", "/usr/lib"):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    raise TestFailure("this machine has no %s" % name)


def make_root(top):
    """A root holding glibc, libcurl and its dependencies, libsqlite3, a
    passwd entry for USER, /dev/null and /dev/urandom; nothing else."""
    root = os.path.join(top, "root")
    files = host_closure([find_lib("libcurl.so.4"),
                          find_lib("libsqlite3.so.0")])
    for path, real in files.items():
        dest = root + path
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if not os.path.exists(dest):
            shutil.copy2(real, dest)
    os.makedirs(root + "/etc")
    with open(root + "/etc/passwd", "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n"
                "%s:x:%d:%d:a customer:%s:/bin/sh\n" % (USER, UID, GID, HOME))
    with open(root + "/etc/group", "w") as f:
        f.write("root:x:0:\n%s:x:%d:\n" % (USER, GID))
    with open(root + "/etc/nsswitch.conf", "w") as f:
        f.write("passwd: files\ngroup: files\n")
    os.makedirs(root + "/dev")
    os.makedirs(root + "/proc")
    for name, minor in (("null", 3), ("urandom", 9)):
        os.mknod(root + "/dev/" + name, 0o666 | 0o020000,
                 os.makedev(1, minor))
    os.makedirs(root + "/tmp", mode=0o1777)
    os.chmod(root + "/tmp", 0o1777)
    return root


def install_tarball(root):
    """INSTALL's steps, as the customer: unpack in the home, rename cgi-bin
    to ~/public_html/slack and htaccess-example to .htaccess, the database
    and config directories 0700."""
    home = root + HOME
    os.makedirs(home + "/public_html")
    with tarfile.open(dist_tarball()) as t:
        t.extractall(home)
    top = glob.glob(home + "/slack-oauth-fcgi-*")
    check(len(top) == 1, "the tarball holds %d top directories" % len(top))
    os.rename(top[0] + "/cgi-bin", home + "/public_html/slack")
    os.rename(home + "/public_html/slack/htaccess-example",
              home + "/public_html/slack/.htaccess")
    for d in (home + "/slack-oauth", home + "/.config/slack-oauth"):
        os.makedirs(d, mode=0o700)
    for dirpath, dirs, names in os.walk(home):
        for n in dirs + names:
            os.lchown(os.path.join(dirpath, n), UID, GID)
    os.chown(home, UID, GID)
    os.chmod(home, 0o711)
    return "/" + os.path.relpath(top[0], root)


# ------------------------------------------------------------- running it
class Chroot:
    def __init__(self, root, fs):
        self.root, self.fs = root, fs
        self.conf = root + HOME + "/.config/slack-oauth/slack-oauth.conf"

    def write_conf(self, mode=0o600, owner=UID):
        lines = ["SLACK_CLIENT_ID = " + CLIENT_ID,
                 "SLACK_CLIENT_SECRET = " + CLIENT_SECRET,
                 "SLACK_SIGNING_SECRET = " + SIGNING_SECRET,
                 "SLACK_SCOPES = chat:write,commands",
                 "SLACK_REDIRECT_URI = https://example.org/slack/"
                 "oauth_redirect",
                 "SLACK_OAUTH_DB = %s/slack-oauth/slack-oauth.db" % HOME,
                 "SLACK_API_URL = " + self.fs.api_url,
                 "SLACK_AUTHORIZE_URL = " + self.fs.authorize_url]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chown(self.conf, owner, owner)
        os.chmod(self.conf, mode)

    def run(self, argv, env, body=b""):
        """argv inside the root as USER, with env and nothing else (no
        HOME); /proc mounted in a mount namespace of its own ($ORIGIN is
        read from /proc/self/exe, as on any host)."""
        script = ('r=$1; shift; mount -t proc proc "$r/proc" && '
                  'exec chroot --userspec=%d:%d --groups=%d "$r" "$@"'
                  % (UID, GID, GID))
        check("HOME" not in env, "HOME in the environment")
        full = dict(env, PATH="/usr/sbin:/usr/bin:/sbin:/bin")
        return subprocess.run(["unshare", "--mount", "--propagation",
                               "private", "sh", "-c", script, "sh",
                               self.root] + argv, input=body, env=full,
                              capture_output=True, timeout=60)

    def cgi(self, prog, query="", cookie=None, method="GET", body=b"",
            extra=None):
        env = {"GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
               "REQUEST_METHOD": method, "QUERY_STRING": query,
               "SCRIPT_NAME": "/slack/" + prog, "SERVER_NAME": "example.org",
               "SERVER_PORT": "443", "HTTPS": "on",
               "REMOTE_ADDR": "192.0.2.7", "DOCUMENT_ROOT": HOME +
               "/public_html"}
        if cookie:
            env["HTTP_COOKIE"] = cookie
        if body:
            env["CONTENT_LENGTH"] = str(len(body))
        env.update(extra or {})
        p = self.run([HOME + "/public_html/slack/" + prog], env, body)
        log = p.stderr.decode("utf-8", "replace")
        record_output("dist: stderr of " + prog, log)
        check(p.returncode == 0, "%s: exit %d: %s" % (prog, p.returncode,
                                                      redact(log)[-500:]))
        status, headers, rbody = parse_cgi_response(p.stdout)
        record_output("dist: answer of " + prog, rbody.decode(
            "utf-8", "replace"), states_ok=prog == "slack-install")
        return status, headers, rbody.decode("utf-8", "replace"), log

    def admin(self, top, *args):
        p = self.run([top + "/bin/slack-oauth"] + list(args), {})
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        record_output("dist: slack-oauth " + args[0], out + err)
        return p.returncode, out, err


def state_cookie(headers):
    for k, v in headers:
        m = re.match(r"slack-app-oauth-state=([A-Za-z0-9_-]+);", v)
        if k.lower() == "set-cookie" and m:
            return add_state(m.group(1))
    raise TestFailure("no state cookie")


# ------------------------------------------------------------------ tests
def what_it_needs(run):
    """readelf/objdump on the tarball's files: the host needs glibc (at
    most GLIBC_2.34's symbols), libcurl.so.4 and libsqlite3.so.0; libcjson
    and libfcgi travel beside the programs, found through $ORIGIN/lib."""
    with tempfile.TemporaryDirectory() as d:
        with tarfile.open(dist_tarball()) as t:
            t.extractall(d)
        top = glob.glob(d + "/slack-oauth-fcgi-*")[0]
        progs = glob.glob(top + "/cgi-bin/slack-*") + [top + "/bin/slack-oauth"]
        eq(sorted(os.path.basename(p) for p in progs),
           ["slack-events", "slack-install", "slack-oauth",
            "slack-oauth-redirect"], "the programs")
        for p in progs:
            needed, runpath, glibc = elf(p)
            name = os.path.relpath(p, top)
            check(set(needed) <= HOST_LIBS | BUNDLED,
                  "%s needs %s" % (name, sorted(set(needed) - HOST_LIBS
                                                - BUNDLED)))
            eq(runpath, ["$ORIGIN/lib"], name + ": RUNPATH")
            check(glibc <= GLIBC_MAX, "%s needs GLIBC_%s" %
                  (name, ".".join(map(str, glibc))))
            for lib in set(needed) & BUNDLED:
                check(os.path.exists(os.path.join(os.path.dirname(p), "lib",
                                                  lib)),
                      "%s needs %s, not beside it" % (name, lib))
            print("# %s: NEEDED %s; RUNPATH %s; GLIBC_%s" % (
                name, " ".join(needed), runpath[0],
                ".".join(map(str, glibc))))
        for lib in glob.glob(top + "/*/lib/*"):
            needed, runpath, glibc = elf(lib)
            check(set(needed) <= {"libc.so.6"}, "%s needs %r" % (lib, needed))
            print("# %s: NEEDED %s; GLIBC_%s" % (
                os.path.relpath(lib, top), " ".join(needed),
                ".".join(map(str, glibc))))
        for f in ("INSTALL", "VERSION", "README.md", "cgi-bin/htaccess-example",
                  "man/slack-events.8", "man/slack-install.8",
                  "man/slack-oauth.8", "man/slack-oauth.conf.5",
                  "examples/nginx-example.conf", "licenses/libcjson1.copyright",
                  "licenses/libfcgi0ldbl.copyright"):
            check(os.path.exists(os.path.join(top, f)),
                  "the tarball lacks %s" % f)
    run.ok("what the tarball's programs need (readelf, objdump)")


def in_a_minimal_root(run):
    """The flow, an event and the admin command inside the root, as CGI,
    configured only from ~/.config/slack-oauth/slack-oauth.conf."""
    if os.geteuid() != 0:
        raise TestFailure("needs root (chroot, mount)")
    top = tempfile.mkdtemp(prefix="dist-")
    fs = FakeSlack(CLIENT_ID, CLIENT_SECRET).start()
    try:
        root = make_root(top)
        for lib in BUNDLED:     # before the tarball brings its own
            check(not glob.glob(root + "/**/" + lib, recursive=True),
                  "the root has a system %s" % lib)
        dist_top = install_tarball(root)
        check(not os.path.exists(root + "/etc/slack-oauth"),
              "the root has /etc/slack-oauth")
        c = Chroot(root, fs)
        c.write_conf()
        _flow(run, c, fs, dist_top)
        _bad_files(run, c, dist_top)
    finally:
        for s in fs.secrets():
            add_secret(s)
        fs.stop()
        shutil.rmtree(top, ignore_errors=True)


def _flow(run, c, fs, dist_top):
    st, h, body, log = c.cgi("slack-install")
    eq(st, 200, "install in the root: status (log: %s)" % redact(log)[-300:])
    state = state_cookie(h)
    m = re.search(r'href="([^"]*oauth/v2/authorize[^"]*)"', body)
    check(m, "no authorize link on the install page")
    url = m.group(1).replace("&amp;", "&")
    eq(urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["client_id"],
       [CLIENT_ID], "the authorize URL's client_id (from ~/.config)")
    code = fs.issue_code("https://example.org/slack/oauth_redirect")
    add_secret(code, "code")
    st, h, body, log = c.cgi("slack-oauth-redirect",
                             urllib.parse.urlencode({"code": code,
                                                     "state": state}),
                             cookie="slack-app-oauth-state=" + state)
    eq(st, 200, "redirect in the root: status (log: %s)" % redact(log)[-300:])
    check("Example Team" in body, "the success page does not name the team")
    run.ok("a whole flow as CGI in a root without libcjson, libfcgi or "
           "/etc/slack-oauth, configured from ~/.config, no HOME")

    ev = json.dumps({"type": "url_verification", "challenge": "c0ffee"})
    hdr = sign_event(SIGNING_SECRET, ev.encode())
    add_secret(hdr["X-Slack-Signature"], "request signature")
    st, _, body, _ = c.cgi("slack-events", method="POST", body=ev.encode(),
                           extra={"CONTENT_TYPE": "application/json",
                                  "HTTP_X_SLACK_REQUEST_TIMESTAMP":
                                      hdr["X-Slack-Request-Timestamp"],
                                  "HTTP_X_SLACK_SIGNATURE":
                                      hdr["X-Slack-Signature"]})
    eq((st, body), (200, "c0ffee"), "slack-events url_verification")

    rc, out, err = c.admin(dist_top, "check")
    eq(rc, 0, "slack-oauth check in the root (stderr %s)" % redact(err))
    check("config file: %s/.config/slack-oauth/slack-oauth.conf (in the home "
          "directory, from the password database)" % HOME in out,
          "check does not say it read ~/.config from the password database: "
          "%s" % redact(out))
    rc, out, err = c.admin(dist_top, "list")
    eq(rc, 0, "slack-oauth list in the root (stderr %s)" % redact(err))
    check(TEAM_ID in out and "Example Team" in out,
          "list does not show the installation: %s" % redact(out))
    rc, out, _ = c.admin(dist_top, "-V")
    eq((rc, out), (0, "slack-oauth %s\n" % version()), "slack-oauth -V")
    run.ok("slack-events and slack-oauth check/list/-V in the root")


def _bad_files(run, c, dist_top):
    cases = [("0644 holding the secrets", 0o644, UID, "readable by others"),
             ("0660", 0o660, UID, "writable by group or others"),
             ("owned by uid 23456", 0o644, 23456, "owned by uid 23456"),
             ("unreadable", 0o600, 23456, "Permission denied")]
    for what, mode, owner, why in cases:
        c.write_conf(mode, owner)
        st, _, body, log = c.cgi("slack-install")
        eq(st, 500, "install with a config file %s" % what)
        check(why in log and c.conf[len(c.root):] in log,
              "install, config file %s: the log does not say why: %s"
              % (what, redact(log)))
        rc, out, err = c.admin(dist_top, "check")
        eq(rc, 1, "check with a config file %s" % what)
        check(why in err, "check, config file %s: %s" % (what, redact(err)))
    c.write_conf()
    run.ok("the config file with bad modes or another owner: 500 and check "
           "says why")


def main():
    run = Runner()
    for name, fn in (("what the tarball's programs need (readelf, objdump)",
                      what_it_needs),
                     ("the tarball in a minimal root", in_a_minimal_root)):
        try:
            t0 = time.time()
            fn(run)
            print("# %s: %.1fs" % (name, time.time() - t0))
        except TestFailure as e:
            run.fail(name, redact(str(e)))
        except Exception as e:  # noqa: BLE001 - a crash is a failure
            run.fail(name, "%s: %s" % (type(e).__name__, redact(str(e))))
    return run.finish()


if __name__ == "__main__":
    sys.exit(main())
