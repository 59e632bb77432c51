-- Event ids are scoped by account (20261129000101), so a queue failure names its account
-- too: the policy matched failures to activity by event id alone, and a tenant whose account
-- saw the same message id (an echo in one account is a message in the other) could read the
-- other tenant's failure. Null when the message could not be read (no envelope).
alter table message_errors add column ig_user_id text;

-- Failures recorded before: the event's account where exactly one account has that event;
-- the others stay null and visible to operators only.
update message_errors m set ig_user_id = e.ig_user_id
from (
    select event_id, min(ig_user_id) as ig_user_id
    from activity
    group by event_id
    having count(distinct ig_user_id) = 1
) e
where e.event_id = m.event_id;

create index message_errors_by_account on message_errors (ig_user_id);

-- A restrictive policy, so that it holds together with message_errors_read (which
-- 20261129000202, applied after this file on a fresh database, rewrites): a failure shows only
-- to those who see its own account's activity for the event, and activity's policy scopes
-- that to the user's tenants.
create policy message_errors_own_account on message_errors as restrictive
    for select to authenticated
    using (exists (
        select 1 from activity a
        where a.ig_user_id = message_errors.ig_user_id
          and a.event_id = message_errors.event_id));
