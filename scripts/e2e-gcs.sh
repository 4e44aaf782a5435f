#!/usr/bin/env bash
# End-to-end test of the gs:// store: a validator pipeline to Google Cloud Storage's JSON API,
# against fake-gcs-server behind the Google stand-ins (scripts/google-standins.py: TLS, bearer
# tokens only they issued, a metadata server, STS, a token endpoint that checks RS256 assertions):
#   - the stand-ins refuse what Google refuses (no token, a made-up one, no Metadata-Flavor, an
#     expired or foreign subject token), and cnbackup says why;
#   - run (PostgreSQL 15: apps with globals, participant; identities from a file), with the metadata
#     server's tokens, as GKE Workload Identity gives them;
#   - list and verify --deep with workload identity federation (external_account, impersonating);
#   - restore --to-database of both databases into a second cluster, identical;
#   - copy to S3 (SeaweedFS) and back to another GCS prefix, both verified;
#   - two more runs, then prune with a service-account key (the pruner), which deletes the middle set;
#   - check-store and cleanup say what GCS can and cannot tell;
#   - no token, session URI or key in any output.
# Usage: scripts/e2e-gcs.sh [PATH/TO/cnbackup]   Prints `ok: ...`, or `FAIL: reason` and exits 1.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
# shellcheck source=lib/e2e-common.sh
. scripts/lib/e2e-common.sh
# shellcheck source=lib/servers.sh
. scripts/lib/servers.sh
# shellcheck source=lib/postgres.sh
. scripts/lib/postgres.sh
E2E_QUIET_LOGS=("*/keys.log" "*/weed.log")

step "dependencies"
e2e_dependencies "${1:-}"
pg_require 15
e2e_binary "${1:-}"
e2e_tempdir gcs out home

start_google_standins --token-lifetime 45
start_seaweedfs cnb-gcs-copy
pg_cluster source 15 --fast
pg_cluster restore 15 --fast
SRC_PW=$(openssl rand -hex 16); RESTORE_PW=$(openssl rand -hex 16)
printf '%s\n' "$SRC_PW" >"$W/secrets/source.pw"; printf '%s\n' "$RESTORE_PW" >"$W/secrets/restore.pw"
chmod 600 "$W/secrets/source.pw" "$W/secrets/restore.pw"
psql_su source -d postgres <<SQL
CREATE ROLE cnadmin LOGIN SUPERUSER PASSWORD '$SRC_PW';
CREATE ROLE validator_app LOGIN PASSWORD 'validator-app-pw';
CREATE DATABASE cantonnet_validator OWNER cnadmin;
CREATE DATABASE participant_4 OWNER cnadmin;
SQL
psql_su restore -d postgres -c "CREATE ROLE cnadmin LOGIN SUPERUSER PASSWORD '$RESTORE_PW'"
psql_su source -d cantonnet_validator <<'SQL'
CREATE TABLE validator_acs_store (event_number bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, contract_id text NOT NULL UNIQUE,
  template text NOT NULL, payload jsonb NOT NULL, created_at timestamptz NOT NULL, amount numeric(38,10));
INSERT INTO validator_acs_store (contract_id, template, payload, created_at, amount)
SELECT '00' || md5('c' || g), (ARRAY['Splice.Amulet:Amulet','Splice.ValidatorLicense:ValidatorLicense'])[1 + g % 2],
       jsonb_build_object('owner', 'party-' || (g % 89), 'round', g / 50), timestamptz '2026-03-01' + g * interval '7 s', g * 1.25
