-- Workers also cache each active account's row (status, limits, token reference, login):
-- any change to it notifies them on the same channel, payload the account id.

create or replace function igflow_notify_campaign_change() returns trigger
language plpgsql as $$
declare
    account uuid;
begin
    if tg_table_name = 'ig_accounts' then
        account := coalesce(new.id, old.id);
    elsif tg_table_name = 'campaigns' then
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

create trigger ig_accounts_notify after insert or update or delete on ig_accounts
    for each row execute function igflow_notify_campaign_change();
