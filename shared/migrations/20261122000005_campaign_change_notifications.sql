-- Workers cache each account's compiled campaigns; any change to a campaign, its rules,
-- actions or intents notifies them (channel igflow_campaigns, payload: the account id) so the
-- next event uses the new version. Postgres folds repeated notifications of one transaction.

create or replace function igflow_notify_campaign_change() returns trigger
language plpgsql as $$
declare
    account uuid;
begin
    if tg_table_name = 'campaigns' then
        account := coalesce(new.account_id, old.account_id);
    else
        select c.account_id into account from campaigns c
        where c.id = coalesce(new.campaign_id, old.campaign_id);
    end if;
    if account is not null then
        perform pg_notify('igflow_campaigns', account::text);
    end if;
    return null;
end
$$;

create trigger campaigns_notify after insert or update or delete on campaigns
    for each row execute function igflow_notify_campaign_change();
create trigger rules_notify after insert or update or delete on rules
    for each row execute function igflow_notify_campaign_change();
create trigger actions_notify after insert or update or delete on actions
    for each row execute function igflow_notify_campaign_change();
create trigger intents_notify after insert or update or delete on intents
    for each row execute function igflow_notify_campaign_change();
