-- The dashboard writes these rows without the campaign file's checks: refuse what the worker
-- could not use. Media ids are Meta's ids (no blanks); an account's own budgets only known
-- keys, at least 1, and never above Meta's limits.
alter table campaigns add constraint campaigns_media_ids_check check (
    array_position(media_ids, '') is null
    and array_position(media_ids, null) is null
    and array_to_string(media_ids, '') !~ '\s'
);

-- Values are whole numbers (checked as text first, so a bad one is refused, not an error).
alter table ig_accounts add constraint ig_accounts_limits_check check (
    jsonb_typeof(limits) = 'object'
    and limits - array['private_replies_per_hour', 'send_api_per_second', 'automated_dms_per_hour'] = '{}'::jsonb
    and coalesce(limits ->> 'private_replies_per_hour', '1') ~ '^[0-9]{1,9}$'
    and coalesce(limits ->> 'send_api_per_second', '1') ~ '^[0-9]{1,9}$'
    and coalesce(limits ->> 'automated_dms_per_hour', '1') ~ '^[0-9]{1,9}$'
    and coalesce((limits ->> 'private_replies_per_hour')::int, 1) between 1 and 750
    and coalesce((limits ->> 'send_api_per_second')::int, 1) between 1 and 100
    and coalesce((limits ->> 'automated_dms_per_hour')::int, 1) >= 1
);
