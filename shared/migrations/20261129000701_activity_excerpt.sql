-- The comment a decision was about, cut to 140 characters, for the dashboard's live feed
-- ("@ana: any deal on these?"). Pruned with the row by retention and data deletion.
alter table activity add column excerpt text;
