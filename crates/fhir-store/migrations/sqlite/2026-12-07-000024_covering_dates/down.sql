DROP INDEX idx_date_rid;
CREATE INDEX idx_date_rid ON idx_date (rid);
DROP INDEX idx_date_lookup;
CREATE INDEX idx_date_lookup ON idx_date (res_type, param, start_ms, rid);
DROP INDEX idx_date_end;
CREATE INDEX idx_date_end ON idx_date (res_type, param, end_ms DESC, rid);
