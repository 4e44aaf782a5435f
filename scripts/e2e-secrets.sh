#!/usr/bin/env bash
# End-to-end test of the secret-handling features through the CLI, on a file store (no servers but
# scripts/fake-kube-api.py):
#   1. the `kubernetesSecret` capture source against fake-kube-api.py over TLS, with a private CA
#      made here: a run with the right token stores the Secrets, `restore` gives them back as
#      applyable v1 Secrets (the served data, no server-side metadata, mode 0600), their values
#      never in clear in the store nor in the run's output; a wrong token (401), a Secret outside
#      the Role's resourceNames (403), an http:// API server (refused by validate) and an untrusted
#      CA (no caFile, or another CA) all fail; the API server address defaults from
#      KUBERNETES_SERVICE_HOST/PORT;
#   2. `restore --as-kubernetes-secret` of identities dumps made with `cnbackup upload`: the
#      validator dump byte for byte in data.content, --secret-namespace, --participant-only on an
#      SV dump (and refused on a validator's), --to - refused;
#   3. the set's age against the sequencers' retention: a set captured 40 days ago is refused
#      without --allow-old-set (or a longer --retention-period), and `restore --plan` warns;
#   4. `cnbackup validate` on Splice database naming (participant_<migration>,
#      sequencer/mediator_<serial> or the older _<migration>, captures of the old synchronizer with
#      their own epoch, CantonBFT's BFT database, leading zeros) and on generated component names
#      that clash.
#
# Usage: scripts/e2e-secrets.sh [PATH/TO/cnbackup]   Prints `ok: ...`, or `FAIL: reason` and exits 1.
# E2E_KEEP=1 keeps the temp dir.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
START=$(date +%s)

# shellcheck source=lib/e2e-common.sh
. scripts/lib/e2e-common.sh
# shellcheck source=lib/servers.sh
. scripts/lib/servers.sh
E2E_QUIET_LOGS=("*/keys.log" "*/validate-*" "*/run-*" "*/restore-*" "*/upload-*" "*/list-*")

step "dependencies"
e2e_dependencies "${1:-}"
e2e_binary "${1:-}"
for t in openssl python3; do command -v "$t" >/dev/null 2>&1 || fail "$t is not on PATH"; done

e2e_tempdir secrets tmp out store p
chmod 700 "$W/tmp" "$W/out"
umask 022   # restored secrets must be 0600 whatever the umask
FIXTURES=$ROOT/Tests/IntegrationTests/Resources/fixtures
VALIDATOR_DUMP=$FIXTURES/validator-participant-identities.json
SV_DUMP=$FIXTURES/sv-identities-dump.json
STORE=file://$W/store; mkdir -p -m 700 "$W/store"
MARK=cnbsecret$(openssl rand -hex 6)   # in every Secret value served: must never be seen in clear

# cnb NAME ARGS...: cnbackup, outside any pod (no KUBERNETES_SERVICE_*), a private TMPDIR; output in
# logs/NAME.out and logs/NAME.err, its exit code in RC (never trips the ERR trap).
cnb() {
  local name=$1; shift
  RC=0
  env -u KUBERNETES_SERVICE_HOST -u KUBERNETES_SERVICE_PORT TMPDIR="$W/tmp" timeout 60 "$CNB" "$@" \
    >"$W/logs/$name.out" 2>"$W/logs/$name.err" </dev/null || RC=$?
}
said() { cat "$W/logs/$1.out" "$W/logs/$1.err"; }
# expect NAME RC: the last cnb NAME exited RC.
expect() { [ "$RC" = "$2" ] || { said "$1" | tail -n 8; fail "$1: exit $RC, expected $2"; }; }
# expect_fail NAME: the last cnb NAME exited non-zero.
expect_fail() { [ "$RC" != 0 ] || { said "$1" | tail -n 8; fail "$1: exit 0, expected a failure"; }; }
# mentions NAME WHAT REGEX...: every (case-insensitive, extended) REGEX is in NAME's output.
mentions() {
  local name=$1 what=$2 re; shift 2
  for re in "$@"; do
    said "$name" | grep -qiE -- "$re" || { said "$name" | tail -n 6; fail "$name: the message does not mention $what (/$re/)"; }
  done
}

