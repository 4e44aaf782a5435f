#!/bin/sh
# Off-cluster nightly for one node: disaster copy, deep verify of the newest set, prune, orphan
# cleanup, freshness. Runs where the operational private key and the delete-capable S3 identity
# live (iam-pruner-policy.json) -- never in the node's cluster.
#
# cnbackup reads one set of S3 credentials (AWS_* variables or AWS_SHARED_CREDENTIALS_FILE) for
# both stores of `copy`, so the disaster-copy bucket must accept the same identity (another region,
# or another account through its bucket policy).
set -u

CNBACKUP=${CNBACKUP:-cnbackup}
NODE=${NODE:-sv-1}
# The pruning retention the history must keep gap-free: an SV's sequencer retention (30d); a
# validator's own participant retention (Splice's validator example: 48h).
RETENTION=${RETENTION:-30d}
PRIMARY=${PRIMARY:-"s3://canton-backups/mainnet?endpoint=https://s3.eu-central-1.amazonaws.com&region=eu-central-1"}
DR=${DR:-"s3://canton-backups-dr/mainnet?endpoint=https://s3.eu-west-1.amazonaws.com&region=eu-west-1"}
SIGNER=${SIGNER:?set SIGNER to the pinned cnb1-ed25519-pub-... key}
IDENTITY=${IDENTITY:-/secrets/ops.key}
METRICS=${METRICS:-/metrics/cnbackup.prom}   # used only without PUSHGATEWAY
PUSHGATEWAY=${PUSHGATEWAY:-}          # e.g. https://pushgateway.monitoring:9091; empty: the METRICS file
PUSHGATEWAY_CA=${PUSHGATEWAY_CA:-/etc/ssl/certs/ca-certificates.crt}   # CA bundle for its TLS certificate
SAMPLE=${SAMPLE:-10}                   # percent of the history shallow-verified each night

failed=""
step() { name=$1; shift; echo "== $name"; "$@"; rc=$?; [ $rc -eq 0 ] || { echo "!! $name: exit $rc" >&2; failed="$failed $name"; }; }

# 1. Disaster copy first: it only needs trusted (signed) sets and is resumable, so a failure
#    later in the night never leaves the second store behind.
step copy "$CNBACKUP" copy --from "$PRIMARY" --to "$DR" --signer "$SIGNER" --node "$NODE" --missing

# 2. Deep verify the newest complete set: proves the sets open with the operational key.
#    `list` exits 2 when some set is untrusted; its JSON is still complete, so read it either way.
listing=$("$CNBACKUP" list --store "$PRIMARY" --signer "$SIGNER" --node "$NODE" --json)
[ $? -le 2 ] || failed="$failed list"
if command -v jq >/dev/null 2>&1; then
  newest=$(printf '%s' "$listing" | jq -r '[.sets[] | select(.complete)] | last | .id // empty')
else
  newest=$(printf '%s' "$listing" | python3 -c 'import json,sys; s=[x for x in json.load(sys.stdin)["sets"] if x["complete"]]; print(s[-1]["id"] if s else "")')
fi
if [ -n "$newest" ]; then
  step verify "$CNBACKUP" verify --store "$PRIMARY" --signer "$SIGNER" --node "$NODE" "$newest" --deep --identity "$IDENTITY"
else
  echo "!! no complete set of $NODE to verify" >&2; failed="$failed verify"
fi

# 2b. A random share of the whole history (always with the newest): every object present with its
#     size, digest and header, every manifest signed; and each set openable by the key held here.
HELD=$(sed -n 's/^# public key: //p' "$IDENTITY")   # key files carry their public half in a comment
step verify-sample "$CNBACKUP" verify --store "$PRIMARY" --signer "$SIGNER" --node "$NODE" --sample "$SAMPLE" --held-key "$HELD"

# 3. Retention: keeps a gap-free chain shorter than the sequencer's 30-day pruning window and every
#    past epoch; deletes nothing while the newest set is partial or untrusted.
step prune "$CNBACKUP" prune --store "$PRIMARY" --signer "$SIGNER" --node "$NODE" --retention-period "$RETENTION" --apply

# 4. Orphans of runs that never committed a manifest (the writer cannot delete them itself).
step cleanup "$CNBACKUP" cleanup --store "$PRIMARY" --older-than 24h --apply

# 5. Freshness last, so the metric reflects tonight's state; alert on cnbackup metrics going stale.
#    With --retention-period, a gap in the history longer than pruning allows fails it too.
#    In a cluster the metrics go to the Pushgateway (job cnbackup_freshness, grouped by node); on an
#    ops host without one, to the METRICS file for node_exporter's textfile collector.
if [ -n "$PUSHGATEWAY" ]; then
  step check-freshness "$CNBACKUP" check-freshness --store "$PRIMARY" --signer "$SIGNER" --node "$NODE" --max-age 4h \
    --retention-period "$RETENTION" --pushgateway "$PUSHGATEWAY" --pushgateway-ca-file "$PUSHGATEWAY_CA"
else
  step check-freshness "$CNBACKUP" check-freshness --store "$PRIMARY" --signer "$SIGNER" --node "$NODE" --max-age 4h \
    --retention-period "$RETENTION" --metrics-file "$METRICS"
fi

if [ -n "$failed" ]; then echo "FAILED:$failed" >&2; exit 1; fi
echo "nightly ok for $NODE"
