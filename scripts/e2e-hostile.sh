#!/usr/bin/env bash
# End-to-end test: a captured database's owner is an adversary. The owner (`mallory`, no superuser)
# puts into their database what PostgreSQL lets any owner create:
#   - an operator `public.||(name, name)` that would shadow the catalog's in an unqualified query;
#   - a CHECK constraint and an index expression whose functions, when they run as a superuser,
#     call `COPY ... TO PROGRAM` to touch a marker file (a shell for whoever can do it);
#   - a `public.pg_is_in_recovery()` and `ALTER DATABASE ... SET search_path = public, pg_catalog`,
#     for any session (the capture's own, as a superuser) that takes the database's search path.
# Then, through the CLI:
#   - a drill into a throwaway PostgreSQL 15, and a drill with --pg-host into a server whose given
#     user is a superuser: both pass, no marker appears, and --pg-host keeps no drill database or role;
#   - restore --to-database --restore-role (an ordinary role) restores it without the marker, and a
#     superuser as --restore-role is refused;
#   - a dump that needs an extension only a superuser creates (dblink) fails the drill naming it;
#   - a physical set whose configuration carries restore_command, archive_command and an include
#     line, and whose data directory holds recovery.signal: the drill runs none of them and its
#     receipt lists what it removed;
#   - as a control, the same dump restored by hand as a superuser does fire the traps.
#
# Usage: scripts/e2e-hostile.sh [PATH/TO/cnbackup]   Needs root (or sudo) to run PostgreSQL as `postgres`.
# Prints `ok: ...` and exits 0, or `FAIL: reason` and exits 1. E2E_KEEP=1 keeps the temp dir.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)

# shellcheck source=lib/e2e-common.sh
. scripts/lib/e2e-common.sh
# shellcheck source=lib/postgres.sh
. scripts/lib/postgres.sh
E2E_QUIET_LOGS=("*/keys.log")

step "dependencies"
pg_require 15
BIN=$(pg_bin 15)
e2e_binary "${1:-}"
e2e_tempdir hostile store tmp
# Where a program run by COPY ... TO PROGRAM would leave its mark: writable by the server's user.
MARKS=$W/marks; mkdir -p "$MARKS"; chmod 1777 "$MARKS"
no_marks() { [ -z "$(ls -A "$MARKS")" ] || fail "$1: code from the backup ran as a superuser: $(ls "$MARKS")"; }

step "source cluster: mallory owns a database and fills it with traps"
pg_cluster source 15 --locale C --fast -c wal_level=replica -c max_wal_senders=5 \
  --hba "host replication cnadmin 127.0.0.1/32 scram-sha-256"
PORT=${PG_PORT[source]}
PW=$(openssl rand -hex 16); printf '%s\n' "$PW" >"$W/secrets/source.pw"; chmod 600 "$W/secrets/source.pw"
psql_su source -d postgres -c "create role cnadmin login superuser replication password '$PW'" \
  -c "create role mallory login nosuperuser" -c "create database evil owner mallory" -c "create database extdb"
psql_su source -d extdb -c "create extension dblink" -c "create table t (x int)" -c "insert into t values (1)"
# Everything below runs as mallory, who is no superuser: only what any owner may do.
# (@MARKS@ is the marks folder: written into the functions, so no setting is needed where they run.)
sed "s|@MARKS@|$MARKS|g" <<'SQL' | psql_su source -d evil -v ON_ERROR_STOP=1
set role mallory;
create function public.trap(what text) returns boolean language plpgsql volatile as $f$
begin
  if (select rolsuper from pg_catalog.pg_roles where rolname = current_user) then
    execute format('copy (select 1) to program %L', 'touch @MARKS@/' || what);
  end if;
  return true;
end $f$;
create function public.evil_concat(a name, b name) returns text language plpgsql as $f$
begin perform public.trap('operator'); return pg_catalog.textcat(a::text, b::text); end $f$;
create operator public.|| (leftarg = name, rightarg = name, function = public.evil_concat);
create function public.evil_index(x int) returns int language plpgsql immutable as $f$
begin perform public.trap('index'); return x; end $f$;
create table ledger (id int primary key, note name check (public.trap('check')));
insert into ledger select g, ('row ' || g)::name from generate_series(1, 300) g;
create index ledger_expr on ledger (public.evil_index(id));
-- Shadows the catalog's function for a session whose search path puts public first (the capture's
-- own evidence query asks it, connected as a superuser).
create function public.pg_is_in_recovery() returns boolean language plpgsql as $f$
begin perform public.trap('capture'); return false; end $f$;
alter database evil set search_path = public, pg_catalog;
SQL
no_marks "the source itself"

