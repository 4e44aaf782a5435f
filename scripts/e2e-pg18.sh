#!/usr/bin/env bash
# End-to-end test against a PostgreSQL 18 server, whose dumps need PostgreSQL 18 clients:
#   - a throwaway PostgreSQL 18 cluster (scripts/lib/pg18.sh; initdb --data-checksums, password
#     (scram-sha-256) auth for `cnadmin` on loopback) with `cantonnet_validator` and `participant_4`,
#     realistic tables (uuid, timestamptz, jsonb, numeric, bytea, a virtual generated column),
#     a table owned by another role and a grant;
#   - SeaweedFS (`weed mini`) as the S3 store, every port chosen free;
# first pg_dump 15 (/usr/lib/postgresql/15/bin) must refuse the 18 server: that is why cnbackup must
# use the right client. Then, per client variant: `cnbackup run` of a `kind: generic` pipeline with
# two postgres captures (apps with globals, participant), list, verify --deep, restore
# --to-database of both databases into a second, fresh PostgreSQL 18 cluster (globals first, owners
# kept) with per-table checksums, owners and grants compared against the source. Last, a run that
# can find only PostgreSQL 15 clients must not report a complete set.
#
# Client variants (E2E_PG18_VARIANTS, space-separated; default "bindir"):
#   bindir  the captures name `binDirectory: $PG18_BIN`; verify and restore get --pg-bin $PG18_BIN
#   path    no binDirectory, no --pg-bin: $PG18_BIN is first on cnbackup's PATH
#
# Usage: scripts/e2e-pg18.sh [PATH/TO/cnbackup]     (default: $(swift build --show-bin-path)/cnbackup)
# Needs root (or sudo) to install packages and to run PostgreSQL as the `postgres` user.
# Prints `ok: ...` and exits 0, or prints `FAIL: reason` and exits 1. E2E_KEEP=1 keeps the temp dir.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)

# shellcheck source=lib/e2e-common.sh
. scripts/lib/e2e-common.sh
# shellcheck source=lib/servers.sh
. scripts/lib/servers.sh
# shellcheck source=lib/postgres.sh
. scripts/lib/postgres.sh
E2E_QUIET_LOGS=("*/keys.log" "*/validate-*" "*/weed.log" "*/pg_dump15.log" "*/toc15-*" "*/run-pg15only.*")
read -r -a VARIANTS <<<"${E2E_PG18_VARIANTS:-bindir path}"

# ---------------------------------------------------------------- dependencies
step "dependencies"
e2e_dependencies "${1:-}"
pg_require 18 15
for t in weed openssl python3; do command -v "$t" >/dev/null 2>&1 || fail "$t is not on PATH"; done
for v in "${VARIANTS[@]}"; do case $v in bindir|path) ;; *) fail "unknown E2E_PG18_VARIANTS entry: $v (bindir or path)" ;; esac; done

e2e_binary "${1:-}"

# ---------------------------------------------------------------- temp dir
e2e_tempdir pg18 out tmp

# ---------------------------------------------------------------- PostgreSQL 18
# Setup and checks run as `postgres` over each cluster's Unix socket; cnbackup logs in as cnadmin
# with its password over TCP.
for c in source restore; do pg_cluster "$c" 18 --checksums --fast; done
step "PostgreSQL 18: source :${PG_PORT[source]}, restore :${PG_PORT[restore]}"
for c in source restore; do
  [ "$(psql_su "$c" -d postgres -At -c "select current_setting('server_version_num')::int / 10000 || ' ' || current_setting('data_checksums')")" = "18 on" ] \
    || fail "the $c cluster is not PostgreSQL 18 with data checksums"
done

SRC_PW=$(openssl rand -hex 18); RESTORE_PW=$(openssl rand -hex 18)
printf '%s\n' "$SRC_PW" >"$W/secrets/source.pw"
printf '%s' "$RESTORE_PW" >"$W/secrets/restore.pw"
chmod 600 "$W/secrets/source.pw" "$W/secrets/restore.pw"

# cnadmin is the instance's admin user as in Splice's Helm charts; validator_app owns a table and
# validator_reader may read it: a restore that keeps owners fails without them.
psql_su source -d postgres <<SQL
CREATE ROLE cnadmin LOGIN SUPERUSER CREATEDB PASSWORD '$SRC_PW';
CREATE ROLE validator_app LOGIN PASSWORD 'validator-app-pw' CONNECTION LIMIT 10;
CREATE ROLE validator_reader NOLOGIN;
CREATE DATABASE cantonnet_validator OWNER cnadmin;
CREATE DATABASE participant_4 OWNER cnadmin;
SQL
psql_su restore -d postgres -c "CREATE ROLE cnadmin LOGIN SUPERUSER CREATEDB PASSWORD '$RESTORE_PW'"

