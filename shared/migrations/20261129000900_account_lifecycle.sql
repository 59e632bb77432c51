-- The account lifecycle jobs (token refresh, subscription audit, reconciliation of missed
-- webhooks): what they record on the account, and the lease that lets any number of
-- workers run them without doing the same account's work twice.

-- A token refresh that failed, shown on the account until one succeeds. token_expires_at
-- (from the OAuth exchange or a refresh; null when a file gave the token) is what the
-- refresh is scheduled by.
alter table ig_accounts
    add column token_refresh_error text,
    add column token_refresh_failed_at timestamptz,
    -- Meta refused to subscribe the app to igflow's webhook fields again: no deliveries.
    add column subscription_error text,
    add column subscription_checked_at timestamptz;

-- One row per (job, account): who holds the work now and when it is next due. A worker takes
-- it only when nobody holds it and it is due, in one statement, so two workers never both
-- act; a finished run pushes next_at forward, so a second worker arriving later does not
-- redo it either.
create table job_leases (
    job         text not null check (job in ('token_refresh', 'subscriptions', 'reconcile')),
    account_id  uuid not null references ig_accounts (id) on delete cascade,
    holder      uuid not null,
    held_until  timestamptz not null,
    next_at     timestamptz not null default '-infinity',
    primary key (job, account_id)
);

-- Worker bookkeeping, nothing a dashboard user reads.
alter table job_leases enable row level security;
revoke all on job_leases from anon, authenticated;

-- The account's latest event, for AccountSilent (and the dashboard's "last event"): every
-- event of an active account gets a decision row.
create index activity_latest_decision on activity (ig_user_id, created_at desc)
    where step = 'decision';
