#!/usr/bin/env bash
# Benchmarks of the local pipeline (docs/BENCHMARKS.md records the results and the machine).
#  1. throughput: cnbackup run (file -> zstd 3 -> seal -> file store, read-back full) against
#     `zstd -3 -T0` alone on the same file; wall and CPU seconds, median of RUNS runs.
#  2. memory: peak RSS of a run over SMALL and LARGE bytes of streamed input (flat = streaming works).
# Usage: scripts/bench.sh [SIZE_MIB=1024] [RUNS=3] [LARGE_MIB=4096]
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-1024}; RUNS=${2:-3}; LARGE_MIB=${3:-4096}; SMALL_MIB=40
swift build -c release --product cnbackup >/dev/null
CNB="$(swift build -c release --show-bin-path)/cnbackup"
W=$(mktemp -d /tmp/cnbackup-bench.XXXXXX); trap 'rm -rf "$W"' EXIT
R1=$("$CNB" keys generate --out "$W/k1" 2>/dev/null); R2=$("$CNB" keys generate --out "$W/k2" 2>/dev/null)
"$CNB" keys generate --signing --out "$W/s" >/dev/null 2>&1

# Input shaped like a database dump: half random bytes, half text-like (so zstd has work to do).
python3 - "$W/input" "$SIZE_MIB" <<'PY'
import os, random, sys
random.seed(1); out = open(sys.argv[1], "wb"); alphabet = b'abcdef0123456789-:,{}" \n'
block = bytes(random.choices(alphabet, k=1 << 19))
for i in range(int(sys.argv[2]) * 2):
    out.write(os.urandom(1 << 18) + block[: (1 << 19) - (1 << 18)] + os.urandom(1 << 18))
PY

pipeline() {  # pipeline NAME CAPTURE-YAML
  cat >"$W/$1.yaml" <<Y
version: 1
node: { name: bench, kind: generic }
epoch: { migrationId: 0, serial: 0 }
store: { url: "file://$W/store-$1" }
encryption: { recipients: [ "$R1", "$R2" ] }
signing: { keyFile: "$W/s" }
compression: { level: 3, workers: ${WORKERS:-2} }
captures:
  - $2
Y
}
measure() {  # measure LABEL COMMAND... -> "wall cpu maxrss_kib"
  shift
  /usr/bin/time -f "%e %U %S %M" -o "$W/time" "$@" >/dev/null 2>"$W/err" || { cat "$W/err"; exit 1; }
  awk '{printf "%.2f %.2f %d\n", $1, $2+$3, $4}' "$W/time"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

pipeline file "{ name: dump, role: other, file: \"$W/input\" }"
echo "input: $SIZE_MIB MiB, $(nproc) cores, runs: $RUNS"
: >"$W/cnb"; : >"$W/zstd"
for i in $(seq "$RUNS"); do
  rm -rf "$W/store-file"; measure cnb "$CNB" run "$W/file.yaml" >>"$W/cnb"
  measure zstd zstd -3 -T0 -q -f "$W/input" -o "$W/input.zst" >>"$W/zstd"
done
cw=$(cut -d' ' -f1 "$W/cnb" | median); cc=$(cut -d' ' -f2 "$W/cnb" | median); cm=$(cut -d' ' -f3 "$W/cnb" | median)
zw=$(cut -d' ' -f1 "$W/zstd" | median); zc=$(cut -d' ' -f2 "$W/zstd" | median)
printf '%-44s %8s %8s %10s %9s\n' tool wall_s cpu_s MiB/s rss_MiB
printf '%-44s %8s %8s %10.1f %9.1f\n' "cnbackup run (zstd 3, seal, store, read-back)" "$cw" "$cc" "$(echo "$SIZE_MIB/$cw" | bc -l)" "$(echo "$cm/1024" | bc -l)"
printf '%-44s %8s %8s %10.1f\n' "zstd -3 -T0 (file to file)" "$zw" "$zc" "$(echo "$SIZE_MIB/$zw" | bc -l)"
printf 'throughput ratio cnbackup/zstd: %.2f\n' "$(echo "$zw/$cw" | bc -l)"

for mib in $SMALL_MIB $LARGE_MIB; do
  pipeline stream$mib "{ name: stream, role: other, command: [ sh, -c, \"head -c ${mib}M /dev/zero | openssl enc -aes-128-ctr -nosalt -K 00112233445566778899aabbccddeeff -iv 00000000000000000000000000000000 2>/dev/null\" ] }"
  r=$(measure stream "$CNB" run "$W/stream$mib.yaml"); rm -rf "$W/store-stream$mib"
  printf 'peak RSS, %6d MiB streamed input: %6.1f MiB (wall %s s)\n' "$mib" "$(echo "$(echo "$r" | cut -d' ' -f3)/1024" | bc -l)" "$(echo "$r" | cut -d' ' -f1)"
done
