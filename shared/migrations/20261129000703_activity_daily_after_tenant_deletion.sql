-- Deleting a tenant cascades to its activity, whose delete trigger then subtracted the rows
-- from activity_daily under a tenant that no longer exists: a foreign-key violation that
-- made tenants impossible to delete. A deleted tenant's summary rows go with it (their own
-- cascade), so the triggers count only rows whose tenant still exists (a primary-key probe
-- per group; rows without a tenant were never counted).
create or replace function igflow_activity_daily_sql(source text, sign int) returns text
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
        where exists (select 1 from tenants t where t.id = x.tenant_id)
        group by 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
        on conflict on constraint activity_daily_key do update set n = d.n + excluded.n
    $q$, sign, source)
$$;
revoke all on function igflow_activity_daily_sql(text, int) from public, anon, authenticated;
