-- The statistics over idx_token's four columns keep their list of frequent
-- combinations (what the planner needs to see that a code is frequent) and drop the
-- functional dependencies: building those took 10 of the 11 s of each ANALYZE of
-- idx_token at 214,000 resources (the statistics keeper runs it as the table grows),
-- and at 1.07 million resources no first page of issue #13's searches was slower
-- without them (docs/benchmarks.md, 2026-12-06, fifteenth session).
DROP STATISTICS IF EXISTS idx_token_values;
CREATE STATISTICS idx_token_values (mcv) ON res_type, param, code, system FROM idx_token;
ALTER STATISTICS idx_token_values SET STATISTICS 1000;
ANALYZE idx_token;
