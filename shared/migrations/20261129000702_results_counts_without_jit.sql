-- The results queries' estimates for the raw edge ranges are high enough to trigger JIT, which
-- then spends ~180 ms compiling what runs in ~50 ms (scripts/bench-results.sh at 10 M rows).
alter function igflow_results_counts(uuid, timestamptz, timestamptz, text) set jit = off;
