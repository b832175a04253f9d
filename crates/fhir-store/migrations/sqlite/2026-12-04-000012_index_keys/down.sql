DROP INDEX idx_date_end;
DROP INDEX idx_date_lookup;
CREATE INDEX idx_date_lookup ON idx_date (res_type, param, start_ms);
DROP INDEX idx_token_lookup;
CREATE INDEX idx_token_lookup ON idx_token (res_type, param, code, system);
DROP INDEX idx_reference_lookup;
CREATE INDEX idx_reference_lookup ON idx_reference (res_type, param, target_id);
DROP INDEX idx_reference_target;
CREATE INDEX idx_reference_target ON idx_reference (target_type, target_id);
