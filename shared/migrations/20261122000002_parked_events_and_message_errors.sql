-- Events of a paused account wait here instead of cycling through the queue towards the
-- DLQ; the worker sends them back once the account is active again.
create table parked_events (
    event_id    text primary key,
    account_id  uuid not null references ig_accounts (id) on delete cascade,
    envelope    text not null,
    reason      text not null,
    parked_at   timestamptz not null default now()
);
create index parked_events_by_account on parked_events (account_id, parked_at);

-- The last failure of every queue message that did not complete, keyed by SQS's MessageId
-- (which a message keeps when it is moved to the DLQ), so operators can see why.
create table message_errors (
    message_id     text primary key,
    event_id       text,
    event_kind     text,
    error          text not null,
    receive_count  integer not null,
    updated_at     timestamptz not null default now()
);