FROM generate_series(1, 20000) g;
ALTER TABLE validator_acs_store OWNER TO validator_app;
SQL
psql_su source -d participant_4 <<'SQL'
CREATE TABLE par_events (id bigserial PRIMARY KEY, update_id text NOT NULL, record_time timestamptz NOT NULL, body bytea NOT NULL);
INSERT INTO par_events (update_id, record_time, body)
SELECT md5('u' || g), timestamptz '2026-03-01' + g * interval '1 s', decode(md5(g::text) || md5((g * 7)::text), 'hex')
FROM generate_series(1, 60000) g;
SQL
printf '{"id":"participant::1220%s","keys":[{"keyPair":"%s","name":"signing"}],"authorizedStoreSnapshot":"%s","version":"0.4.0"}\n' \
  "$(openssl rand -hex 16)" "$(openssl rand -base64 48 | tr -d '\n')" "$(openssl rand -base64 64 | tr -d '\n')" >"$W/secrets/identities.json"
chmod 600 "$W/secrets/identities.json"

step "keys and the pipeline (gs://, the stand-ins' endpoint and CA)"
R=$("$CNB" keys generate --out "$W/secrets/ops.key" 2>>"$W/logs/keys.log")
R2=$("$CNB" keys generate --out "$W/secrets/breakglass.key" 2>>"$W/logs/keys.log")
S=$("$CNB" keys generate --signing --out "$W/secrets/sign.key" 2>>"$W/logs/keys.log")
STORE="gs://$GCS_BUCKET/validators?endpoint=$GCS_STORAGE&caFile=$GCS_CA"
cat >"$W/validator.yaml" <<YAML
version: 1
node: { name: validator-1, kind: validator }
epoch: { migrationId: 4, serial: 1 }
store: { url: "gs://$GCS_BUCKET/validators", endpoint: "$GCS_STORAGE", caFile: "$GCS_CA", partSizeMiB: 1 }
encryption: { recipients: [ "$R", "$R2" ] }
signing: { keyFile: "$W/secrets/sign.key" }
captures:
  - name: apps
    role: apps
    postgres: { host: 127.0.0.1, port: ${PG_PORT[source]}, user: cnadmin, passwordFile: "$W/secrets/source.pw", databases: [ cantonnet_validator ], globals: true }
  - name: participant
    role: participant
    postgres: { host: 127.0.0.1, port: ${PG_PORT[source]}, user: cnadmin, passwordFile: "$W/secrets/source.pw", databases: [ participant_4 ] }
  - { name: identities, role: identities, file: "$W/secrets/identities.json" }
YAML
# As on GKE: no credentials file, no gcloud login; the metadata server gives the pod's identity.
gke() { env -u GOOGLE_APPLICATION_CREDENTIALS HOME="$W/home" GCE_METADATA_HOST="$GCE_METADATA_HOST_STANDIN" "$CNB" "$@"; }
federated() { env HOME="$W/home" GOOGLE_APPLICATION_CREDENTIALS="$GCS_EXTERNAL_ACCOUNT_IMPERSONATE_FILE" "$CNB" "$@"; }
pruner() { env HOME="$W/home" GOOGLE_APPLICATION_CREDENTIALS="$GCS_SA_KEY_FILE" "$CNB" "$@"; }
stats() { curl -fsS "$GCS_CONTROL/stats"; }

step "the stand-ins refuse what Google refuses"
[ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$GCS_CA" "$GCS_STORAGE/storage/v1/b/$GCS_BUCKET/o")" = 401 ] || fail "storage answered without a token"
[ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$GCS_CA" -H 'Authorization: Bearer ya29.made-up' "$GCS_STORAGE/storage/v1/b/$GCS_BUCKET/o")" = 401 ] \
  || fail "storage answered a made-up token"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$GCE_METADATA_HOST_STANDIN/computeMetadata/v1/instance/service-accounts/default/token")" = 403 ] \
  || fail "the metadata server answered without Metadata-Flavor: Google"
