#!/usr/bin/env bash
# End-to-end fault test of cnbackup's S3 client:
#   - SeaweedFS (`weed mini`) as the S3 store, every port chosen free;
#   - scripts/fault-proxy.py in front of it: answers some requests 500 InternalError / 503 SlowDown,
#     resets connections within request bodies and within answer bodies, completes multipart
#     uploads but drops the answer, delays requests, flips a byte of PUT and UploadPart bodies (the
#     server must refuse them by their checksum; seeded RNG; E2E_FAULT_SEED);
# then 5 `cnbackup run`s through the proxy of a `kind: generic` pipeline whose one `file` capture
# is 40 MiB of random bytes (a multipart upload of several parts, read back in full). Every run must
# exit 0: retries absorb the faults. Then, straight to SeaweedFS: list shows 5 complete sets, each
# restores byte-identical and passes verify --deep, and no multipart upload or orphan is left. The
# proxy must have injected every kind of fault at least once, or the test proves nothing.
#
# Usage: scripts/e2e-faults.sh [PATH/TO/cnbackup]     (default: $(swift build --show-bin-path)/cnbackup)
# Prints `ok: ...` and exits 0, or prints `FAIL: reason` and exits 1. E2E_KEEP=1 keeps the temp dir;
# E2E_FAULT_SEED picks the proxy's seed; E2E_FAULT_ARGS adds fault-proxy.py flags (e.g. "--reset-request-rate 0"
# to switch a kind off; only kinds left on must fire); E2E_FAULTS_BUDGET bounds the cnbackup commands (s, 200).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
START=$(date +%s)
RUNS=5
SEED=${E2E_FAULT_SEED:-20261125}
BUDGET=${E2E_FAULTS_BUDGET:-200}

# shellcheck source=lib/e2e-common.sh
. scripts/lib/e2e-common.sh
# shellcheck source=lib/servers.sh
. scripts/lib/servers.sh
E2E_QUIET_LOGS=("*/keys.log" "*/validate*" "*/run-*" "*/weed.log")
FULL_MOUNT=""   # the tmpfs of the full-disk step, while mounted
e2e_stop_servers() { [ -z "$FULL_MOUNT" ] || $SUDO umount "$FULL_MOUNT" 2>/dev/null; }

# ---------------------------------------------------------------- dependencies
step "dependencies"
e2e_dependencies "${1:-}"
for t in weed openssl python3 cmp; do command -v "$t" >/dev/null 2>&1 || fail "$t is not on PATH"; done

e2e_binary "${1:-}"

# ---------------------------------------------------------------- temp dir
e2e_tempdir faults out tmp data

# ---------------------------------------------------------------- SeaweedFS
start_seaweedfs cnbackup-faults

# ---------------------------------------------------------------- the fault proxy
FAULT_LOG=$W/logs/faults.log
COUNTS=$W/out/fault-counts.json
: >"$FAULT_LOG"
# shellcheck disable=SC2086  # E2E_FAULT_ARGS is a list of flags
python3 "$ROOT/scripts/fault-proxy.py" --upstream "127.0.0.1:$S3P" --seed "$SEED" --log "$FAULT_LOG" --counts "$COUNTS" \
  ${E2E_FAULT_ARGS:-} >"$W/logs/proxy.out" 2>"$W/logs/proxy.err" </dev/null &
PIDS+=($!); PROXY_PID=$!
PROXY_PORT=""
for _ in $(seq 100); do
  PROXY_PORT=$(head -n 1 "$W/logs/proxy.out" 2>/dev/null || true)
  [ -n "$PROXY_PORT" ] && break
  kill -0 "$PROXY_PID" 2>/dev/null || { cat "$W/logs/proxy.err"; fail "fault-proxy.py exited at start"; }
  sleep 0.1
done
[[ $PROXY_PORT =~ ^[0-9]+$ ]] || fail "fault-proxy.py printed no port: '$PROXY_PORT'"
PROXY_ENDPOINT=http://127.0.0.1:$PROXY_PORT
step "fault proxy on 127.0.0.1:$PROXY_PORT -> 127.0.0.1:$S3P (seed $SEED)"

# ---------------------------------------------------------------- keys, data, pipeline
step "keys, 40 MiB of random data, pipeline"
R1=$("$CNB" keys generate --out "$W/secrets/ops.key" 2>>"$W/logs/keys.log") || fail "keys generate"
SIGNER=$("$CNB" keys generate --signing --out "$W/secrets/signing.key" 2>>"$W/logs/keys.log") || fail "keys generate --signing"
[[ $R1 == cnb1-x25519-pub-* && $SIGNER == cnb1-ed25519-pub-* ]] || fail "keys generate printed unexpected public keys"
DATA=$W/data/random.bin
head -c $((40 << 20)) /dev/urandom >"$DATA"

