#!/usr/bin/env bash
# End-to-end test of the parallel logical dump (`postgres: { jobs: N }`: pg_dump workers sharing one
# exported snapshot, each part stored as its own component) against
# PostgreSQL 15 and 18 (E2E_PARALLEL_VERSIONS, default "15 18"), per version:
#   - a throwaway cluster (as `postgres`, scram on loopback; idle_in_transaction_session_timeout=1s,
#     as a managed provider may set: the snapshot holder must survive it) with one database of awkward content:
#     two large tables, a table and schema whose names need pg_dump pattern quoting, a partitioned
#     table, an unlogged table, a free-standing sequence, a large object, a materialized view,
#     foreign keys and indexes; a file:// store;
#   - run 1 (jobs: 2, parallelism 4): a complete set of pre, 2 data parts and post with one snapshot
#     in the manifest; verify --deep lists every part; restore --plan names the group once; restore
#     --to-database --jobs 2 of the group: every table identical (row checksums, sequence values,
#     the large object, the matview); the README's break-glass path (decrypt | zstd -d each part,
#     pg_restore pre, data parts, post) gives the same; a drill restores the group and passes (15);
#   - run 2 (jobs: 4, parallelism 1, so parts start seconds apart) while a writer inserts into two
#     tables in one transaction each time: after the restore (by a part's name) both tables hold as
#     many rows (one snapshot), more than before the run and fewer than the writer wrote by the end;
#   - run 3 (jobs: 2): one data part's server backend is terminated mid-dump: the run is not
#     complete, the manifest fails the database's group, and restore refuses the group;
#   - run 4: a DROP TABLE issued while the dump runs waits for the holder's lock; the part that needs
#     the table fails after lockWaitTimeout, so the database's dump fails (never a set that looks whole).
# Usage: scripts/e2e-parallel.sh [PATH/TO/cnbackup]. Needs root (or sudo) to run PostgreSQL as `postgres`.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
# shellcheck source=lib/e2e-common.sh
. scripts/lib/e2e-common.sh
# shellcheck source=lib/postgres.sh
. scripts/lib/postgres.sh
E2E_QUIET_LOGS=("*/keys.log" "*/writer-*" "*/run3-*" "*/restore3-*" "*/run4-*")
read -r -a VERSIONS <<<"${E2E_PARALLEL_VERSIONS:-15 18}"
BG=()   # background helpers of this script (writer, killer, dropper)
e2e_stop_servers() { local p; for p in "${BG[@]}"; do kill "$p" 2>/dev/null; done; }

step "dependencies"
pg_require "${VERSIONS[@]}"
e2e_binary "${1:-}"
e2e_tempdir parallel store tmp

R1=$("$CNB" keys generate --out "$W/secrets/ops.key" 2>>"$W/logs/keys.log")
SIGNER=$("$CNB" keys generate --signing --out "$W/secrets/signing.key" 2>>"$W/logs/keys.log")
"$CNB" keys generate --signing --out "$W/secrets/drill.key" >/dev/null 2>>"$W/logs/keys.log"
STORE="file://$W/store"; mkdir -p -m 700 "$W/store"
cnb() { TMPDIR=$W/tmp timeout 300 "$CNB" "$@"; }
echo 'parallel-e2e-pw' >"$W/secrets/pg.pw"

