-- A capture step asks for an email or phone number; the answer, checked, is kept on the
-- contact (members read it with the contact, under the same RLS). The flow run remembers
-- that it waits for an answer, the bad answers given (by event id, so a redelivered message
-- counts once) and the event that ended the wait (a good answer, or the last bad one).
alter table contacts
    add column email text,
    add column phone text,
    add column captured_at timestamptz;

alter table flow_runs
    add column awaiting text check (awaiting in ('email', 'phone')),
    add column bad_answers text[] not null default '{}',
    add column answered_by text;

create index flow_runs_awaiting on flow_runs (account_id, contact_igsid, updated_at desc)
    where awaiting is not null;
