-- The campaign's failed, dropped, skipped and uncertain actions by reason: $1 campaign,
-- $2 from, $3 to, $4 bucket.
select step, outcome, reason, sum(n)::int8 as count
from igflow_results_counts($1, $2::timestamptz, $3::timestamptz, $4)
where own and reason is not null
group by 1, 2, 3 order by 4 desc limit 20
