-- igflow's core schema. Ids from Meta are text: they exceed 2^53 and are opaque.
-- Runs unchanged on Supabase and plain Postgres (gen_random_uuid is built in since 13).

create table tenants (
    id          uuid primary key default gen_random_uuid(),
    slug        text not null unique,
    name        text not null,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);

create table ig_accounts (
    id                uuid primary key default gen_random_uuid(),
    tenant_id         uuid not null references tenants (id) on delete cascade,
    ig_user_id        text not null unique,
    username          text not null,
    login_flavor      text not null check (login_flavor in ('instagram', 'facebook')),
    -- Facebook Login sends messages through the linked Page.
    page_id           text,
    -- Name of the Secrets Manager secret holding the access token; never the token itself.
    token_secret_ref  text not null,
    status            text not null default 'active' check (status in ('active', 'paused', 'disabled')),
    status_reason     text,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    check (login_flavor = 'instagram' or page_id is not null)
);

create table campaigns (
    id                uuid primary key default gen_random_uuid(),
    tenant_id         uuid not null references tenants (id) on delete cascade,
    account_id        uuid not null references ig_accounts (id) on delete cascade,
    slug              text not null,
    name              text not null,
    trigger           text not null default 'comment' check (trigger in ('comment')),
    -- Media the campaign listens on; empty means every media of the account.
    media_ids         text[] not null default '{}',
    status            text not null default 'active' check (status in ('active', 'paused', 'archived')),
    -- Higher wins when several campaigns match.
    priority          integer not null default 0,
    -- The same contact gets at most one automated DM per campaign in this time.
    cooldown_seconds  integer not null default 0 check (cooldown_seconds >= 0),
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    unique (account_id, slug)
);
create index campaigns_active_by_account on campaigns (account_id) where status = 'active';

create table rules (
    id           uuid primary key default gen_random_uuid(),
    campaign_id  uuid not null references campaigns (id) on delete cascade,
    position     integer not null,
    match_mode   text not null check (match_mode in ('whole_word', 'contains', 'exact')),
    require      text not null default 'any' check (require in ('any', 'all')),
    keywords     text[] not null check (cardinality(keywords) > 0),
    exclude      text[] not null default '{}',
    unique (campaign_id, position)
);

create table actions (
    id           uuid primary key default gen_random_uuid(),
    campaign_id  uuid not null references campaigns (id) on delete cascade,
    kind         text not null check (kind in ('private_reply', 'public_reply')),
    -- public_reply: variants, one picked per comment; private_reply: exactly one text.
    variants     text[] not null check (cardinality(variants) > 0),
    unique (campaign_id, kind),
    check (kind <> 'private_reply' or (cardinality(variants) = 1 and octet_length(variants[1]) <= 1000))
);

create table contacts (
    id             uuid primary key default gen_random_uuid(),
    account_id     uuid not null references ig_accounts (id) on delete cascade,
    igsid          text not null,
    username       text,
    opted_out      boolean not null default false,
    first_seen_at  timestamptz not null default now(),
    last_seen_at   timestamptz not null default now(),
    unique (account_id, igsid)
);

-- One row per decision and per action. (event_id, step) is unique: it is the outbound
-- idempotency key, so a redelivered event can never send the same action twice.
create table activity (
    id             bigint generated always as identity primary key,
    tenant_id      uuid references tenants (id) on delete cascade,
    ig_user_id     text not null,
    event_id       text not null,
    event_kind     text not null,
    -- 'decision', or the action kind ('private_reply', 'public_reply').
    step           text not null,
    campaign_id    uuid references campaigns (id) on delete set null,
    contact_igsid  text,
    -- decision: matched, no_match, own_content, no_text, kind_not_handled, unknown_account, malformed
    -- action: pending, sent, already_done, retry, failed, uncertain
    outcome        text not null,
    -- Why: the rule and keyword that matched, or the failure reason.
    detail         text,
    graph_status   integer,
    graph_code     integer,
    graph_subcode  integer,
    -- The id Meta returned (message_id or comment id).
    response_id    text,
    latency_ms     integer,
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    unique (event_id, step)
);
create index activity_by_tenant_time on activity (tenant_id, created_at desc);