ANY_SIGNER=$("$CNB" keys generate --signing --out "$W/secrets/any-signer.key" 2>>"$W/logs/keys.log")
for bad in expired wrong-key; do
  python3 scripts/google-standins.py mint-oidc --dir "$W/google" "--$bad" --out "$W/google/oidc-token-$bad"
  sed "s#$W/google/oidc-token\"#$W/google/oidc-token-$bad\"#" "$GCS_EXTERNAL_ACCOUNT_FILE" >"$W/google/external-$bad.json"
  rc=0; env HOME="$W/home" GOOGLE_APPLICATION_CREDENTIALS="$W/google/external-$bad.json" "$CNB" list --store "gs://$GCS_BUCKET/validators?endpoint=$GCS_STORAGE&caFile=$GCS_CA" \
    --signer "$ANY_SIGNER" >"$W/logs/list-$bad.out" 2>&1 || rc=$?
  [ $rc != 0 ] && grep -q "STS" "$W/logs/list-$bad.out" || fail "a $bad subject token was not refused at STS: $(tail -2 "$W/logs/list-$bad.out")"
done

step "run with Workload Identity's metadata server"
gke validate "$W/validator.yaml" >"$W/logs/validate.log" 2>&1 || fail "validate: $(cat "$W/logs/validate.log")"
gke run "$W/validator.yaml" >"$W/logs/run1.out" 2>"$W/logs/run1.err" || fail "run: $(tail -3 "$W/logs/run1.err")"
SET1=$(grep -oE '[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}' "$W/logs/run1.out" | head -1)
[ -n "$SET1" ] || fail "run printed no set id: $(cat "$W/logs/run1.out")"
stats >"$W/out/stats1.json"
python3 - "$W/out/stats1.json" <<'PY' || fail "the run did not authenticate with the metadata server's tokens alone: $(cat "$W/out/stats1.json")"
import json, sys
s = json.load(open(sys.argv[1]))
issued = s["tokens_issued"]
assert issued.get("metadata", 0) >= 1, issued
assert all(v == 0 for k, v in issued.items() if k != "metadata"), issued
PY

step "list and verify --deep with workload identity federation (STS, impersonation)"
federated list --store "$STORE" --signer "$S" --json >"$W/out/list.json" 2>"$W/logs/list.err" || fail "list: $(cat "$W/logs/list.err")"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["sets"]; assert len(s)==1 and s[0]["complete"] and s[0]["trusted"], s' "$W/out/list.json" \
  || fail "list --json: $(cat "$W/out/list.json")"
federated verify --store "$STORE" --signer "$S" "$SET1" --deep --identity "$W/secrets/breakglass.key" >"$W/logs/verify.out" 2>&1 \
  || fail "verify --deep: $(tail -5 "$W/logs/verify.out")"
stats | python3 -c 'import json,sys; i=json.load(sys.stdin)["tokens_issued"]; assert i.get("sts",0)>=1 and i.get("impersonated",0)>=1, i' \
  || fail "federation did not go through STS and the IAM credentials API"

