-- When an action's Graph API call started (set with `pending`): the read-back of a DM whose
-- outcome is unknown looks for it in the thread from then on, not for an older DM with the
-- same text.
alter table activity add column attempted_at timestamptz;
