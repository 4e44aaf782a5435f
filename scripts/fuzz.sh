#!/usr/bin/env bash
# Fuzzes the readers of untrusted bytes with libFuzzer (README.md, "Fuzzing"): the sealed-format
# reader, the manifest and signature reader, the pipeline file parser, S3's XML answers. Builds the Fuzz/ package
# with -sanitize=fuzzer (and AddressSanitizer), then runs each target for SECONDS on a copy of its
# seed corpus (Fuzz/corpus/<target>, and pipelines/*.yaml for the pipeline parser) in a temporary
# folder, so the committed corpora do not grow. Exits non-zero when any target crashed, hung
# (-timeout), or went over the memory limits, printing the input that did it.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET=60]
#   FUZZ_TARGETS="sealed manifest pipeline"  which targets to run
#   FUZZ_SANITIZE=address                     or "none": libFuzzer only (faster; no ASan checks and
#                                             no -malloc_limit_mb, which needs a sanitizer's hooks)
#   FUZZ_KEEP=1                               keep the temporary folders (grown corpora, logs)
# A reproducer replays with: .build-fuzz/release/<Target> FILE (or add it to
# Tests/CNBackupTests/Resources/fuzz-regressions/<target>/).
# Not part of scripts/test.sh: it is a separate check with its own time budget.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-60}
TARGETS=${FUZZ_TARGETS:-sealed manifest pipeline s3xml}
SANITIZE=${FUZZ_SANITIZE:-address}

flags=(-Xswiftc -sanitize=fuzzer -Xcc -fsanitize=fuzzer-no-link)
scratch=.build-fuzz
if [ "$SANITIZE" = address ]; then
  flags=(-Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address)
elif [ "$SANITIZE" != none ]; then
  echo "FUZZ_SANITIZE must be address or none" >&2; exit 2
else
  scratch=.build-fuzz-noasan
fi
echo "== building the fuzz targets (sanitizers: fuzzer$([ "$SANITIZE" = address ] && echo ", address"), into $scratch)"
buildlog=$(mktemp /tmp/cnbackup-fuzz-build.XXXXXX)
if ! swift build --package-path Fuzz -c release --scratch-path "$scratch" "${flags[@]}" >"$buildlog" 2>&1; then
  cat "$buildlog"; rm -f "$buildlog"; echo "the fuzz build failed" >&2; exit 1
fi
tail -1 "$buildlog"; rm -f "$buildlog"
bin="$scratch/release"

# target -> executable, max input length, extra libFuzzer flags
declare -A exe=([sealed]=FuzzSealedReader [manifest]=FuzzManifest [pipeline]=FuzzPipelineDefinition [s3xml]=FuzzS3XML)
declare -A maxlen=([sealed]=16384 [manifest]=16384 [pipeline]=8192 [s3xml]=8192)
declare -A extra=([sealed]="" [manifest]="" [pipeline]="-dict=Fuzz/pipeline.dict" [s3xml]="")

export LSAN_OPTIONS="suppressions=$PWD/Fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
failed=0
summary=()
for target in $TARGETS; do
  [ -n "${exe[$target]:-}" ] || { echo "unknown target $target (sealed, manifest, pipeline, s3xml)" >&2; exit 2; }
  work=$(mktemp -d "/tmp/cnbackup-fuzz-$target.XXXXXX")
  mkdir -p "$work/corpus" "$work/artifacts"
  cp Fuzz/corpus/"$target"/* "$work/corpus/"
  [ "$target" = pipeline ] && cp pipelines/*.yaml "$work/corpus/"
  echo "== $target: ${exe[$target]} for ${SECONDS_PER_TARGET}s ($work)"
  status=0
  # -rss_limit_mb / -malloc_limit_mb: a reader that allocates without bound is a finding;
  # -timeout: one input taking over 10 s is a hang.
  # shellcheck disable=SC2086
  "$bin/${exe[$target]}" "$work/corpus" -max_total_time="$SECONDS_PER_TARGET" -max_len="${maxlen[$target]}" \
    -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" ${extra[$target]} >"$work/log" 2>&1 || status=$?
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$work/log" | tail -1 || true)
  stat() { grep -E "^stat::$1:" "$work/log" | tail -1 | grep -Eo '[0-9]+$' || echo "?"; }
  runs=$(stat number_of_executed_units); speed=$(stat average_exec_per_sec); rss=$(stat peak_rss_mb)
  line="$target: $runs runs, $speed exec/s, $cov, peak RSS $rss MB"
  if [ "$status" -ne 0 ] || [ -n "$(ls -A "$work/artifacts")" ]; then
    failed=1
    echo "!! $target FAILED (exit $status). Last lines of $work/log:"
    tail -40 "$work/log"
    for artifact in "$work"/artifacts/*; do [ -e "$artifact" ] && echo "!! reproducer: $artifact"; done
    summary+=("$line: FAILED, reproducer in $work/artifacts")
  else
    summary+=("$line: ok")
    [ "${FUZZ_KEEP:-0}" = 1 ] || rm -rf "$work"
  fi
done
echo "== summary (${SECONDS_PER_TARGET}s per target)"
printf '%s\n' "${summary[@]}"
exit "$failed"
