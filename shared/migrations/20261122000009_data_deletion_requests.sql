-- Meta's data deletion request callback: one row per request, keyed by the confirmation code
-- Meta shows the user, so the status page can say whether (and when) it was carried out.
-- Kept after the account's data is gone: it holds only the Instagram id and the outcome.

create table data_deletion_requests (
    -- 20 hex digits of sha256(user_id ":" issued_at): the same for Meta's retries.
    confirmation_code  text primary key check (confirmation_code ~ '^[A-Za-z0-9]+$'),
    ig_user_id         text not null,
    -- When Meta issued the signed request.
    requested_at       timestamptz not null,
    -- Null until the worker has deleted the account's rows; kept on redeliveries.
    completed_at       timestamptz,
    -- What was deleted, and what is left to the operator (the token secret).
    detail             text
);
create index data_deletion_requests_by_user on data_deletion_requests (ig_user_id);

-- Operator-only: the account (and with it the tenant link) is gone once the request is
-- done, so no membership could scope a row. RLS on without a policy for authenticated or
-- anon; the status page reads it with the operator's (service) role.
alter table data_deletion_requests enable row level security;
revoke all on data_deletion_requests from anon, authenticated;
