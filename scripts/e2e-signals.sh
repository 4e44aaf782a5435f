#!/usr/bin/env bash
# End-to-end test of how `cnbackup run` stops on SIGTERM, as Kubernetes stops a Job (deadline,
# node drain, kubectl delete):
#   - SeaweedFS (`weed mini`) as the S3 store;
#   - a `kind: generic` pipeline with three captures: a shell that starts a long-running grandchild
#     and streams random bytes for ever (a multipart upload is in flight when the signal comes), a
#     postgres capture whose pg_dump (a stand-in in a private binDirectory) also never ends while
#     cnbackup holds its password in a private pgpass file, and a small capture that completes;
# then SIGTERM to cnbackup once the multipart upload is open. Within 15 s: cnbackup exited 143
# (128 + SIGTERM), neither child nor grandchild of either capture is left, no multipart upload is
# open, its private temporary folder (TMPDIR) is empty, and the store holds a signed partial set
# with the completed capture. Then a second run, signalled twice, ends at once (also 143).
#
# Usage: scripts/e2e-signals.sh [PATH/TO/cnbackup]   Prints `ok: ...`, or `FAIL: reason` and exits 1.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
START=$(date +%s)

# shellcheck source=lib/e2e-common.sh
. scripts/lib/e2e-common.sh
# shellcheck source=lib/servers.sh
. scripts/lib/servers.sh
E2E_QUIET_LOGS=("*/keys.log" "*/weed.log")
e2e_stop_servers() { pkill -KILL -f "$MARK" 2>/dev/null || true; }

step "dependencies"
e2e_dependencies "${1:-}"
e2e_binary "${1:-}"

e2e_tempdir signals tmp bin
chmod 700 "$W/tmp"
MARK="cnbsig$(openssl rand -hex 4)"   # in every child's command line, to find leftovers

start_seaweedfs signals

step "keys and pipeline"
R=$("$CNB" keys generate --out "$W/secrets/ops.key" 2>>"$W/logs/keys.log" | grep -oE 'cnb1-x25519-pub-[A-Za-z0-9_=-]+' | head -1)
S=$("$CNB" keys generate --signing --out "$W/secrets/sign.key" 2>>"$W/logs/keys.log" | grep -oE 'cnb1-ed25519-pub-[A-Za-z0-9_=-]+' | head -1)
[ -n "$R" ] && [ -n "$S" ] || fail "keys generate printed no public keys"
printf 'not-a-real-password-%s\n' "$MARK" >"$W/secrets/pg-password"; chmod 600 "$W/secrets/pg-password"
# A stand-in PostgreSQL client: psql answers the evidence query, pg_dump never ends (and starts a
# grandchild), so the run holds its pgpass file when the signal comes.
cat >"$W/bin/psql" <<SH
#!/bin/sh
echo "2026-11-29T04:00:00.000Z|f||17.2"
SH
cat >"$W/bin/pg_dump" <<SH
#!/bin/sh
case "\$1" in --version) echo "pg_dump (PostgreSQL) 17.2"; exit 0;; esac
sh -c 'sleep 1000; : $MARK-pg-grandchild' &
while :; do head -c 65536 /dev/urandom; sleep 0.2; done
SH
chmod 755 "$W/bin/psql" "$W/bin/pg_dump"
cat >"$W/p.yaml" <<YAML
version: 1
node: { name: sig-node, kind: generic }
epoch: { migrationId: 4, serial: 1 }
store: { url: "s3://$BUCKET/signals", endpoint: "$S3_ENDPOINT", region: us-east-1, pathStyle: true, provider: seaweedfs }
encryption: { recipients: [ "$R" ] }
signing: { keyFile: "$W/secrets/sign.key" }
verify: { readBack: none }
parallelism: 3
captures:
  - { name: endless, role: other, command: [ sh, -c, "sleep 1000 & : $MARK-grandchild; exec head -c 100000000000 /dev/urandom" ] }
  - { name: db, role: other, postgres: { host: 127.0.0.1, port: 1, user: cnadmin, passwordFile: "$W/secrets/pg-password", databases: [ app ], binDirectory: "$W/bin" } }
  - { name: small, role: other, command: [ printf, "done-$MARK" ] }
YAML
# The grandchild above carries the mark in its shell's command line (sh -c "sleep 1000 & ...").
export AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET TMPDIR="$W/tmp" CNBACKUP_LOG_FORMAT=json