step "restore --to-database both databases into a second cluster, identical"
for comp in apps-cantonnet_validator participant-participant_4; do
  db=${comp#*-}; globals=()
  [ "$comp" = apps-cantonnet_validator ] && globals=(--globals apps-globals)
  federated restore --store "$STORE" --signer "$S" "$SET1" --component "$comp" --to-database "$db" "${globals[@]}" \
    --pg-host 127.0.0.1 --pg-port "${PG_PORT[restore]}" --pg-user cnadmin --pg-password-file "$W/secrets/restore.pw" \
    --identity "$W/secrets/ops.key" >"$W/logs/restore-$comp.log" 2>&1 || fail "restore $comp: $(tail -5 "$W/logs/restore-$comp.log")"
  [ "$(table_sums source "$db" --owners)" = "$(table_sums restore "$db" --owners)" ] || fail "$db restored from GCS differs from the source"
done

step "copy GCS -> S3 -> GCS (another prefix), each verified"
S3STORE="s3://$BUCKET/from-gcs?endpoint=$S3_ENDPOINT&region=us-east-1&pathStyle=true&provider=seaweedfs"
BACK="gs://$GCS_BUCKET/copied-back?endpoint=$GCS_STORAGE&caFile=$GCS_CA"
export AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET
federated copy --from "$STORE" --to "$S3STORE" --signer "$S" --json >"$W/out/copy1.json" 2>"$W/logs/copy1.err" || fail "copy to S3: $(tail -3 "$W/logs/copy1.err")"
federated copy --from "$S3STORE" --to "$BACK" --signer "$S" --json >"$W/out/copy2.json" 2>"$W/logs/copy2.err" || fail "copy back to GCS: $(tail -3 "$W/logs/copy2.err")"
for f in copy1 copy2; do
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ok"] and all(s["verified"] for s in d["sets"]), d' "$W/out/$f.json" \
    || fail "$f: $(cat "$W/out/$f.json")"
done
federated verify --store "$BACK" --signer "$S" "$SET1" --deep --identity "$W/secrets/ops.key" >"$W/logs/verify-back.out" 2>&1 \
  || fail "verify --deep of the copy that went to S3 and back: $(tail -5 "$W/logs/verify-back.out")"

step "two more runs, then prune (the pruner's service-account key) deletes the middle set"
# The oldest set starts the history chain and the newest is kept: the middle one goes.
for n in 2 3; do
  sleep 1.1
  gke run "$W/validator.yaml" >"$W/logs/run$n.out" 2>"$W/logs/run$n.err" || fail "run $n: $(tail -3 "$W/logs/run$n.err")"
done
SET2=$(grep -oE '[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}' "$W/logs/run2.out" | head -1)
pruner prune --store "$STORE" --signer "$S" --node validator-1 --keep-last 1 --keep-within 0s --retention-period 1d --margin 0s \
  --apply --json >"$W/out/prune.json" 2>"$W/logs/prune.err" || fail "prune: $(tail -3 "$W/logs/prune.err")"
pruner list --store "$STORE" --signer "$S" --json >"$W/out/list2.json" 2>/dev/null || true
python3 - "$W/out/list2.json" "$SET2" <<'PY' || fail "after prune: $(cat "$W/out/list2.json")"
import json, sys
ids = [s["id"] for s in json.load(open(sys.argv[1]))["sets"]]
assert sys.argv[2] not in ids and len(ids) == 2, ids
PY
stats | python3 -c 'import json,sys; i=json.load(sys.stdin)["tokens_issued"]; assert i.get("service_account",0)>=1, i' \
  || fail "prune did not use the service-account key's tokens"

step "check-store and cleanup say what GCS can and cannot tell"
pruner check-store --store "$STORE" --json >"$W/out/check.json" 2>"$W/logs/check.err" || true
python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["canWrite"] and r["overwriteRefused"] is True, r
assert "service account" in r.get("credentials", ""), r
' "$W/out/check.json" || fail "check-store: $(cat "$W/out/check.json")"
pruner cleanup --store "$STORE" >"$W/logs/cleanup.out" 2>&1 || fail "cleanup: $(cat "$W/logs/cleanup.out")"
grep -q "cannot be listed" "$W/logs/cleanup.out" || fail "cleanup does not say GCS sessions cannot be listed: $(cat "$W/logs/cleanup.out")"

step "no token, session URI or secret in any output"
if grep -rlE 'Bearer |upload_id=|ya29\.|"access_token"|PRIVATE KEY' --exclude=google.log --exclude=weed.log --exclude='initdb-*' "$W/logs" "$W/out" 2>/dev/null; then
  fail "a token, session URI or key appears in cnbackup's output"
fi
grep -rqF -- "$SRC_PW" "$W/logs" "$W/out" && fail "the database password appears in cnbackup's output"

echo "ok: e2e-gcs: validator set $SET1 to gs:// with the metadata server's tokens, listed and deep-verified through STS and impersonation, both databases restored identical, copied GCS -> S3 -> GCS and verified, three runs pruned to two with a service-account key, check-store and cleanup honest, no token in any output ($(( $(date +%s) - START ))s)"
