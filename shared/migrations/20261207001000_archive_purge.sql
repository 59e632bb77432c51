-- A data deletion also removes the account's deliveries from the raw archive (S3), which
-- lives apart from Postgres: a worker job does it after the rows are gone, and these columns
-- say how far it got. held_until lets any number of workers run the job, each request once.
alter table data_deletion_requests
    add column archive_purged_at   timestamptz,
    add column archive_objects     integer check (archive_objects >= 0),
    add column archive_purge_error text,
    add column archive_held_until  timestamptz not null default '-infinity';

-- The job's queue: requests carried out whose archive is not purged yet.
create index data_deletion_requests_archive_due on data_deletion_requests (archive_held_until)
    where archive_purged_at is null and completed_at is not null
      and outcome in ('deleted', 'nothing_to_delete');
