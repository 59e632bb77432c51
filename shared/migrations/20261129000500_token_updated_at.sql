-- When the account's access token was last written (by `igflow-worker apply`). Instagram
-- Login long-lived tokens expire 60 days after they were issued, so the worker reports the
-- active Instagram Login accounts whose token is older than 53 days (TokensExpiringSoon).
alter table ig_accounts add column token_updated_at timestamptz not null default now();