# ---------------------------------------------------------------- keys, CA, fake API server
step "keys, a private CA, fake-kube-api.py"
R=$("$CNB" keys generate --out "$W/secrets/ops.key" 2>>"$W/logs/keys.log") || fail "keys generate"
S=$("$CNB" keys generate --signing --out "$W/secrets/sign.key" 2>>"$W/logs/keys.log") || fail "keys generate --signing"
[[ $R == cnb1-x25519-pub-* && $S == cnb1-ed25519-pub-* ]] || fail "keys generate printed unexpected public keys: '$R' '$S'"
make_test_ca other-ca
TOKEN=tok-$(openssl rand -hex 20)
printf '%s\n' "$TOKEN" >"$W/secrets/token"
printf 'tok-%s\n' "$(openssl rand -hex 20)" >"$W/secrets/wrong-token"
chmod 600 "$W/secrets/token" "$W/secrets/wrong-token"
# The Secrets, every value with the mark: splice-app-sv-key as `data` (base64), cometbft-keys as
# `stringData` with labels and a type of its own; not-allowed exists but is not in the Role.
MARK=$MARK python3 - >"$W/secrets/secrets.json" <<'PY'
import base64, json, os
m = os.environ["MARK"]
b = lambda s: base64.b64encode(s.encode()).decode()
print(json.dumps({
  "sv/splice-app-sv-key": {"data": {"public": b("sv-public-" + m), "private": b("sv-private-" + m)}},
  "sv/cometbft-keys": {"stringData": {"node_key.json": json.dumps({"priv_key": {"type": "tendermint/PrivKeyEd25519", "value": "cometbft-" + m}}),
                                      "priv_validator_key.json": "validator-" + m},
                       "type": "cnbackup.test/cometbft", "labels": {"app": "cometbft", "e2e": "secrets"}},
  "sv/not-allowed": {"data": {"x": b("other-" + m)}},
}))
PY
start_standin fake-kube-api "$W/kube.port" python3 "$ROOT/scripts/fake-kube-api.py" --port 0 --port-file "$W/kube.port" \
  --cert "$W/secrets/server.pem" --key "$W/secrets/server.key" --token-file "$W/secrets/token" \
  --secrets "$W/secrets/secrets.json" --allow sv/splice-app-sv-key sv/cometbft-keys
KUBE_PORT=$STANDIN_PORT
KUBE=https://127.0.0.1:$KUBE_PORT
# What it serves, read with an independent client (Python's TLS stack and our CA): the reference
# for the restored Secrets.
E2E_KUBE=$KUBE E2E_CA=$W/secrets/ca.pem E2E_TOKEN=$TOKEN python3 - "$W/secrets/served.json" <<'PY' || fail "fake-kube-api.py does not behave as specified"
import json, os, ssl, sys, urllib.request, urllib.error
e = os.environ
ctx = ssl.create_default_context(cafile=e["E2E_CA"])
def get(path, token):
    r = urllib.request.Request(e["E2E_KUBE"] + path, headers={"Authorization": "Bearer " + token} if token else {})
    try:
        with urllib.request.urlopen(r, context=ctx, timeout=10) as resp: return resp.status, json.load(resp)
    except urllib.error.HTTPError as err: return err.code, json.load(err)
p = "/api/v1/namespaces/sv/secrets/"
assert get(p + "splice-app-sv-key", None)[0] == 401
assert get(p + "splice-app-sv-key", "nope")[0] == 401
assert get(p + "not-allowed", e["E2E_TOKEN"])[0] == 403
served = {}
for n in ("splice-app-sv-key", "cometbft-keys"):
    code, obj = get(p + n, e["E2E_TOKEN"])
    assert code == 200, (n, code, obj)
    assert obj["metadata"].get("uid") and obj["metadata"].get("managedFields"), obj["metadata"]
    served[n] = obj
json.dump(served, open(sys.argv[1], "w"))
PY

# kpipe FILE NODE CAPTURE-LINES: a generic pipeline on the file store.
kpipe() {
  cat >"$W/p/$1" <<YAML
version: 1
node: { name: $2, kind: generic }
epoch: { migrationId: 4, serial: 1 }
store: { url: "$STORE" }
encryption: { recipients: [ "$R" ] }
signing: { keyFile: "$W/secrets/sign.key" }
captures:
$3
YAML
}
CA="$W/secrets/ca.pem"
# ksecret CAPTURE NAME SETTINGS: one kubernetesSecret capture line in namespace sv.
ksecret() { echo "  - { name: $1, role: other, kubernetesSecret: { namespace: sv, name: $2, $3 } }"; }
SMALL="  - { name: small, role: other, command: [ printf, small ] }"

