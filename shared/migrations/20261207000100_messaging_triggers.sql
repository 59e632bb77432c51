-- Campaigns answer story mentions, story replies, button taps (postbacks) and ig.me links or
-- click-to-message ads (referrals). A story reply campaign may be scoped to stories (in
-- `media_ids`, stories being media) and may have no keyword rules (it answers any reply).
-- The bounds repeat the validator's (campaign_file.rs): MAX_LISTENED 20 values each,
-- payloads of at most 1,000 characters, refs of at most 2,083 of Meta's ref characters, ad
-- ids of digits.

alter table campaigns drop constraint campaigns_trigger_check;
alter table campaigns add constraint campaigns_trigger_check check (trigger in
    ('comment', 'message', 'story_mention', 'story_reply', 'postback', 'referral'));

alter table campaigns
    add column payloads text[] not null default '{}',
    add column refs text[] not null default '{}',
    add column ad_ids text[] not null default '{}';

alter table campaigns
    add constraint campaigns_payloads_bound
        check (cardinality(payloads) <= 20 and igflow_texts_within(payloads, 1000)
               and (cardinality(payloads) = 0 or trigger = 'postback')),
    add constraint campaigns_refs_bound
        check (cardinality(refs) <= 20 and igflow_texts_within(refs, 2083)
               and array_to_string(refs, '') ~ '^[A-Za-z0-9+/=.:_-]*$'
               and (cardinality(refs) = 0 or trigger = 'referral')),
    add constraint campaigns_ad_ids_bound
        check (cardinality(ad_ids) <= 20 and array_to_string(ad_ids, '') ~ '^[0-9]*$'
               and array_position(ad_ids, '') is null
               and (cardinality(ad_ids) = 0 or trigger = 'referral'));
