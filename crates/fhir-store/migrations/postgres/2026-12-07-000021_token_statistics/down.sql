DROP STATISTICS IF EXISTS idx_token_values;
CREATE STATISTICS idx_token_values (dependencies, mcv) ON res_type, param, code, system FROM idx_token;
ALTER STATISTICS idx_token_values SET STATISTICS 1000;
ANALYZE idx_token;
