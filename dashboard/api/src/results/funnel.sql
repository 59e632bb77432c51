-- The campaign's funnel: $1 campaign, $2 from, $3 to, $4 bucket ('hour' or 'day').
-- Seen counts every decision of the campaign's account of its kind (comments for a comment
-- campaign, DMs, taps and referrals for the others); matched, whatever
-- the trigger, the events the campaign answered but its own buttons' taps; buttons tapped
-- counts quick-reply taps and the campaign's postbacks (its template buttons and steps).
select coalesce(sum(n) filter (where step = 'decision' and case when t.trigger = 'comment' then event_kind = 'comment'
                                                              else event_kind in ('message', 'postback', 'referral') end), 0)::int8 as seen,
       coalesce(sum(n) filter (where own and step = 'decision' and event_kind <> 'postback'), 0)::int8 as matched,
       coalesce(sum(n) filter (where own and step = 'private_reply' and outcome in ('sent', 'already_done')), 0)::int8 as private_replies_sent,
       coalesce(sum(n) filter (where own and step = 'public_reply' and outcome = 'sent'), 0)::int8 as public_replies_sent,
       coalesce(sum(n) filter (where own and step = 'dm' and outcome = 'sent'), 0)::int8 as dms_sent,
       coalesce(sum(n) filter (where own and (quick_reply or (step = 'decision' and event_kind = 'postback'))), 0)::int8 as buttons_tapped
from igflow_results_counts($1, $2::timestamptz, $3::timestamptz, $4),
     (select trigger from campaigns where id = $1) t
