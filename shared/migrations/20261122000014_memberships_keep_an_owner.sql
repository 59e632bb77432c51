-- A tenant keeps at least one owner: only owners manage members and accounts, so removing or
-- demoting the last one would lock the tenant out. Deleting the tenant itself still cascades.
-- Security definer, so that the check sees every membership of the tenant whatever RLS shows.
create function igflow_keep_an_owner() returns trigger
language plpgsql security definer set search_path = public, pg_temp as $$
begin
    if old.role = 'owner'
       and (tg_op = 'DELETE' or new.role <> 'owner' or new.tenant_id <> old.tenant_id)
       and exists (select 1 from tenants t where t.id = old.tenant_id)
       and not exists (
           select 1 from memberships m
           where m.tenant_id = old.tenant_id and m.role = 'owner' and m.user_id <> old.user_id)
    then
        raise exception 'the tenant would be left without an owner: make another member owner first'
            using errcode = 'check_violation';
    end if;
    if tg_op = 'DELETE' then
        return old;
    end if;
    return new;
end
$$;
revoke all on function igflow_keep_an_owner() from public, anon, authenticated;

create trigger memberships_keep_an_owner before update or delete on memberships
    for each row execute function igflow_keep_an_owner();
