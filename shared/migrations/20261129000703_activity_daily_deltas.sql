-- activity_daily's triggers upserted one summary row per key: every worker transaction that
-- recorded activity locked the same few rows (a campaign's "pending" and "sent" counts of
-- the day) until it committed. Workers queued behind each other, and two transactions that
-- met those rows in opposite orders deadlocked (seen under a 3-worker burst: events retried,
-- then sent in bunches). The triggers now only insert deltas, which lock nothing anyone
-- else waits for; igflow_compact_activity_daily() sums each tenant-day's deltas back into one
-- row per key, run every minute by the workers. Readers sum n, so an uncompacted day reads
-- the same, only from more rows.
--
-- Also: deleting a tenant cascades to its activity, whose delete trigger subtracted the rows
-- under a tenant that no longer exists (a foreign-key violation that made tenants impossible
-- to delete). A deleted tenant's summary rows go with it, so only rows of existing tenants
-- are counted.

alter table activity_daily drop constraint activity_daily_key;
-- False: a delta a trigger inserted, not yet summed into its tenant-day's rows.
alter table activity_daily add column compacted boolean not null default true;
alter table activity_daily alter column compacted set default false;
create index activity_daily_campaign_day on activity_daily (campaign_id, day);
create index activity_daily_deltas on activity_daily (tenant_id, day) where not compacted;

create or replace function igflow_activity_daily_sql(source text, sign int) returns text
language sql immutable set search_path = public as $$
    select format($q$
        insert into activity_daily (tenant_id, ig_user_id, campaign_id, day, event_kind, step,
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
    $q$, sign, source)
$$;
revoke all on function igflow_activity_daily_sql(text, int) from public, anon, authenticated;

-- Sums the deltas of every tenant-day that has any into one row per key (dropping keys that
-- sum to zero); how many rows it replaced. Deltas inserted meanwhile are not in its snapshot
-- and wait for the next run. One run at a time (a transaction-scoped advisory lock): a second
-- caller returns 0 at once. Owner's rights: the worker runs it and has no grant on the table.
create function igflow_compact_activity_daily() returns bigint
language plpgsql security definer set search_path = public as $$
declare
    replaced bigint;
begin
    if not pg_try_advisory_xact_lock(hashtext('igflow_compact_activity_daily')) then
        return 0;
    end if;
    with due as (
        select distinct tenant_id, day from activity_daily where not compacted
    ), gone as (
        delete from activity_daily d using due
        where d.tenant_id = due.tenant_id and d.day = due.day
        returning d.*
    ), summed as (
        insert into activity_daily (tenant_id, ig_user_id, campaign_id, day, event_kind, step,
                                    outcome, variant, reason, quick_reply, n, compacted)
        select tenant_id, ig_user_id, campaign_id, day, event_kind, step, outcome, variant,
               reason, quick_reply, sum(n), true
        from gone
        group by 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
        having sum(n) <> 0
    )
    select count(*) into replaced from gone;
    return replaced;
end
$$;
revoke all on function igflow_compact_activity_daily() from public, anon, authenticated;