NODE=faults-e2e
STORE=s3://$BUCKET/faults
DIRECT_ARGS=(--store "$STORE" --endpoint "$S3_ENDPOINT" --region us-east-1 --path-style --provider seaweedfs --signer "$SIGNER")
cat >"$W/pipeline.yaml" <<YAML
version: 1
node: { name: $NODE, kind: generic }
epoch: { migrationId: 0, serial: 0 }
store: { url: "$STORE", endpoint: "$PROXY_ENDPOINT", region: us-east-1, pathStyle: true, provider: seaweedfs }
encryption: { recipients: [ "$R1" ] }
signing: { keyFile: "$W/secrets/signing.key" }
verify: { readBack: full }
captures:
  - { name: data, role: other, file: "$DATA" }
YAML
DEADLINE=$(( $(date +%s) + BUDGET ))
# cnb ARGS...: cnbackup with the S3 credentials in its environment only, a private TMPDIR, and
# whatever is left of the time budget.
cnb() {
  local left=$(( DEADLINE - $(date +%s) ))
  [ $left -gt 5 ] || left=5
  AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET TMPDIR=$W/tmp timeout -k 5 "$left" "$CNB" "$@"
}
cnb validate "$W/pipeline.yaml" >"$W/logs/validate.log" 2>&1 || { cat "$W/logs/validate.log"; fail "cnbackup validate"; }