# ---------------------------------------------------------------- 1. kubernetesSecret
step "kubernetesSecret: a run with the right token"
kpipe good.yaml kube-good "$(ksecret sv-key splice-app-sv-key "apiServer: \"$KUBE\", tokenFile: \"$W/secrets/token\", caFile: \"$CA\"")
$(ksecret cometbft-keys cometbft-keys "apiServer: \"$KUBE\", tokenFile: \"$W/secrets/token\", caFile: \"$CA\"")"
cnb validate-good validate "$W/p/good.yaml"; expect validate-good 0
cnb run-good run "$W/p/good.yaml"; expect run-good 0
cnb list-good list --store "$STORE" --signer "$S" --node kube-good --json; expect list-good 0
KSET=$(python3 - "$W/logs/list-good.out" <<'PY'
import json, sys
sets = json.load(open(sys.argv[1]))["sets"]
assert len(sets) == 1, sets
s = sets[0]
assert s["complete"] is True and s["signature"] == "valid", s
assert sorted(s["components"]) == ["cometbft-keys", "sv-key"], s["components"]
print(s["id"])
PY
) || fail "list: the run did not store one complete signed set with sv-key and cometbft-keys: $(head -c 600 "$W/logs/list-good.out")"

step "kubernetesSecret: restore $KSET as applyable Secrets"
for comp in sv-key cometbft-keys; do
  cnb "restore-$comp" restore --store "$STORE" --signer "$S" "$KSET" --component "$comp" --to "$W/out/$comp.json" --identity "$W/secrets/ops.key"
  expect "restore-$comp" 0
  [ "$(stat -c %a "$W/out/$comp.json")" = 600 ] || fail "restore --component $comp: mode $(stat -c %a "$W/out/$comp.json"), expected 600 (a Secret)"
done
python3 - "$W/secrets/served.json" "$W/out/sv-key.json" "$W/out/cometbft-keys.json" <<'PY' || fail "the restored Secrets are not what the API server served (see above)"
import json, sys
served = json.load(open(sys.argv[1]))
for name, path in (("splice-app-sv-key", sys.argv[2]), ("cometbft-keys", sys.argv[3])):
    got, want = json.load(open(path)), served[name]
    print("   %s: %s" % (name, json.dumps({k: v for k, v in got.items() if k != "data"}, sort_keys=True)))
    assert got.get("apiVersion") == "v1" and got.get("kind") == "Secret", got
    meta = got.get("metadata", {})
    assert meta.get("name") == name and meta.get("namespace") == "sv", meta
    for k in ("uid", "resourceVersion", "managedFields", "creationTimestamp"):
        assert k not in meta, "%s: metadata.%s kept: it must not be applied back" % (name, k)
    assert meta.get("labels") == want["metadata"].get("labels"), (meta.get("labels"), want["metadata"].get("labels"))
    assert got.get("type") == want["type"], (got.get("type"), want["type"])
    assert got.get("data") == want["data"], "%s: data differs from what was served" % name
PY

step "kubernetesSecret: no value in clear in the store or the run's output"
# The mark, each served value (base64, as in the Secret's data) and the mark's own base64.
NEEDLES=("$MARK" "$(printf %s "$MARK" | base64 -w0 | tr -d =)")
while IFS= read -r v; do NEEDLES+=("$v"); done < <(python3 -c '
import json, sys
for s in json.load(open(sys.argv[1])).values():
    for v in s["data"].values(): print(v)' "$W/secrets/served.json")
[ -n "$(find "$W/store" -type f)" ] || fail "the store holds no files"
for n in "${NEEDLES[@]}"; do
  if grep -rqaF -- "$n" "$W/store"; then fail "a Secret value is in clear in the store: $(grep -rlaF -- "$n" "$W/store" | head -3)"; fi
  if said run-good | grep -qaF -- "$n"; then fail "the run printed a Secret value"; fi
done
if said run-good | grep -qaF -- "$TOKEN"; then fail "the run printed the service account token"; fi
if grep -qaF -- "$MARK" "$W/logs/fake-kube-api.log"; then fail "fake-kube-api.py logged a Secret value"; fi

step "kubernetesSecret: the API server from KUBERNETES_SERVICE_HOST/PORT"
kpipe env.yaml kube-env "$(ksecret sv-key splice-app-sv-key "tokenFile: \"$W/secrets/token\", caFile: \"$CA\"")"
RC=0
KUBERNETES_SERVICE_HOST=127.0.0.1 KUBERNETES_SERVICE_PORT=$KUBE_PORT TMPDIR="$W/tmp" timeout 60 "$CNB" run "$W/p/env.yaml" \
  >"$W/logs/run-env.out" 2>"$W/logs/run-env.err" </dev/null || RC=$?
