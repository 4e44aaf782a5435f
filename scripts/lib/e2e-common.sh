# Sourced first by scripts/e2e-canton.sh and scripts/e2e-faults.sh (from the project's root):
# failure reporting, the cleanup trap and the steps both need before their own servers start.
#
# The sourcing script may set E2E_QUIET_LOGS (globs of logs not to excerpt on failure) and define
# e2e_stop_servers, which the cleanup calls before it stops the background processes in PIDS.

FAILURE=""
fail() {   # the reason is printed last, after the cleanup's log excerpts
  trap - ERR
  FAILURE="$*"
  exit 1
}
trap 'fail "line $LINENO: command failed (exit $?): $BASH_COMMAND"' ERR
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
W=""          # the temp dir
PIDS=()       # background processes the script started
E2E_QUIET_LOGS=()
step() { echo "== [$(( $(date +%s) - START ))s] $*"; }

cleanup() {
  local rc=$? log glob quiet
  trap - ERR
  set +e
  if [ $rc -ne 0 ] && [ -d "${W:-}/logs" ]; then
    for log in "$W"/logs/*; do
      [ -s "$log" ] || continue
      quiet=""
      for glob in "${E2E_QUIET_LOGS[@]}"; do
        # shellcheck disable=SC2053  # a glob on purpose
        [[ $log == $glob ]] && quiet=1
      done
      [ -n "$quiet" ] && continue
      echo "--- last lines of logs/$(basename "$log")"; tail -n 12 "$log"
    done
  fi
  declare -F e2e_stop_servers >/dev/null && e2e_stop_servers
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null
  done
  if [ -n "${W:-}" ]; then
    if [ "${E2E_KEEP:-}" = 1 ]; then echo "e2e: kept $W"; else $SUDO rm -rf "$W"; fi
  fi
  if [ $rc -ne 0 ]; then
    echo "FAIL: ${FAILURE:-exit code $rc}"
    exit 1
  fi
}
trap 'FAILURE="interrupted"; exit 130' INT TERM
trap cleanup EXIT

# e2e_dependencies [GIVEN-BINARY]: python3, pip, openssl and boto3 (for the checks on the store),
# then scripts/setup.sh (PostgreSQL 15, zstd, SeaweedFS; it also insists on swift, which is needed
# only when no cnbackup binary is given).
e2e_dependencies() {
  local need=()
  command -v python3 >/dev/null 2>&1 || need+=(python3)
  python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
  if [ ${#need[@]} -gt 0 ]; then
    echo "e2e: installing ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  if ! scripts/setup.sh; then
    [ -n "${1:-}" ] || fail "scripts/setup.sh failed"
    echo "e2e: scripts/setup.sh failed; continuing with the given binary"
  fi
  hash -r
  if ! python3 -c 'import botocore' 2>/dev/null; then
    echo "e2e: installing boto3"
    { python3 -m pip install -q boto3 2>/dev/null || python3 -m pip install -q --break-system-packages boto3; } \
      || { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-botocore >/dev/null; } || true
    command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
  fi
  python3 -c 'import botocore' 2>/dev/null || fail "python3 cannot import botocore (pip install boto3)"
}

# e2e_binary [GIVEN-BINARY]: sets CNB to the absolute path of the cnbackup to test (the debug
# build when none is given). Not a command substitution, so that `fail` ends the script itself.
e2e_binary() {
  CNB=${1:-}
  if [ -z "$CNB" ]; then
    command -v swift >/dev/null 2>&1 || fail "no cnbackup binary given and swift is not on PATH"
    CNB="$(swift build --show-bin-path)/cnbackup"
  fi
  [ -x "$CNB" ] || fail "cnbackup binary not found or not executable: $CNB"
  CNB=$(cd "$(dirname "$CNB")" && pwd)/$(basename "$CNB")
}

free_ports() {   # N distinct free TCP ports on 127.0.0.1, held together while chosen
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# start_seaweedfs BUCKET: SeaweedFS (`weed mini`) on free loopback ports with a fresh access key,
# data in $W/weed, its log in $W/logs/weed.log; waits until an authenticated request succeeds and
# BUCKET exists. Sets S3P, S3_KEY, S3_SECRET, WEED_PID, S3_ENDPOINT, BUCKET and defines s3py:
# `s3py 'python using c (client) and b (bucket)'` for checks straight on the store.
start_seaweedfs() {
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
