-- Who owns a campaign's definition: a campaign file (`igflow-worker apply`) or the dashboard.
-- `apply` archives only the file campaigns its file no longer lists and refuses a slug the
-- dashboard owns; the dashboard shows file campaigns read-only with their source. Rows that
-- exist already came from files; new rows written as `authenticated` are the dashboard's.
alter table campaigns
    add column managed_by text not null default 'file' check (managed_by in ('file', 'dashboard')),
    -- For file campaigns: the file they were last applied from, as `apply` was given it.
    add column source text;
alter table campaigns alter column managed_by set default 'dashboard';

-- Editors change only dashboard campaigns (and their rules, intents and actions): a change
-- to a file campaign would be undone by the next `apply`, silently.
drop policy campaigns_editors_write on campaigns;
create policy campaigns_editors_write on campaigns for all to authenticated
    using (igflow_can_edit(tenant_id) and managed_by = 'dashboard')
    with check (
        igflow_can_edit(tenant_id)
        and managed_by = 'dashboard'
        and exists (
            select 1 from ig_accounts a
            where a.id = campaigns.account_id and a.tenant_id = campaigns.tenant_id
        )
    );

create function igflow_can_edit_campaign(campaign uuid) returns boolean
language sql stable security definer set search_path = public, pg_temp as $$
    select exists (
        select 1 from campaigns c
        where c.id = campaign and c.managed_by = 'dashboard' and igflow_can_edit(c.tenant_id)
    )
$$;
revoke all on function igflow_can_edit_campaign(uuid) from public, anon;
grant execute on function igflow_can_edit_campaign(uuid) to authenticated;

drop policy rules_editors_write on rules;
create policy rules_editors_write on rules for all to authenticated
    using (igflow_can_edit_campaign(campaign_id)) with check (igflow_can_edit_campaign(campaign_id));
drop policy actions_editors_write on actions;
create policy actions_editors_write on actions for all to authenticated
    using (igflow_can_edit_campaign(campaign_id)) with check (igflow_can_edit_campaign(campaign_id));
drop policy intents_editors_write on intents;
create policy intents_editors_write on intents for all to authenticated
    using (igflow_can_edit_campaign(campaign_id)) with check (igflow_can_edit_campaign(campaign_id));