manifest_of() {   # manifest_of NODE: the path of the node's newest manifest
  ls -t "$W"/store/"$1"/migration-0/serial-0/*/manifest-*.json | head -1
}

run_version() {
  local major=$1 c=pg$1 bin port node set a b n rc
  pg_cluster "$c" "$major" --locale C --fast -c idle_in_transaction_session_timeout=1s
  bin=${PG_BINS[$c]}; port=${PG_PORT[$c]}
  step "[$major] cluster on :$port"
  psql_su "$c" -d postgres -c "create role cnadmin login superuser password 'parallel-e2e-pw'" -c "create database par_apps"
  psql_su "$c" -d par_apps <<'SQL'
CREATE TABLE big_one (id bigint PRIMARY KEY, payload text NOT NULL, n numeric);
INSERT INTO big_one SELECT g, repeat(md5(g::text), 4), g / 7.0 FROM generate_series(1, 150000) g;
CREATE TABLE big_two (id bigint PRIMARY KEY, payload text NOT NULL, n numeric);
INSERT INTO big_two SELECT * FROM big_one;
CREATE TABLE pair_a (id bigserial PRIMARY KEY, at timestamptz DEFAULT now());
CREATE TABLE pair_b (id bigserial PRIMARY KEY, at timestamptz DEFAULT now());
INSERT INTO pair_a (at) SELECT now() FROM generate_series(1, 8000);
INSERT INTO pair_b (at) SELECT now() FROM generate_series(1, 8000);
CREATE SCHEMA "We*ird.Schema";
CREATE TABLE "We*ird.Schema"."Odd ""Name"" ?$" (k text PRIMARY KEY, big_id bigint REFERENCES big_one (id));
INSERT INTO "We*ird.Schema"."Odd ""Name"" ?$" SELECT 'k' || g, g FROM generate_series(1, 500) g;
CREATE TABLE "We*ird.Schema".oddname (x int);   -- what an unquoted, case-folded pattern could also match
INSERT INTO "We*ird.Schema".oddname VALUES (1), (2);
CREATE TABLE parted (k int, v text) PARTITION BY RANGE (k);
CREATE TABLE parted_lo PARTITION OF parted FOR VALUES FROM (0) TO (500);
CREATE TABLE parted_hi PARTITION OF parted FOR VALUES FROM (500) TO (10000);
INSERT INTO parted SELECT g, 'v' || g FROM generate_series(0, 2999) g;
CREATE UNLOGGED TABLE scratchpad (x int); INSERT INTO scratchpad SELECT generate_series(1, 42);
CREATE SEQUENCE free_standing START 100; SELECT count(nextval('free_standing')) FROM generate_series(1, 17) \gset
SELECT lo_from_bytea(0, convert_to(repeat('a large object; ', 1000), 'UTF8')) \gset
CREATE MATERIALIZED VIEW big_summary AS SELECT count(*) AS n, sum(n) AS total FROM big_one;
CREATE INDEX big_two_payload ON big_two (payload);
CREATE TABLE dropme (x int); INSERT INTO dropme VALUES (7);
SQL

  pipeline() {   # pipeline NODE JOBS PARALLELISM [EXTRA-POSTGRES-SETTINGS]
    cat >"$W/$1.yaml" <<YAML
version: 1
node: { name: $1, kind: generic }
epoch: { migrationId: 0, serial: 0 }
parallelism: $3
store: { url: "$STORE" }
encryption: { recipients: [ "$R1" ] }
signing: { keyFile: "$W/secrets/signing.key" }
captures:
  - name: apps
    role: apps
    postgres: { host: 127.0.0.1, port: $port, user: cnadmin, passwordFile: "$W/secrets/pg.pw", databases: [par_apps], binDirectory: "$bin", globals: true, jobs: $2${4:-} }
YAML
  }
  restore_db() {   # restore_db NODE SET COMPONENT TARGET-DB LOG
    cnb restore --store "$STORE" --signer "$SIGNER" --node "$1" "$2" --component "$3" --to-database "$4" --jobs 2 \
      --pg-host 127.0.0.1 --pg-port "$port" --pg-user cnadmin --pg-password-file "$W/secrets/pg.pw" --pg-bin "$bin" \
      --identity "$W/secrets/ops.key" >"$W/logs/$5" 2>&1
  }

  # ------------------------------------------------------------ run 1: parts, verify, restore, identical
  node=par$major-a
  step "[$major] run 1: jobs 2, parallelism 4"
  pipeline "$node" 2 4
  cnb run "$W/$node.yaml" >"$W/logs/run1-$major.log" 2>&1 || fail "[$major] run 1 failed"
  python3 - "$(manifest_of "$node")" "$CNB" "$W/secrets/ops.key" <<'PY' || fail "[$major] run 1: the manifest does not record the parts as one dump"
import json, sys
import base64, subprocess
def counts(c):   # a component's per-table counts, sealed to the recipient: opened with the test's key
    s = c.get("sealedRowCounts")
    return json.loads(subprocess.run([sys.argv[2], "decrypt", "--identity", sys.argv[3]], input=base64.b64decode(s["sealed"]),
                                     capture_output=True, check=True).stdout) if s else {}
m = json.load(open(sys.argv[1]))
assert m["status"] == "complete", m["status"]
assert [c["name"] for c in m["components"] if "part" not in c] == ["apps-globals"], m["components"]
m["components"] = [c for c in m["components"] if "part" in c]
names = [c["name"] for c in m["components"]]
assert names == ["apps-par_apps.pre", "apps-par_apps.data-1", "apps-par_apps.data-2", "apps-par_apps.post"], names
parts = [c["part"] for c in m["components"]]
assert [p["index"] for p in parts] == [0, 1, 2, 3] and all(p["count"] == 4 for p in parts), parts
assert [p["section"] for p in parts] == ["pre-data", "data", "data", "post-data"], parts
assert len({p["snapshot"] for p in parts}) == 1 and parts[0]["snapshot"], parts
assert all(p["group"] == "apps-par_apps" and p["database"] == "par_apps" for p in parts), parts
d1, d2 = (set(counts(c)) for c in m["components"][1:3])
assert not (d1 & d2), "a table in two data parts: %r" % (d1 & d2)
assert {"public.big_one", "public.big_two"} <= d1 | d2 and ("public.big_one" in d1) != ("public.big_two" in d1), (d1, d2)
assert 'We*ird.Schema.Odd "Name" ?$' in d1 | d2 and "We*ird.Schema.oddname" in d1 | d2, (d1, d2)
print("   parts:", names, "snapshot", parts[0]["snapshot"])
PY
  set=$(basename "$(dirname "$(manifest_of "$node")")")
  cnb verify --store "$STORE" --signer "$SIGNER" --node "$node" "$set" --deep --identity "$W/secrets/ops.key" --pg-bin "$bin" \
    >"$W/logs/verify1-$major.log" 2>&1 || fail "[$major] verify --deep of the parallel set"
  n=$(grep -c 'pg_restore --list (' "$W/logs/verify1-$major.log" || true)
  [ "$n" = 4 ] || fail "[$major] verify --deep listed $n archives, not the 4 parts"
  cnb restore --store "$STORE" --signer "$SIGNER" --node "$node" "$set" --plan >"$W/logs/plan1-$major.log" 2>&1 || fail "[$major] restore --plan"
  grep -q -- '--component apps-par_apps --identity' "$W/logs/plan1-$major.log" || fail "[$major] restore --plan does not name the group"
  grep -q 'parallel dump in 4 parts' "$W/logs/plan1-$major.log" || fail "[$major] restore --plan does not describe the parts"
  restore_db "$node" "$set" apps-par_apps restored1 "restore1-$major.log" || fail "[$major] restore --to-database of the group"
  a=$(table_sums "$c" par_apps); b=$(table_sums "$c" restored1)
  if [ "$a" != "$b" ]; then diff <(echo "$a") <(echo "$b") || true; fail "[$major] the restored database differs from the source"; fi
  echo "   restored identical: $(echo "$a" | wc -l) lines ($(echo "$a" | grep -c ' r ') tables, sequences, matview, large objects, constraints, indexes)"
  # The README's break-glass path: decrypt and decompress each part, pg_restore pre, data parts, post.
  local p dir; dir=$(dirname "$(manifest_of "$node")")
  for p in pre data-1 data-2 post; do
    "$CNB" decrypt --identity "$W/secrets/ops.key" <"$(ls "$dir"/apps-par_apps."$p"-*.zst.cnb)" | zstd -q -d >"$W/tmp/bg-$p.dump" \
      || fail "[$major] break-glass: decrypt | zstd -d of part $p"
  done
  psql_su "$c" -d postgres -c "create database breakglass"
  PGPASSWORD=parallel-e2e-pw "$bin/pg_restore" -h 127.0.0.1 -p "$port" -U cnadmin --exit-on-error -d breakglass "$W/tmp/bg-pre.dump"
  for p in data-1 data-2; do
    PGPASSWORD=parallel-e2e-pw "$bin/pg_restore" -h 127.0.0.1 -p "$port" -U cnadmin --exit-on-error -d breakglass "$W/tmp/bg-$p.dump" &
  done
  wait
  PGPASSWORD=parallel-e2e-pw "$bin/pg_restore" -h 127.0.0.1 -p "$port" -U cnadmin --exit-on-error -j 2 -d breakglass "$W/tmp/bg-post.dump"
  rm -f "$W"/tmp/bg-*.dump
  b=$(table_sums "$c" breakglass)
  if [ "$a" != "$b" ]; then diff <(echo "$a") <(echo "$b") || true; fail "[$major] the break-glass restore differs from the source"; fi
  echo "   break-glass (decrypt | zstd -d, pg_restore pre, data parts, post): identical"
  # A drill restores the parts as one database and compares the rows counted at capture (on 15
  # only: the drill counts rows with query_to_xml, and the PostgreSQL 18 build here lacks libxml).
  [ "$major" = 15 ] && {
  cnb drill --store "$STORE" --signer "$SIGNER" --identity "$W/secrets/ops.key" --drill-key "$W/secrets/drill.key" --pg-bin "$bin" \
    --node "$node" >"$W/logs/drill1-$major.out" 2>"$W/logs/drill1-$major.log" || { cat "$W/logs/drill1-$major.out"; fail "[$major] drill of the parallel set"; }
  grep -q "drill PASSED" "$W/logs/drill1-$major.out" || fail "[$major] the drill did not pass"
  grep -q "compared with capture" "$W/logs/drill1-$major.out" || fail "[$major] the drill did not compare with the capture's counts"
  echo "   drill: PASSED ($(grep -m1 -o 'apps-par_apps[^;]*' "$W/logs/drill1-$major.out" | head -1))"
  }

  # ------------------------------------------------------------ run 2: one snapshot under a writer, a DROP mid-dump
  node=par$major-b
  step "[$major] run 2: jobs 4, parallelism 1, a writer during the dump"
  pipeline "$node" 4 1
  local before_a; before_a=$(psql_su "$c" -d par_apps -At -c "select count(*) from pair_a")
  # The writer: one transaction per line pair, for as long as the dump runs.
  yes "BEGIN; INSERT INTO pair_a DEFAULT VALUES; INSERT INTO pair_b DEFAULT VALUES; COMMIT;" | head -n 3000000 \
    | as_postgres "$bin/psql" -X -q -h "${PG_SOCK[$c]}" -p "$port" -U postgres -d "dbname=par_apps application_name=e2e-writer" >"$W/logs/writer-$major.log" 2>&1 &
  BG+=($!); local writer=$!
  sleep 1
  rc=0; cnb run "$W/$node.yaml" >"$W/logs/run2-$major.log" 2>&1 || rc=$?
  psql_su "$c" -d postgres -At -c "select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'e2e-writer'" >/dev/null
  kill "$writer" 2>/dev/null || true; wait "$writer" 2>/dev/null || true
  [ $rc = 0 ] || fail "[$major] run 2 exited $rc"
  set=$(basename "$(dirname "$(manifest_of "$node")")")
  python3 - "$(manifest_of "$node")" "$CNB" "$W/secrets/ops.key" <<'PY' || fail "[$major] run 2: pair_a and pair_b are not in different data parts (the test would prove nothing)"
import json, sys
import base64, subprocess
def counts(c):   # a component's per-table counts, sealed to the recipient: opened with the test's key
    s = c.get("sealedRowCounts")
    return json.loads(subprocess.run([sys.argv[2], "decrypt", "--identity", sys.argv[3]], input=base64.b64decode(s["sealed"]),
                                     capture_output=True, check=True).stdout) if s else {}
m = json.load(open(sys.argv[1]))
where = {t: c["name"] for c in m["components"] for t in counts(c)}
assert where["public.pair_a"] != where["public.pair_b"], where
# The two parts ran one after the other (parallelism 1): a snapshot of their own would differ.
order = {c["name"]: (c["startOrder"], c["endOrder"]) for c in m["components"]}
first, second = sorted([where["public.pair_a"], where["public.pair_b"]], key=lambda n: order[n][0])
assert order[first][1] < order[second][0], order
print("   pair_a in", where["public.pair_a"], "pair_b in", where["public.pair_b"])
PY
  restore_db "$node" "$set" apps-par_apps.data-2 restored2 "restore2-$major.log" || fail "[$major] restore by a part's name"
  local ra rb fa
  ra=$(psql_su "$c" -d restored2 -At -c "select count(*) from pair_a"); rb=$(psql_su "$c" -d restored2 -At -c "select count(*) from pair_b")
  fa=$(psql_su "$c" -d par_apps -At -c "select count(*) from pair_a")
  echo "   pair_a/pair_b: $before_a before the run, $ra/$rb restored, $fa when the writer stopped"
  [ "$ra" = "$rb" ] || fail "[$major] pair_a ($ra) and pair_b ($rb) disagree after the restore: the parts did not share one snapshot"
  [ "$ra" -gt "$before_a" ] && [ "$ra" -lt "$fa" ] || fail "[$major] the writer did not write during the dump ($before_a < $ra < $fa does not hold)"

  # ------------------------------------------------------------ run 3: a killed worker
  node=par$major-c
  step "[$major] run 3: a data part's backend terminated mid-dump"
  pipeline "$node" 2 4
  ( for _ in $(seq 1 1200); do
      if [ "$(psql_su "$c" -d postgres -At -c "select count(pg_terminate_backend(pid)) from pg_stat_activity where application_name = 'cnbackup apps-par_apps.data-1'")" != 0 ]; then
        echo terminated; exit 0
      fi
      sleep 0.02
    done; echo "never saw data-1" ) >"$W/logs/killer-$major.log" 2>&1 &
  BG+=($!); local killer=$!
  rc=0; cnb run "$W/$node.yaml" >"$W/logs/run3-$major.log" 2>&1 || rc=$?
  wait "$killer" 2>/dev/null || true
  grep -q terminated "$W/logs/killer-$major.log" || fail "[$major] no data-1 backend was terminated: $(cat "$W/logs/killer-$major.log")"
  [ $rc != 0 ] || fail "[$major] run 3 exited 0 although a worker was killed"
  python3 - "$(manifest_of "$node")" <<'PY' || fail "[$major] run 3: the manifest does not fail the database's dump"
import json, sys
m = json.load(open(sys.argv[1]))
assert m["status"] == "partial", m["status"]
failed = [f["component"] for f in m["failures"]]
assert "apps-par_apps.data-1" in failed and "apps-par_apps" in failed, failed
assert "apps-par_apps.data-1" not in [c["name"] for c in m["components"]]
print("   partial; failures:", failed)
PY
  set=$(basename "$(dirname "$(manifest_of "$node")")")
  if restore_db "$node" "$set" apps-par_apps restored3 "restore3-$major.log"; then fail "[$major] restore of an incomplete parallel dump succeeded"; fi
  grep -q 'failed\|incomplete' "$W/logs/restore3-$major.log" || fail "[$major] restore refused, but not for the incomplete dump"
  [ -z "$(psql_su "$c" -d postgres -At -c "select 1 from pg_database where datname = 'restored3'")" ] || fail "[$major] the refused restore left a database"
  # ------------------------------------------------------------ run 4: a table dropped mid-dump
  # The holder locks every table, so the DROP waits; the parts that need that table queue behind it
  # and fail after lockWaitTimeout (as pg_dump -j's workers fail): the database's dump fails, the
  # DROP goes through once the snapshot is released.
  node=par$major-d
  step "[$major] run 4: DROP TABLE while the dump runs (lockWaitTimeout 2s)"
  pipeline "$node" 2 1 ', lockWaitTimeout: "2s"'
  # The DROP, once the snapshot holder sits in its transaction (it has exported, locked and listed): it must wait.
  ( for _ in $(seq 1 600); do
      if [ -n "$(psql_su "$c" -d postgres -At -c "select 1 from pg_stat_activity where application_name = 'cnbackup snapshot holder' and state = 'idle in transaction'")" ]; then
        psql_su "$c" -d par_apps -c "DROP TABLE dropme"; echo dropped; exit 0
      fi
      sleep 0.05
    done; echo "never saw the snapshot holder holding its snapshot" ) >"$W/logs/dropper-$major.log" 2>&1 &
  BG+=($!); local dropper=$!
  rc=0; cnb run "$W/$node.yaml" >"$W/logs/run4-$major.log" 2>&1 || rc=$?
  wait "$dropper" 2>/dev/null || true
  grep -q dropped "$W/logs/dropper-$major.log" || fail "[$major] the DROP TABLE was not issued: $(cat "$W/logs/dropper-$major.log")"
  [ $rc != 0 ] || fail "[$major] run 4 exited 0 although a table was dropped during the dump"
  python3 - "$(manifest_of "$node")" <<'PY' || fail "[$major] run 4: the manifest does not fail the database's dump"
import json, sys
m = json.load(open(sys.argv[1]))
assert m["status"] == "partial", m["status"]
failed = [f["component"] for f in m["failures"]]
assert "apps-par_apps" in failed, failed
print("   partial; failures:", failed)
PY
  [ -z "$(psql_su "$c" -d par_apps -At -c "select 1 from pg_class where relname = 'dropme'")" ] || fail "[$major] the DROP TABLE did not happen after the dump"

  # No snapshot holder or pg_dump left connected.
  [ "$(psql_su "$c" -d postgres -At -c "select count(*) from pg_stat_activity where application_name like 'cnbackup%'")" = 0 ] \
    || fail "[$major] cnbackup sessions are still connected after the runs"
}
for v in "${VERSIONS[@]}"; do run_version "$v"; done
[ -z "$(ls -A "$W/tmp")" ] || fail "cnbackup left files in its TMPDIR: $(ls -A "$W/tmp" | head -5 | tr '\n' ' ')"
step "done"
echo "ok: e2e-parallel: PostgreSQL ${VERSIONS[*]}: parts with one snapshot restored identical, a concurrent writer's two tables agree across parts taken seconds apart, a killed worker and a DROP TABLE mid-dump fail the database's dump; $(( $(date +%s) - START ))s"
