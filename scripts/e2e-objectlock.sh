#!/usr/bin/env bash
# End-to-end test of S3 Object Lock against moto's S3 server (which implements it for PutObject):
# a bucket with Object Lock on, `store.objectLock: { mode: governance, days: 2 }` in the pipeline,
# three runs; then every object carries GOVERNANCE retention two days ahead, a plain delete of a
# locked object is refused by the server, `check-store` reports Object Lock and versioning,
# `prune --apply` keeps the set it would otherwise delete and says until when, and a second put of
# an existing key with If-None-Match is refused (history is never rewritten through cnbackup).
# moto ignores lock headers on multipart uploads (AWS applies them at CreateMultipartUpload), so
# the captures here stay below the single-PUT limit.
#
# Usage: scripts/e2e-objectlock.sh [PATH/TO/cnbackup]   Prints `ok: ...`, or `FAIL: reason` and exits 1.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
START=$(date +%s)
# shellcheck source=lib/e2e-common.sh
. scripts/lib/e2e-common.sh
# shellcheck source=lib/servers.sh
. scripts/lib/servers.sh
E2E_QUIET_LOGS=("*/keys.log")

step "dependencies"
e2e_dependencies "${1:-}"
e2e_binary "${1:-}"

e2e_tempdir objectlock
start_moto
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing-secret-key E2E_ENDPOINT=$MOTO_ENDPOINT
mb() { python3 - "$@" <<'PY'
import os, sys, time, datetime, boto3
c = boto3.client("s3", endpoint_url=os.environ["E2E_ENDPOINT"], region_name="us-east-1")
cmd = sys.argv[1]
if cmd == "create":
    for _ in range(60):
        try:
            c.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True); break
        except Exception:
            time.sleep(0.3)
    else:
        sys.exit("moto did not come up")
elif cmd == "retention":
    bad = []
    for o in c.list_objects_v2(Bucket="locked", Prefix="p/")["Contents"]:
        h = c.head_object(Bucket="locked", Key=o["Key"])
        until = h.get("ObjectLockRetainUntilDate")
        ok = h.get("ObjectLockMode") == "GOVERNANCE" and until is not None and \
             datetime.timedelta(days=1, hours=23) < until - datetime.datetime.now(datetime.timezone.utc) < datetime.timedelta(days=2, hours=1)
        if not ok: bad.append((o["Key"], h.get("ObjectLockMode"), until))
    print(len(bad)); [print(b, file=sys.stderr) for b in bad]
elif cmd == "delete":
    key = sys.argv[2]   # a key, or a prefix: its first object version
    versions = c.list_object_versions(Bucket="locked", Prefix=key).get("Versions", [])
    try:
        c.delete_object(Bucket="locked", Key=versions[0]["Key"], VersionId=versions[0]["VersionId"]); print("deleted")
    except Exception as e:
        print(getattr(e, "response", {}).get("Error", {}).get("Code", str(e)))
PY
}
mb create

step "keys, pipeline and three runs with store.objectLock"
R=$("$CNB" keys generate --out "$W/secrets/ops.key" 2>>"$W/logs/keys.log" | grep -oE 'cnb1-x25519-pub-[A-Za-z0-9_=-]+' | head -1)
S=$("$CNB" keys generate --signing --out "$W/secrets/sign.key" 2>>"$W/logs/keys.log" | grep -oE 'cnb1-ed25519-pub-[A-Za-z0-9_=-]+' | head -1)
cat >"$W/p.yaml" <<YAML
version: 1
node: { name: locked-node, kind: generic }
epoch: { migrationId: 4, serial: 1 }
store: { url: "s3://locked/p", endpoint: "$E2E_ENDPOINT", region: us-east-1, pathStyle: true, provider: aws,
         objectLock: { mode: governance, days: 2 } }
encryption: { recipients: [ "$R" ] }
signing: { keyFile: "$W/secrets/sign.key" }
captures:
  - { name: payload, role: other, command: [ sh, -c, "head -c 3000000 /dev/urandom" ] }
YAML
STORE="s3://locked/p?endpoint=$E2E_ENDPOINT&region=us-east-1&pathStyle=true"
"$CNB" run "$W/p.yaml" >"$W/logs/run1.out" 2>"$W/logs/run1.err" || fail "run 1: $(tail -2 "$W/logs/run1.err")"
for n in 2 3; do
  sleep 1.1
  "$CNB" run "$W/p.yaml" >"$W/logs/run$n.out" 2>"$W/logs/run$n.err" || fail "run $n: $(tail -2 "$W/logs/run$n.err")"
done
FIRST=$(grep -oE '[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}' "$W/logs/run1.out" | head -1)
# The middle set is the one retention would delete (the oldest starts the history chain).
MIDDLE=$(grep -oE '[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}' "$W/logs/run2.out" | head -1)

