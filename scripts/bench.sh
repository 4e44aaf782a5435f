#!/usr/bin/env bash
# Benchmarks of the local pipeline (docs/BENCHMARKS.md records the results and the machine).
#  1. throughput: cnbackup run (file -> zstd 3 -> seal -> file store, read-back full) against
#     `zstd -3 -T0` alone on the same file; wall and CPU seconds, median of RUNS runs.
#  2. memory: peak RSS of a run over SMALL and LARGE bytes of streamed input (flat = streaming works).
#  3. S3: peak RSS and time of a 2 GiB streamed upload to a local SeaweedFS at default settings.
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

# 3. A 2 GiB upload to S3 (SeaweedFS on this machine, every port free, data in the temp dir).
if command -v weed >/dev/null 2>&1; then
  read -r -a P <<<"$(python3 -c 'import socket
ss=[socket.socket() for _ in range(10)]
[s.bind(("127.0.0.1",0)) for s in ss]; print(" ".join(str(s.getsockname()[1]) for s in ss))')"
  mkdir -p "$W/weed"
  echo '{"identities":[{"name":"bench","credentials":[{"accessKey":"bench","secretKey":"bench-secret-0123456789"}],"actions":["Admin","Read","Write","List","Tagging"]}]}' >"$W/s3.json"
  weed -logtostderr mini -dir="$W/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3.config="$W/s3.json" -webdav=false -admin.ui=false \
    -s3.port.iceberg=0 -s3.port.lance=0 -master.telemetry=false -s3.port="${P[0]}" -s3.port.grpc="${P[1]}" \
    -master.port="${P[2]}" -master.port.grpc="${P[3]}" -volume.port="${P[4]}" -volume.port.grpc="${P[5]}" \
    -filer.port="${P[6]}" -filer.port.grpc="${P[7]}" -admin.port="${P[8]}" -admin.port.grpc="${P[9]}" >"$W/weed.log" 2>&1 &
  WEED=$!; trap 'kill $WEED 2>/dev/null; wait $WEED 2>/dev/null; rm -rf "$W"' EXIT
  export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret-0123456789
  for _ in $(seq 60); do
    python3 -c "import boto3; boto3.client('s3', endpoint_url='http://127.0.0.1:${P[0]}', region_name='us-east-1').create_bucket(Bucket='bench')" 2>/dev/null && break
    sleep 0.5
  done
  cat >"$W/s3.yaml" <<Y
version: 1
node: { name: bench, kind: generic }
epoch: { migrationId: 0, serial: 0 }
store: { url: "s3://bench/mem", endpoint: "http://127.0.0.1:${P[0]}", region: us-east-1, pathStyle: true, provider: seaweedfs }
encryption: { recipients: [ "$R1", "$R2" ] }
signing: { keyFile: "$W/s" }
captures:
  - { name: stream, role: other, command: [ sh, -c, "head -c 2048M /dev/zero | openssl enc -aes-128-ctr -nosalt -K 00112233445566778899aabbccddeeff -iv 00000000000000000000000000000000 2>/dev/null" ] }
Y
  r=$(measure s3 "$CNB" run "$W/s3.yaml")
  printf 'S3 upload of 2048 MiB (SeaweedFS on this machine, default settings): peak RSS %.1f MiB, wall %s s, CPU %s s\n' \
    "$(echo "$(echo "$r" | cut -d' ' -f3)/1024" | bc -l)" "$(echo "$r" | cut -d' ' -f1)" "$(echo "$r" | cut -d' ' -f2)"
else
  echo "S3 upload: skipped (weed is not on PATH: scripts/setup.sh installs it)"
fi
