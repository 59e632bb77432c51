-- Dashboard users reach Postgres through Supabase's PostgREST as role `authenticated`, with
-- their JWT in request.jwt.claims; Row Level Security keeps each to their tenants. The worker
-- and `igflow-worker apply` connect as the tables' owner, which RLS (not forced) lets
-- through: they scope by tenant themselves. Runs unchanged on Supabase and plain Postgres.

create table memberships (
    tenant_id   uuid not null references tenants (id) on delete cascade,
    -- Supabase's auth.users id; no foreign key, as auth.users exists only on Supabase.
    user_id     uuid not null,
    role        text not null check (role in ('owner', 'editor', 'viewer')),
    created_at  timestamptz not null default now(),
    primary key (tenant_id, user_id)
);

-- Supabase has these roles; plain Postgres gets them so the grants and policies below apply.
-- Roles are cluster-wide and tests migrate many databases at once: a concurrent creator
-- shows up as duplicate_object, or as unique_violation while its transaction is open.
do $$
declare
    r text;
begin
    foreach r in array array['authenticated', 'anon'] loop
        if not exists (select 1 from pg_roles where rolname = r) then
            begin
                execute format('create role %I nologin', r);
            exception when duplicate_object or unique_violation then
                null;
            end;
        end if;
    end loop;
end
$$;

-- The dashboard user: the JWT's sub, read as Supabase's auth.uid() does (which exists only
-- on Supabase). Null without a JWT; a setting once set in a session reads '' afterwards.
create function igflow_user_id() returns uuid
language sql stable security invoker as $$
    select coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
    )::uuid
$$;

-- Security definer, so that policies (those on memberships included) can ask without
-- recursing into memberships' own policies.
create function igflow_is_member(tenant uuid) returns boolean
language sql stable security definer set search_path = public, pg_temp as $$
    select exists (
        select 1 from memberships m where m.tenant_id = tenant and m.user_id = igflow_user_id()
    )
$$;

create function igflow_can_edit(tenant uuid) returns boolean
language sql stable security definer set search_path = public, pg_temp as $$
    select exists (
        select 1 from memberships m
        where m.tenant_id = tenant and m.user_id = igflow_user_id() and m.role in ('owner', 'editor')
    )
$$;

create function igflow_is_owner(tenant uuid) returns boolean
language sql stable security definer set search_path = public, pg_temp as $$
    select exists (
        select 1 from memberships m
        where m.tenant_id = tenant and m.user_id = igflow_user_id() and m.role = 'owner'
    )
$$;

-- PostgREST exposes functions as RPCs: only signed-in users may call these.
revoke all on function igflow_user_id(), igflow_is_member(uuid), igflow_can_edit(uuid),
    igflow_is_owner(uuid) from public, anon;
grant execute on function igflow_user_id(), igflow_is_member(uuid), igflow_can_edit(uuid),
    igflow_is_owner(uuid) to authenticated;

alter table tenants enable row level security;
alter table memberships enable row level security;
alter table ig_accounts enable row level security;
alter table campaigns enable row level security;
alter table rules enable row level security;
alter table actions enable row level security;
alter table intents enable row level security;
alter table contacts enable row level security;
alter table activity enable row level security;
alter table parked_events enable row level security;
alter table message_errors enable row level security;

-- No policy names anon: it sees no row. The `for all` write policies below also allow reads,
-- which the members' read policies already cover.

create policy tenants_read on tenants for select to authenticated
    using (igflow_is_member(id));

create policy memberships_read on memberships for select to authenticated
    using (igflow_is_member(tenant_id));
create policy memberships_owners_write on memberships for all to authenticated
    using (igflow_is_owner(tenant_id)) with check (igflow_is_owner(tenant_id));

create policy ig_accounts_read on ig_accounts for select to authenticated
    using (igflow_is_member(tenant_id));
create policy ig_accounts_owners_update on ig_accounts for update to authenticated
    using (igflow_is_owner(tenant_id)) with check (igflow_is_owner(tenant_id));