step "retention on every object, and the server refuses a plain delete"
[ "$(mb retention 2>"$W/logs/retention.err")" = 0 ] || fail "objects without GOVERNANCE retention two days ahead: $(cat "$W/logs/retention.err")"
answer=$(mb delete "p/locked-node/migration-4/serial-1/$FIRST/manifest-")
[ "$answer" = AccessDenied ] || fail "a locked manifest's delete was answered '$answer', expected AccessDenied"

step "check-store reports Object Lock and versioning"
"$CNB" check-store --store "$STORE" --json --metrics-file "$W/check.prom" >"$W/check.json" 2>"$W/logs/check.err" || true
grep -q '^cnbackup_store_object_lock_enabled{store="s3://locked/p/"} 1$' "$W/check.prom" \
  || fail "check-store --metrics-file does not report Object Lock: $(cat "$W/check.prom")"
python3 - "$W/check.json" <<'PY' || fail "check-store: $(cat "$W/check.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["objectLock"].startswith("Enabled"), r
assert r["versioning"] == "Enabled", r
assert r["canWrite"] and r["overwriteRefused"] is True, r
PY

step "prune --apply keeps the locked set it would delete, and says until when"
"$CNB" prune --store "$STORE" --signer "$S" --node locked-node --keep-last 1 --keep-within 0s --retention-period 1d \
  --margin 0s --apply --json >"$W/prune.json" 2>"$W/logs/prune.err" || true
python3 - "$W/prune.json" "$MIDDLE" <<'PY' || fail "prune did not keep the locked set: $(head -c 800 "$W/prune.json") $(tail -2 "$W/logs/prune.err")"
import json, sys
d = json.load(open(sys.argv[1])); first = sys.argv[2]
plan = d.get("plan", d)
decisions = {x["setId"]: x for x in plan["decisions"]}
x = decisions[first]
assert x["keep"], x
assert any("Object Lock retains it until" in r for r in x["reasons"]), x
PY
"$CNB" list --store "$STORE" --signer "$S" --json | python3 -c "import json,sys; s=json.load(sys.stdin)['sets']; assert len(s)==3 and all(x['complete'] for x in s), s" \
  || fail "both sets must still be listed complete"

step "junk manifests the store will not hand back (GLACIER, SSE-C) are one set's problem: the real sets list"
# The bucket's writer puts manifest candidates whose GET the store refuses: archived (403
# InvalidObjectState until restored) and encrypted with a customer key it keeps (400 without it).
# One sits in a set folder of its own, one beside a real set's manifest.
python3 - "$MIDDLE" <<'PY' 2>"$W/logs/junk.err" || fail "could not plant the junk manifests: $(tail -3 "$W/logs/junk.err")"
import os, sys, boto3
c = boto3.client("s3", endpoint_url=os.environ["E2E_ENDPOINT"], region_name="us-east-1")
base = "p/locked-node/migration-4/serial-1/"
c.put_object(Bucket="locked", Key=base + "20261101T000000Z-0a0a0a0a/manifest-00000000000000aa.json", Body=b"{}", StorageClass="GLACIER")
c.put_object(Bucket="locked", Key=base + sys.argv[1] + "/manifest-00000000000000bb.json", Body=b"{}",
             SSECustomerAlgorithm="AES256", SSECustomerKey="k" * 32)
PY
rc=0; "$CNB" list --store "$STORE" --signer "$S" --json >"$W/list-junk.json" 2>"$W/logs/list-junk.err" || rc=$?
[ $rc = 2 ] || fail "list with a junk set exited $rc, expected 2 (an untrusted set): $(tail -3 "$W/logs/list-junk.err")"
python3 - "$W/list-junk.json" "$MIDDLE" <<'PY' || fail "the junk manifests broke the listing: $(head -c 1500 "$W/list-junk.json")"
import json, sys
d = json.load(open(sys.argv[1]))
sets = {x["id"]: x for x in d["sets"]}
real = [x for x in d["sets"] if x["id"] != "20261101T000000Z-0a0a0a0a"]
assert len(real) == 3 and all(x["trusted"] and x["complete"] for x in real), real
junk = sets["20261101T000000Z-0a0a0a0a"]
assert not junk["trusted"] and junk["status"] == "untrusted" and any("cannot be read" in p for p in junk["problems"]), junk
assert any(i["key"].endswith("manifest-00000000000000bb.json") for i in d["ignored"]), d["ignored"]
PY
"$CNB" verify --store "$STORE" --signer "$S" --node locked-node --all >"$W/logs/verify-junk.out" 2>&1 || true
grep -q "$MIDDLE" "$W/logs/verify-junk.out" || fail "verify --all did not get past the junk: $(tail -3 "$W/logs/verify-junk.out")"

echo "ok: e2e-objectlock: GOVERNANCE retention on every object, locked delete refused by the server, check-store reports it, prune keeps locked sets and says until when, GLACIER and SSE-C junk manifests leave the real sets listed ($(( $(date +%s) - START ))s)"
