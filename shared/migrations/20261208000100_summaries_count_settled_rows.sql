-- The per-day summaries count an action once it has settled, not while it is in flight.
-- Every action went claimed -> pending -> its outcome, and each step wrote one delta out and
-- one in: five summary rows per action, of which nothing reads the in-flight ones (the
-- results count sent, failed, skipped and the like; `igflow_results_counts`). A profile of
-- the worker benchmark put this trigger at a third of Postgres's CPU, most of it starting
-- and running the union-and-exists insert (a hash join per row). Now: no delta for `claimed`
-- or `pending` (no statement at all when neither side counts), the two sides read from a
-- VALUES list, and the tenant looked up only where it may be being deleted. The live feed is
-- as before.
create or replace function igflow_activity_row() returns trigger
language plpgsql security definer set search_path = public as $$
declare
    in_flight constant text[] := array['claimed', 'pending'];
begin
    -- The day's summary: the old row counted out, the new one in, each only once settled
    -- (old is null on insert, new on delete). The tenant may be gone, being deleted with its
    -- activity; an inserted row's tenant exists (or its own foreign key fails the insert).
    if (tg_op <> 'INSERT' and old.outcome <> all (in_flight))
       or (tg_op <> 'DELETE' and new.outcome <> all (in_flight)) then
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
        from (values (old, -1), (new, 1)) c (r, sign)
        where (c.r).tenant_id is not null and (c.r).outcome <> all (in_flight)
          and (tg_op = 'INSERT' or exists (select 1 from tenants t where t.id = (c.r).tenant_id));
    end if;
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
