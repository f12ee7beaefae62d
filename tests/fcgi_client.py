#!/usr/bin/env python3
"""A minimal FastCGI 1.0 client (role RESPONDER) and a spawn-fcgi-like helper.

    status, headers, body, stderr = fcgi_request("/path/to.sock", params, stdin)
    status, headers, body, stderr = fcgi_request(("127.0.0.1", 9000), params)

    srv = FcgiServer("cgi-bin/slack-install", env={...}, nprocs=1)
    fcgi_request(srv.path, {...}); srv.stderr_text(); srv.stop()

Python 3 standard library only.
"""

import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

FCGI_VERSION_1 = 1
FCGI_BEGIN_REQUEST = 1
FCGI_ABORT_REQUEST = 2
FCGI_END_REQUEST = 3
FCGI_PARAMS = 4
FCGI_STDIN = 5
FCGI_STDOUT = 6
FCGI_STDERR = 7
FCGI_DATA = 8
FCGI_GET_VALUES = 9
FCGI_GET_VALUES_RESULT = 10
FCGI_UNKNOWN_TYPE = 11

FCGI_RESPONDER = 1
FCGI_KEEP_CONN = 1

FCGI_REQUEST_COMPLETE = 0

_HDR = struct.Struct("!BBHHBx")
MAX_CONTENT = 65535


class FcgiError(Exception):
    """The server closed the connection or broke the protocol."""


def _record(rtype, req_id, content=b""):
    pad = (-len(content)) % 8
    return _HDR.pack(FCGI_VERSION_1, rtype, req_id, len(content), pad) + \
        content + b"\0" * pad


def _stream(rtype, req_id, data):
    """A stream's records: data split into <= 65535-byte pieces, then the
    empty record that ends the stream."""
    out = []
    for i in range(0, len(data), MAX_CONTENT - 7):
        out.append(_record(rtype, req_id, data[i:i + MAX_CONTENT - 7]))
    out.append(_record(rtype, req_id, b""))
    return b"".join(out)


def _enc_len(n):
    if n < 128:
        return bytes([n])
    if n > 0x7FFFFFFF:
        raise ValueError("name or value too long for FastCGI")
    return struct.pack("!I", n | 0x80000000)


def encode_params(params):
    """Name-value pair encoding (1- or 4-byte lengths) of a dict or a list of
    pairs; str values are UTF-8 encoded, bytes kept as is."""
    items = params.items() if hasattr(params, "items") else params
    out = []
    for k, v in items:
        kb = k.encode("utf-8") if isinstance(k, str) else bytes(k)
        vb = v.encode("utf-8") if isinstance(v, str) else bytes(v)
        out.append(_enc_len(len(kb)) + _enc_len(len(vb)) + kb + vb)
    return b"".join(out)


def _recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise FcgiError("connection closed by the FastCGI server after "
                            "%d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def parse_cgi_response(raw):
    """Splits a CGI-style response into (status, [(name, value)], body).
    A `Status:` header gives the status (default 200; 302 when only a
    Location is given, as CGI/1.1 says for a local redirect)."""
    sep = None
    for cand in (b"\r\n\r\n", b"\n\n"):
        i = raw.find(cand)
        if i >= 0 and (sep is None or i < sep[0]):
            sep = (i, len(cand))
    if sep is None:
        head, body = raw, b""
    else:
        head, body = raw[:sep[0]], raw[sep[0] + sep[1]:]
    headers = []
    status = None
    for line in head.split(b"\n"):
        line = line.rstrip(b"\r")
        if not line:
            continue
        name, colon, value = line.partition(b":")
        if not colon:
            raise ValueError("malformed CGI header line: %r" % line[:80])
        n = name.decode("latin-1").strip()
        v = value.decode("latin-1").strip()
        if n.lower() == "status":
            try:
                status = int(v.split()[0])
            except (ValueError, IndexError):
                raise ValueError("malformed Status header: %r" % v[:80])
        else:
            headers.append((n, v))
    if status is None:
        status = 302 if any(n.lower() == "location" for n, _ in headers) \
            else 200
    return status, headers, body


def fcgi_request_raw(address, params, stdin=b"", timeout=30.0, req_id=1):
    """Sends one request; returns (stdout bytes, stderr bytes, app_status,
    protocol_status)."""
    if isinstance(address, (tuple, list)):
        sock = socket.create_connection(tuple(address), timeout=timeout)
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address)
    try:
        msg = [_record(FCGI_BEGIN_REQUEST, req_id,
                       struct.pack("!HB5x", FCGI_RESPONDER, 0)),
               _stream(FCGI_PARAMS, req_id, encode_params(params)),
               _stream(FCGI_STDIN, req_id, stdin or b"")]
        sock.sendall(b"".join(msg))
        out, err = [], []
        while True:
            ver, rtype, rid, clen, plen = _HDR.unpack(_recv_exact(sock, 8))
            content = _recv_exact(sock, clen) if clen else b""
            if plen:
                _recv_exact(sock, plen)
            if ver != FCGI_VERSION_1:
                raise FcgiError("bad FastCGI version %d" % ver)
            if rid != req_id:
                continue
            if rtype == FCGI_STDOUT:
                out.append(content)
            elif rtype == FCGI_STDERR:
                err.append(content)
            elif rtype == FCGI_END_REQUEST:
                app_status, proto = struct.unpack("!IB3x", content[:8])
                return b"".join(out), b"".join(err), app_status, proto
            else:
                raise FcgiError("unexpected FastCGI record type %d" % rtype)
    finally:
        sock.close()


