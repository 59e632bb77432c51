-- Quick-reply buttons under a private reply or DM: their titles, which are also the payload
-- Meta sends back when one is tapped. Instagram shows at most 13.
alter table actions
    add column quick_replies text[] not null default '{}',
    add constraint actions_quick_replies_check
        check (cardinality(quick_replies) <= 13 and (kind <> 'public_reply' or cardinality(quick_replies) = 0));
