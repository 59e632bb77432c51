-- Per-day counts of activity, so a campaign's results over weeks read a few hundred summary
-- rows instead of every activity row (at 10 M rows the 30-day funnel counted ~170,000 index
-- entries, ~0.4 s). Statement-level triggers keep the counts exact as rows are inserted,
-- change outcome or are deleted (retention, data deletion): one grouped upsert per statement,
-- so a bulk statement costs one aggregate and the worker's one-row statements one small upsert.
-- Results read whole UTC days here and the partial days at the period's ends from activity
-- (igflow_results_counts).

create table activity_daily (
    tenant_id   uuid not null references tenants (id) on delete cascade,
    ig_user_id  text not null,
    -- Null: decisions that matched no campaign (they still count as comments seen).
    campaign_id uuid,
    day         date not null,
    event_kind  text not null,
    step        text not null,
    outcome     text not null,
    variant     smallint,
    -- Why an action failed, was dropped, skipped or is uncertain (activity.detail); else null.
    reason      text,
    -- A message decision on a quick-reply tap ("buttons tapped").
    quick_reply boolean not null,
    n           bigint not null,
    constraint activity_daily_key unique nulls not distinct
        (campaign_id, day, tenant_id, ig_user_id, event_kind, step, outcome, variant, reason, quick_reply)
);
create index activity_daily_comments on activity_daily (tenant_id, ig_user_id, day)
    where step = 'decision' and event_kind = 'comment';

alter table activity_daily enable row level security;
create policy activity_daily_read on activity_daily for select to authenticated
    using (tenant_id = any ((select igflow_member_tenants())::uuid[]));
revoke all on activity_daily from public, anon, authenticated;
grant select on activity_daily to authenticated;

-- The grouped upsert that adds `sign` times the rows of `source` (a relation or subquery of
-- activity's columns). One text, run by the triggers on their transition tables and once
-- below on activity itself.
create function igflow_activity_daily_sql(source text, sign int) returns text
language sql immutable set search_path = public as $$
    select format($q$
        insert into activity_daily as d (tenant_id, ig_user_id, campaign_id, day, event_kind, step,
                                         outcome, variant, reason, quick_reply, n)
        select tenant_id, ig_user_id, campaign_id, (created_at at time zone 'UTC')::date,
               event_kind, step, outcome, variant,
               case when step <> 'decision' and outcome in ('failed', 'dropped', 'skipped', 'uncertain')
                    then coalesce(detail, '') end,
               coalesce(step = 'decision' and event_kind = 'message' and detail like '%%quick reply%%', false),
               %s * count(*)
        from %s as x
        where tenant_id is not null
        group by 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
        on conflict on constraint activity_daily_key do update set n = d.n + excluded.n
    $q$, sign, source)
$$;

-- Runs as the tables' owner: the worker's statements fire it, and the worker has no grant on
-- activity_daily (nobody writes it but this trigger).
create function igflow_activity_daily_count() returns trigger
language plpgsql security definer set search_path = public as $$
begin
    if tg_op = 'INSERT' then
        execute igflow_activity_daily_sql('new_rows', 1);
    elsif tg_op = 'DELETE' then
        execute igflow_activity_daily_sql('old_rows', -1);
    else
        -- Only rows whose counted columns changed (not leases, attempts, response ids).
        execute igflow_activity_daily_sql(
            '(select o.* from old_rows o join new_rows n on n.id = o.id
              where (o.tenant_id, o.ig_user_id, o.campaign_id, o.created_at, o.event_kind, o.step, o.outcome, o.variant, o.detail)
                    is distinct from (n.tenant_id, n.ig_user_id, n.campaign_id, n.created_at, n.event_kind, n.step, n.outcome, n.variant, n.detail))',
            -1);
        execute igflow_activity_daily_sql(
            '(select n.* from new_rows n join old_rows o on o.id = n.id
              where (o.tenant_id, o.ig_user_id, o.campaign_id, o.created_at, o.event_kind, o.step, o.outcome, o.variant, o.detail)
                    is distinct from (n.tenant_id, n.ig_user_id, n.campaign_id, n.created_at, n.event_kind, n.step, n.outcome, n.variant, n.detail))',
            1);
    end if;
    return null;