expect run-env 0
cnb run-noenv run "$W/p/env.yaml"; expect run-noenv 2
mentions run-noenv "KUBERNETES_SERVICE_HOST" 'KUBERNETES_SERVICE_HOST'

step "kubernetesSecret: a wrong token (401)"
kpipe wrong-token.yaml kube-401 "$SMALL
$(ksecret sv-key splice-app-sv-key "apiServer: \"$KUBE\", tokenFile: \"$W/secrets/wrong-token\", caFile: \"$CA\"")"
cnb run-401 run "$W/p/wrong-token.yaml"; expect run-401 2
mentions run-401 "the 401 and the service account token" '401' 'service account token'
if said run-401 | grep -qaF -- "$(cat "$W/secrets/wrong-token")"; then fail "the run printed the token it sent"; fi

step "kubernetesSecret: a Secret outside the Role's resourceNames (403)"
kpipe forbidden.yaml kube-403 "$SMALL
$(ksecret sv-key not-allowed "apiServer: \"$KUBE\", tokenFile: \"$W/secrets/token\", caFile: \"$CA\"")"
cnb run-403 run "$W/p/forbidden.yaml"; expect run-403 2
mentions run-403 "the 403 and resourceNames" '403' 'resourceNames'

step "kubernetesSecret: an http:// API server is refused by validate"
kpipe http.yaml kube-http "$(ksecret sv-key splice-app-sv-key "apiServer: \"http://127.0.0.1:$KUBE_PORT\", tokenFile: \"$W/secrets/token\", caFile: \"$CA\"")"
cnb validate-http validate "$W/p/http.yaml"; expect_fail validate-http
mentions validate-http "https" 'https'

step "kubernetesSecret: an untrusted CA (none given, another one)"
served_count() { grep -c 'secrets/splice-app-sv-key: 200' "$W/logs/fake-kube-api.log" || true; }
SERVED_BEFORE=$(served_count)
kpipe no-ca.yaml kube-noca "$SMALL
$(ksecret sv-key splice-app-sv-key "apiServer: \"$KUBE\", tokenFile: \"$W/secrets/token\"")"
cnb run-noca run "$W/p/no-ca.yaml"; expect run-noca 2
mentions run-noca "a certificate problem" 'certificate|ca\.crt'
kpipe other-ca.yaml kube-otherca "$SMALL
$(ksecret sv-key splice-app-sv-key "apiServer: \"$KUBE\", tokenFile: \"$W/secrets/token\", caFile: \"$W/secrets/other-ca.pem\"")"
cnb run-otherca run "$W/p/other-ca.yaml"; expect run-otherca 2
mentions run-otherca "a certificate problem" 'certificate'
for n in run-401 run-403 run-noca run-otherca; do
  if said $n | grep -qaF -- "$MARK"; then fail "$n printed a Secret value"; fi
done
[ "$(served_count)" = "$SERVED_BEFORE" ] || fail "the API server served the Secret to a client that should not trust it"
grep -q 'TLS handshake failed' "$W/logs/fake-kube-api.log" || fail "fake-kube-api.py saw no failed TLS handshake from the run with another CA"

