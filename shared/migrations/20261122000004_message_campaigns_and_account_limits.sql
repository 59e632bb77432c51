-- Campaigns may answer direct messages (trigger 'message', action 'dm'), and an account may
-- carry its own rate budgets instead of the worker's defaults.

alter table campaigns drop constraint campaigns_trigger_check;
alter table campaigns add constraint campaigns_trigger_check check (trigger in ('comment', 'message'));

alter table actions drop constraint actions_kind_check;
alter table actions add constraint actions_kind_check check (kind in ('private_reply', 'public_reply', 'dm'));
alter table actions drop constraint actions_check;
-- A DM, private reply or not, is one text of at most 1,000 bytes (Meta's limit).
alter table actions add constraint actions_dm_text_check
    check (kind = 'public_reply' or (cardinality(variants) = 1 and octet_length(variants[1]) <= 1000));

-- {"private_replies_per_hour": 750, "send_api_per_second": 100, "automated_dms_per_hour": 200};
-- absent keys take the worker's defaults.
alter table ig_accounts add column limits jsonb not null default '{}';
