#!/usr/bin/env python3
"""A stand-in for the Kubernetes API server's Secret read, for end-to-end tests of the
`kubernetesSecret` capture source.

HTTPS only (stdlib http.server + ssl). One endpoint:
  GET /api/v1/namespaces/{namespace}/secrets/{name}   a v1 Secret as the real API server returns it

It checks what the real API server checks, in the same order, with the same Status bodies:
  1. authentication: `Authorization: Bearer <the token in --token-file>`, else 401 Unauthorized
     (on every path but /healthz, /livez, /readyz);
  2. the route: another path is 404 NotFound, another method on a Secret's path 405 MethodNotAllowed
     (simpler than the real server, which answers 403 for delete/update verbs RBAC does not grant);
  3. authorization (RBAC with resourceNames): a Secret not named by --allow is 403 Forbidden, whether
     it exists or not (the real server decides before it looks the object up);
  4. existence: a Secret not in --secrets is 404 NotFound.
Without any --allow, every Secret is readable (a token with `get` on all secrets).

--secrets is a JSON object keyed "namespace/name":
  { "sv/splice-app-sv-key": { "data": { "public": "<base64>", "private": "<base64>" } },
    "sv/cometbft-keys": { "stringData": { "node_key.json": "{...}" }, "type": "Opaque",
                          "labels": {...}, "annotations": {...} } }
`data` values are base64 (served as given), `stringData` values plain text (base64-encoded here, as
the real server does on write). The served Secret has the metadata a real one has (uid,
resourceVersion, creationTimestamp, managedFields), so a consumer that must strip them is tested.

With --port 0 (the default) the kernel picks a free port. Once the server accepts connections it
prints "ready PORT" on standard output (and writes PORT to --port-file, if given). Requests are
logged to standard error, one line each, never with the token or a Secret's data.
"""
import argparse
import base64
import binascii
import hmac
import json
import os
import re
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import standin_tls  # noqa: E402  (scripts/standin_tls.py: the HTTPS server)

SECRET_PATH = re.compile(r"^/api/v1/namespaces/([a-z0-9]([-a-z0-9]*[a-z0-9])?)/secrets/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$")
HEALTH_PATHS = ("/healthz", "/livez", "/readyz")
CREATED = "2026-11-20T09:14:03Z"


def status(code, reason, message, details=None):
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
    if details is not None:
        body["details"] = details
    return body


def load_secrets(path):
    with open(path, "r", encoding="utf-8") as f:
        raw = json.load(f)
    if not isinstance(raw, dict):
        raise SystemExit("fake-kube-api: --secrets must hold a JSON object keyed namespace/name")
    out = {}
    for i, (key, spec) in enumerate(sorted(raw.items())):
        ns, sep, name = key.partition("/")
        if not sep or not ns or not name or "/" in name:
            raise SystemExit("fake-kube-api: --secrets key %r is not namespace/name" % key)
        if not isinstance(spec, dict):
            raise SystemExit("fake-kube-api: --secrets %s: not an object" % key)
        data = {}
        for k, v in (spec.get("data") or {}).items():
            try:
                base64.b64decode(v, validate=True)
            except (binascii.Error, TypeError):
                raise SystemExit("fake-kube-api: --secrets %s data.%s is not base64" % (key, k))
            data[k] = v
        for k, v in (spec.get("stringData") or {}).items():
            data[k] = base64.b64encode(v.encode("utf-8")).decode("ascii")
        out[(ns, name)] = secret_object(ns, name, spec, data, 4100 + 17 * i)
    return out


