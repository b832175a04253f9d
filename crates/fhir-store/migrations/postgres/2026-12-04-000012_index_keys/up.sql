-- Index keys end with the resource's rid, so that one value's entries are in rid order
-- (a first page walks them and stops) and searches read rids from the index alone.
-- Token: one code's entries in rid order, the system checked in the index (a code
-- rarely comes in several systems), so `code` and `system|code` both walk.
DROP INDEX idx_token_lookup;
CREATE INDEX idx_token_lookup ON idx_token (res_type, param, code, rid, system);
-- Date: `_sort=date` walks range starts upwards, `_sort=-date` range ends downwards,
-- ties by rid.
DROP INDEX idx_date_lookup;
CREATE INDEX idx_date_lookup ON idx_date (res_type, param, start_ms, rid);
CREATE INDEX idx_date_end ON idx_date (res_type, param, end_ms DESC, rid);
-- Strings: `name=smi` is `norm LIKE 'smi%'`, which a B-tree serves under a non-C
-- collation (C.UTF-8 included, before PostgreSQL 17) only with pattern operators.
DROP INDEX idx_string_lookup;
CREATE INDEX idx_string_lookup ON idx_string (res_type, param, norm text_pattern_ops, rid);
-- Resources of one type in rid order (a search with no criterion walks it), and in
-- `_lastUpdated` order (`_sort=_lastUpdated` walks it).
CREATE INDEX resources_type_rid ON resources (res_type, rid);
CREATE INDEX resources_type_updated ON resources (res_type, last_updated, seq);
-- References: a target's referrers per parameter (chains, `_has`, `_revinclude`) and a
-- parameter's references to one target, with rids read from the index alone.
DROP INDEX idx_reference_target;
CREATE INDEX idx_reference_target ON idx_reference (target_type, target_id, param, rid);
DROP INDEX idx_reference_lookup;
CREATE INDEX idx_reference_lookup ON idx_reference (res_type, param, target_id, target_type, rid);
-- The planner multiplies the selectivities of type, parameter, code and system as if
-- they were independent, and so takes a code in 1 row of 15 for a rare one: it then
-- orders every match instead of walking the sort index. Statistics over the columns
-- together (with a longer list of frequent values) give it the real figure.
CREATE STATISTICS idx_token_values (dependencies, mcv) ON res_type, param, code, system FROM idx_token;
ALTER STATISTICS idx_token_values SET STATISTICS 1000;
ANALYZE idx_token;
