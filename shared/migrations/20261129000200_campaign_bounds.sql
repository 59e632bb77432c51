-- The dashboard writes campaigns without the campaign file's checks: hold every row to the
-- same bounds (shared/src/campaign_file.rs, MAX_*), so that no editor can store a rule set
-- whose automaton exhausts a worker's memory or an intent description that slows every
-- model call. Rules and intents per campaign are bounded through their positions, which are
-- unique per campaign.

-- Every text of the array present, not blank and at most max_chars characters (the campaign
-- file refuses blank ones too). Immutable, so CHECK constraints may call it; it reads
-- nothing, so anyone may.
create function igflow_texts_within(texts text[], max_chars integer) returns boolean
language sql immutable parallel safe as $$
    select coalesce(bool_and(coalesce(t ~ '\S' and char_length(t) <= max_chars, false)), true)
    from unnest(texts) t
$$;

alter table campaigns add constraint campaigns_cooldown_bound
    check (cooldown_seconds between 0 and 31536000);

-- MAX_RULES 20; MAX_KEYWORDS 50 keywords and 50 excluded words of MAX_KEYWORD_CHARS 100.
alter table rules
    add constraint rules_position_bound check (position between 0 and 19),
    add constraint rules_keywords_bound check (
        cardinality(keywords) <= 50 and igflow_texts_within(keywords, 100)
        and cardinality(exclude) <= 50 and igflow_texts_within(exclude, 100));

-- MAX_INTENTS 20; descriptions of at most 500 characters, not blank; MAX_INTENT_EXAMPLES 10
-- (checked since the intents' migration) of at most 300, not blank.
alter table intents
    add constraint intents_position_bound check (position between 0 and 19),
    add constraint intents_description_bound
        check (description ~ '\S' and char_length(description) <= 500),
    add constraint intents_examples_bound check (igflow_texts_within(examples, 300));

-- A DM or private reply is one text of at most 1,000 bytes (since the message campaigns'
-- migration); public replies at most MAX_PUBLIC_REPLIES 20 variants of Instagram's 2,200
-- characters; quick replies (at most 13 since their migration) at most 20 characters, not
-- blank.
alter table actions
    add constraint actions_variants_bound
        check (cardinality(variants) <= 20 and igflow_texts_within(variants, 2200)),
    add constraint actions_quick_reply_titles_bound check (igflow_texts_within(quick_replies, 20));