def secret_object(ns, name, spec, data, version):
    meta = {"name": name, "namespace": ns,
            "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, "fake-kube-api/%s/%s" % (ns, name))),
            "resourceVersion": str(version), "creationTimestamp": CREATED}
    if spec.get("labels"):
        meta["labels"] = spec["labels"]
    if spec.get("annotations"):
        meta["annotations"] = spec["annotations"]
    fields = {"f:data": dict({".": {}}, **{"f:" + k: {} for k in sorted(data)}), "f:type": {}}
    meta["managedFields"] = [{"manager": "kubectl-create", "operation": "Update", "apiVersion": "v1",
                              "time": CREATED, "fieldsType": "FieldsV1", "fieldsV1": fields}]
    obj = {"kind": "Secret", "apiVersion": "v1", "metadata": meta, "data": data,
           "type": spec.get("type", "Opaque")}
    if "immutable" in spec:
        obj["immutable"] = bool(spec["immutable"])
    return obj


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: pick a free port")
    p.add_argument("--port-file", help="also write the port here (atomically) once listening")
    p.add_argument("--cert", required=True, help="server certificate (PEM), chain allowed")
    p.add_argument("--key", required=True, help="server private key (PEM)")
    p.add_argument("--token-file", required=True, help="the one bearer token accepted (whitespace trimmed)")
    p.add_argument("--secrets", required=True, help="JSON object of Secrets keyed namespace/name")
    p.add_argument("--allow", action="extend", nargs="+", default=None, metavar="NS/NAME",
                   help="Secrets the token may get (RBAC resourceNames); repeatable. Default: all")
    p.add_argument("--user", default="system:serviceaccount:sv:cnbackup",
                   help="the token's user, as named in 403 messages")
    a = p.parse_args()

    with open(a.token_file, "r", encoding="utf-8") as f:
        token = f.read().strip()
    if not token:
        p.error("--token-file is empty")
    secrets_by_key = load_secrets(a.secrets)
    allowed = None
    if a.allow is not None:
        allowed = set()
        for item in a.allow:
            ns, sep, name = item.partition("/")
            if not sep or not ns or not name:
                p.error("--allow %r is not namespace/name" % item)
            allowed.add((ns, name))

    lock = threading.Lock()

    def log(msg):
        with lock:
            sys.stderr.write("fake-kube-api: %s\n" % msg)
            sys.stderr.flush()

    class Handler(BaseHTTPRequestHandler):
        server_version = "fake-kube-api/1"
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def send_json(self, code, obj, extra=None):
            body = json.dumps(obj, separators=(",", ":")).encode() + b"\n"
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache, private")
            self.send_header("Audit-Id", str(uuid.uuid4()))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            self.wfile.flush()

        def drain(self):
            n = int(self.headers.get("Content-Length") or 0)
            if 0 < n <= 1 << 20:
                self.rfile.read(n)
            elif n > 1 << 20:
                self.close_connection = True

        def authenticated(self):
            scheme, _, tok = (self.headers.get("Authorization") or "").partition(" ")
            tok = tok.strip()
            return scheme.lower() == "bearer" and bool(tok) and hmac.compare_digest(tok.encode(), token.encode())

        def handle_any(self):
            self.drain()
            path = self.path.split("?", 1)[0]
            if path in HEALTH_PATHS and self.command == "GET":
                body = b"ok"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if not self.authenticated():
                log("%s %s: 401" % (self.command, path))
                return self.send_json(401, status(401, "Unauthorized", "Unauthorized"))
            m = SECRET_PATH.match(path)
            if not m:
                log("%s %s: 404 (no such route)" % (self.command, path))
                return self.send_json(404, status(404, "NotFound", "the server could not find the requested resource",
                                                  {}))
            ns, name = m.group(1), m.group(3)
            if self.command != "GET":
                log("%s %s: 405" % (self.command, path))
                return self.send_json(405, status(405, "MethodNotAllowed",
                                                  "the server does not allow this method on the requested resource",
                                                  {}), {"Allow": "GET"})
            details = {"name": name, "kind": "secrets"}
            if allowed is not None and (ns, name) not in allowed:
                log("GET %s: 403" % path)
                return self.send_json(403, status(403, "Forbidden",
                    'secrets "%s" is forbidden: User "%s" cannot get resource "secrets" in API group "" '
                    'in the namespace "%s"' % (name, a.user, ns), details))
            obj = secrets_by_key.get((ns, name))
            if obj is None:
                log("GET %s: 404" % path)
                return self.send_json(404, status(404, "NotFound", 'secrets "%s" not found' % name, details))
            log("GET %s: 200 (%d keys)" % (path, len(obj["data"])))
            return self.send_json(200, obj)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any

    httpd = standin_tls.TLSServer((a.host, a.port), Handler, a.cert, a.key, log)
    port = standin_tls.announce(httpd, a.port_file, "ready {port}")
    log("listening on https://%s:%d (%d secrets, %s)" % (
        a.host, port, len(secrets_by_key), "all allowed" if allowed is None else "%d allowed" % len(allowed)))
    standin_tls.serve(httpd)


if __name__ == "__main__":
    main()
