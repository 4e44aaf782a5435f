#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run): installs what the tests need, builds, runs every
# test (unit, and integration against the real binary), then the new-user smoke check.
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
scripts/e2e-canton.sh "$CNBACKUP_BIN"
