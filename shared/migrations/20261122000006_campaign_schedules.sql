-- A campaign may run for a limited time: it fires for comments and messages written from
-- starts_at until before ends_at; null leaves that side open.
alter table campaigns
    add column starts_at timestamptz,
    add column ends_at timestamptz,
    add constraint campaigns_schedule_check check (starts_at is null or ends_at is null or ends_at > starts_at);
