-- The live feed without a NOTIFY in the writers' transactions. A transaction that notifies
-- takes one database-wide lock at commit and holds it through its WAL flush, so every
-- activity write (the worker's decisions, claims and outcomes) committed one after another:
-- under the worker benchmark most backends waited on it (`Lock: object`). The trigger now
-- appends the row's id to an unlogged queue, only while a dashboard API process relays it
-- (`activity_feed_relay.until`, renewed by the relay); the relay moves the queue to NOTIFY
-- in its own small transaction (dashboard/api/src/feed.rs). Unlogged: no WAL, nothing to
-- flush; after a crash both tables start empty, as a live feed may.
create unlogged table activity_feed (
    activity_id bigint not null,
    at          timestamptz not null default now()
);
create unlogged table activity_feed_relay (
    one   boolean primary key default true check (one),
    until timestamptz not null
);
-- The owner's alone: the trigger (security definer) writes the queue, the dashboard API's
-- own connection relays it; no policy, so the dashboard's roles see nothing.
alter table activity_feed enable row level security;
alter table activity_feed_relay enable row level security;
revoke all on activity_feed, activity_feed_relay from public, anon, authenticated;

create or replace function igflow_activity_row() returns trigger
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
    -- The live feed: rows of known tenants, on insert and when their outcome changes
    -- (pending -> sent), queued for the relay while one runs.
    if tg_op <> 'DELETE' and new.tenant_id is not null
       and (tg_op = 'INSERT' or old.outcome is distinct from new.outcome)
       and exists (select 1 from activity_feed_relay where until > now()) then
        insert into activity_feed (activity_id) values (new.id);
    end if;
    return null;
end
$$;
revoke all on function igflow_activity_row() from public, anon, authenticated;
