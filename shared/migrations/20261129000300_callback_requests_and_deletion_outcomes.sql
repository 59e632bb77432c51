-- Meta's signed_request does not say which callback it is for: the deauthorize and the data
-- deletion payloads look alike. Every request a callback brought is kept by its SHA-256 with
-- the callback it came to first, and the other callback refuses it, so a captured deauthorize
-- request cannot trigger an irreversible deletion (nor a deletion request a deauthorization).
create table app_callback_requests (
    request_sha256  text primary key check (request_sha256 ~ '^[0-9a-f]{64}$'),
    callback        text not null check (callback in ('app_deauthorized', 'data_deletion')),
    ig_user_id      text not null,
    first_seen_at   timestamptz not null default now()
);

-- Operator-only, like data_deletion_requests.
alter table app_callback_requests enable row level security;
revoke all on app_callback_requests from anon, authenticated;

-- What a deletion request came to, so the status page does not call "nothing was held" or a
-- refused replay "completed". completed_at is when the worker settled the request.
alter table data_deletion_requests
    add column outcome text check (outcome in ('deleted', 'nothing_to_delete', 'refused'));
update data_deletion_requests
   set outcome = case when detail like 'igflow held no account%' then 'nothing_to_delete'
                      else 'deleted' end
 where completed_at is not null;
alter table data_deletion_requests
    add constraint data_deletion_requests_settled_with_outcome
    check ((outcome is null) = (completed_at is null));