step "tables and rows"
psql_su source -d cantonnet_validator -U cnadmin <<'SQL'
CREATE TABLE validator_acs_store (
  event_number bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  store_id int NOT NULL,
  contract_id text NOT NULL UNIQUE,
  template_id_qualified_name text NOT NULL,
  create_arguments jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  contract_expires_at timestamptz,
  amulet_amount numeric(38,10),
  amulet_cents numeric GENERATED ALWAYS AS (amulet_amount * 100) VIRTUAL,   -- PostgreSQL 18
  tracking_id uuid NOT NULL DEFAULT uuidv7()                                  -- PostgreSQL 18
);
INSERT INTO validator_acs_store (store_id, contract_id, template_id_qualified_name, create_arguments, created_at, contract_expires_at, amulet_amount)
SELECT 1 + g % 3,
       '00' || md5('validator-contract-' || g) || md5(g::text),
       (ARRAY['Splice.Amulet:Amulet','Splice.Wallet.Install:WalletAppInstall','Splice.ValidatorLicense:ValidatorLicense','Splice.Amulet:ValidatorRight'])[1 + g % 4],
       jsonb_build_object('dso', 'DSO::1220' || md5('dso'), 'owner', 'party-' || (g % 89) || '::1220' || md5((g % 89)::text),
                          'amount', jsonb_build_object('initialAmount', (g * 1.25)::text, 'createdAt', jsonb_build_object('number', g / 10)),
                          'tags', jsonb_build_array('v', g % 5, g % 2 = 0)),
       timestamptz '2026-03-01 00:00:00+00' + g * interval '7.5 seconds',
       CASE WHEN g % 5 = 0 THEN NULL ELSE timestamptz '2026-04-01 00:00:00+00' + g * interval '1 minute' END,
       round((g * 1234.5678901)::numeric / 7, 10)
FROM generate_series(1, 4000) g;
CREATE INDEX validator_acs_store_template ON validator_acs_store (store_id, template_id_qualified_name);
CREATE TABLE validator_txlog_store (
  entry_number bigserial PRIMARY KEY,
  update_id text NOT NULL,
  record_time timestamptz NOT NULL,
  entry jsonb NOT NULL,
  fee numeric(38,10) NOT NULL,
  request_id uuid NOT NULL
);
INSERT INTO validator_txlog_store (update_id, record_time, entry, fee, request_id)
SELECT '1220' || md5('update-' || g), timestamptz '2026-03-01 00:00:00+00' + g * interval '3 seconds',
       jsonb_build_object('kind', (ARRAY['transfer','mint','tap','renew'])[1 + g % 4], 'sender', 'party-' || (g % 31),
                          'receivers', jsonb_build_array(jsonb_build_object('party', 'party-' || (g % 17), 'amount', (g * 0.1)::text))),
       round((g * 0.0000123)::numeric, 10), md5('request-' || g)::uuid
FROM generate_series(1, 2500) g;
ALTER TABLE validator_txlog_store OWNER TO validator_app;
ALTER SEQUENCE validator_txlog_store_entry_number_seq OWNER TO validator_app;
GRANT SELECT ON validator_txlog_store TO validator_reader;
CREATE VIEW validator_templates AS SELECT template_id_qualified_name, count(*) AS n FROM validator_acs_store GROUP BY 1;
SQL
psql_su source -d participant_4 -U cnadmin <<'SQL'
CREATE TABLE par_contracts (
  contract_id bytea PRIMARY KEY,
  instance bytea NOT NULL,
  package_id varchar(300) NOT NULL,
  template_id varchar NOT NULL,
  ledger_create_time timestamptz NOT NULL,
  contract_salt bytea,
  metadata jsonb
);
INSERT INTO par_contracts
SELECT decode(md5('cid-' || g) || md5('cid2-' || g), 'hex'), convert_to(repeat('instance-' || g || ';', 1 + g % 7), 'UTF8'),
       md5('pkg-' || g % 12), 'Splice.Amulet:Amulet', timestamptz '2026-03-01 00:00:00+00' + g * interval '1.25 seconds',
       CASE WHEN g % 3 = 0 THEN NULL ELSE decode(md5('salt-' || g), 'hex') END,
       jsonb_build_object('signatories', jsonb_build_array('party-' || g % 7), 'stakeholders', jsonb_build_array('party-' || g % 7, 'party-' || g % 11))
