-- The durable side of a cooldown asks, before every automated DM, whether the campaign sent
-- the contact one lately. Without this index that is a scan of all activity (65 ms at a
-- million rows on a 2-core machine, growing with the table); with it, 0.2 ms.
create index activity_dms_by_contact on activity (campaign_id, contact_igsid, updated_at)
    where step in ('private_reply', 'dm');
