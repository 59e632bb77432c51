-- The dashboard's results read a campaign's activity over a period: with every column they
-- filter (RLS's tenant_id included) or count in the index, those reads are index-only scans
-- instead of a heap fetch per row (scripts/bench-results.sh, figures in README). Comments
-- seen are counted per account.
drop index if exists activity_by_campaign_time;
create index if not exists activity_campaign_results on activity (campaign_id, created_at)
    include (tenant_id, step, outcome, event_kind, variant);
create index if not exists activity_comment_decisions on activity (tenant_id, ig_user_id, created_at)
    where step = 'decision' and event_kind = 'comment';
