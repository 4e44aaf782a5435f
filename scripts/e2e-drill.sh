#!/usr/bin/env bash
# End-to-end test of `cnbackup drill` against PostgreSQL 15:
#   - a source cluster (initdb as `postgres`, scram on loopback) with the databases of an SV-like
#     node (apps, participant, sequencer, mediator; roles in the apps capture's globals) and of a
#     validator-like node (apps, participant), sets made by `cnbackup run` of `kind: generic`
#     pipelines into a file:// store;
#   - a drill of each passes with throwaway instances (counts compared with the capture's), and
#     `list --json` / `verify` / `check-freshness --max-drill-age` see the receipt;
#   - a set whose tables belong to a role the scratch server lacks passes (the drill restores as its own role, without owners);
#   - a set whose signed counts disagree with the restored rows (one count changed in its manifest,
#     re-signed with the node's signing key) fails the drill, naming the table;
#   - a receipt signed by another drill key is ignored;
#   - a drill with --pg-host into the source server leaves no database behind;
#   - SIGTERM during a --pg-host drill and during restore --to-database: the database each created
#     is dropped, no temporary file or pg_restore is left.
# Usage: scripts/e2e-drill.sh [PATH/TO/cnbackup]. Needs root (or sudo) to run PostgreSQL as `postgres`.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
# shellcheck source=lib/e2e-common.sh
. scripts/lib/e2e-common.sh
# shellcheck source=lib/postgres.sh
. scripts/lib/postgres.sh
E2E_QUIET_LOGS=("*/keys.log")

step "dependencies"
pg_require 15
PG_BIN=$PG15_BIN
e2e_binary "${1:-}"
e2e_tempdir drill store tmp

step "source cluster"
pg_cluster source 15 --locale C --fast
PORT=${PG_PORT[source]}
echo 'drill-e2e-pw' >"$W/secrets/source.pw"
psql_su source -d postgres -c "create role cnadmin login superuser password 'drill-e2e-pw'" -c "create role app_owner nologin" -c "create role ghost nologin"
for db in sv_apps sv_participant sv_sequencer sv_mediator val_apps val_participant ghostly; do
  psql_su source -d postgres -c "create database $db"
  psql_su source -d "$db" -c "create table t1 (id int primary key, note text); insert into t1 select g, 'row ' || g || E'\\nsecond line' from generate_series(1, 500 + length('$db') * 10) g;" \
    -c "create table t2 (k text); insert into t2 select md5(g::text) from generate_series(1, 77) g;" -c "create table t3 (x int)" \
    -c "alter table t2 owner to app_owner"
done
psql_su source -d ghostly -c "create table owned_by_ghost (x int); insert into owned_by_ghost values (1); alter table owned_by_ghost owner to ghost"

step "keys and sets"
R1=$("$CNB" keys generate --out "$W/secrets/ops.key" 2>>"$W/logs/keys.log")
SIGNER=$("$CNB" keys generate --signing --out "$W/secrets/signing.key" 2>>"$W/logs/keys.log")
DRILL=$("$CNB" keys generate --signing --out "$W/secrets/drill.key" 2>>"$W/logs/keys.log")
FORGER=$("$CNB" keys generate --signing --out "$W/secrets/forger.key" 2>>"$W/logs/keys.log")
STORE="file://$W/store"; mkdir -p -m 700 "$W/store"   # run refuses a store folder that does not exist
cnb() { TMPDIR=$W/tmp timeout 300 "$CNB" "$@"; }
capture() {   # capture NAME ROLE DATABASES GLOBALS
  printf '  - name: %s\n    role: %s\n    postgres: { host: 127.0.0.1, port: %s, user: cnadmin, passwordFile: "%s", databases: [%s], globals: %s, binDirectory: "%s" }\n' \
    "$1" "$2" "$PORT" "$W/secrets/source.pw" "$3" "$4" "$PG_BIN"
}
pipeline() {   # pipeline NODE CAPTURES...
  local node=$1; shift
  { printf 'version: 1\nnode: { name: %s, kind: generic }\nepoch: { migrationId: 1, serial: 0 }\nstore: { url: "%s" }\nencryption: { recipients: [ "%s" ] }\nsigning: { keyFile: "%s" }\ncaptures:\n' \
      "$node" "$STORE" "$R1" "$W/secrets/signing.key"; printf '%s\n' "$@"; } >"$W/$node.yaml"
  cnb run "$W/$node.yaml" >"$W/logs/run-$node.log" 2>&1 || fail "run $node"
}
pipeline sv1 "$(capture apps apps sv_apps true)" "$(capture participant participant sv_participant false)" \
  "$(capture sequencer sequencer sv_sequencer false)" "$(capture mediator mediator sv_mediator false)"
