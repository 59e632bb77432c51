-- The read policies of the tables that grow with traffic called a SECURITY DEFINER function
-- per row (igflow_is_member(tenant_id)): Postgres cannot inline it, so counting a million
-- activity rows made a million membership lookups, and no index on tenant_id could be used.
-- They now ask once per query for the user's tenants, in the `(select ...)` form that
-- Postgres runs once as an init plan, and compare each row's tenant against that array,
-- which the (tenant_id, created_at) index serves. Figures: README, "Dashboard access".

create index memberships_by_user on memberships (user_id);

-- The tenants the signed-in user is a member of (any role). Security definer, so that it
-- reads memberships without going through memberships' own policies.
create function igflow_member_tenants() returns uuid[]
language sql stable security definer set search_path = public, pg_temp as $$
    select coalesce(array_agg(m.tenant_id), '{}')
    from memberships m where m.user_id = igflow_user_id()
$$;

-- The tenants where the signed-in user is an owner or editor.
create function igflow_editor_tenants() returns uuid[]
language sql stable security definer set search_path = public, pg_temp as $$
    select coalesce(array_agg(m.tenant_id), '{}')
    from memberships m where m.user_id = igflow_user_id() and m.role in ('owner', 'editor')
$$;

revoke all on function igflow_member_tenants(), igflow_editor_tenants() from public, anon;
grant execute on function igflow_member_tenants(), igflow_editor_tenants() to authenticated;

-- Read by the other policies' subqueries, for every row they check.
drop policy ig_accounts_read on ig_accounts;
create policy ig_accounts_read on ig_accounts for select to authenticated
    using (tenant_id = any ((select igflow_member_tenants())::uuid[]));

drop policy activity_read on activity;
create policy activity_read on activity for select to authenticated
    using (tenant_id = any ((select igflow_member_tenants())::uuid[]));

drop policy contacts_read on contacts;
create policy contacts_read on contacts for select to authenticated
    using (exists (
        select 1 from ig_accounts a
        where a.id = contacts.account_id and a.tenant_id = any ((select igflow_member_tenants())::uuid[])));
drop policy contacts_editors_update on contacts;
create policy contacts_editors_update on contacts for update to authenticated
    using (exists (
        select 1 from ig_accounts a
        where a.id = contacts.account_id and a.tenant_id = any ((select igflow_editor_tenants())::uuid[])))
    with check (exists (
        select 1 from ig_accounts a
        where a.id = contacts.account_id and a.tenant_id = any ((select igflow_editor_tenants())::uuid[])));

drop policy parked_events_read on parked_events;
create policy parked_events_read on parked_events for select to authenticated
    using (exists (
        select 1 from ig_accounts a
        where a.id = parked_events.account_id
          and a.tenant_id = any ((select igflow_member_tenants())::uuid[])));

drop policy message_errors_read on message_errors;
create policy message_errors_read on message_errors for select to authenticated
    using (exists (
        select 1 from activity a
        where a.event_id = message_errors.event_id
          and a.tenant_id = any ((select igflow_member_tenants())::uuid[])));
