-- The summary triggers ran dynamic SQL (planned on every call) over transition tables once
-- per statement, also for updates that changed nothing counted (lease renewals). The worker
-- writes activity one row per statement, so that planning was most of each write's cost:
-- 1,800 single-row inserts/s with it, 6,300 without, on the 2-core machine. Row triggers
-- with static SQL (plans kept per session) insert the same deltas, and an update that
-- changes nothing counted does not call them at all.
drop trigger activity_daily_insert on activity;
drop trigger activity_daily_update on activity;
drop trigger activity_daily_delete on activity;
drop function igflow_activity_daily_count();
drop function igflow_activity_daily_sql(text, int);

-- One activity row counted `sign` times in its day's summary (the tenant may be gone, being
-- deleted with its activity).
create function igflow_activity_daily_add(r activity, sign int) returns void
language plpgsql security definer set search_path = public as $$
begin
    insert into activity_daily (tenant_id, ig_user_id, campaign_id, day, event_kind, step,
                                outcome, variant, reason, quick_reply, n)
    select r.tenant_id, r.ig_user_id, r.campaign_id, (r.created_at at time zone 'UTC')::date,
           r.event_kind, r.step, r.outcome, r.variant,
           case when r.step <> 'decision' and r.outcome in ('failed', 'dropped', 'skipped', 'uncertain')
                then coalesce(r.detail, '') end,
           coalesce(r.step = 'decision' and r.event_kind = 'message' and r.detail like '%quick reply%', false),
           sign
    where exists (select 1 from tenants t where t.id = r.tenant_id);
end
$$;

create function igflow_activity_daily_row() returns trigger
language plpgsql security definer set search_path = public as $$
begin
    if tg_op <> 'INSERT' then
        perform igflow_activity_daily_add(old, -1);
    end if;
    if tg_op <> 'DELETE' then
        perform igflow_activity_daily_add(new, 1);
    end if;
    return null;
end
$$;
revoke all on function igflow_activity_daily_add(activity, int), igflow_activity_daily_row()
    from public, anon, authenticated;

create trigger activity_daily_insert after insert on activity
    for each row execute function igflow_activity_daily_row();
create trigger activity_daily_delete after delete on activity
    for each row execute function igflow_activity_daily_row();
-- Only rows whose counted columns changed (not leases, attempts, response ids).
create trigger activity_daily_update after update on activity
    for each row when (
        (old.tenant_id, old.ig_user_id, old.campaign_id, old.created_at, old.event_kind, old.step,
         old.outcome, old.variant, old.detail)
        is distinct from
        (new.tenant_id, new.ig_user_id, new.campaign_id, new.created_at, new.event_kind, new.step,
         new.outcome, new.variant, new.detail)
    )
    execute function igflow_activity_daily_row();
