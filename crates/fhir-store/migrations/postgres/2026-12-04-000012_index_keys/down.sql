DROP STATISTICS IF EXISTS idx_token_values;
DROP INDEX idx_date_end;
DROP INDEX idx_date_lookup;
CREATE INDEX idx_date_lookup ON idx_date (res_type, param, start_ms);
DROP INDEX idx_token_lookup;
CREATE INDEX idx_token_lookup ON idx_token (res_type, param, code, system);