step "keys and sets"
R1=$("$CNB" keys generate --out "$W/secrets/ops.key" 2>>"$W/logs/keys.log")
SIGNER=$("$CNB" keys generate --signing --out "$W/secrets/signing.key" 2>>"$W/logs/keys.log")
"$CNB" keys generate --signing --out "$W/secrets/drill.key" >/dev/null 2>>"$W/logs/keys.log"
STORE="file://$W/store"; mkdir -p -m 700 "$W/store"
cnb() { TMPDIR=$W/tmp timeout 300 "$CNB" "$@"; }
pipeline() {   # pipeline NODE CAPTURE-LINE
  printf 'version: 1\nnode: { name: %s, kind: generic }\nepoch: { migrationId: 1, serial: 0 }\nstore: { url: "%s" }\nencryption: { recipients: [ "%s" ] }\nsigning: { keyFile: "%s" }\ncaptures:\n  - name: apps\n    role: apps\n    postgres: { host: 127.0.0.1, port: %s, user: cnadmin, passwordFile: "%s", binDirectory: "%s", %s }\n' \
    "$1" "$STORE" "$R1" "$W/secrets/signing.key" "$PORT" "$W/secrets/source.pw" "$BIN" "$2" >"$W/$1.yaml"
  cnb run --no-progress "$W/$1.yaml" >"$W/logs/run-$1.out" 2>"$W/logs/run-$1.log" || { tail -5 "$W/logs/run-$1.log"; fail "run $1"; }
}
pipeline evil1 "databases: [evil]"
pipeline ext1 "databases: [extdb]"
no_marks "the capture"
DR=(--store "$STORE" --signer "$SIGNER" --identity "$W/secrets/ops.key" --drill-key "$W/secrets/drill.key" --pg-bin "$BIN")

step "drill into a throwaway server: passes, no program runs"
cnb drill "${DR[@]}" --node evil1 >"$W/logs/drill-throwaway.out" 2>"$W/logs/drill-throwaway.log" \
  || { cat "$W/logs/drill-throwaway.out" "$W/logs/drill-throwaway.log"; fail "the drill of mallory's database failed"; }
grep -q "drill PASSED" "$W/logs/drill-throwaway.out" || fail "the throwaway drill did not pass"
grep -q "restored and counted as cnbdrill_" "$W/logs/drill-throwaway.out" || fail "the drill did not restore as its own role"
no_marks "drill into a throwaway server"

step "drill --pg-host into a server whose user is a superuser: passes, no program runs, nothing left"
pg_cluster scratch 15 --locale C --fast
SPW=$(openssl rand -hex 16); printf '%s\n' "$SPW" >"$W/secrets/scratch.pw"; chmod 600 "$W/secrets/scratch.pw"
psql_su scratch -d postgres -c "alter role postgres password '$SPW'" >/dev/null
BEFORE=$(psql_su scratch -d postgres -At -c "select string_agg(datname, ',' order by datname) from pg_database" \
  -c "select string_agg(rolname, ',' order by rolname) from pg_roles")
cnb drill "${DR[@]}" --node evil1 --pg-host 127.0.0.1 --pg-port "${PG_PORT[scratch]}" --pg-user postgres \
  --pg-password-file "$W/secrets/scratch.pw" >"$W/logs/drill-host.out" 2>"$W/logs/drill-host.log" \
  || { cat "$W/logs/drill-host.out" "$W/logs/drill-host.log"; fail "the --pg-host drill of mallory's database failed"; }
no_marks "drill --pg-host as a superuser"
AFTER=$(psql_su scratch -d postgres -At -c "select string_agg(datname, ',' order by datname) from pg_database" \
  -c "select string_agg(rolname, ',' order by rolname) from pg_roles")
[ "$BEFORE" = "$AFTER" ] || fail "the --pg-host drill left databases or roles behind: $AFTER"

step "restore --to-database --restore-role: as an ordinary role; a superuser is refused"
psql_su scratch -d postgres -c "create role restorer login password '$SPW'" -c "create role root2 login superuser password '$SPW'" >/dev/null
SET=$(ls "$W/store/evil1/migration-1/serial-0/")
RS=(--store "$STORE" --signer "$SIGNER" "$SET" --component apps-evil --identity "$W/secrets/ops.key" --pg-host 127.0.0.1
    --pg-port "${PG_PORT[scratch]}" --pg-user postgres --pg-password-file "$W/secrets/scratch.pw" --pg-bin "$BIN" --no-progress)
cnb restore "${RS[@]}" --to-database evil_restored --restore-role restorer --restore-role-password-file "$W/secrets/scratch.pw" \
  2>"$W/logs/restore-role.log" || { cat "$W/logs/restore-role.log"; fail "restore --restore-role failed"; }
[ "$(psql_su scratch -d evil_restored -At -c "select count(*) from public.ledger")" = 300 ] || fail "the restored ledger does not hold 300 rows"
[ "$(psql_su scratch -d postgres -At -c "select pg_catalog.pg_get_userbyid(datdba) from pg_database where datname = 'evil_restored'")" = restorer ] \
  || fail "the restored database is not owned by the restore role"
no_marks "restore --restore-role"
# Into a database that exists: refused before anything is created or dropped, with what to do.
rc=0; cnb restore "${RS[@]}" --to-database evil_restored --restore-role restorer --restore-role-password-file "$W/secrets/scratch.pw" \
  2>"$W/logs/restore-again.log" || rc=$?
