-- A campaign in shadow mode decides and records what it would send (outcome 'shadow', the
-- text in `detail`) under its windows and cooldowns, sends nothing and spends no rate budget.
alter table campaigns add column shadow boolean not null default false;
