-- A `pending` action (its Graph API call under way) or an `uncertain` one being resolved is
-- leased to the attempt holding its claim token until `lease_until`; the holder renews it
-- while it works. Another copy of the event that meets a live lease waits for it instead of
-- resolving (re-sending) an action that may still be on its way, and every finishing write
-- is guarded by the token, so a stale attempt can no longer overwrite the outcome.
alter table activity add column lease_until timestamptz;
