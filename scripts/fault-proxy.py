#!/usr/bin/env python3
"""A fault-injecting HTTP/1.1 reverse proxy for testing cnbackup's S3 client (Python 3 stdlib only).

    scripts/fault-proxy.py --upstream 127.0.0.1:8333 --log faults.log --counts faults.json [--seed 1] [rates...]

Listens on 127.0.0.1 (a free port unless --port is given) and prints the port as the first line of
standard output. Every request is forwarded byte for byte -- request line, headers (Host included:
SigV4 signs it, and the client signs the proxy's address, which is what it sends) and body -- to the
upstream S3 server, over one upstream connection per client connection (keep-alive on both sides;
Content-Length and chunked bodies, `Expect: 100-continue`, HEAD, 204/304 and read-until-close answers).

With a seeded RNG it injects, per request:
  error-500           answers 500 InternalError (S3 XML body) without forwarding   --error-rate (split 500/503)
  error-503           answers 503 SlowDown (S3 XML body) without forwarding
  reset-request       forwards the headers and part of the request body, then resets both connections
                      (requests with a body only)                                  --reset-request-rate
  reset-response      relays the answer's headers and part of its body, then resets the client connection
                      (answers with a body only)                                   --reset-response-rate
  drop-complete       forwards CompleteMultipartUpload (POST ...?uploadId=...) whole, lets the server
                      complete it, then closes the client connection without an answer  --drop-complete-rate
  delay               waits --delay-min..--delay-max seconds before forwarding     --delay-rate
  corrupt-request     forwards a PUT or UploadPart with one body byte flipped, and relays the server's
                      answer: a server that checks the body's checksum refuses it  --corrupt-request-rate
So that retries can absorb every fault, one request target (method + path + query) gets at most
--max-consecutive failing faults in a row (a clean pass resets the count; delays do not count), and
so that a short test still sees every kind on every S3 operation (UploadPart, GetObject, ...), a kind
that did not fire in --ensure-every eligible chances in a row on one operation is forced on the next
one (0 turns that off).

Each injected fault is one line in --log (kind, method, operation, path; never headers or bodies);
--counts holds the counts per kind and per `kind@operation` (and `requests`, `op:<S3 operation>` per operation seen, and
`proxy-errors`: connections that ended other than by an injected fault; `enabled`: the kinds whose
rate is not 0) as JSON, rewritten after each.
"""
import argparse
import json
import os
import random
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse

KINDS = ["error-500", "error-503", "reset-request", "reset-response", "drop-complete", "delay", "corrupt-request"]
FAILING = {"error", "error-500", "error-503", "reset-request", "reset-response", "drop-complete", "corrupt-request"}


class Closed(Exception):
    """A peer closed its connection (or it broke) where the proxy cannot go on with it."""


class Faults:
    """The seeded RNG, the fault counters and the log; shared by every connection thread."""

    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.lock = threading.Lock()
        self.counts = {k: 0 for k in KINDS}
        self.counts.update({"requests": 0, "proxy-errors": 0})
        rates = {"error-500": args.error_rate, "error-503": args.error_rate, "reset-request": args.reset_request_rate,
                 "reset-response": args.reset_response_rate, "drop-complete": args.drop_complete_rate,
                 "delay": args.delay_rate, "corrupt-request": args.corrupt_request_rate}
        self.counts["enabled"] = [k for k in KINDS if rates[k] > 0]
        self.misses = {}                         # (kind, op) -> eligible chances in a row without it
        self.consecutive = {}                    # target -> failing faults in a row
        self.log = open(args.log, "a", buffering=1) if args.log else None
        self.write_counts()

    def random(self):
        with self.lock:
            return self.rng.random()

    def uniform(self, a, b):
        with self.lock:
            return self.rng.uniform(a, b)

    def choose(self, kind, rate, target, op):
        """Whether to inject `kind` now, at `rate`, for an eligible request on `target` (an `op`)."""
        with self.lock:
            if kind in FAILING and self.consecutive.get(target, 0) >= self.args.max_consecutive:
                return False
            hit = self.rng.random() < rate
            every = self.args.ensure_every
            if not hit and every > 0 and rate > 0 and self.misses.get((kind, op), 0) + 1 >= every:
                hit = True
            self.misses[(kind, op)] = 0 if hit else self.misses.get((kind, op), 0) + 1
            return hit

    def passed(self, target):
        with self.lock:
            self.consecutive.pop(target, None)

    def record(self, kind, method, op, path, extra=""):
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.counts[kind + "@" + op] = self.counts.get(kind + "@" + op, 0) + 1
            if kind in FAILING:
                self.consecutive[path] = self.consecutive.get(path, 0) + 1
            self._write_counts()
            if self.log:
                when = time.strftime("%H:%M:%S", time.gmtime()) + ".%03d" % (int(time.time() * 1000) % 1000)
                self.log.write("%s %s %s %s %s%s\n" % (when, kind, method, op, path.split("?")[0],
                                                      (" " + extra) if extra else ""))

    def count(self, key):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            self._write_counts()

    def write_counts(self):
        with self.lock:
            self._write_counts()

    def _write_counts(self):
        if not self.args.counts:
            return
        tmp = self.args.counts + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.counts, f, sort_keys=True)
        os.replace(tmp, self.args.counts)