pipeline val1 "$(capture apps apps val_apps true)" "$(capture participant participant val_participant false)"
pipeline ghost1 "$(capture apps apps ghostly false)"
# The counts are sealed to the recipients (totals in clear); break-glass `decrypt` opens them.
grep -q '"public.t1"' "$W"/store/sv1/migration-1/serial-0/*/manifest-*.json && fail "the SV set's manifest holds per-table counts in clear"
python3 - "$CNB" "$W/secrets/ops.key" "$W"/store/sv1/migration-1/serial-0/*/manifest-*.json <<'PY' || fail "the manifest's sealed count of sv_apps public.t1 is not 570"
import base64, json, subprocess, sys
m = json.load(open(sys.argv[3]))
c = next(c for c in m["components"] if c["name"] == "apps-sv_apps")
assert "rowCounts" not in c, c
s = c["sealedRowCounts"]
counts = json.loads(subprocess.run([sys.argv[1], "decrypt", "--identity", sys.argv[2]], input=base64.b64decode(s["sealed"]),
                                   capture_output=True, check=True).stdout)
assert counts["public.t1"] == 570 and s["rows"] == sum(counts.values()) and s["tables"] == len(counts), (counts, s)
PY

DR=(--store "$STORE" --signer "$SIGNER" --identity "$W/secrets/ops.key" --drill-key "$W/secrets/drill.key" --pg-bin "$PG_BIN")
step "SV-like and validator-like drills pass"
for node in sv1 val1; do
  cnb drill "${DR[@]}" --node $node >"$W/logs/drill-$node.out" 2>"$W/logs/drill-$node.log" || { cat "$W/logs/drill-$node.out"; fail "drill of $node failed"; }
  grep -q "drill PASSED" "$W/logs/drill-$node.out" || fail "drill of $node did not say PASSED"
  grep -q "compared with capture" "$W/logs/drill-$node.out" || fail "drill of $node did not compare with the capture's counts"
done
ls "$W"/store/sv1/migration-1/serial-0/*/drill-*.json.sig >/dev/null || fail "no receipt signature next to the SV set"
cnb list --store "$STORE" --signer "$SIGNER" --drill-signer "$DRILL" --node sv1 --json >"$W/list.json"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["sets"][0]; assert s["drill"]["status"]=="passed" and s["drill"]["restoreSeconds"]>0, s' "$W/list.json" || fail "list --json does not show the passing drill"
cnb verify --store "$STORE" --signer "$SIGNER" --drill-signer "$DRILL" --node sv1 --all | grep -q "newest drill: passed" || fail "verify does not report the drill"
cnb check-freshness --store "$STORE" --signer "$SIGNER" --node sv1 --max-age 1h --max-drill-age 7d --drill-signer "$DRILL" --metrics-file "$W/drill.prom" >/dev/null \
  || fail "check-freshness --max-drill-age failed with a fresh drill"
grep -q '^cnbackup_drill_status{node="sv1"} 1' "$W/drill.prom" || fail "no cnbackup_drill_status 1 in the metrics"
# The disaster copy carries the receipts: freshness with --max-drill-age holds against it too.
# First only sv1's set: val1 has nothing in the copy yet (+Inf behind); after the whole copy, no node is behind.
SV1_SET=$(cnb list --store "$STORE" --signer "$SIGNER" --node sv1 | awk 'END {print $1}')
cnb copy --from "$STORE" --to "file://$W/copy" --signer "$SIGNER" --metrics-file "$W/copy-sv1.prom" "$SV1_SET" >"$W/logs/copy-sv1.out" 2>&1 \
  || { tail -5 "$W/logs/copy-sv1.out"; fail "copy of sv1's set"; }
grep -q '^cnbackup_copy_lag_seconds{node="sv1"} 0$' "$W/copy-sv1.prom" && grep -q '^cnbackup_copy_lag_seconds{node="val1"} +Inf$' "$W/copy-sv1.prom" \
  || fail "copy --metrics-file after sv1's set alone: $(cat "$W/copy-sv1.prom")"
cnb copy --from "$STORE" --to "file://$W/copy" --signer "$SIGNER" --metrics-file "$W/copy.prom" >"$W/logs/copy.out" 2>&1 || { tail -5 "$W/logs/copy.out"; fail "copy to the disaster store"; }
grep -q '^cnbackup_copy_lag_seconds{node="sv1"} 0$' "$W/copy.prom" && grep -q '^cnbackup_copy_lag_seconds{node="val1"} 0$' "$W/copy.prom" \
  || fail "copy --metrics-file does not say the copy caught up: $(cat "$W/copy.prom")"
ls "$W"/copy/sv1/migration-1/serial-0/*/drill-*.json.sig >/dev/null 2>&1 || fail "the copy carries no drill receipt"
cnb check-freshness --store "file://$W/copy" --signer "$SIGNER" --node sv1 --max-age 1h --max-drill-age 7d --drill-signer "$DRILL" >/dev/null \
  || fail "check-freshness --max-drill-age fails against the disaster copy"

