#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run): installs what the tests need, builds, runs every
# test (unit, and integration against the real binary), the new-user smoke check, the examples
# check, and the end-to-end tests with real servers (Canton capture; SIGTERM during a run; S3 under
# injected faults; a PostgreSQL 18 server dumped and restored with PostgreSQL 18 clients).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --build-tests
export CNBACKUP_BIN="$(swift build --show-bin-path)/cnbackup"
swift test --skip-build
if [ -f ../shared/checks/core-smoke.sh ]; then
  bash ../shared/checks/core-smoke.sh
fi
scripts/check-examples.sh "$CNBACKUP_BIN"
scripts/check-alerts.sh
# report --html rendered in headless Chromium: a screenshot that is not blank, every set and problem on the page.
scripts/check-report.sh "$CNBACKUP_BIN"
# The end-to-end runs move tens of MiB through every stage: the release binary keeps them short.
# It is built as the Dockerfile builds it, so that the image's build is tested without Docker: from
# exactly the files its build stage copies, with its own `swift build` line; the script also refuses
# unpinned base images and a runtime stage that lacks a shared library the binary needs.
RELEASE_BIN=$(scripts/build-image-context.sh .build-image/out | tail -n 1)
scripts/e2e-canton.sh "$RELEASE_BIN"
# Restore drills (~25 s): SV-like and validator-like sets drilled into throwaway PostgreSQL 15, a missing role failing the drill, a forged receipt ignored, --pg-host left as it was.
scripts/e2e-drill.sh "$RELEASE_BIN"
# A captured database's owner as an adversary (~15 s): hostile operators, CHECK and index functions
# and a physical set's commands never run as a superuser in capture, drill or restore --restore-role.
scripts/e2e-hostile.sh "$RELEASE_BIN"
# SIGTERM during a run (~10 s): no child, grandchild, open upload or secret temporary file is left.
scripts/e2e-signals.sh "$RELEASE_BIN"
# Secrets (~10 s): kubernetesSecret against a fake API server over TLS, restore --as-kubernetes-secret, set age, Splice naming in validate.
scripts/e2e-secrets.sh "$RELEASE_BIN"
# The bucket writer as an adversary (~45 s): forged objects, junk, decoys, odd keys, future-dated copies, per-node signers, recover; file store and SeaweedFS.
scripts/e2e-attacker.sh "$RELEASE_BIN"
# S3 Object Lock against moto (~10 s): retention on every object, prune waits for it.
scripts/e2e-objectlock.sh "$RELEASE_BIN"
# GCS (~30 s): the stand-ins refuse what Google refuses (test-google-standins); a validator pipeline to gs:// on fake-gcs-server behind Google's stand-ins, with the
# metadata server's tokens, federation, a copy across clouds and prune.
scripts/test-google-standins.sh
scripts/e2e-gcs.sh "$RELEASE_BIN"
# Physical capture (~25 s): pg_basebackup of PostgreSQL 15 and 18, verify --deep, restore --to-directory, a server on it.
scripts/e2e-physical.sh "$RELEASE_BIN"
# Incrementals (~30 s): PostgreSQL 18 full + 2 incrementals, restore combined, prune keeps the chain, broken chains, kill -9.
scripts/e2e-incremental.sh "$RELEASE_BIN"
# e2e-pg18 (PostgreSQL 18 server and clients, ~15 s) runs alongside e2e-faults, its output held back
# until both end; either failing fails the suite.
PG18_LOG=$(mktemp /tmp/cnbackup-e2e-pg18-log.XXXXXX)
scripts/e2e-pg18.sh "$RELEASE_BIN" >"$PG18_LOG" 2>&1 </dev/null &
PG18_PID=$!
trap 'kill "$PG18_PID" 2>/dev/null; wait "$PG18_PID" 2>/dev/null; rm -f "$PG18_LOG"' EXIT
faults_rc=0; scripts/e2e-faults.sh "$RELEASE_BIN" || faults_rc=$?
pg18_rc=0; wait "$PG18_PID" || pg18_rc=$?
trap - EXIT
echo "== scripts/e2e-pg18.sh (ran alongside e2e-faults)"; cat "$PG18_LOG"; rm -f "$PG18_LOG"
if [ $faults_rc != 0 ] || [ $pg18_rc != 0 ]; then
  echo "test: end-to-end failure: e2e-faults exit $faults_rc, e2e-pg18 exit $pg18_rc"; exit 1
fi
# Parallel logical dump (pg_dump workers on one snapshot) on PostgreSQL 15 and 18: one snapshot, a killed worker, a DROP mid-dump.
scripts/e2e-parallel.sh "$RELEASE_BIN"