create policy ig_accounts_owners_delete on ig_accounts for delete to authenticated
    using (igflow_is_owner(tenant_id));

create policy campaigns_read on campaigns for select to authenticated
    using (igflow_is_member(tenant_id));
-- The worker loads campaigns by account: one naming another tenant's account would act for it.
create policy campaigns_editors_write on campaigns for all to authenticated
    using (igflow_can_edit(tenant_id))
    with check (
        igflow_can_edit(tenant_id)
        and exists (
            select 1 from ig_accounts a
            where a.id = campaigns.account_id and a.tenant_id = campaigns.tenant_id
        )
    );

create policy rules_read on rules for select to authenticated
    using (exists (select 1 from campaigns c where c.id = rules.campaign_id and igflow_is_member(c.tenant_id)));
create policy rules_editors_write on rules for all to authenticated
    using (exists (select 1 from campaigns c where c.id = rules.campaign_id and igflow_can_edit(c.tenant_id)))
    with check (exists (select 1 from campaigns c where c.id = rules.campaign_id and igflow_can_edit(c.tenant_id)));

create policy actions_read on actions for select to authenticated
    using (exists (select 1 from campaigns c where c.id = actions.campaign_id and igflow_is_member(c.tenant_id)));
create policy actions_editors_write on actions for all to authenticated
    using (exists (select 1 from campaigns c where c.id = actions.campaign_id and igflow_can_edit(c.tenant_id)))
    with check (exists (select 1 from campaigns c where c.id = actions.campaign_id and igflow_can_edit(c.tenant_id)));

create policy intents_read on intents for select to authenticated
    using (exists (select 1 from campaigns c where c.id = intents.campaign_id and igflow_is_member(c.tenant_id)));
create policy intents_editors_write on intents for all to authenticated
    using (exists (select 1 from campaigns c where c.id = intents.campaign_id and igflow_can_edit(c.tenant_id)))
    with check (exists (select 1 from campaigns c where c.id = intents.campaign_id and igflow_can_edit(c.tenant_id)));

create policy contacts_read on contacts for select to authenticated
    using (exists (select 1 from ig_accounts a where a.id = contacts.account_id and igflow_is_member(a.tenant_id)));
create policy contacts_editors_update on contacts for update to authenticated
    using (exists (select 1 from ig_accounts a where a.id = contacts.account_id and igflow_can_edit(a.tenant_id)))
    with check (exists (select 1 from ig_accounts a where a.id = contacts.account_id and igflow_can_edit(a.tenant_id)));

-- Written by the worker only. Events of unknown accounts (tenant_id null) stay operator-only.
create policy activity_read on activity for select to authenticated
    using (igflow_is_member(tenant_id));
create policy parked_events_read on parked_events for select to authenticated
    using (exists (select 1 from ig_accounts a where a.id = parked_events.account_id and igflow_is_member(a.tenant_id)));
-- A queue failure names only its event: it belongs to the tenant whose activity has that event.
create policy message_errors_read on message_errors for select to authenticated
    using (exists (select 1 from activity a where a.event_id = message_errors.event_id and igflow_is_member(a.tenant_id)));

-- Privileges match the policies. Supabase grants anon and authenticated everything on new
-- tables (truncate included, which RLS does not check): start from nothing on both.
revoke all on tenants, memberships, ig_accounts, campaigns, rules, actions, intents, contacts,
    activity, parked_events, message_errors from anon, authenticated;
revoke all on sequence activity_id_seq from anon, authenticated;
grant select on tenants, activity, parked_events, message_errors to authenticated;
grant select, insert, update, delete on memberships, campaigns, rules, actions, intents to authenticated;
-- Accounts come in through `igflow-worker apply`, which stores the token. Owners may pause,
-- tune or remove one, never repoint it at another token, user or page.
grant select, delete on ig_accounts to authenticated;
grant update (username, status, status_reason, limits, updated_at) on ig_accounts to authenticated;
grant select on contacts to authenticated;
grant update (opted_out) on contacts to authenticated;
