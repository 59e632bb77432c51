-- The variants of each text sent (private reply, public reply, DM), with their text: $1
-- campaign, $2 from, $3 to, $4 bucket.
select v.step, v.variant::int4 as variant,
       (select x.variants[v.variant + 1] from actions x
        where x.campaign_id = $1 and x.kind = v.step) as text,
       v.count
from (select step, variant, sum(n)::int8 as count
      from igflow_results_counts($1, $2::timestamptz, $3::timestamptz, $4)
      where own and step in ('private_reply', 'public_reply', 'dm') and outcome = 'sent'
        and variant is not null
      group by step, variant) v
order by v.step, v.variant