FROM generate_series(1, 3000) g;
CREATE TABLE par_active_contracts (
  synchronizer_idx integer NOT NULL,
  contract_id bytea NOT NULL REFERENCES par_contracts (contract_id),
  change varchar(30) NOT NULL,
  ts bigint NOT NULL,
  request_counter bigint NOT NULL,
  reassignment_counter numeric(20,0) NOT NULL,
  PRIMARY KEY (synchronizer_idx, contract_id, ts, request_counter, change)
);
INSERT INTO par_active_contracts
SELECT 1, contract_id, CASE WHEN row_number() OVER () % 4 = 0 THEN 'deactivation' ELSE 'activation' END,
       extract(epoch FROM ledger_create_time)::bigint * 1000000, row_number() OVER (), 0
FROM par_contracts;
CREATE TABLE par_pruning_operation (name varchar(40) PRIMARY KEY, started_up_to_inclusive bigint, completed_up_to_inclusive bigint);
INSERT INTO par_pruning_operation VALUES ('pruning', 1772323200000000, 1772323200000000);
SQL

# ---------------------------------------------------------------- pg_dump 15 refuses the server
step "pg_dump 15 against the 18 server must fail"
rc=0; "$PG15_BIN/pg_dump" -h "${PG_SOCK[source]}" -p "${PG_PORT[source]}" -U postgres -Fc -f "$W/out/pg15.dump" cantonnet_validator \
  >"$W/logs/pg_dump15.log" 2>&1 || rc=$?
[ $rc != 0 ] || fail "pg_dump 15 dumped a PostgreSQL 18 server (expected a server version mismatch)"
grep -q 'server version mismatch' "$W/logs/pg_dump15.log" || { cat "$W/logs/pg_dump15.log"; fail "pg_dump 15 failed, but not for the server version"; }
echo "   $(grep -m1 'mismatch' "$W/logs/pg_dump15.log")"

# ---------------------------------------------------------------- SeaweedFS, keys
start_seaweedfs cnbackup-pg18
step "keys"
R1=$("$CNB" keys generate --out "$W/secrets/ops.key" 2>>"$W/logs/keys.log") || fail "keys generate (ops)"
R2=$("$CNB" keys generate --out "$W/secrets/breakglass.key" 2>>"$W/logs/keys.log") || fail "keys generate (breakglass)"
SIGNER=$("$CNB" keys generate --signing --out "$W/secrets/signing.key" 2>>"$W/logs/keys.log") || fail "keys generate --signing"
[[ $R1 == cnb1-x25519-pub-* && $R2 == cnb1-x25519-pub-* && $SIGNER == cnb1-ed25519-pub-* ]] \
  || fail "keys generate printed unexpected public keys: '$R1' '$R2' '$SIGNER'"
STORE=s3://$BUCKET/e2e
STORE_ARGS=(--store "$STORE" --endpoint "$S3_ENDPOINT" --region us-east-1 --path-style --provider seaweedfs --signer "$SIGNER")

# cnb ARGS...: cnbackup with the S3 credentials in its environment only, a private TMPDIR and
# CNB_PATH as its PATH (set per variant).
CNB_PATH=$PATH
cnb() {
  PATH=$CNB_PATH AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET TMPDIR=$W/tmp timeout 150 "$CNB" "$@"
}
pipeline() {   # pipeline FILE NODE BIN-SETTING: the two postgres captures of the source cluster
  cat >"$1" <<YAML
version: 1
node: { name: $2, kind: generic }
epoch: { migrationId: 4, serial: 0 }
store: { url: "$STORE", endpoint: "$S3_ENDPOINT", region: us-east-1, pathStyle: true, provider: seaweedfs }
encryption: { recipients: [ "$R1", "$R2" ] }
signing: { keyFile: "$W/secrets/signing.key" }
captures:
  - name: apps
    role: apps
    postgres: { host: 127.0.0.1, port: ${PG_PORT[source]}, user: cnadmin, passwordFile: "$W/secrets/source.pw", databases: [cantonnet_validator], globals: true$3 }
  - name: participant
    role: participant
    postgres: { host: 127.0.0.1, port: ${PG_PORT[source]}, user: cnadmin, passwordFile: "$W/secrets/source.pw", databases: [participant_4]$3 }
YAML
}

