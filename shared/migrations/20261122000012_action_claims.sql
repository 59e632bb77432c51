-- An action is `claimed` while its checks run and `pending` only from just before its Graph
-- API call. A `claimed` row left by a failed or killed attempt is taken again as fresh (no
-- call was made); only a `pending` one may have reached Meta. The token says which attempt
-- holds the claim, so of two live copies of one event only the latest claimer sends.
alter table activity add column claim_token uuid;
