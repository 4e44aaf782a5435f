#!/usr/bin/env bash
# A quick before/after comparison of two cnbackup builds on the data path, for changes that must not
# regress it (docs/BENCHMARKS.md, "Quick before/after"): the same generated input through
#   run      file capture -> zstd 3 -> seal -> file store -> read back in full
#   verify   verify --deep (every segment authenticated, zstd checksum, both digests)
#   restore  restore --to FILE
# for each binary, RUNS times, alternating, reporting the median wall seconds, CPU seconds
# (user+sys of the process tree) and peak RSS. The full benchmark (PostgreSQL, S3, restic) is
# scripts/bench.sh; this one needs no server and takes a minute or two.
# Usage: scripts/bench-quick.sh OLD_CNBACKUP NEW_CNBACKUP [MIB=512] [RUNS=3]
set -euo pipefail
OLD=$(realpath "$1"); NEW=$(realpath "$2"); MIB=${3:-512}; RUNS=${4:-3}
W=$(mktemp -d /tmp/cnbackup-bench-quick.XXXXXX); trap 'rm -rf "$W"' EXIT
python3 - "$W/input" "$MIB" <<'PY'
import os, random, sys
random.seed(11); out = open(sys.argv[1], "wb")
for i in range(int(sys.argv[2])):   # half random, half text-like: about what a dump compresses to
    out.write(os.urandom(1 << 19) + bytes(random.choices(b'abcdefgh ,{}:"0123456789', k=1 << 19)))
PY
R=$("$NEW" keys generate --out "$W/ops" 2>/dev/null | grep -oE 'cnb1-x25519-pub-[A-Za-z0-9_=-]+')
S=$("$NEW" keys generate --signing --out "$W/sign" 2>/dev/null | grep -oE 'cnb1-ed25519-pub-[A-Za-z0-9_=-]+')
measure() {  # measure LABEL CMD... -> appends "LABEL wall cpu rssKiB"
  local label=$1; shift
  # What the previous step wrote goes to disk first: its writeback would otherwise land in this
  # step's system time, more so the faster the previous step was.
  sync
  /usr/bin/time -f "%e %U %S %M" -o "$W/t" "$@" >/dev/null 2>"$W/err" || { tail -3 "$W/err"; exit 1; }
  read -r wall user sys rss <"$W/t"
  echo "$label $wall $(python3 -c "print(round($user+$sys,2))") $rss" >>"$W/results"
}
for run in $(seq 1 "$RUNS"); do
  for which in old new; do
    bin=$OLD; [ $which = new ] && bin=$NEW
    store="$W/store-$which-$run"
    cat >"$W/p-$which.yaml" <<Y
version: 1
node: { name: bench, kind: generic }
epoch: { migrationId: 4, serial: 1 }
store: { url: "file://$store", create: true }
encryption: { recipients: [ "$R" ] }
signing: { keyFile: "$W/sign" }
verify: { readBack: full }
captures:
  - { name: data, role: other, file: "$W/input" }
Y
    measure "$which-run" "$bin" run "$W/p-$which.yaml"
    set_id=$(ls "$store/bench/migration-4/serial-1/")
    measure "$which-verify" "$bin" verify --store "file://$store" --signer "$S" "$set_id" --deep --identity "$W/ops"
    measure "$which-restore" "$bin" restore --store "file://$store" --signer "$S" "$set_id" --component data --to "$W/out-$which" --identity "$W/ops"
    cmp -s "$W/input" "$W/out-$which" || { echo "restored bytes differ ($which)"; exit 1; }
    rm -rf "$store" "$W/out-$which"
  done
done
python3 - "$W/results" "$MIB" "$RUNS" <<'PY'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, wall, cpu, rss = line.split(); rows[label].append((float(wall), float(cpu), int(rss)))
mib = int(sys.argv[2])
print(f"{mib} MiB, median of {sys.argv[3]} runs each, old and new alternating")
print("| step | old wall s | new wall s | old CPU s | new CPU s | old MiB/s | new MiB/s | old peak RSS MiB | new peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|---|")
for step in ("run", "verify", "restore"):
    o, n = rows["old-" + step], rows["new-" + step]
    med = lambda xs, i: statistics.median(x[i] for x in xs)
    print(f"| {step} | {med(o,0):.2f} | {med(n,0):.2f} | {med(o,1):.2f} | {med(n,1):.2f} | {mib/med(o,0):.0f} | {mib/med(n,0):.0f} | {max(x[2] for x in o)//1024} | {max(x[2] for x in n)//1024} |")
PY
