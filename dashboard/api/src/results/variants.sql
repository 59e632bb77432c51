-- The public-reply variants sent, with their text: $1 campaign, $2 from, $3 to, $4 bucket.
select v.variant::int4 as variant,
       (select x.variants[v.variant + 1] from actions x
        where x.campaign_id = $1 and x.kind = 'public_reply') as text,
       v.count
from (select variant, sum(n)::int8 as count from igflow_results_counts($1, $2::timestamptz, $3::timestamptz, $4)
      where own and step = 'public_reply' and outcome = 'sent' and variant is not null
      group by variant) v
order by v.variant