# ---------------------------------------------------------------- one client variant
SETS=()
run_variant() {   # run_variant bindir|path
  local v=$1 node=pg18-$1 bin_setting="" set db comp a b rc n
  local pg_bin=()   # --pg-bin for verify and restore
  case $v in
    bindir) bin_setting=", binDirectory: \"$PG18_BIN\""; pg_bin=(--pg-bin "$PG18_BIN"); CNB_PATH=$PATH ;;
    path)   CNB_PATH=$PG18_BIN:$PATH ;;
  esac
  pipeline "$W/$v.yaml" "$node" "$bin_setting"

  step "[$v] validate, run"
  cnb validate "$W/$v.yaml" >"$W/logs/validate-$v.log" 2>&1 || { cat "$W/logs/validate-$v.log"; fail "[$v] cnbackup validate"; }
  rc=0; cnb run "$W/$v.yaml" >"$W/logs/run-$v.out" 2>"$W/logs/run-$v.err" || rc=$?
  [ $rc = 0 ] || { cat "$W/logs/run-$v.out" "$W/logs/run-$v.err"; fail "[$v] cnbackup run exited $rc"; }
  if grep -qF -- "$SRC_PW" "$W/logs/run-$v.out" "$W/logs/run-$v.err"; then fail "[$v] cnbackup run printed the database password"; fi

  step "[$v] list"
  cnb list "${STORE_ARGS[@]}" --node "$node" --json >"$W/out/list-$v.json" 2>"$W/logs/list-$v.err" || { cat "$W/logs/list-$v.err"; fail "[$v] cnbackup list"; }
  set=$(python3 - "$W/out/list-$v.json" <<'PY'
import json, sys
sets = json.load(open(sys.argv[1]))["sets"]
assert len(sets) == 1, "expected one set, got %d" % len(sets)
s = sets[0]
assert s.get("complete") is True, "the set is not complete: %r" % s
print(s["id"])
PY
  ) || fail "[$v] list --json: $(cat "$W/out/list-$v.json")"
  SETS+=("$set")
  s3py "
import re
keys = [o['Key'] for o in c.list_objects_v2(Bucket=b, Prefix='e2e/').get('Contents', [])]
for n in ['apps-cantonnet_validator', 'apps-globals', 'participant-participant_4']:
    assert any(re.search('/$set/' + re.escape(n) + '-[0-9a-f]{16}[.]zst[.]cnb\\Z', k) for k in keys), 'no object for component ' + n + ' in ' + repr(keys)
" || fail "[$v] the store does not hold the expected objects"

  step "[$v] verify --deep $set"
  cnb verify "${STORE_ARGS[@]}" --node "$node" "$set" --deep --identity "$W/secrets/breakglass.key" "${pg_bin[@]}" >"$W/logs/verify-$v.out" 2>&1 \
    || { cat "$W/logs/verify-$v.out"; fail "[$v] cnbackup verify --deep $set"; }
  n=$(grep -c 'pg_restore --list (' "$W/logs/verify-$v.out" || true)
  [ "$n" = 2 ] || { cat "$W/logs/verify-$v.out"; fail "[$v] verify --deep ran pg_restore --list on $n dumps, not 2"; }

  # The archive is pg_dump 18's, of an 18 server; pg_restore 15 cannot read it (so restores need 18 too).
  cnb restore "${STORE_ARGS[@]}" --node "$node" "$set" --component participant-participant_4 --to "$W/out/$v-participant.dump" \
    --identity "$W/secrets/ops.key" >"$W/logs/restore-file-$v.log" 2>&1 || { cat "$W/logs/restore-file-$v.log"; fail "[$v] restore --to a file"; }
  "$PG18_BIN/pg_restore" --list "$W/out/$v-participant.dump" >"$W/out/$v-participant.toc" 2>"$W/logs/toc-$v.err" \
    || { cat "$W/logs/toc-$v.err"; fail "[$v] pg_restore 18 --list of the participant dump"; }
  grep -q '^;[[:space:]]*Dumped from database version: 18\.' "$W/out/$v-participant.toc" || fail "[$v] the dump is not of an 18 server"
  grep -q '^;[[:space:]]*Dumped by pg_dump version: 18\.' "$W/out/$v-participant.toc" || fail "[$v] the dump was not made by pg_dump 18"
  if "$PG15_BIN/pg_restore" --list "$W/out/$v-participant.dump" >/dev/null 2>"$W/logs/toc15-$v.err"; then
    fail "[$v] pg_restore 15 read a pg_dump 18 archive (expected: unsupported version)"
  fi
  grep -q 'unsupported version' "$W/logs/toc15-$v.err" || { cat "$W/logs/toc15-$v.err"; fail "[$v] pg_restore 15 failed, but not for the archive version"; }

  step "[$v] restore --to-database into the fresh cluster (globals first, owners kept), compare"
  for comp in apps-cantonnet_validator participant-participant_4; do
    db=${comp#*-}
    local globals=()
    [ "$comp" = apps-cantonnet_validator ] && globals=(--globals apps-globals)
    cnb restore "${STORE_ARGS[@]}" --node "$node" "$set" --component "$comp" --to-database "${db}_$v" "${globals[@]}" \
      --pg-host 127.0.0.1 --pg-port "${PG_PORT[restore]}" --pg-user cnadmin --pg-password-file "$W/secrets/restore.pw" \
      "${pg_bin[@]}" --identity "$W/secrets/ops.key" >"$W/logs/restore-$v-$comp.log" 2>&1 \
      || { cat "$W/logs/restore-$v-$comp.log"; fail "[$v] cnbackup restore --component $comp --to-database ${db}_$v"; }
    a=$(table_sums source "$db" --owners); b=$(table_sums restore "${db}_$v" --owners)
    grep -q ' r ' <<<"$a" || fail "no tables found in source/$db"
    if [ "$a" != "$b" ]; then
      diff <(echo "$a") <(echo "$b") || true
      fail "[$v] $db: restored tables differ from the source (rows, owner or grants)"
    fi
    echo "   $db -> ${db}_$v: $(grep -vcE '^(large objects|constraints|indexes) ' <<<"$a") relations identical (rows, owners, grants)"
  done
  [ "$(psql_su restore -d "cantonnet_validator_$v" -At -c "select tableowner from pg_tables where tablename='validator_txlog_store'")" = validator_app ] \
    || fail "[$v] validator_txlog_store is not owned by validator_app after the restore"
  [ "$(psql_su restore -d "cantonnet_validator_$v" -At -c "select attgenerated from pg_attribute where attrelid = 'validator_acs_store'::regclass and attname = 'amulet_cents'")" = v ] \
    || fail "[$v] validator_acs_store.amulet_cents is not a virtual generated column after the restore"
  CNB_PATH=$PATH
}
for v in "${VARIANTS[@]}"; do run_variant "$v"; done