counts() { python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(" ".join("%s=%d" % (k, c.get(k, 0)) for k in ["error-500","error-503","reset-request","reset-response","drop-complete","delay","corrupt-request"]))' "$COUNTS"; }

# explain_failure RUN FIRST_LINE: the faults injected during the run, and the one its error points at.
explain_failure() {
  local n=$1 from=$2
  echo "--- faults the proxy injected during run $n:"
  tail -n +"$from" "$FAULT_LOG" | sed 's/^/   /'
  python3 - "$W/logs/run-$n.err" "$FAULT_LOG" "$from" <<'PY' || true
import re, sys
err = open(sys.argv[1], errors="replace").read()
faults = open(sys.argv[2]).read().splitlines()[int(sys.argv[3]) - 1:]
# cnbackup names the S3 call in its messages ("S3 COMPLETE upload of s3://...", "PUT part 3 of", ...).
calls = [("COMPLETE upload", "CompleteMultipartUpload"), ("CREATE upload", "CreateMultipartUpload"),
         ("PUT part", "UploadPart"), ("ABORT upload", "AbortMultipartUpload"), ("LIST uploads", "ListMultipartUploads"),
         ("LIST", "ListObjects"), ("HEAD", "HeadObject"), ("reading", "GetObject"), ("GET", "GetObject"),
         ("PUT", "PutObject"), ("DELETE", "DeleteObjects")]
op = next((o for word, o in calls if word in err), None)
curl = {"52": "CURLE_GOT_NOTHING", "55": "CURLE_SEND_ERROR", "56": "CURLE_RECV_ERROR", "18": "CURLE_PARTIAL_FILE",
        "28": "CURLE_OPERATION_TIMEDOUT", "65": "CURLE_SEND_FAIL_REWIND: curl had to resend the body on a new connection and could not rewind it"}
for code in sorted(set(re.findall(r"curl error (\d+)", err))):
    print("--- curl error %s is %s" % (code, curl.get(code, "(see curl's libcurl-errors)")))
if op is None:
    print("--- the error names no S3 call; last fault injected: %s" % (faults[-1] if faults else "none"))
else:
    hits = [f for f in faults if (" %s " % op) in f]
    print("--- the error is about %s; faults on it in this run: %s" % (op, "; ".join(hits) if hits else "none"))
PY
}

# ---------------------------------------------------------------- runs under faults
for n in $(seq "$RUNS"); do
  from=$(( $(wc -l <"$FAULT_LOG") + 1 ))
  t0=$(date +%s)
  rc=0; cnb run "$W/pipeline.yaml" >"$W/logs/run-$n.out" 2>"$W/logs/run-$n.err" || rc=$?
  injected=$(( $(wc -l <"$FAULT_LOG") - from + 1 ))
  if [ $rc != 0 ]; then
    echo "--- stderr of run $n:"; cat "$W/logs/run-$n.err"
    explain_failure "$n" "$from"
    if [ $rc = 124 ] || [ $rc = 137 ]; then
      fail "cnbackup run $n (through the fault proxy) did not finish within the time budget (${BUDGET}s)"
    fi
    fail "cnbackup run $n (through the fault proxy) exited $rc"
  fi
  if grep -qF -- "$S3_SECRET" "$W/logs/run-$n.out" "$W/logs/run-$n.err"; then fail "cnbackup run $n printed the S3 secret"; fi
  step "run $n/$RUNS: exit 0 in $(( $(date +%s) - t0 ))s, $injected fault(s) injected; so far: $(counts)"
done
kill "$PROXY_PID" 2>/dev/null || true

# ---------------------------------------------------------------- the store, straight to SeaweedFS
step "list, restore, verify --deep (straight to SeaweedFS)"
cnb list "${DIRECT_ARGS[@]}" --node "$NODE" --json >"$W/out/list.json" 2>"$W/logs/list.err" || { cat "$W/logs/list.err"; fail "cnbackup list"; }
SETS=$(python3 - "$W/out/list.json" "$RUNS" <<'PY'
import json, sys
sets = json.load(open(sys.argv[1]))["sets"]
assert len(sets) == int(sys.argv[2]), "expected %s sets, got %d: %r" % (sys.argv[2], len(sets), sets)
for s in sets:
    assert s.get("complete") is True, "a set is not complete: %r" % s
print(" ".join(s["id"] for s in sets))
PY
) || fail "list --json: $(cat "$W/out/list.json")"
# check_set SET: restore byte-identical, then verify --deep; writes the reason to out/SET.failed on failure.
check_set() {
  local set=$1 rc=0
  cnb restore "${DIRECT_ARGS[@]}" "$set" --component data --to "$W/out/$set.bin" --identity "$W/secrets/ops.key" \
    >"$W/logs/restore-$set.log" 2>&1 || rc=$?
  if [ $rc != 0 ]; then
    cat "$W/logs/restore-$set.log"; echo "cnbackup restore of set $set exited $rc$( [ $rc = 124 ] && echo " (time budget)")" >"$W/out/$set.failed"; return
  fi
  if ! cmp "$DATA" "$W/out/$set.bin"; then echo "set $set restores to different bytes" >"$W/out/$set.failed"; return; fi
  rm -f "$W/out/$set.bin"
  cnb verify "${DIRECT_ARGS[@]}" "$set" --deep --identity "$W/secrets/ops.key" >"$W/logs/verify-$set.log" 2>&1 || rc=$?
  if [ $rc != 0 ]; then
    cat "$W/logs/verify-$set.log"; echo "cnbackup verify --deep $set exited $rc$( [ $rc = 124 ] && echo " (time budget)")" >"$W/out/$set.failed"
  fi
}
# Two sets at a time (the work is CPU-bound; more would only share the same cores).
read -r -a SET_LIST <<<"$SETS"
CHECKERS=()
for lane in 0 1; do
  ( trap - ERR EXIT; set +e
    for ((i = lane; i < ${#SET_LIST[@]}; i += 2)); do check_set "${SET_LIST[$i]}"; done ) &
  CHECKERS+=($!)
done
for p in "${CHECKERS[@]}"; do wait "$p" || true; done
for set in $SETS; do
  [ ! -e "$W/out/$set.failed" ] || fail "$(cat "$W/out/$set.failed")"
done

step "no multipart upload or orphan left"
cnb cleanup --store "$STORE" --endpoint "$S3_ENDPOINT" --region us-east-1 --path-style --provider seaweedfs --older-than 0s \
  >"$W/logs/cleanup.log" 2>&1 || { cat "$W/logs/cleanup.log"; fail "cnbackup cleanup (dry run)"; }
UPLOADS=$(s3py "
for u in c.list_multipart_uploads(Bucket=b).get('Uploads', []):
    print(u['Key'], u['UploadId'])
") || fail "list_multipart_uploads failed"
if [ -n "$UPLOADS" ] || ! grep -q "nothing to clean up" "$W/logs/cleanup.log"; then
  echo "--- cnbackup cleanup --older-than 0s (dry run):"; cat "$W/logs/cleanup.log"
  echo "--- multipart uploads in the bucket:"; echo "$UPLOADS"
  while read -r key id; do
    [ -n "${id:-}" ] || continue
    echo "--- upload $id ($key): the proxy's faults naming it:"
    grep -F -- "$id" "$FAULT_LOG" || echo "   none (the CreateMultipartUpload answer was not cut by the proxy)"
  done <<<"$UPLOADS"
  fail "multipart uploads or orphan objects were left behind after $RUNS successful runs"
fi

# ---------------------------------------------------------------- did the proxy do its job?
python3 - "$COUNTS" "$RUNS" <<'PY' || fail "the proxy did not inject every kind of fault or the backups were not multipart: $(cat "$COUNTS")"
import json, sys
c = json.load(open(sys.argv[1])); runs = int(sys.argv[2])
missing = [k for k in c["enabled"] if c.get(k, 0) < 1]
assert c["enabled"], "every kind of fault is switched off"
# The interesting places: a part cut on its way up, a read-back download cut half-way.
for kind, op in [("reset-request", "UploadPart"), ("reset-response", "GetObject"), ("corrupt-request", "UploadPart")]:
    assert kind not in c["enabled"] or c.get(kind + "@" + op, 0) > 0, "no %s fault on %s" % (kind, op)
assert not missing, "no fault of kind(s) %s was injected" % ", ".join(missing)
assert c.get("op:UploadPart", 0) >= runs * 5, "only %d UploadPart requests: the object was not a multipart upload of 5+ parts" % c.get("op:UploadPart", 0)
assert c.get("op:CompleteMultipartUpload", 0) >= runs, "only %d CompleteMultipartUpload requests" % c.get("op:CompleteMultipartUpload", 0)
PY
PROXY_ERRORS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("proxy-errors", 0))' "$COUNTS")
[ "$PROXY_ERRORS" = 0 ] || echo "e2e: note: $PROXY_ERRORS connection(s) ended other than by an injected fault (see logs/proxy.err)"

# ---------------------------------------------------------------- a full disk
# A file store on a 6 MiB tmpfs: a 10 MiB capture cannot fit. The run must say the file system is
# full, commit nothing for that capture (no object, no temporary part left) and still commit the
# small component as a partial set; cleanup then finds nothing to remove.
step "a full disk under the file store"
FULL_MOUNT=$W/full
mkdir -p "$FULL_MOUNT"
if $SUDO mount -t tmpfs -o size=6m tmpfs "$FULL_MOUNT" 2>"$W/logs/mount.log"; then
  cat >"$W/full.yaml" <<YAML
version: 1
node: { name: full-e2e, kind: generic }
epoch: { migrationId: 0, serial: 0 }
store: { url: "file://$FULL_MOUNT/store", create: true }
encryption: { recipients: [ "$R1" ] }
signing: { keyFile: "$W/secrets/signing.key" }
captures:
  - { name: big, role: other, command: [ sh, -c, "head -c 10000000 /dev/urandom" ] }
  - { name: small, role: other, command: [ printf, small ] }
YAML
  rc=0; "$CNB" run "$W/full.yaml" >"$W/logs/full.out" 2>"$W/logs/full.err" || rc=$?
  [ $rc = 2 ] || { cat "$W/logs/full.err"; fail "a run onto a full disk exited $rc, expected 2 (partial set)"; }
  grep -q "file system is full" "$W/logs/full.err" || { cat "$W/logs/full.err"; fail "the full-disk error does not say the file system is full"; }
  [ -z "$(find "$FULL_MOUNT/store" -name 'big-*.zst.cnb' -o -name '*.part' | head -1)" ] \
    || fail "a full disk left the failed object or a temporary part behind: $(find "$FULL_MOUNT/store" -type f | tr '\n' ' ')"
  "$CNB" list --store "file://$FULL_MOUNT/store" --signer "$SIGNER" --json >"$W/logs/full-list.json" 2>&1 || true
  python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["sets"]; assert len(s)==1 and s[0]["status"]=="partial" and s[0]["components"]==["small"], s' \
    "$W/logs/full-list.json" || fail "after the full disk the store does not hold one partial set with only the small component"
  "$CNB" cleanup --store "file://$FULL_MOUNT/store" --older-than 0s >"$W/logs/full-cleanup.log" 2>&1 \
    && grep -q "nothing to clean up" "$W/logs/full-cleanup.log" || fail "cleanup after the full disk: $(cat "$W/logs/full-cleanup.log")"
  $SUDO umount "$FULL_MOUNT"; FULL_MOUNT=""
else
  echo "   skipped: cannot mount a tmpfs here ($(cat "$W/logs/mount.log"))"
fi

step "done"
echo "ok: e2e-faults: $RUNS runs of a 40 MiB multipart backup through the fault proxy (seed $SEED) all exited 0 with faults $(counts); 5 complete sets restore byte-identical and pass verify --deep straight from SeaweedFS; no multipart upload or orphan left; $(( $(date +%s) - START ))s"
