-- Quantities by value alone: a search without a unit (`value-quantity=gt100`) could not
-- range over `(res_type, param, code, value)`, and read every entry of the parameter
-- (160 requests/s for one that matches nothing, on 430k resources). Checked per
-- resource, the value is read from the `rid` index.
DROP INDEX idx_quantity_rid;
CREATE INDEX idx_quantity_rid ON idx_quantity (rid, param, value);
CREATE INDEX idx_quantity_value ON idx_quantity (res_type, param, value, rid);