def operation(method, target):
    """A name for the S3 operation, from the method and the query's keys (for the log)."""
    query = urllib.parse.urlsplit(target).query
    keys = {k for k, _ in urllib.parse.parse_qsl(query, keep_blank_values=True)}
    path = urllib.parse.urlsplit(target).path
    on_bucket = path.strip("/").count("/") == 0
    if method == "POST" and "uploads" in keys:
        return "CreateMultipartUpload"
    if method == "POST" and "uploadId" in keys:
        return "CompleteMultipartUpload"
    if method == "POST" and "delete" in keys:
        return "DeleteObjects"
    if method == "PUT" and "partNumber" in keys:
        return "UploadPart"
    if method == "DELETE" and "uploadId" in keys:
        return "AbortMultipartUpload"
    if method == "GET" and "uploads" in keys:
        return "ListMultipartUploads"
    if method == "GET" and "tagging" in keys:
        return "GetObjectTagging"
    if method == "GET" and on_bucket:
        return "ListObjects"
    if method == "PUT" and on_bucket:
        return "CreateBucket"
    return {"GET": "GetObject", "PUT": "PutObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(method, method)


def read_head(reader):
    """Reads a request or status line and its headers: (raw bytes, first line, {lower name: value})."""
    first = reader.readline(65537)
    if not first:
        raise Closed("closed before a message")
    raw = [first]
    headers = {}
    while True:
        line = reader.readline(65537)
        if not line:
            raise Closed("closed within the headers")
        raw.append(line)
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("latin-1").partition(":")
        name = name.strip().lower()
        value = value.strip()
        headers[name] = headers[name] + ", " + value if name in headers else value
    return b"".join(raw), first.decode("latin-1").rstrip("\r\n"), headers


def chunked(headers):
    return "chunked" in headers.get("transfer-encoding", "").lower()


def copy_exact(reader, out, n, limit=None):
    """Copies n bytes from reader to the socket `out` (or drops them when out is None); with
    `limit`, stops after that many and returns False."""
    sent = 0
    while sent < n:
        want = min(65536, n - sent)
        if limit is not None:
            want = min(want, limit - sent)
            if want <= 0:
                return False
        data = reader.read(want)
        if not data:
            raise Closed("closed within a body")
        if out is not None:
            out.sendall(data)
        sent += len(data)
    return True


def copy_flipped(reader, out, n, at):
    """Copies n bytes from reader to `out` with the byte at offset `at` inverted."""
    sent = 0
    while sent < n:
        data = bytearray(reader.read(min(65536, n - sent)))
        if not data:
            raise Closed("closed within a body")
        if sent <= at < sent + len(data):
            data[at - sent] ^= 0xFF
        out.sendall(data)
        sent += len(data)


def copy_chunked(reader, out, limit=None):
    """Copies a chunked body (chunks, last chunk, trailers) verbatim; with `limit`, stops once about
    that many bytes went out and returns False."""
    sent = 0
    while True:
        size_line = reader.readline(65537)
        if not size_line:
            raise Closed("closed within a chunked body")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if out is not None:
            out.sendall(size_line)
        sent += len(size_line)
        if size == 0:
            while True:  # trailers up to the blank line
                line = reader.readline(65537)
                if not line:
                    raise Closed("closed within trailers")
                if out is not None:
                    out.sendall(line)
                if line in (b"\r\n", b"\n"):
                    return True
        if not copy_exact(reader, out, size + 2, None if limit is None else max(0, limit - sent)):
            return False
        sent += size + 2
        if limit is not None and sent >= limit:
            return False


def reset(sock):
    """Closes with an RST (SO_LINGER 0), not a FIN."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def s3_error(status, code, message, resource, head_only):
    request_id = "FAULT%016X" % random.getrandbits(64)
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
            '<Resource>%s</Resource><RequestId>%s</RequestId></Error>' % (code, message, resource, request_id)).encode()
    reason = {500: "Internal Server Error", 503: "Service Unavailable"}[status]
    head = ("HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\nx-amz-request-id: %s\r\n"
            "Date: %s\r\nServer: fault-proxy\r\n\r\n" % (status, reason, 0 if head_only else len(body), request_id,
                                                        time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())))
    return head.encode() + (b"" if head_only else body)


class Handler(socketserver.BaseRequestHandler):
    def setup(self):
        self.faults = self.server.faults
        self.args = self.server.args
        self.client = self.request
        self.client.settimeout(self.args.idle_timeout)
        self.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.creader = self.client.makefile("rb", buffering=65536)
        self.up = None
        self.ureader = None
        self.exchanges = 0   # requests seen on this client connection

    def record(self, kind, method, op, target, extra=""):
        where = "on connection request #%d%s" % (self.exchanges, " (reused)" if self.exchanges > 1 else " (new)")
        self.faults.record(kind, method, op, target, (extra + " " if extra else "") + where)

    def finish(self):
        for f in (self.creader, self.ureader):
            try:
                f and f.close()
            except OSError:
                pass
        for s in (self.up, self.client):
            try:
                s and s.close()
            except OSError:
                pass

    def connect_upstream(self):
        if self.up is not None:
            # A kept-alive upstream connection the server closed meanwhile reads as EOF at once.
            import select
            readable, _, _ = select.select([self.up], [], [], 0)
            if not readable:
                return
            self.drop_upstream()
        host, port = self.args.upstream.rsplit(":", 1)
        self.up = socket.create_connection((host, int(port)), timeout=self.args.upstream_timeout)
        self.up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.ureader = self.up.makefile("rb", buffering=65536)

    def drop_upstream(self, rst=False):
        if self.ureader is not None:
            try:
                self.ureader.close()
            except OSError:
                pass
        if rst:
            reset(self.up)
        elif self.up is not None:
            try:
                self.up.close()
            except OSError:
                pass
        self.up = self.ureader = None

    def handle(self):
        try:
            while self.one_exchange():
                pass
        except (Closed, ConnectionError, socket.timeout, OSError) as e:
            if not isinstance(e, Closed) or "before a message" not in str(e):
                if not getattr(self, "quiet_close", False):
                    self.faults.count("proxy-errors")
                    print("fault-proxy: connection ended: %r" % (e,), file=sys.stderr, flush=True)
        finally:
            self.drop_upstream()

    def one_exchange(self):
        """Proxies one request and its answer; False when the client connection must end."""
        raw, line, headers = read_head(self.creader)
        parts = line.split(" ")
        if len(parts) != 3:
            raise Closed("bad request line")
        method, target, version = parts
        op = operation(method, target)
        self.exchanges += 1
        self.faults.count("requests")
        self.faults.count("op:" + op)
        length = int(headers.get("content-length", "0") or 0)
        has_body = chunked(headers) or length > 0
        client_close = "close" in headers.get("connection", "").lower() or version == "HTTP/1.0"
        a = self.args

        # --- faults decided before forwarding. A lost CompleteMultipartUpload answer is decided
        # first: it is the rarest chance (one per upload) and the fault that matters most there.
        drop = op == "CompleteMultipartUpload" and self.faults.choose("drop-complete", a.drop_complete_rate, target, op)
        if not drop and self.faults.choose("error", a.error_rate, target, op):
            kind = "error-500" if self.faults.random() < 0.5 else "error-503"
            # Read the body so the connection stays in step, then answer without forwarding.
            if chunked(headers):
                copy_chunked(self.creader, None)
            else:
                copy_exact(self.creader, None, length)
            self.record(kind, method, op, target)
            resource = urllib.parse.urlsplit(target).path
            if kind == "error-500":
                msg = s3_error(500, "InternalError", "We encountered an internal error. Please try again.", resource,
                               method == "HEAD")
            else:
                msg = s3_error(503, "SlowDown", "Please reduce your request rate.", resource, method == "HEAD")
            self.client.sendall(msg)
            return not client_close

        if not drop and has_body and self.faults.choose("reset-request", a.reset_request_rate, target, op):
            self.connect_upstream()
            self.up.sendall(raw)
            if chunked(headers):
                copy_chunked(self.creader, self.up, limit=max(1, int(self.faults.uniform(0.1, 0.9) * 65536)))
                cut = "chunked"
            else:
                cut = int(length * self.faults.uniform(0.1, 0.9))
                copy_exact(self.creader, self.up, length, limit=cut)
                cut = "%d/%d" % (cut, length)
            self.record("reset-request", method, op, target, "after " + cut + " body bytes")
            self.quiet_close = True
            self.drop_upstream(rst=True)
            reset(self.client)
            raise Closed("reset-request")

        corrupt = (op in ("UploadPart", "PutObject") and length > 0 and not chunked(headers)
                   and self.faults.choose("corrupt-request", a.corrupt_request_rate, target, op))
        if not drop and self.faults.choose("delay", a.delay_rate, target, op):
            pause = self.faults.uniform(a.delay_min, a.delay_max)
            self.record("delay", method, op, target, "%.2fs" % pause)
            time.sleep(pause)

        # --- forward the request
        self.connect_upstream()
        self.up.sendall(raw)
        expect = "100-continue" in headers.get("expect", "").lower()
        if expect:
            # The client sends the body only after a 100 Continue: relay the interim answer first.
            rraw, rline, rheaders = read_head(self.ureader)
            if rline.split(" ")[1:2] == ["100"]:
                self.client.sendall(rraw)
                expect = False
            else:
                # A final answer before the body: relay it; the body's fate is unknown, so close.
                self.client.sendall(rraw)
                self.relay_body(method, rline, rheaders, None)
                self.drop_upstream()
                return False
        if chunked(headers):
            copy_chunked(self.creader, self.up)
        elif corrupt:
            at = int(self.faults.uniform(0, length - 1))
            copy_flipped(self.creader, self.up, length, at)
            self.record("corrupt-request", method, op, target, "byte %d/%d flipped" % (at, length))
        else:
            copy_exact(self.creader, self.up, length)

        # --- the answer (interim 1xx answers are relayed as they come)
        while True:
            rraw, rline, rheaders = read_head(self.ureader)
            status = int(rline.split(" ")[1])
            if 100 <= status < 200 and status != 101:
                self.client.sendall(rraw)
                continue
            break

        if drop:
            # The server completed the upload; its answer never reaches the client.
            self.relay_body(method, rline, rheaders, None, out=None)
            self.record("drop-complete", method, op, target, "status %d dropped" % status)
            self.quiet_close = True
            self.drop_upstream()
            self.client.shutdown(socket.SHUT_RDWR)
            raise Closed("drop-complete")

        body_kind = self.body_kind(method, status, rheaders)
        if body_kind != "none" and self.faults.choose("reset-response", a.reset_response_rate, target, op):
            self.client.sendall(rraw)
            extra = ""
            if body_kind == "length":
                total = int(rheaders["content-length"])
                cut = int(total * self.faults.uniform(0.1, 0.9))
                if op == "CreateMultipartUpload":
                    # Read the whole (small) answer to name the upload the client will never learn of.
                    body = self.ureader.read(total)
                    self.client.sendall(body[:cut])
                    upload_id = body.split(b"<UploadId>")[-1].split(b"</UploadId>")[0].decode("latin-1", "replace")
                    extra = "upload %s " % upload_id if b"<UploadId>" in body else ""
                else:
                    copy_exact(self.ureader, self.client, total, limit=cut)
                extra += "after %d/%d body bytes (status %d)" % (cut, total, status)
            elif body_kind == "chunked":
                copy_chunked(self.ureader, self.client, limit=max(1, int(self.faults.uniform(0.1, 0.9) * 65536)))
                extra = "within a chunked body (status %d)" % status
            else:
                copy_exact(self.ureader, self.client, 1 << 40, limit=int(self.faults.uniform(1, 4096)))
                extra = "within a read-until-close body (status %d)" % status
            self.record("reset-response", method, op, target, extra)
            self.quiet_close = True
            self.drop_upstream(rst=True)
            reset(self.client)
            raise Closed("reset-response")

        self.client.sendall(rraw)
        keep = self.relay_body(method, rline, rheaders, body_kind)
        if not corrupt:
            # A corrupted body the server refused is a failure of this target, not a clean pass:
            # counting it as one would let a single request meet more faults in a row than
            # --max-consecutive allows.
            self.faults.passed(target)
        server_close = "close" in rheaders.get("connection", "").lower() or rline.startswith("HTTP/1.0")
        if server_close or not keep:
            self.drop_upstream()
            return False
        return not client_close

    @staticmethod
    def body_kind(method, status, rheaders):
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return "none"
        if chunked(rheaders):
            return "chunked"
        if "content-length" in rheaders:
            return "length" if int(rheaders["content-length"]) > 0 else "none"
        return "until-close"

    def relay_body(self, method, rline, rheaders, body_kind, out="client"):
        """Relays (or with out=None, drains) the answer's body; False if the connection must close."""
        status = int(rline.split(" ")[1])
        kind = body_kind or self.body_kind(method, status, rheaders)
        sink = self.client if out == "client" else None
        if kind == "none":
            return True
        if kind == "chunked":
            copy_chunked(self.ureader, sink)
            return True
        if kind == "length":
            copy_exact(self.ureader, sink, int(rheaders["content-length"]))
            return True
        while True:  # read until the server closes
            data = self.ureader.read(65536)
            if not data:
                return False
            if sink is not None:
                sink.sendall(data)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--upstream", required=True, help="HOST:PORT of the S3 server")
    p.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--log", help="file to append one line per injected fault to")
    p.add_argument("--counts", help="JSON file with the counts per fault kind")
    p.add_argument("--error-rate", type=float, default=0.06, help="share answered 500 InternalError / 503 SlowDown")
    p.add_argument("--reset-request-rate", type=float, default=0.06, help="share of requests with a body reset within it")
    p.add_argument("--reset-response-rate", type=float, default=0.05, help="share of answers with a body reset within it")
    p.add_argument("--drop-complete-rate", type=float, default=0.4, help="share of CompleteMultipartUpload answers dropped")
    p.add_argument("--delay-rate", type=float, default=0.05, help="share of requests delayed")
    p.add_argument("--corrupt-request-rate", type=float, default=0.04, help="share of PUT and UploadPart bodies sent with a byte flipped")
    p.add_argument("--delay-min", type=float, default=0.2)
    p.add_argument("--delay-max", type=float, default=1.5)
    p.add_argument("--max-consecutive", type=int, default=2, help="failing faults in a row on one request target")
    p.add_argument("--ensure-every", type=int, default=4,
                   help="force a kind that did not fire in this many eligible chances in a row on one operation (0: off)")
    p.add_argument("--idle-timeout", type=float, default=300)
    p.add_argument("--upstream-timeout", type=float, default=120)
    args = p.parse_args()
    for name in ("error_rate", "reset_request_rate", "reset_response_rate", "drop_complete_rate", "delay_rate"):
        if not 0 <= getattr(args, name) <= 1:
            p.error("--%s must be within 0..1" % name.replace("_", "-"))
    server = Server(("127.0.0.1", args.port), Handler)
    server.faults = Faults(args)
    server.args = args
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