# ---------------------------------------------------------------- 2. restore --as-kubernetes-secret
step "upload identities dumps (validator, SV, and one captured 40 days ago)"
# upload: only identities, so the sets are partial (exit 2); that is not what is tested here.
set_of() {   # set_of VAR NODE: VAR = the id of the node's one set (not a command substitution: fail ends the script)
  local id
  cnb "list-$2" list --store "$STORE" --signer "$S" --node "$2" --json; expect "list-$2" 0
  id=$(python3 -c 'import json, sys; s = json.load(open(sys.argv[1]))["sets"]; assert len(s) == 1, s; print(s[0]["id"])' "$W/logs/list-$2.out") \
    || fail "list --node $2: not one set: $(head -c 400 "$W/logs/list-$2.out")"
  printf -v "$1" %s "$id"
}
OLD_AT=$(python3 -c 'import datetime; print((datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=40)).strftime("%Y-%m-%dT%H:%M:%SZ"))')
cnb upload-validator upload --store "$STORE" --node id-validator --kind validator --epoch 4/1 --component "identities=$VALIDATOR_DUMP" \
  --recipient "$R" --signing-key "$W/secrets/sign.key"; expect upload-validator 2
cnb upload-sv upload --store "$STORE" --node id-sv --kind sv --epoch 4/1 --component "identities=$SV_DUMP" \
  --recipient "$R" --signing-key "$W/secrets/sign.key"; expect upload-sv 2
cnb upload-old upload --store "$STORE" --node id-old --kind validator --epoch 4/1 --component "identities=$VALIDATOR_DUMP" \
  --captured-at "$OLD_AT" --recipient "$R" --signing-key "$W/secrets/sign.key"; expect upload-old 2
set_of VSET id-validator; set_of SVSET id-sv; set_of OLDSET id-old
RESTORE=(restore --store "$STORE" --signer "$S" --identity "$W/secrets/ops.key" --component identities)

step "restore --as-kubernetes-secret: validator dump $VSET"
cnb restore-vsecret "${RESTORE[@]}" "$VSET" --to "$W/out/validator-secret.json" --as-kubernetes-secret participant-bootstrap-dump
expect restore-vsecret 0
cnb restore-vsecret-ns "${RESTORE[@]}" "$VSET" --to "$W/out/validator-secret-ns.json" --as-kubernetes-secret participant-bootstrap-dump --secret-namespace validator
expect restore-vsecret-ns 0
cnb restore-svsecret "${RESTORE[@]}" "$SVSET" --to "$W/out/sv-secret.json" --as-kubernetes-secret participant-bootstrap-dump
expect restore-svsecret 0
cnb restore-svpart "${RESTORE[@]}" "$SVSET" --to "$W/out/sv-participant-secret.json" --as-kubernetes-secret participant-bootstrap-dump --participant-only
expect restore-svpart 0
for f in validator-secret validator-secret-ns sv-secret sv-participant-secret; do
  [ "$(stat -c %a "$W/out/$f.json")" = 600 ] || fail "$f.json: mode $(stat -c %a "$W/out/$f.json"), expected 600"
done
python3 - "$W/out" "$VALIDATOR_DUMP" "$SV_DUMP" <<'PY' || fail "the identities Secrets are wrong (see above)"
import base64, json, os, sys
out, vdump, svdump = sys.argv[1:]
def secret(f, namespace=None):
    d = json.load(open(os.path.join(out, f)))
    assert d.get("apiVersion") == "v1" and d.get("kind") == "Secret", d.keys()
    assert d["metadata"].get("name") == "participant-bootstrap-dump", d["metadata"]
    assert d["metadata"].get("namespace") == namespace, (f, d["metadata"])
    assert list(d["data"]) == ["content"], list(d["data"])
    return base64.b64decode(d["data"]["content"], validate=True)
assert secret("validator-secret.json") == open(vdump, "rb").read(), "validator: data.content is not the exact dump"
assert secret("validator-secret-ns.json", "validator") == open(vdump, "rb").read(), "validator (namespace): data.content is not the exact dump"
assert secret("sv-secret.json") == open(svdump, "rb").read(), "SV: data.content is not the exact dump"
part = json.loads(secret("sv-participant-secret.json"))
assert part == json.load(open(svdump))["identities"]["participant"], "SV --participant-only: not .identities.participant"
print("   validator dump exact; namespace validator; SV --participant-only = .identities.participant (%d keys)" % len(part["keys"]))
PY