end
$$;
revoke all on function igflow_activity_daily_sql(text, int), igflow_activity_daily_count()
    from public, anon, authenticated;

create trigger activity_daily_insert after insert on activity
    referencing new table as new_rows
    for each statement execute function igflow_activity_daily_count();
create trigger activity_daily_update after update on activity
    referencing old table as old_rows new table as new_rows
    for each statement execute function igflow_activity_daily_count();
create trigger activity_daily_delete after delete on activity
    referencing old table as old_rows
    for each statement execute function igflow_activity_daily_count();

-- The rows recorded before this migration (creating the triggers locked out writers until
-- this transaction commits, so none is counted twice or missed).
do $$ begin execute igflow_activity_daily_sql('activity', 1); end $$;

-- A campaign's activity over [p_from, p_to), counted: whole UTC days from activity_daily, the
-- partial days at either end (and every hour-bucketed period) from activity. Rows of the
-- campaign (`own`) and the account's other comment decisions (comments seen). Invoker's
-- rights: Row Level Security decides what the caller counts.
create function igflow_results_counts(p_campaign uuid, p_from timestamptz, p_to timestamptz, p_bucket text)
returns table (bucket_at timestamptz, own boolean, event_kind text, step text, outcome text,
               variant smallint, reason text, quick_reply boolean, n bigint)
language sql stable as $$
    with c as (
        select c.tenant_id, a.ig_user_id from campaigns c join ig_accounts a on a.id = c.account_id
        where c.id = p_campaign
    ), whole as (
        -- [d_from, d_to): the UTC days entirely inside the period; none for hourly buckets.
        select d_from, case when p_bucket = 'day' then greatest(d_from, d_to) else d_from end as d_to
        from (select (p_from at time zone 'UTC')::date
                     + ((p_from at time zone 'UTC')::time > time '00:00')::int as d_from,
                     (p_to at time zone 'UTC')::date as d_to) d
    ), edges as (
        -- The raw ranges: [p_from, start of d_from) and [end of the whole days, p_to).
        select p_from as lo, least(p_to, d_from::timestamp at time zone 'UTC') as hi from whole
        union all
        select greatest(p_from, d_to::timestamp at time zone 'UTC'), p_to from whole
    )
    select d.day::timestamp at time zone 'UTC', true, d.event_kind, d.step, d.outcome, d.variant,
           d.reason, d.quick_reply, d.n
    from activity_daily d, whole w
    where d.campaign_id = p_campaign and d.day >= w.d_from and d.day < w.d_to
    union all
    select d.day::timestamp at time zone 'UTC', false, d.event_kind, d.step, d.outcome, d.variant,
           d.reason, d.quick_reply, d.n
    from activity_daily d, whole w, c
    where d.tenant_id = c.tenant_id and d.ig_user_id = c.ig_user_id and d.step = 'decision'
      and d.event_kind = 'comment' and d.campaign_id is distinct from p_campaign
      and d.day >= w.d_from and d.day < w.d_to
    union all
    select date_trunc(p_bucket, x.created_at at time zone 'UTC') at time zone 'UTC', true,
           x.event_kind, x.step, x.outcome, x.variant,
           case when x.step <> 'decision' and x.outcome in ('failed', 'dropped', 'skipped', 'uncertain')
                then coalesce(x.detail, '') end,
           coalesce(x.step = 'decision' and x.event_kind = 'message' and x.detail like '%quick reply%', false),
           1
    from edges e
    join activity x on x.campaign_id = p_campaign and x.created_at >= e.lo and x.created_at < e.hi
    union all
    select date_trunc(p_bucket, x.created_at at time zone 'UTC') at time zone 'UTC', false,
           x.event_kind, x.step, x.outcome, x.variant, null, false, 1
    from edges e, c
    join activity x on x.tenant_id = c.tenant_id and x.ig_user_id = c.ig_user_id
    where x.step = 'decision' and x.event_kind = 'comment' and x.campaign_id is distinct from p_campaign
      and x.created_at >= e.lo and x.created_at < e.hi
$$;
revoke all on function igflow_results_counts(uuid, timestamptz, timestamptz, text) from public, anon;
grant execute on function igflow_results_counts(uuid, timestamptz, timestamptz, text) to authenticated;
