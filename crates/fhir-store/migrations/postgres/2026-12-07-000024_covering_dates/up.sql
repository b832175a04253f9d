-- Date indexes that hold both ends of an entry's range, so that a date criterion is
-- answered by an index-only scan: checked per resource (`rid` first: a reference or a
-- chain with a date, a walk in `rid` order, a sort key's MIN/MAX), or read along one
-- end with the other end checked in the entry (`ge`, `le`, `eq`).
DROP INDEX idx_date_rid;
CREATE INDEX idx_date_rid ON idx_date (rid, param, start_ms, end_ms);
DROP INDEX idx_date_lookup;
CREATE INDEX idx_date_lookup ON idx_date (res_type, param, start_ms, rid) INCLUDE (end_ms);
DROP INDEX idx_date_end;
CREATE INDEX idx_date_end ON idx_date (res_type, param, end_ms DESC, rid) INCLUDE (start_ms);