step "restore --as-kubernetes-secret: refusals"
cnb restore-vpart "${RESTORE[@]}" "$VSET" --to "$W/out/validator-participant-only.json" --as-kubernetes-secret participant-bootstrap-dump --participant-only
expect_fail restore-vpart
mentions restore-vpart "why --participant-only does not apply" 'participant-only' 'validator|SV'
[ ! -e "$W/out/validator-participant-only.json" ] || fail "a refused --participant-only restore left a file"
cnb restore-stdout "${RESTORE[@]}" "$VSET" --to - --as-kubernetes-secret participant-bootstrap-dump
expect_fail restore-stdout
mentions restore-stdout "--to" '--to'
[ ! -s "$W/logs/restore-stdout.out" ] || fail "--to - with --as-kubernetes-secret wrote to standard output"

# ---------------------------------------------------------------- 3. the set's age
step "set age: $OLDSET, captured $OLD_AT"
cnb restore-old "${RESTORE[@]}" "$OLDSET" --to "$W/out/old.json"; expect_fail restore-old
mentions restore-old "the retention and --allow-old-set" '30d' 'retention' '--allow-old-set'
[ ! -e "$W/out/old.json" ] || fail "a refused restore of an old set left a file"
cnb restore-old-allowed "${RESTORE[@]}" "$OLDSET" --to "$W/out/old-allowed.json" --allow-old-set; expect restore-old-allowed 0
cmp -s "$W/out/old-allowed.json" "$VALIDATOR_DUMP" || fail "restore --allow-old-set did not give the dump back"
cnb restore-old-60d "${RESTORE[@]}" "$OLDSET" --to "$W/out/old-60d.json" --retention-period 60d; expect restore-old-60d 0
cnb restore-old-plan restore --store "$STORE" --signer "$S" "$OLDSET" --plan; expect restore-old-plan 0
said restore-old-plan | grep -qE 'WARNING.*retention' || { said restore-old-plan; fail "restore --plan of an old set: no WARNING about the retention"; }
said restore-old-plan | grep -qE 'WARNING.*onboarded after' || { said restore-old-plan; fail "restore --plan: no WARNING about parties/users onboarded after the set"; }

# ---------------------------------------------------------------- 4. validate: Splice naming
step "validate: Splice database naming"
# svpipe FILE EPOCH PARTICIPANT-DBS SEQUENCER-DBS MEDIATOR-DBS [NODE-EXTRA] [MORE-CAPTURES] [nocometbft]:
# a complete sv pipeline (the roles of pipelines/sv-4hourly.yaml), never run.
PGC="user: cnadmin, passwordFile: \"$W/secrets/token\""
svpipe() {
  cat >"$W/p/$1" <<YAML
version: 1
node: { name: sv-1, kind: sv${6:-} }
epoch: $2
store: { url: "$STORE" }
encryption: { recipients: [ "$R" ] }
signing: { keyFile: "$W/secrets/sign.key" }
captures:
  - { name: apps, role: apps, postgres: { host: apps-pg, $PGC, globals: true, databases: [ cantonnet_sv, cantonnet_scan, cantonnet_validator ] } }
  - { name: participant, role: participant, postgres: { host: participant-pg, $PGC, databases: [ $3 ] } }
  - { name: sequencer, role: sequencer, postgres: { host: sequencer-pg, $PGC, databases: [ $4 ] } }
  - { name: mediator, role: mediator, postgres: { host: mediator-pg, $PGC, databases: [ $5 ] } }
  - { name: identities, role: identities, command: [ printf, "{}" ] }
${7:-}
YAML
  [ "${8:-}" = nocometbft ] || echo "  - { name: cometbft, role: cometbft, command: [ printf, snapshot ] }" >>"$W/p/$1"
}
valid() {     # valid NAME: cnbackup validate p/NAME.yaml passes
  cnb "validate-$1" validate "$W/p/$1.yaml"
  [ "$RC" = 0 ] || { said "validate-$1"; fail "validate $1.yaml: exit $RC, expected valid"; }
}
invalid() {   # invalid NAME WHAT REGEX...: cnbackup validate p/NAME.yaml fails, mentioning each REGEX
  local name=$1; shift
  cnb "validate-$name" validate "$W/p/$name.yaml"
  [ "$RC" != 0 ] || { said "validate-$name"; fail "validate $name.yaml: valid, expected an error"; }
  mentions "validate-$name" "$@"
}
E41='{ migrationId: 4, serial: 1 }'
svpipe serial.yaml "$E41" participant_4 sequencer_1 mediator_1;           valid serial
svpipe older-layout.yaml "$E41" participant_4 sequencer_4 mediator_4;     valid older-layout
svpipe participant-1.yaml "$E41" participant_1 sequencer_1 mediator_1;    invalid participant-1 "the migration" 'participant_1' 'migration'
svpipe sequencer-2.yaml "$E41" participant_4 sequencer_2 mediator_1;      invalid sequencer-2 "the serial" 'sequencer_2' 'serial'
svpipe participant-04.yaml "$E41" participant_04 sequencer_1 mediator_1;  invalid participant-04 "leading zeros" 'participant_04' 'leading zero'
OLD_SYNC="  - { name: sequencer-old, role: sequencer, epoch: { migrationId: 4, serial: 0 }, postgres: { host: sequencer-pg, $PGC, databases: [ sequencer_0 ] } }
  - { name: mediator-old, role: mediator, epoch: { migrationId: 4, serial: 0 }, postgres: { host: mediator-pg, $PGC, databases: [ mediator_0 ] } }"
