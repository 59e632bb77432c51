-- Workers cache an account's row and its token until Postgres notifies a change. The
-- lifecycle jobs' bookkeeping (audit results, refresh errors, a learned expiry) is written
-- to the same rows all day: with 1,000 accounts it dropped every worker's cache entries
-- over and over (the worker benchmark saw the account and its four campaign queries on
-- most events). Only a change to what workers use notifies now: the cached columns, a new
-- token (`token_updated_at`) or an update that says so (`updated_at`).
drop trigger ig_accounts_notify on ig_accounts;

create trigger ig_accounts_notify after insert or delete on ig_accounts
    for each row execute function igflow_notify_campaign_change();

create trigger ig_accounts_notify_update after update on ig_accounts
    for each row when (
        (old.tenant_id, old.ig_user_id, old.login_flavor, old.page_id, old.token_secret_ref,
         old.status, old.limits, old.token_updated_at, old.updated_at)
        is distinct from
        (new.tenant_id, new.ig_user_id, new.login_flavor, new.page_id, new.token_secret_ref,
         new.status, new.limits, new.token_updated_at, new.updated_at)
    )
    execute function igflow_notify_campaign_change();
