DROP INDEX idx_quantity_value;
DROP INDEX idx_quantity_rid;
CREATE INDEX idx_quantity_rid ON idx_quantity (rid);
