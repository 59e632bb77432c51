-- What the dashboard shows and needs: accounts connected through OAuth (token expiry, webhook
-- fields subscribed), members' e-mail addresses, the public-reply variant the worker chose,
-- and a notification per activity row for the live feed.

alter table ig_accounts
    add column token_expires_at timestamptz,
    add column webhook_fields text[] not null default '{}',
    add column connected_at timestamptz;

-- For display: Supabase's auth.users holds the address, which the dashboard cannot read.
alter table memberships add column email text;

-- Which of the campaign's public-reply variants went out (0-based), for its share.
alter table activity add column variant smallint;

-- The live feed: the API LISTENs and reads each row back as its subscriber's user, so Row
-- Level Security decides who sees it. Only rows of known tenants, on insert and when their
-- outcome changes (pending -> sent).
create function igflow_activity_notify() returns trigger
language plpgsql as $$
begin
    if tg_op = 'UPDATE' and old.outcome is not distinct from new.outcome then
        return null;
    end if;
    perform pg_notify('igflow_activity', new.id::text);
    return null;
end
$$;
revoke all on function igflow_activity_notify() from public, anon, authenticated;
create trigger activity_notify after insert or update of outcome on activity
    for each row when (new.tenant_id is not null) execute function igflow_activity_notify();

-- Results per campaign over a period.
create index activity_by_campaign_time on activity (campaign_id, created_at);
