# The benchmark's ledger-like data, shared by scripts/bench.sh and scripts/bench-scale.sh:
# contracts (uuid key, jsonb payload with parties, amounts, rounds) and transfers (numeric amounts,
# bigint rounds, timestamps), generated inside the server (generate_series, md5, random).
# ledger_sql CONTRACTS TRANSFERS: the SQL that creates and fills both tables, on standard output.
ledger_sql() {
  local contracts=$1 transfers=$2
  cat <<SQL
CREATE TABLE contracts (contract_id uuid PRIMARY KEY, template_id text NOT NULL, created_at timestamptz NOT NULL,
  archived_at timestamptz, round bigint NOT NULL, payload jsonb NOT NULL);
CREATE TABLE transfers (id bigserial PRIMARY KEY, tx_id uuid NOT NULL, contract_id uuid NOT NULL,
  record_time timestamptz NOT NULL, sender text NOT NULL, receiver text NOT NULL,
  amount numeric(38,10) NOT NULL, fee numeric(38,10) NOT NULL, round bigint NOT NULL);
INSERT INTO contracts SELECT gen_random_uuid(), 'Splice.Amulet:' || (ARRAY['Amulet','LockedAmulet','ValidatorRight','AppRewardCoupon'])[1 + i % 4],
  timestamptz '2026-01-01' + i * interval '37 ms', CASE WHEN i % 3 = 0 THEN timestamptz '2026-01-02' + i * interval '41 ms' END, i / 600,
  jsonb_build_object('dso', 'DSO::1220' || md5('dso'), 'owner', 'party-' || (i % 5000) || '::1220' || md5((i % 5000)::text),
    'amount', jsonb_build_object('initialAmount', round((random() * 100000)::numeric, 10)::text,
      'createdAt', jsonb_build_object('number', (i / 600)::text), 'ratePerRound', jsonb_build_object('rate', '0.0038051750')),
    'lock', CASE WHEN i % 4 = 1 THEN jsonb_build_object('holders', jsonb_build_array('party-' || (i % 97) || '::1220' || md5((i % 97)::text)),
      'expiresAt', to_char(timestamptz '2026-03-01' + i * interval '1 s', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')) END,
    'meta', jsonb_build_object('traceId', md5(random()::text), 'workflowId', 'wf-' || md5((i / 10)::text), 'tags', jsonb_build_array('transfer', 'round-' || (i / 600))))
  FROM generate_series(1, $contracts) i;
INSERT INTO transfers (tx_id, contract_id, record_time, sender, receiver, amount, fee, round)
  SELECT gen_random_uuid(), gen_random_uuid(), timestamptz '2026-01-01' + i * interval '23 ms',
    'party-' || (i % 5000) || '::1220' || md5((i % 5000)::text), 'party-' || ((i * 7) % 5000) || '::1220' || md5(((i * 7) % 5000)::text),
    round((random() * 1e6)::numeric, 10), round((random() * 10)::numeric, 10), i / 900
  FROM generate_series(1, $transfers) i;
SQL
}
