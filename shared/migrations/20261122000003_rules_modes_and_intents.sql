-- Keyword rules gain the phrase and prefix modes and their normalization flags; campaigns
-- gain intents, which the model is asked about when no rule matches a comment.

alter table rules drop constraint rules_match_mode_check;
alter table rules add constraint rules_match_mode_check
    check (match_mode in ('whole_word', 'phrase', 'prefix', 'contains', 'exact'));
-- The defaults are the campaign file's: rules written before read as a file omitting them.
alter table rules
    -- Latin, Greek and Cyrillic letters match without their accents.
    add column fold_accents  boolean not null default true,
    -- A letter written three times or more matches it written once or twice.
    add column stretch       boolean not null default false;

create table intents (
    id           uuid primary key default gen_random_uuid(),
    campaign_id  uuid not null references campaigns (id) on delete cascade,
    position     integer not null,
    -- What the model answers; 'none' is its answer when no intent fits.
    name         text not null check (name ~ '^[a-z0-9_]{1,40}$' and name <> 'none'),
    description  text not null,
    examples     text[] not null default '{}' check (cardinality(examples) <= 10),
    unique (campaign_id, name)
);