def fcgi_request(address, params, stdin=b"", timeout=30.0):
    """One FastCGI RESPONDER request.  Returns (status, headers, body,
    stderr) where headers is a list of (name, value)."""
    out, err, _app, proto = fcgi_request_raw(address, params, stdin, timeout)
    if proto != FCGI_REQUEST_COMPLETE:
        raise FcgiError("FastCGI protocol status %d" % proto)
    status, headers, body = parse_cgi_response(out)
    return status, headers, body, err


class FcgiServer:
    """Starts nprocs copies of a FastCGI binary on one listening unix socket
    passed as fd 0, the way spawn-fcgi does (stdout to /dev/null, stderr to a
    file)."""

    def __init__(self, binary, env=None, nprocs=1, sock_dir=None, umask=None,
                 cwd=None, backlog=128, wrapper=()):
        self.binary = binary
        self._own_dir = sock_dir is None
        self.dir = sock_dir or tempfile.mkdtemp(prefix="fcgi-")
        self.path = os.path.join(self.dir, "fcgi-%d.sock" % id(self))
        self.stderr_path = os.path.join(self.dir, "fcgi-%d.stderr" % id(self))
        self.procs = []
        self.exit_codes = []
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            lsock.bind(self.path)
            lsock.listen(backlog)
            errf = open(self.stderr_path, "ab")
            try:
                def pre():
                    if umask is not None:
                        os.umask(umask)
                for _ in range(nprocs):
                    self.procs.append(subprocess.Popen(
                        list(wrapper) + [binary], stdin=lsock.fileno(),
                        stdout=subprocess.DEVNULL, stderr=errf,
                        env=dict(env or {}), close_fds=True, cwd=cwd,
                        preexec_fn=pre))
            finally:
                errf.close()
        finally:
            lsock.close()

    def alive(self):
        return all(p.poll() is None for p in self.procs)

    def dead(self):
        """[(pid, exit status)] of the processes that already exited."""
        return [(p.pid, p.returncode) for p in self.procs
                if p.poll() is not None]

    def request(self, params, stdin=b"", timeout=30.0):
        return fcgi_request(self.path, params, stdin, timeout)

    def stderr_size(self):
        try:
            return os.path.getsize(self.stderr_path)
        except OSError:
            return 0

    def stderr_bytes(self, offset=0):
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(offset)
                return f.read()
        except OSError:
            return b""

    def stderr_text(self):
        return self.stderr_bytes().decode("utf-8", "replace")

    def stop(self, grace=3.0):
        """SIGTERM, then SIGKILL after grace seconds.  Returns the exit
        statuses; the socket directory is removed if this object made it."""
        if not self.procs:
            return self.exit_codes
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except OSError:
                    pass
        deadline = time.time() + grace
        for p in self.procs:
            try:
                p.wait(max(0.01, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.exit_codes = [p.returncode for p in self.procs]
        self.procs = []
        try:
            os.unlink(self.path)
        except OSError:
            pass
        return self.exit_codes

    def cleanup(self):
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
