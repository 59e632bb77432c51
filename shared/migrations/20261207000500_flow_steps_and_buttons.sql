-- Buttons under a campaign's private reply or DM (Meta's button template), and the flow's
-- steps the buttons lead to: JSON in the campaign file's shape (campaign_file.rs checks
-- them; here their sizes are bounded: MAX_BUTTONS 3, MAX_STEPS 10, and 64 KiB in all).
alter table campaigns
    add column buttons jsonb not null default '[]',
    add column steps jsonb not null default '[]';

alter table campaigns
    add constraint campaigns_buttons_bound
        check (jsonb_typeof(buttons) = 'array' and jsonb_array_length(buttons) <= 3),
    add constraint campaigns_steps_bound
        check (jsonb_typeof(steps) = 'array' and jsonb_array_length(steps) <= 10
               and octet_length(steps::text) <= 65536);
