#!/usr/bin/env bash
# A real backup and restore on this machine, start to finish, on the embedded file store:
# makes keys, backs up a throwaway PostgreSQL database (pg_dump) and a folder, lists, deep-verifies,
# restores the dump into a fresh database and compares the rows. Everything lives in one temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product cnbackup >/dev/null
CNB="$(swift build -c release --show-bin-path)/cnbackup"
W=$(mktemp -d /tmp/cnbackup-demo.XXXXXX); chmod 755 "$W"
PGBIN=/usr/lib/postgresql/15/bin
cleanup() { su postgres -c "$PGBIN/pg_ctl -D $W/pg -m immediate stop" >/dev/null 2>&1 || true; rm -rf "$W"; }
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "== a throwaway PostgreSQL 15 on 127.0.0.1:$PORT"
mkdir -p "$W/pg" && chown postgres "$W/pg"
su postgres -c "$PGBIN/initdb -D $W/pg --auth-local=trust --auth-host=scram-sha-256 -U postgres" >/dev/null
su postgres -c "$PGBIN/pg_ctl -D $W/pg -o '-p $PORT -k $W/pg -c listen_addresses=127.0.0.1' -l $W/pg/log -w start" >/dev/null
PSQL="psql -h $W/pg -p $PORT -U postgres -v ON_ERROR_STOP=1 -q"
PW=$(openssl rand -hex 16); umask 077; printf '%s\n' "$PW" >"$W/apps.password"; umask 022
$PSQL -c "create role cnadmin login superuser password '$PW'"
$PSQL -c "create database cantonnet_validator"
$PSQL -d cantonnet_validator -c "create table acs(id uuid primary key default gen_random_uuid(), at timestamptz default now(), payload jsonb);
  insert into acs(payload) select jsonb_build_object('n', g, 'party', 'party::' || md5(g::text)) from generate_series(1, 20000) g;"

echo "== keys: an operational and a break-glass recipient, and the node's signing key"
R1=$("$CNB" keys generate --out "$W/ops.key"); R2=$("$CNB" keys generate --out "$W/breakglass.key")
SIGNER=$("$CNB" keys generate --signing --out "$W/signing.key")

# run refuses a file store whose folder does not exist (a volume that did not mount); make it.
mkdir -p -m 700 "$W/store"
cat >"$W/pipeline.yaml" <<YAML
version: 1
node: { name: demo-validator, kind: generic }
epoch: { migrationId: 0, serial: 0 }
store: { url: "file://$W/store" }
encryption: { recipients: [ "$R1", "$R2" ] }
signing: { keyFile: "$W/signing.key" }
captures:
  - name: apps
    role: apps
    postgres: { host: 127.0.0.1, port: $PORT, user: cnadmin, passwordFile: "$W/apps.password", databases: [ cantonnet_validator ], globals: true }
  - { name: config, role: other, directory: "$PWD/pipelines" }
YAML
echo "== validate, run"
"$CNB" validate "$W/pipeline.yaml"
"$CNB" run "$W/pipeline.yaml"
echo "== list"
"$CNB" list --store "file://$W/store" --signer "$SIGNER"
SET=$("$CNB" list --store "file://$W/store" --signer "$SIGNER" --json | python3 -c 'import sys,json; print(json.load(sys.stdin)["sets"][-1]["id"])')
echo "== verify --deep with the break-glass key"
"$CNB" verify --store "file://$W/store" --signer "$SIGNER" "$SET" --deep --identity "$W/breakglass.key"
echo "== restore: the dump to a file (break-glass style), and straight into a fresh database with its roles"
"$CNB" restore --store "file://$W/store" --signer "$SIGNER" "$SET" --component apps-cantonnet_validator --to "$W/apps.dump" --identity "$W/ops.key"
"$CNB" restore --store "file://$W/store" --signer "$SIGNER" "$SET" --component apps-cantonnet_validator --identity "$W/ops.key" \
  --to-database restored --pg-host "$W/pg" --pg-port "$PORT" --pg-user postgres --globals apps-globals --jobs 2
a=$($PSQL -At -d cantonnet_validator -c "select md5(string_agg(id::text || payload::text, ',' order by id)) from acs")
b=$($PSQL -At -d restored -c "select md5(string_agg(id::text || payload::text, ',' order by id)) from acs")
[ "$a" = "$b" ] || { echo "restored rows differ"; exit 1; }
echo "ok: backup, deep verify and restore of set $SET; restored rows identical ($a)"