svpipe upgrade.yaml "$E41" participant_4 sequencer_1 mediator_1 "" "$OLD_SYNC";                          valid upgrade
svpipe upgrade-3.yaml "$E41" participant_4 sequencer_1 mediator_1 "" "${OLD_SYNC//migrationId: 4/migrationId: 3}"
invalid upgrade-3 "the old synchronizer's epoch" 'sequencer-old|mediator-old' '3/0|migration'
svpipe cantonbft.yaml "$E41" participant_4 "sequencer_1, sequencer_1_cantonbft" mediator_1 ", consensus: cantonbft" "" nocometbft
valid cantonbft
svpipe cantonbft-nodb.yaml "$E41" participant_4 sequencer_1 mediator_1 ", consensus: cantonbft" "" nocometbft
invalid cantonbft-nodb "the BFT database" 'BFT' 'sequencer_1_cantonbft'
cat >"$W/p/validator-cantonbft.yaml" <<YAML
version: 1
node: { name: validator-1, kind: validator, consensus: cantonbft }
epoch: $E41
store: { url: "$STORE" }
encryption: { recipients: [ "$R" ] }
signing: { keyFile: "$W/secrets/sign.key" }
captures:
  - { name: apps, role: apps, postgres: { host: pg, $PGC, globals: true, databases: [ cantonnet_validator ] } }
  - { name: participant, role: participant, postgres: { host: pg, $PGC, databases: [ participant_4 ] } }
  - { name: identities, role: identities, command: [ printf, "{}" ] }
YAML
valid_validator=$(sed 's/, consensus: cantonbft//' "$W/p/validator-cantonbft.yaml"); printf '%s\n' "$valid_validator" >"$W/p/validator.yaml"
valid validator
invalid validator-cantonbft "consensus" 'consensus'

step "validate: generated component names must be unique"
kpipe clash.yaml clash "  - { name: a, role: other, postgres: { host: pg, $PGC, databases: [ b-c ] } }
  - { name: a-b, role: other, postgres: { host: pg, $PGC, databases: [ c ] } }"
invalid clash "both captures and the name" '\ba\b.*\ba-b\b' 'a-b-c'
kpipe clash-globals.yaml clash-globals "  - { name: apps, role: apps, postgres: { host: pg, $PGC, globals: true, databases: [ cantonnet_validator ] } }
  - { name: apps-globals, role: other, command: [ printf, x ] }"
invalid clash-globals "both captures and apps-globals" '\bapps\b.*\bapps-globals\b.*apps-globals' 'apps-globals'
kpipe no-clash.yaml no-clash "  - { name: a, role: apps, postgres: { host: pg, $PGC, globals: true, databases: [ x ] } }
  - { name: a-globals, role: other, postgres: { host: pg, $PGC, databases: [ y ] } }"
valid no-clash

[ -z "$(ls -A "$W/tmp")" ] || fail "cnbackup left files in its TMPDIR: $(ls -A "$W/tmp" | head -5 | tr '\n' ' ')"

step "done"
echo "ok: e2e-secrets: kubernetesSecret over TLS (Secrets restored as applyable v1 Secrets, 0600, never in clear in the store or the output; 401, 403, http://, untrusted CA refused), restore --as-kubernetes-secret (exact dump, namespace, --participant-only), set age vs retention (--allow-old-set, --retention-period, plan warnings), Splice database naming and component-name clashes in validate; $(( $(date +%s) - START ))s"
