-- Supabase grants anon and authenticated every privilege on new objects in public, the
-- identity sequence of outbound_deliveries included: the worker's alone.
revoke all on sequence outbound_deliveries_id_seq from anon, authenticated;
