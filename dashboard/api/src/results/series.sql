-- The chart: matched and sent per bucket: $1 campaign, $2 from, $3 to, $4 bucket. A tap on
-- the campaign's buttons is not a new match.
select to_char(bucket_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') as at,
       coalesce(sum(n) filter (where step = 'decision' and event_kind <> 'postback'), 0)::int8 as matched,
       coalesce(sum(n) filter (where step <> 'decision' and outcome in ('sent', 'already_done')), 0)::int8 as sent
from igflow_results_counts($1, $2::timestamptz, $3::timestamptz, $4)
where own
group by 1 order by 1
