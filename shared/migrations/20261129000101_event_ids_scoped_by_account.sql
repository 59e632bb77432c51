-- Event ids are Meta's ids (a comment id, a message's mid), and two igflow accounts can see
-- the same one: a DM between two of them is an echo in one and a message in the other. So
-- the outbound idempotency key and the parked events are scoped by account.
alter table activity drop constraint activity_event_id_step_key;
alter table activity add constraint activity_account_event_step_key
    unique (ig_user_id, event_id, step);
-- Queue errors name only their event (the dashboard's policy and the data deletion look
-- activity up by it): the old key's index served that lookup.
create index activity_by_event on activity (event_id);

alter table parked_events drop constraint parked_events_pkey;
alter table parked_events add primary key (account_id, event_id);
