-- Who may undo what. Row Level Security says which rows a dashboard user may change; these
-- triggers say which changes, since a policy cannot see the row as it was:
-- - An account Meta deauthorized (status 'disabled') comes back only through a real
--   reconnect, which `igflow-worker apply` (the operator's connection) performs with a new
--   token. Owners may pause and resume an account, never revive a disabled one nor disable
--   one themselves (that status means Meta said so).
-- - A person who opted out by DM (STOP) is opted back in only by their own DM (START). An
--   editor may opt a person out, and undo only such an opt-out of the dashboard's.
-- Dashboard users are PostgREST's roles: `current_user` is `authenticated` in their
-- statements (security invoker triggers run as the statement's role).

create function igflow_account_status_guard() returns trigger
language plpgsql as $$
begin
    if current_user in ('authenticated', 'anon')
       and new.status is distinct from old.status
       and 'disabled' in (old.status, new.status)
    then
        raise exception 'only a reconnect (igflow-worker apply with a new token) may change the status of an account Meta deauthorized or set it'
            using errcode = 'insufficient_privilege',
                  hint = 'pause or resume the account instead';
    end if;
    return new;
end
$$;
revoke all on function igflow_account_status_guard() from public, anon, authenticated;
create trigger ig_accounts_status_guard before update of status on ig_accounts
    for each row execute function igflow_account_status_guard();

-- Who set the opt-out: 'contact' (their own DM) or 'dashboard'; null when not opted out (or
-- set by an operator's own SQL, which editors may undo).
alter table contacts add column opted_out_by text
    check (opted_out_by is null or (opted_out and opted_out_by in ('contact', 'dashboard')));
-- Opt-outs stored before this column came from either path: keep them the person's, the
-- safe reading.
update contacts set opted_out_by = 'contact' where opted_out;

create function igflow_opt_out_guard() returns trigger
language plpgsql as $$
begin
    if current_user in ('authenticated', 'anon') and new.opted_out is distinct from old.opted_out then
        if old.opted_out and old.opted_out_by = 'contact' then
            raise exception 'this person opted out themselves; only their own message (START) opts them back in'
                using errcode = 'insufficient_privilege';
        end if;
        new.opted_out_by := case when new.opted_out then 'dashboard' end;
    end if;
    return new;
end
$$;
revoke all on function igflow_opt_out_guard() from public, anon, authenticated;
create trigger contacts_opt_out_guard before update of opted_out on contacts
    for each row execute function igflow_opt_out_guard();
