-- A comment campaign's public reply ("check your DMs") is posted only once its private reply
-- went out, unless the campaign says 'always'. Existing campaigns take the new default: a
-- public reply promising a DM that a cooldown or a closed window held back misleads.
alter table campaigns
    add column public_reply_when text not null default 'private_reply_sent'
        check (public_reply_when in ('private_reply_sent', 'always'));
