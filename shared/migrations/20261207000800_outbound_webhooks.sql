-- The tenant's own webhook: what a capture step stores is POSTed there, signed with
-- HMAC-SHA256 (the secret lives in Secrets Manager; `webhook_secret_ref` names it). Each
-- delivery waits in `outbound_deliveries` (written with the capture, once per answer event)
-- until the worker's delivery job gets a 2xx, retried with backoff: never in the flow's way.
-- Its progress shows in `activity` (step 'webhook'), so failures are in the live feed.
alter table tenants
    add column webhook_url text check (webhook_url ~ '^https?://\S+$' and char_length(webhook_url) <= 2000),
    add column webhook_secret_ref text,
    add constraint tenants_webhook_check check ((webhook_url is null) = (webhook_secret_ref is null));

create table outbound_deliveries (
    id bigint generated always as identity primary key,
    tenant_id uuid not null references tenants (id) on delete cascade,
    ig_user_id text not null,
    event_id text not null,
    kind text not null check (kind in ('contact.captured')),
    url text not null,
    secret_ref text not null,
    body jsonb not null,
    attempts integer not null default 0,
    next_at timestamptz not null default now(),
    delivered_at timestamptz,
    failed_at timestamptz,
    last_error text,
    created_at timestamptz not null default now(),
    unique (ig_user_id, event_id, kind)
);
create index outbound_deliveries_due on outbound_deliveries (next_at)
    where delivered_at is null and failed_at is null;

alter table outbound_deliveries enable row level security;
revoke all on outbound_deliveries from anon, authenticated;
