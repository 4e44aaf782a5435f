#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run): installs what the tests need, builds, runs every
# test (unit, and integration against the real binary), the new-user smoke check, the examples
# check, and the end-to-end tests with real servers (Canton capture; S3 under injected faults).
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
# The end-to-end runs move tens of MiB through every stage: the release binary keeps them short.
swift build -c release --product cnbackup
RELEASE_BIN="$(swift build -c release --show-bin-path)/cnbackup"
scripts/e2e-canton.sh "$RELEASE_BIN"
scripts/e2e-faults.sh "$RELEASE_BIN"