open_uploads() { s3py "print(len(c.list_multipart_uploads(Bucket=b).get('Uploads', [])))"; }
leftovers() { pgrep -f "$MARK" | grep -v "^$$\$" || true; }

step "run, then SIGTERM while the multipart upload is open"
"$CNB" run "$W/p.yaml" >"$W/logs/run1.out" 2>"$W/logs/run1.err" &
RUN=$!
for _ in $(seq 1 100); do
  [ "$(open_uploads)" -ge 1 ] && break
  kill -0 $RUN 2>/dev/null || fail "cnbackup ended before the upload was open: $(tail -3 "$W/logs/run1.err")"
  sleep 0.2
done
[ "$(open_uploads)" -ge 1 ] || fail "no multipart upload was ever open"
[ -n "$(find "$W/tmp" -name pgpass)" ] || fail "the run holds no pgpass file: the test would prove nothing"
[ -n "$(leftovers)" ] || fail "no marked child is running: the test would prove nothing"
SIGNALLED=$(date +%s.%N)
kill -TERM $RUN
CODE=0; wait $RUN || CODE=$?
TOOK=$(python3 -c "import time; print(round(time.time() - $SIGNALLED, 1))")
[ "$CODE" = 143 ] || fail "cnbackup exited $CODE after SIGTERM, expected 143: $(tail -3 "$W/logs/run1.err")"
python3 -c "import sys; sys.exit(0 if $TOOK < 15 else 1)" || fail "cnbackup took ${TOOK}s to stop (limit 15 s)"
sleep 0.3
[ -z "$(leftovers)" ] || { ps -o pid,pgid,args -p "$(leftovers | paste -sd,)" || true; fail "children or grandchildren survived the run"; }
[ "$(open_uploads)" = 0 ] || fail "a multipart upload is still open after SIGTERM"
[ -z "$(ls -A "$W/tmp")" ] || fail "temporary files remain: $(ls -A "$W/tmp")"
grep -q '"stopped\|STOPPED' "$W/logs/run1.err" || fail "the log does not say the run was stopped"
"$CNB" list --store "s3://$BUCKET/signals?endpoint=$S3_ENDPOINT&pathStyle=true&region=us-east-1" --signer "$S" --json >"$W/list.json" 2>"$W/logs/list.err" || true
python3 - "$W/list.json" <<'PY' || fail "the store does not hold one signed partial set with the completed capture"
import json, sys
d = json.load(open(sys.argv[1]))
sets = d["sets"]
assert len(sets) == 1, sets
s = sets[0]
assert not s["complete"], s
assert s.get("trusted", True), s
PY
"$CNB" verify --store "s3://$BUCKET/signals?endpoint=$S3_ENDPOINT&pathStyle=true&region=us-east-1" --signer "$S" \
  "$(python3 -c "import json; print(json.load(open('$W/list.json'))['sets'][0]['id'])")" --json >"$W/verify.json" 2>&1 || true
grep -q '"small"' "$W/verify.json" || fail "the partial set does not hold the completed capture: $(head -c 600 "$W/verify.json")"

step "a second signal ends at once"
"$CNB" run "$W/p.yaml" --grace-period 60 >"$W/logs/run2.out" 2>"$W/logs/run2.err" &
RUN=$!
for _ in $(seq 1 100); do [ "$(open_uploads)" -ge 1 ] && break; sleep 0.2; done
# A child that ignores SIGTERM keeps the grace period running: the second signal must end it.
kill -TERM $RUN; sleep 0.5; kill -TERM $RUN 2>/dev/null || true
CODE=0; wait $RUN || CODE=$?
[ "$CODE" = 143 ] || fail "second SIGTERM: exit $CODE, expected 143"
sleep 0.3
[ -z "$(leftovers)" ] || fail "children survived a second signal"
[ -z "$(ls -A "$W/tmp")" ] || fail "temporary files remain after a second signal: $(ls -A "$W/tmp")"
"$CNB" cleanup --store "s3://$BUCKET/signals?endpoint=$S3_ENDPOINT&pathStyle=true&region=us-east-1" --older-than 0s --apply >/dev/null 2>&1 || true
[ "$(open_uploads)" = 0 ] || fail "cleanup left a multipart upload open"

echo "ok: SIGTERM stopped the run in ${TOOK}s with exit 143: no child or grandchild left, no multipart upload open, no temporary file, a signed partial set committed"