[ $rc = 1 ] && grep -q "already exists" "$W/logs/restore-again.log" && grep -q "dropdb --force evil_restored" "$W/logs/restore-again.log" \
  || { cat "$W/logs/restore-again.log"; fail "a restore into an existing database was not refused with a drop-or-rename hint (exit $rc)"; }
[ "$(psql_su scratch -d evil_restored -At -c "select count(*) from public.ledger")" = 300 ] || fail "the refused restore touched the existing database"
# The plan names the signer that vouches for the set, not a placeholder.
cnb restore --store "$STORE" --signer "$SIGNER" "$SET" --plan >"$W/logs/plan.out" 2>&1 || fail "restore --plan"
grep -q -- "--signer $SIGNER" "$W/logs/plan.out" && ! grep -q -- "--signer PUB" "$W/logs/plan.out" || fail "restore --plan does not name the signer: $(head -3 "$W/logs/plan.out")"
rc=0; cnb restore "${RS[@]}" --to-database evil_again --restore-role root2 --restore-role-password-file "$W/secrets/scratch.pw" \
  2>"$W/logs/restore-root.log" || rc=$?
[ $rc = 1 ] && grep -q "may do more than own a database" "$W/logs/restore-root.log" || { cat "$W/logs/restore-root.log"; fail "a superuser --restore-role was not refused (exit $rc)"; }
[ "$(psql_su scratch -d postgres -At -c "select count(*) from pg_database where datname = 'evil_again'")" = 0 ] || fail "the refused restore created its database"

step "a dump that needs an extension only a superuser creates fails the drill, naming it"
rc=0; cnb drill "${DR[@]}" --node ext1 >"$W/logs/drill-ext.out" 2>"$W/logs/drill-ext.log" || rc=$?
[ $rc = 2 ] || { cat "$W/logs/drill-ext.out"; fail "the drill of a dump needing dblink exited $rc, not 2"; }
grep -q "extension dblink" "$W/logs/drill-ext.out" || { cat "$W/logs/drill-ext.out"; fail "the failed drill does not name the extension"; }

step "a physical set whose configuration runs commands: the drill runs none"
psql_su source -d postgres -c "alter system set restore_command = 'touch $MARKS/restore_command'" \
  -c "alter system set archive_command = 'touch $MARKS/archive_command'" -c "alter system set archive_cleanup_command = 'touch $MARKS/cleanup'" >/dev/null
echo "restore_command = 'touch $MARKS/included'" | as_postgres tee "${PG_DATA[source]}/evil.conf" >/dev/null
echo "include 'evil.conf'" | as_postgres tee -a "${PG_DATA[source]}/postgresql.conf" >/dev/null
as_postgres touch "${PG_DATA[source]}/recovery.signal"
pipeline phys1 "method: physical"
as_postgres rm -f "${PG_DATA[source]}/recovery.signal"
cnb drill "${DR[@]}" --node phys1 >"$W/logs/drill-phys.out" 2>"$W/logs/drill-phys.log" \
  || { cat "$W/logs/drill-phys.out" "$W/logs/drill-phys.log"; fail "the physical drill failed"; }
grep -q "configuration replaced by cnbackup's; removed: .*postgresql.auto.conf (archive_cleanup_command, archive_command, restore_command)" "$W/logs/drill-phys.out" \
  || { cat "$W/logs/drill-phys.out"; fail "the physical drill does not list what it removed"; }
grep -q "postgresql.conf (include)" "$W/logs/drill-phys.out" || fail "the physical drill does not name the include line it removed"
RECEIPT=$(sed -n 's/^  receipt: //p' "$W/logs/drill-phys.out")
grep -q "postgresql.auto.conf (archive_cleanup_command" "$W/store/$RECEIPT" || fail "the receipt does not list the removals"
no_marks "the physical drill"

step "control: the same dump restored by hand as a superuser does run the traps (so the checks above can fail)"
cnb restore "${RS[@]}" --to "$W/tmp/evil.dump" 2>"$W/logs/restore-file.log" || { cat "$W/logs/restore-file.log"; fail "restore --to FILE"; }
psql_su scratch -d postgres -c "create database control" >/dev/null
PGPASSWORD=$SPW "$BIN/pg_restore" -h 127.0.0.1 -p "${PG_PORT[scratch]}" -U postgres -d control "$W/tmp/evil.dump" >"$W/logs/control.log" 2>&1 || true
[ -e "$MARKS/check" ] || fail "control: the CHECK trap did not fire for a superuser's pg_restore, so this test proves nothing"

echo "ok: a hostile owner's operator, CHECK and index functions ran as no superuser in throwaway and --pg-host drills and in restore --restore-role, a superuser restore role was refused, an untrusted extension failed the drill by name, and a physical set's restore_command, archive_command, include line and recovery.signal ran nothing ($(( $(date +%s) - START ))s)"
