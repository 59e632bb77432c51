-- Where a person is in a campaign's flow, kept across restarts: for now, which of their taps
-- a follow-gated step turned back (by event id, so a redelivered tap counts once). A run
-- lapses with the 24-hour messaging window its last tap opened; retention deletes it after.
create table flow_runs (
    account_id uuid not null references ig_accounts (id) on delete cascade,
    contact_igsid text not null,
    campaign_id uuid not null references campaigns (id) on delete cascade,
    step text not null,
    turned_back text[] not null default '{}',
    updated_at timestamptz not null default now(),
    expires_at timestamptz not null,
    primary key (account_id, contact_igsid, campaign_id, step)
);
create index flow_runs_expiry on flow_runs (expires_at);

-- The worker's alone: dashboard users see none of it.
alter table flow_runs enable row level security;
revoke all on flow_runs from anon, authenticated;
