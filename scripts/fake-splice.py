#!/usr/bin/env python3
"""A stand-in for the Splice apps' admin API and an OAuth2 provider, for end-to-end tests.

HTTPS only (stdlib http.server + ssl). Endpoints:
  POST /oauth/token                                    client-credentials grant (form-encoded)
  GET  /api/sv/v0/admin/domain/identities-dump         the bytes of --sv-dump, exactly
  GET  /api/validator/v0/admin/participant/identities  the bytes of --validator-dump, exactly
The two GETs require `Authorization: Bearer <a token this process issued>`; otherwise 401.

With --port 0 (the default) the kernel picks a free port; the port is printed as the first line
of standard output (and to --port-file, if given) once the server accepts connections.
Requests are logged to standard error, one line each, never with secrets or bodies.
"""
import argparse
import base64
import hmac
import json
import os
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote_plus

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import standin_tls  # noqa: E402  (scripts/standin_tls.py: the HTTPS server)

SV_PATH = "/api/sv/v0/admin/domain/identities-dump"
VALIDATOR_PATH = "/api/validator/v0/admin/participant/identities"
TOKEN_PATH = "/oauth/token"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: pick a free port and print it first")
    p.add_argument("--port-file", help="also write the port here (atomically) once listening")
    p.add_argument("--cert", required=True, help="server certificate (PEM), chain allowed")
    p.add_argument("--key", required=True, help="server private key (PEM)")
    p.add_argument("--client-id", required=True)
    p.add_argument("--client-secret", help="the expected client secret")
    p.add_argument("--client-secret-file", help="read the expected client secret from this file")
    p.add_argument("--audience", required=True)
    p.add_argument("--sv-dump", help="file served at " + SV_PATH)
    p.add_argument("--validator-dump", help="file served at " + VALIDATOR_PATH)
    p.add_argument("--active-serial", type=int, help="serve Scan's GET /api/scan/v0/active-synchronizer-serial (public, no token) with this serial")
    p.add_argument("--token-ttl", type=int, default=3600, help="expires_in of issued tokens (seconds)")
    p.add_argument("--token-log", help="append each issued token here (for tests that search for leaks)")
    p.add_argument("--status", action="append", default=[], metavar="PATH=CODE",
                   help="answer authorized GETs of PATH with this HTTP status (a failing app)")
    a = p.parse_args()

    if a.client_secret is None and a.client_secret_file is None:
        p.error("one of --client-secret or --client-secret-file is required")
    secret = a.client_secret
    if secret is None:
        with open(a.client_secret_file, "r", encoding="utf-8") as f:
            secret = f.read().strip()

    # Read the fixtures once, as bytes: they are served exactly as they are on disk.
    bodies = {}
    if a.sv_dump:
        with open(a.sv_dump, "rb") as f:
            bodies[SV_PATH] = f.read()
    if a.validator_dump:
        with open(a.validator_dump, "rb") as f:
            bodies[VALIDATOR_PATH] = f.read()

    issued = {}  # token -> expiry (monotonic)
    lock = threading.Lock()
    stats = {"tokens": 0, "dumps": 0, "denied": 0}

    def log(msg):
        sys.stderr.write("fake-splice: %s\n" % msg)
        sys.stderr.flush()

    class Handler(BaseHTTPRequestHandler):
        server_version = "fake-splice/1"
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # the default logs to stderr with the client address
            pass

        def send_json(self, code, obj, extra=None):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()

        def read_body(self):
            n = int(self.headers.get("Content-Length") or 0)
            if n > 1 << 20:
                raise ValueError("body too large")
            return self.rfile.read(n) if n else b""

        def do_POST(self):
            path = self.path.split("?", 1)[0]
            if path != TOKEN_PATH:
                self.read_body()
                return self.send_json(404, {"error": "not_found", "path": path})
            try:
                raw = self.read_body()
            except ValueError:
                return self.send_json(413, {"error": "invalid_request"})
            ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
            if ctype != "application/x-www-form-urlencoded":
                log("token: 400 content-type %r" % ctype)
                return self.send_json(400, {"error": "invalid_request",
                                            "error_description": "expected application/x-www-form-urlencoded"})
            form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}
            # Client authentication may also come as HTTP Basic (RFC 6749 2.3.1); accept either.
            cid, csec = form.get("client_id"), form.get("client_secret")
            auth = self.headers.get("Authorization") or ""
            if auth.lower().startswith("basic "):
                try:
                    u, _, pw = base64.b64decode(auth[6:].strip()).decode().partition(":")
                    cid, csec = unquote_plus(u), unquote_plus(pw)
                except Exception:
                    pass
            if form.get("grant_type") != "client_credentials":
                log("token: 400 grant_type %r" % form.get("grant_type"))
                return self.send_json(400, {"error": "unsupported_grant_type"})
            ok = (cid is not None and csec is not None
                  and hmac.compare_digest(cid.encode(), a.client_id.encode())
                  and hmac.compare_digest(csec.encode(), secret.encode()))
            if not ok:
                with lock:
                    stats["denied"] += 1
                log("token: 401 invalid client (client_id %r)" % cid)
                return self.send_json(401, {"error": "invalid_client",
                                            "error_description": "client authentication failed"},
                                      {"WWW-Authenticate": 'Basic realm="fake-splice"'})
            if form.get("audience") != a.audience:
                log("token: 401 audience %r" % form.get("audience"))
                return self.send_json(401, {"error": "access_denied",
                                            "error_description": "unknown audience"})
            tok = secrets.token_urlsafe(32)
            with lock:
                issued[tok] = time.monotonic() + a.token_ttl
                stats["tokens"] += 1
            log("token: 200 issued to %s" % cid)
            if a.token_log:
                with open(a.token_log, "a") as f:
                    f.write(tok + "\n")
            return self.send_json(200, {"access_token": tok, "token_type": "Bearer",
                                        "expires_in": a.token_ttl})

        def authorized(self):
            auth = self.headers.get("Authorization") or ""
            scheme, _, tok = auth.partition(" ")
            if scheme.lower() != "bearer" or not tok.strip():
                return False
            with lock:
                exp = issued.get(tok.strip())
            return exp is not None and exp > time.monotonic()

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                return self.send_json(200, {"status": "ok"})
            if path == "/api/scan/v0/active-synchronizer-serial" and a.active_serial is not None:
                # Scan's public endpoint (scan.yaml): no authentication, {"serial": int64}.
                return self.send_json(200, {"serial": a.active_serial})
            if path not in (SV_PATH, VALIDATOR_PATH):
                return self.send_json(404, {"error": "not_found", "path": path})
            if not self.authorized():
                with lock:
                    stats["denied"] += 1
                log("GET %s: 401" % path)
                return self.send_json(401, {"error": "unauthorized",
                                            "message": "missing or invalid bearer token"},
                                      {"WWW-Authenticate": 'Bearer realm="fake-splice"'})
            forced = dict(x.split("=", 1) for x in a.status).get(path)
            if forced is not None:
                log("GET %s: %s (forced)" % (path, forced))
                return self.send_json(int(forced), {"error": "internal", "message": "forced by --status"})
            body = bodies.get(path)
            if body is None:
                return self.send_json(404, {"error": "not_found", "message": "no fixture configured"})
            with lock:
                stats["dumps"] += 1
            log("GET %s: 200 (%d bytes)" % (path, len(body)))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()

        do_HEAD = do_GET

    httpd = standin_tls.TLSServer((a.host, a.port), Handler, a.cert, a.key, log)
    port = standin_tls.announce(httpd, a.port_file, "{port}")
    log("listening on https://%s:%d" % (a.host, port))
    standin_tls.serve(httpd)


if __name__ == "__main__":
    main()
