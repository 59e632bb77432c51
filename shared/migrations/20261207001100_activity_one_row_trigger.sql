-- One trigger function per activity row instead of three plpgsql calls. The summary delta
-- trigger called a second SECURITY DEFINER function (each call sets and restores search_path),
-- and the live-feed trigger was a plpgsql call of its own: a profile of the worker benchmark
-- put these after-row triggers at a quarter of Postgres's CPU. The same deltas and the same
-- notifications, in one call and one statement.
drop trigger activity_daily_insert on activity;
drop trigger activity_daily_update on activity;
drop trigger activity_daily_delete on activity;
drop trigger activity_notify on activity;
drop function igflow_activity_daily_row();
drop function igflow_activity_daily_add(activity, int);
drop function igflow_activity_notify();

create function igflow_activity_row() returns trigger
language plpgsql security definer set search_path = public as $$
begin
    -- The day's summary: the old row counted out, the new one in (the tenant may be gone,
    -- being deleted with its activity).
    insert into activity_daily (tenant_id, ig_user_id, campaign_id, day, event_kind, step,
                                outcome, variant, reason, quick_reply, n)
    select (c.r).tenant_id, (c.r).ig_user_id, (c.r).campaign_id,
           ((c.r).created_at at time zone 'UTC')::date, (c.r).event_kind, (c.r).step,
           (c.r).outcome, (c.r).variant,
           case when (c.r).step <> 'decision'
                     and (c.r).outcome in ('failed', 'dropped', 'skipped', 'uncertain')
                then coalesce((c.r).detail, '') end,
           coalesce((c.r).step = 'decision' and (c.r).event_kind = 'message'
                    and (c.r).detail like '%quick reply%', false),
           c.sign
    from (select old as r, -1 as sign where tg_op <> 'INSERT'
          union all
          select new, 1 where tg_op <> 'DELETE') c
    where exists (select 1 from tenants t where t.id = (c.r).tenant_id);
    -- The live feed: the API LISTENs and reads each row back as its subscriber's user, so Row
    -- Level Security decides who sees it. Rows of known tenants, on insert and when their
    -- outcome changes (pending -> sent).
    if tg_op <> 'DELETE' and new.tenant_id is not null
       and (tg_op = 'INSERT' or old.outcome is distinct from new.outcome) then
        perform pg_notify('igflow_activity', new.id::text);
    end if;
    return null;
end
$$;
revoke all on function igflow_activity_row() from public, anon, authenticated;

create trigger activity_row_insert after insert on activity
    for each row execute function igflow_activity_row();
create trigger activity_row_delete after delete on activity
    for each row execute function igflow_activity_row();
-- Only rows whose counted columns changed (not leases, attempts, response ids); the outcome
-- is one of them, so every live-feed change passes.
create trigger activity_row_update after update on activity
    for each row when (
        (old.tenant_id, old.ig_user_id, old.campaign_id, old.created_at, old.event_kind, old.step,
         old.outcome, old.variant, old.detail)
        is distinct from
        (new.tenant_id, new.ig_user_id, new.campaign_id, new.created_at, new.event_kind, new.step,
         new.outcome, new.variant, new.detail)
    )
    execute function igflow_activity_row();
