-- The worker's role, `igflow_worker`: what `igflow-worker run` (and `dlq`, `replay`, `prune`)
-- may do, and nothing else. No DDL: it owns nothing and may not create in any schema; schema
-- changes and `apply` (which stores accounts and campaigns) use the owner's connection,
-- IGFLOW_ADMIN_DATABASE_URL.
--
-- Not a versioned migration: `igflow-worker migrate` runs this after the migrations, every
-- time, so the grants always match the schema as migrated (tables added by later migrations
-- included) and a grant removed here is removed from the database. Idempotent, one
-- transaction.
--
-- Deploying: the role cannot log in; give the worker a login role that is a member of it,
--   create role igflow_worker_app login password '...' in role igflow_worker;
-- and put that role's URL in the worker's DATABASE_URL.

-- Roles are cluster-wide and tests migrate many databases at once: a concurrent creator
-- shows up as duplicate_object, or as unique_violation while its transaction is open.
do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'igflow_worker') then
        begin
            create role igflow_worker nologin;
        exception when duplicate_object or unique_violation then
            null;
        end;
    end if;
end
$$;

-- Postgres 15 and Supabase already refuse CREATE in public to PUBLIC; older servers do not.
revoke create on schema public from public;
grant usage on schema public to igflow_worker;

-- Start from nothing, then exactly what the worker's queries need.
revoke all on all tables in schema public from igflow_worker;
revoke all on all sequences in schema public from igflow_worker;
revoke all on all functions in schema public from igflow_worker;

-- Accounts and campaigns: read to act; an account's status set on token errors and Meta's
-- deauthorization; the account and its campaigns deleted on Meta's data deletion request.
-- Never its token reference, user or page.
grant select, delete on ig_accounts, campaigns to igflow_worker;
grant update (status, status_reason, updated_at) on ig_accounts to igflow_worker;
-- The lifecycle jobs: a refreshed token's expiry, a failed refresh or subscription, the
-- fields subscribed again.
grant update (token_expires_at, token_updated_at, token_refresh_error, token_refresh_failed_at,
              subscription_error, subscription_checked_at, webhook_fields) on ig_accounts
    to igflow_worker;
grant select on rules, actions, intents to igflow_worker;
-- The post a "next post" campaign found (bound once, when its first comment arrives).
grant update (next_post_media) on campaigns to igflow_worker;
-- What the worker records and prunes.
grant select, insert, update, delete on activity, contacts, parked_events, message_errors
    to igflow_worker;
-- Summing the dashboard's per-day activity deltas (the function writes them as their owner).
grant execute on function igflow_compact_activity_daily() to igflow_worker;
-- Where people are in campaigns' flows, and what goes to tenants' own webhooks.
grant select, insert, update, delete on flow_runs, outbound_deliveries to igflow_worker;
-- A tenant's webhook (its secret's name, never the secret), to queue deliveries to it.
grant select (id, webhook_url, webhook_secret_ref) on tenants to igflow_worker;
-- Leases of the lifecycle jobs.
grant select, insert, update, delete on job_leases to igflow_worker;
-- Meta's app callbacks.
grant select, insert, update on data_deletion_requests, app_callback_requests to igflow_worker;
-- Not tenants beyond their webhook, not memberships (who the dashboard users are), not the
-- migration bookkeeping.

-- Row Level Security is for dashboard users. The worker serves every tenant (an event names
-- only an Instagram account, and the worker scopes every query by it), so on the tables it
-- may use at all, it sees every row; the grants above bound what it may do with them. A
-- policy rather than BYPASSRLS, which only a superuser may grant (not Supabase's postgres).
do $$
declare
    t text;
begin
    foreach t in array array['ig_accounts', 'campaigns', 'rules', 'actions', 'intents',
                             'activity', 'contacts', 'parked_events', 'message_errors',
                             'data_deletion_requests', 'app_callback_requests', 'job_leases',
                             'flow_runs', 'outbound_deliveries', 'tenants'] loop
        execute format('drop policy if exists igflow_worker_all on %I', t);
        execute format(
            'create policy igflow_worker_all on %I for all to igflow_worker using (true) with check (true)',
            t);
    end loop;
end
$$;
