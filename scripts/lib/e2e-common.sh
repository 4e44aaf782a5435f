# shellcheck shell=bash
# Sourced first by every scripts/e2e-*.sh (from the project's root): failure reporting (fail, step),
# the cleanup trap, the temp dir, the dependencies and the cnbackup binary under test, free ports.
# The servers the tests run against are in scripts/lib/servers.sh (SeaweedFS, moto, the HTTPS
# stand-ins) and scripts/lib/postgres.sh (PostgreSQL clusters), sourced after this file.
#
#   fail REASON                    end the script; the reason is printed last, after the log excerpts
#   step WHAT                      print a progress line with the seconds since START
#   e2e_tempdir NAME [DIR...]      W=/tmp/cnbackup-e2e-NAME.XXXXXX with logs/, secrets/ (0700) and DIRs
#   e2e_dependencies [BINARY]      python3, pip, openssl, boto3 and scripts/setup.sh
#   e2e_binary [BINARY]            CNB: the absolute path of the cnbackup under test
#   free_ports N                   N distinct free TCP ports of 127.0.0.1
#
# The sourcing script may set E2E_QUIET_LOGS (globs of logs not to excerpt on failure) and define
# e2e_stop_servers; the cleanup calls it, then each command in E2E_STOP_HOOKS (the helpers register
# theirs), then stops the background processes in PIDS and removes W (unless E2E_KEEP=1).

FAILURE=""
fail() {   # the reason is printed last, after the cleanup's log excerpts
  trap - ERR
  FAILURE="$*"
  exit 1
}
trap 'fail "line $LINENO: command failed (exit $?): $BASH_COMMAND"' ERR
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
W=""          # the temp dir
PIDS=()       # background processes the script started
E2E_QUIET_LOGS=()
E2E_STOP_HOOKS=()   # commands the cleanup runs to stop servers (after e2e_stop_servers)
step() { echo "== [$(( $(date +%s) - START ))s] $*"; }

cleanup() {
  local rc=$? log glob quiet hook
  trap - ERR
  set +e
  if [ $rc -ne 0 ] && [ -d "${W:-}/logs" ]; then
    for log in "$W"/logs/*; do
      [ -s "$log" ] || continue
      quiet=""
      for glob in "${E2E_QUIET_LOGS[@]}"; do
        # shellcheck disable=SC2053  # a glob on purpose
        [[ $log == $glob ]] && quiet=1
      done
      [ -n "$quiet" ] && continue
      echo "--- last lines of logs/$(basename "$log")"; tail -n 12 "$log"
    done
  fi
  declare -F e2e_stop_servers >/dev/null && e2e_stop_servers
  for hook in "${E2E_STOP_HOOKS[@]}"; do "$hook"; done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null
  done
  if [ -n "${W:-}" ]; then
    if [ "${E2E_KEEP:-}" = 1 ]; then echo "e2e: kept $W"; else $SUDO rm -rf "$W"; fi
  fi
  if [ $rc -ne 0 ]; then
    echo "FAIL: ${FAILURE:-exit code $rc}"
    exit 1
  fi
}
trap 'FAILURE="interrupted"; exit 130' INT TERM
trap cleanup EXIT

# e2e_dependencies [GIVEN-BINARY]: python3, pip, openssl and boto3 (for the checks on the store),
# then scripts/setup.sh (PostgreSQL 15, zstd, SeaweedFS; it also insists on swift, which is needed
# only when no cnbackup binary is given).
e2e_dependencies() {
  local need=()
  command -v python3 >/dev/null 2>&1 || need+=(python3)
  python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
  if [ ${#need[@]} -gt 0 ]; then
    echo "e2e: installing ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  if ! scripts/setup.sh; then
    [ -n "${1:-}" ] || fail "scripts/setup.sh failed"
    echo "e2e: scripts/setup.sh failed; continuing with the given binary"
  fi
  hash -r
  if ! python3 -c 'import botocore' 2>/dev/null; then
    echo "e2e: installing boto3"
    { python3 -m pip install -q boto3 2>/dev/null || python3 -m pip install -q --break-system-packages boto3; } \
      || { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-botocore >/dev/null; } || true
    command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
  fi
  python3 -c 'import botocore' 2>/dev/null || fail "python3 cannot import botocore (pip install boto3)"
}

# e2e_binary [GIVEN-BINARY]: sets CNB to the absolute path of the cnbackup to test (the debug
# build when none is given). Not a command substitution, so that `fail` ends the script itself.
e2e_binary() {
  CNB=${1:-}
  if [ -z "$CNB" ]; then
    command -v swift >/dev/null 2>&1 || fail "no cnbackup binary given and swift is not on PATH"
    CNB="$(swift build --show-bin-path)/cnbackup"
  fi
  [ -x "$CNB" ] || fail "cnbackup binary not found or not executable: $CNB"
  CNB=$(cd "$(dirname "$CNB")" && pwd)/$(basename "$CNB")
}

free_ports() {   # N distinct free TCP ports on 127.0.0.1, held together while chosen
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# e2e_tempdir NAME [DIR...]: W, a fresh /tmp/cnbackup-e2e-NAME.XXXXXX with logs/, secrets/ (mode 0700)
# and each DIR; the cleanup removes it (E2E_KEEP=1 keeps it).
e2e_tempdir() {
  local name=$1 d; shift
  W=$(mktemp -d "/tmp/cnbackup-e2e-$name.XXXXXX")
  mkdir -p "$W/logs" "$W/secrets"
  chmod 700 "$W/secrets"
  for d in "$@"; do mkdir -p "$W/$d"; done
}