step "a forged receipt is ignored"
cnb drill "${DR[@]}" --node val1 --drill-key "$W/secrets/forger.key" >/dev/null 2>&1 || true
rc=0; cnb check-freshness --store "$STORE" --signer "$SIGNER" --node ghost1 --max-age 1h --max-drill-age 7d --drill-signer "$DRILL" >/dev/null 2>&1 || rc=$?
[ $rc = 2 ] || fail "check-freshness passed a node without a drill (exit $rc)"
cnb list --store "$STORE" --signer "$SIGNER" --drill-signer "$FORGER" --node sv1 --json >"$W/list-forged.json"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["sets"][0]; assert s.get("drill") is None, s' "$W/list-forged.json" \
  || fail "a receipt of sv1 shows up for another drill key"

step "a drill restores without the source's roles: a set whose tables belong to a role the scratch server lacks passes"
cnb drill "${DR[@]}" --node ghost1 >"$W/logs/drill-ghost.out" 2>"$W/logs/drill-ghost.log" || { cat "$W/logs/drill-ghost.out"; fail "the drill of a set owned by a missing role failed"; }
grep -q "restored and counted as cnbdrill_" "$W/logs/drill-ghost.out" || { cat "$W/logs/drill-ghost.out"; fail "the drill does not say it restored as its own unprivileged role"; }

