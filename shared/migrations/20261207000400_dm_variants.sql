-- Private replies and DMs may have variants, as public replies do (one is chosen per event
-- and recorded in activity.variant): at most 20 (MAX_TEXT_VARIANTS), each a message of at
-- most 1,000 bytes (Meta's limit).
create function igflow_texts_within_bytes(texts text[], max_bytes integer) returns boolean
language sql immutable parallel safe as $$
    select coalesce(bool_and(coalesce(octet_length(t) <= max_bytes, false)), true)
    from unnest(texts) t
$$;

alter table actions drop constraint actions_dm_text_check;
alter table actions add constraint actions_dm_text_check
    check (kind = 'public_reply'
           or (cardinality(variants) between 1 and 20 and igflow_texts_within_bytes(variants, 1000)));
