#!/usr/bin/env bash
# What the run's read-back costs: cnbackup run of a file capture (zstd level 3 -> seal -> file store)
# with `readBack: full` and `readBack: none`, against `zstd -3 -T<workers>` of the same file, for 1
# and 2 compression workers, in A/B rounds. The input is MIB MiB of dump-like text (the rows of a
# pg_dump COPY section: ids, uuids, parties, amounts, timestamps, JSON), generated once. Figures
# are medians of RUNS rounds: wall s, CPU s (user+sys of the tool's tree), peak RSS. The target:
# readBack full at least 0.9x the throughput of zstd alone, with either worker count.
# Usage: [CNB=cnbackup] scripts/bench-readback.sh [MIB=512] [RUNS=3]   (CNB: this clone's release build)
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-512}; RUNS=${2:-3}
if [ -z "${CNB:-}" ]; then
  swift build -c release --product cnbackup >/dev/null
  CNB="$(swift build -c release --show-bin-path)/cnbackup"
fi
CNB=$(realpath "$CNB")
W=$(mktemp -d /tmp/cnbackup-bench-readback.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir -m 700 "$W/secrets"
R1=$("$CNB" keys generate --out "$W/secrets/k1" 2>/dev/null)
"$CNB" keys generate --signing --out "$W/secrets/s" >/dev/null 2>&1

python3 - "$W/input" "$MIB" <<'PY'
import random, sys, uuid
out, mib = sys.argv[1], int(sys.argv[2])
rng = random.Random(7)
parties = [f"party-{i}::1220{uuid.UUID(int=rng.getrandbits(128)).hex}" for i in range(5000)]
with open(out, "w") as f:
    f.write("COPY public.transfers (id, tx_id, contract_id, record_time, sender, receiver, amount, fee, round, payload) FROM stdin;\n")
    i, written = 0, 0
    while written < mib << 20:
        i += 1
        lines = []
        for _ in range(1000):
            i += 1
            a, b = rng.randrange(5000), rng.randrange(5000)
            lock = "null" if i % 4 else '{"holders": ["' + parties[a] + '"]}'
            lines.append(f"{i}\t{uuid.UUID(int=rng.getrandbits(128))}\t{uuid.UUID(int=rng.getrandbits(128))}\t"
                         f"2026-{1 + i % 12:02d}-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}.{i % 1000000:06d}+00\t"
                         f"{parties[a]}\t{parties[b]}\t{rng.random() * 1e6:.10f}\t{rng.random() * 10:.10f}\t{i // 900}\t"
                         "{\"dso\": \"DSO::1220abc\", \"round\": " + str(i // 600) + ", \"lock\": " + lock + "}\n")
        block = "".join(lines)
        f.write(block)
        written += len(block)
    f.write("\\.\n")
PY
INPUT_BYTES=$(stat -c %s "$W/input")

pipeline() {  # pipeline NAME WORKERS READBACK
  cat >"$W/$1.yaml" <<Y
version: 1
node: { name: bench, kind: generic }
epoch: { migrationId: 0, serial: 0 }
store: { url: "file://$W/store-$1", create: true }
encryption: { recipients: [ "$R1" ] }
signing: { keyFile: "$W/secrets/s" }
compression: { level: 3, workers: $2 }
verify: { readBack: $3 }
captures:
  - { name: dump, role: other, file: "$W/input" }
Y
}
measure() {  # measure NAME COMMAND...: appends "wall cpu rss_kib" to $W/r-NAME
  local name=$1; shift
  sync
  /usr/bin/time -f "%e %U %S %M" -o "$W/time" "$@" >/dev/null 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
  awk '{printf "%.2f %.2f %d\n", $1, $2 + $3, $4}' "$W/time" >>"$W/r-$name"
}
med() { cut -d' ' -f"$2" "$W/r-$1" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

for workers in 1 2; do
  pipeline "full$workers" "$workers" full
  pipeline "none$workers" "$workers" none
  for r in $(seq "$RUNS"); do
    echo "workers $workers, round $r"
    rm -f "$W/out.zst"
    measure "zstd$workers" zstd -3 -T"$workers" -q -f "$W/input" -o "$W/out.zst"
    rm -rf "$W/store-full$workers"; measure "full$workers" "$CNB" run --no-progress "$W/full$workers.yaml"
    rm -rf "$W/store-none$workers"; measure "none$workers" "$CNB" run --no-progress "$W/none$workers.yaml"
  done
done

echo
printf 'scripts/bench-readback.sh %s %s: %d bytes of dump-like text, %d cores; cnbackup %s, %s\n' "$MIB" "$RUNS" "$INPUT_BYTES" "$(nproc)" \
  "$("$CNB" --version)" "$(zstd -V | grep -o 'v[0-9.]*' | head -1)"
echo
echo '| workers | step | wall s | CPU s | peak RSS MiB | MiB/s |'
echo '|---|---|---|---|---|---|'
for workers in 1 2; do
  for step in "zstd$workers:zstd -3 -T$workers" "full$workers:cnbackup run, readBack full" "none$workers:cnbackup run, readBack none"; do
    name=${step%%:*}
    printf '| %s | %s | %s | %s | %.0f | %.1f |\n' "$workers" "${step#*:}" "$(med "$name" 1)" "$(med "$name" 2)" \
      "$(echo "$(med "$name" 3) / 1024" | bc -l)" "$(echo "$INPUT_BYTES / 1048576 / $(med "$name" 1)" | bc -l)"
  done
done
echo
for workers in 1 2; do
  printf 'workers %s: readBack full / zstd throughput = %.2f (target >= 0.9); none / zstd = %.2f; full / none = %.2f\n' "$workers" \
    "$(echo "$(med "zstd$workers" 1) / $(med "full$workers" 1)" | bc -l)" "$(echo "$(med "zstd$workers" 1) / $(med "none$workers" 1)" | bc -l)" \
    "$(echo "$(med "none$workers" 1) / $(med "full$workers" 1)" | bc -l)"
done
