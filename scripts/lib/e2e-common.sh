# Sourced by scripts/e2e-canton.sh and scripts/e2e-faults.sh: the steps both need before their
# own servers start. Expects `fail` and `SUDO` from the sourcing script.

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