step "a set whose signed counts disagree with the restored rows fails the drill"
# A set of its own node (so the other steps' newest sets stay as they are), made by a real run: its
# objects are sealed to this set id, so the set is edited where it lies rather than copied.
pipeline drift1 "$(capture apps apps val_apps true)"
SET_DIR=$(ls -d "$W"/store/drift1/migration-1/serial-0/*/); SET_DIR=${SET_DIR%/}; SET_ID=$(basename "$SET_DIR")
# One count + 1, re-sealed to the recipient by the independent sealer, and its total with it (every
# other manifest byte kept), then re-signed as the run signs: Ed25519 over
# "cnbackup-signature-v2 manifest", a zero byte and the exact bytes, with the signing key
# (docs/FORMAT.md "Keys", "Manifest and signature").
python3 - "$SET_DIR" "$W/secrets/signing.key" "$SIGNER" apps-val_apps public.t1 "$CNB" "$W/secrets/ops.key" "$R1" <<'PY' >"$W/drift-count" || fail "could not change and re-sign the drift1 manifest"
import base64, glob, hashlib, json, os, subprocess, sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
set_dir, key_file, signer, component, table, cnb, ops_key, recipient = sys.argv[1:9]
manifest_path = [p for p in glob.glob(set_dir + "/manifest-*.json")][0]
text = open(manifest_path, "rb").read().decode()
want = json.loads(text)
sealed = next(c for c in want["components"] if c["name"] == component)["sealedRowCounts"]
counts = json.loads(subprocess.run([cnb, "decrypt", "--identity", ops_key], input=base64.b64decode(sealed["sealed"]),
                                   capture_output=True, check=True).stdout)
rows = counts[table]
counts[table] = rows + 1
resealed = subprocess.run([sys.executable, "scripts/independent-sealer.py", "seal", "--recipient", recipient],
                          input=json.dumps(counts, sort_keys=True).encode(), capture_output=True, check=True).stdout
new = base64.b64encode(resealed).decode()
for old, replacement in [('"sealed" : "%s"' % sealed["sealed"], '"sealed" : "%s"' % new),
                         ('"rows" : %d' % sealed["rows"], '"rows" : %d' % (sealed["rows"] + 1))]:
    assert text.count(old) == 1, "%s is not once in the manifest" % old[:60]
    text = text.replace(old, replacement)
sealed.update(sealed=new, rows=sealed["rows"] + 1)
assert json.loads(text) == want, "the edit changed more than the sealed counts and their total"
data = text.encode()
line = next(l.strip() for l in open(key_file) if l.strip() and not l.startswith("#"))
prefix = "CNB1-ED25519-SECRET-"
assert line.startswith(prefix), "not a signing key"
body = line[len(prefix):]
raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
assert len(raw) == 36 and hashlib.sha256(prefix.encode() + raw[:32]).digest()[:4] == raw[32:], "the signing key's checksum is wrong"
key = Ed25519PrivateKey.from_private_bytes(raw[:32])
pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
pp = "cnb1-ed25519-pub-"
mine = pp + base64.urlsafe_b64encode(pub + hashlib.sha256(pp.encode() + pub).digest()[:4]).decode().rstrip("=")
assert mine == signer, "the signing key is %s, not %s" % (mine, signer)
open(manifest_path, "wb").write(data)
open(manifest_path + ".sig", "w").write("cnbackup-signature-v2\nuse: manifest\nsigner: %s\nsignature: %s\n"
    % (signer, base64.b64encode(key.sign(b"cnbackup-signature-v2 manifest\0" + data)).decode()))
print(rows + 1)
PY
STORED=$(cat "$W/drift-count")
cnb list --store "$STORE" --signer "$SIGNER" --node drift1 --json >"$W/list-drift.json"
python3 -c '
import json, sys
s = [s for s in json.load(open(sys.argv[1]))["sets"] if s["id"] == sys.argv[2]]
assert len(s) == 1 and s[0]["trusted"] and s[0]["signature"] == "valid" and s[0]["status"] == "complete", s' "$W/list-drift.json" "$SET_ID" \
  || fail "the re-signed drift1 set is not listed as trusted and complete"
rc=0; cnb drill "${DR[@]}" --node drift1 "$SET_ID" >"$W/logs/drill-drift.out" 2>"$W/logs/drill-drift.log" || rc=$?
[ $rc = 2 ] || { cat "$W/logs/drill-drift.out"; fail "the drill of a set whose counts disagree exited $rc, not 2"; }
grep -q "FAILED" "$W/logs/drill-drift.out" && grep -q "mismatch: public.t1: $STORED expected, $((STORED - 1)) restored" "$W/logs/drill-drift.out" \
  || { cat "$W/logs/drill-drift.out"; fail "the failed drill does not name public.t1 with its counts"; }
RECEIPTS=("$SET_DIR"/drill-*.json)
[ ${#RECEIPTS[@]} = 1 ] && [ -f "${RECEIPTS[0]}" ] && [ -f "${RECEIPTS[0]}.sig" ] || fail "no single signed receipt next to the drift1 set"
python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
c = {c["name"]: c for c in r["components"]}["apps-val_apps"]
assert r["status"] == "failed" and c["status"] == "failed" and c["comparedWith"] == "capture", r
assert [m for m in c["mismatches"] if m.startswith("public.t1:")] and len(c["mismatches"]) == 1, c' "${RECEIPTS[0]}" \
  || fail "the receipt does not record the public.t1 mismatch"
cnb list --store "$STORE" --signer "$SIGNER" --drill-signer "$DRILL" --node drift1 --json >"$W/list-drift.json"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["sets"][0]; assert s["drill"]["status"]=="failed", s' "$W/list-drift.json" \
  || fail "list --json does not show the failed drill of drift1"
# The set itself is fresh; its newest drill failed: check-freshness --max-drill-age fails, and says which.
rc=0; cnb check-freshness --store "$STORE" --signer "$SIGNER" --node drift1 --max-age 1h --max-drill-age 7d --drill-signer "$DRILL" --json \
  >"$W/fresh-drift.json" 2>"$W/logs/fresh-drift.log" || rc=$?
[ $rc = 2 ] || fail "check-freshness passed a node whose newest drill failed (exit $rc)"
python3 - "$W/fresh-drift.json" "$SET_ID" <<'PY' || fail "check-freshness --json does not split the set's and the drill's verdicts: $(cat "$W/fresh-drift.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["setFresh"] is True and r["drillFresh"] is False and r["fresh"] is False, r
assert r["drillStatus"] == "failed" and r["drill"]["setId"] == sys.argv[2] and r["drillAgeSeconds"] >= 0, r
PY

step "--pg-host leaves the scratch server as it was"
before=$(psql_su source -d postgres -At -c "select string_agg(datname, ',' order by datname) from pg_database")
cnb drill "${DR[@]}" --node val1 --pg-host 127.0.0.1 --pg-port "$PORT" --pg-user cnadmin --pg-password-file "$W/secrets/source.pw" \
  >"$W/logs/drill-host.out" 2>"$W/logs/drill-host.log" || { cat "$W/logs/drill-host.out"; fail "the --pg-host drill failed"; }
after=$(psql_su source -d postgres -At -c "select string_agg(datname, ',' order by datname) from pg_database")
[ "$before" = "$after" ] || fail "the scratch server's databases changed: $before -> $after"
leftover=$(find "$W/tmp" -maxdepth 1 -name 'cnbackup-drill-*' | wc -l)
[ "$leftover" = 0 ] || fail "throwaway folders left behind in TMPDIR"
pgrep -f "$W/tmp/cnbackup-drill" >/dev/null && fail "a throwaway PostgreSQL is still running"

step "SIGTERM during a --pg-host drill or a restore --to-database drops the half-restored database"
# Both end at once on SIGTERM (only `run` has a grace period): the database they created must go
# with them, with their private folders. A database big enough that pg_restore runs for a while.
psql_su source -d postgres -c "create database big_apps"
psql_su source -d big_apps -c "create table rows (id int primary key, note text); insert into rows select g, md5(g::text) || md5((g * 3)::text) from generate_series(1, 600000) g"
pipeline big1 "$(capture apps apps big_apps false)"
wait_for_database() {   # wait_for_database PATTERN: up to 60 s for a database named like PATTERN
  local i
  for i in $(seq 1200); do
    [ -z "$(psql_su source -d postgres -At -c "select datname from pg_database where datname like '$1'")" ] || return 0
    sleep 0.05
  done
  return 1
}
killed_cleanly() {   # killed_cleanly PID PATTERN WHAT
  kill -TERM "$1"
  local rc=0; wait "$1" || rc=$?
  [ $rc = 143 ] || fail "$3 exited $rc after SIGTERM, not 143"
  [ -z "$(psql_su source -d postgres -At -c "select datname from pg_database where datname like '$2'")" ] || fail "$3 left its database behind after SIGTERM"
  [ -z "$(find "$W/tmp" -mindepth 1 -maxdepth 1)" ] || fail "$3 left temporary files after SIGTERM: $(ls "$W/tmp")"
  ! pgrep -f "pg_restore.*$2" >/dev/null || fail "$3 left pg_restore running after SIGTERM"
}
TMPDIR=$W/tmp "$CNB" drill "${DR[@]}" --node big1 --pg-host 127.0.0.1 --pg-port "$PORT" --pg-user cnadmin \
  --pg-password-file "$W/secrets/source.pw" >"$W/logs/drill-killed.out" 2>"$W/logs/drill-killed.log" &
pid=$!
wait_for_database 'cnbdrill_%' || { kill "$pid"; fail "the --pg-host drill of big1 created no database within 60 s"; }
killed_cleanly "$pid" 'cnbdrill_%' "a --pg-host drill"
BIGSET=$(cnb list --store "$STORE" --signer "$SIGNER" --node big1 | awk 'END {print $1}')
TMPDIR=$W/tmp "$CNB" restore --store "$STORE" --signer "$SIGNER" --node big1 "$BIGSET" --component apps-big_apps --identity "$W/secrets/ops.key" \
  --to-database big_copy --pg-host 127.0.0.1 --pg-port "$PORT" --pg-user cnadmin --pg-password-file "$W/secrets/source.pw" \
  --pg-bin "$PG_BIN" --no-progress >"$W/logs/restore-killed.out" 2>"$W/logs/restore-killed.log" &
pid=$!
wait_for_database 'big_copy' || { kill "$pid"; cat "$W/logs/restore-killed.log"; fail "restore --to-database created no database within 60 s"; }
killed_cleanly "$pid" 'big_copy' "restore --to-database"

echo "ok: drills of an SV-like and a validator-like set pass, receipts are read back, a set owned by a missing role restores as the drill's own role, a changed signed count fails the drill, a forged receipt is ignored, --pg-host leaves the server as it was, SIGTERM drops what a drill or restore created ($(( $(date +%s) - START ))s)"