# ---------------------------------------------------------------- only 15 clients: no complete set
# Without binDirectory and with only PostgreSQL 15 on PATH (and under /usr/lib/postgresql), no
# client can dump the server: the run must not claim a complete set.
step "run with only PostgreSQL 15 clients reachable (must not be complete)"
pipeline "$W/pg15only.yaml" pg18-pg15only ""
CNB_PATH=$PG15_BIN:$PATH
rc=0; cnb run "$W/pg15only.yaml" >"$W/logs/run-pg15only.out" 2>"$W/logs/run-pg15only.err" || rc=$?
CNB_PATH=$PATH
[ $rc != 0 ] || fail "a run with only pg_dump 15 against the 18 server exited 0"
if grep -qF -- "$SRC_PW" "$W/logs/run-pg15only.out" "$W/logs/run-pg15only.err"; then fail "the failed run printed the database password"; fi
cnb list "${STORE_ARGS[@]}" --node pg18-pg15only --json >"$W/out/list-pg15only.json" 2>"$W/logs/list-pg15only.err" \
  || { cat "$W/logs/list-pg15only.err"; fail "cnbackup list --node pg18-pg15only"; }
python3 -c '
import json, sys
sets = json.load(open(sys.argv[1]))["sets"]
assert not any(s.get("complete") for s in sets), "a complete set: %r" % sets
' "$W/out/list-pg15only.json" || fail "the run with only PostgreSQL 15 clients left a complete set: $(cat "$W/out/list-pg15only.json")"
echo "   exit $rc; $(cat "$W/logs/run-pg15only.out" "$W/logs/run-pg15only.err" | grep -m1 "^failed:" || echo "(no failed: line printed)")"

# Nothing left behind in cnbackup's TMPDIR (temporary pgpass files, dumps of restores).
[ -z "$(ls -A "$W/tmp")" ] || fail "cnbackup left files in its TMPDIR: $(ls -A "$W/tmp" | head -5 | tr '\n' ' ')"

step "done"
echo "ok: e2e-pg18: $(IFS=,; echo "${VARIANTS[*]}") variant(s), set(s) ${SETS[*]}: PostgreSQL 18 dumped with pg_dump 18 (pg_dump 15 refused), deep-verified, both databases restored identical (rows, owners, grants) into a fresh 18 cluster; $(( $(date +%s) - START ))s"
