-- Composite parameters: one row per component of each value combination; the rows of
-- one combination share (rid, param, grp) and are told apart by pos. Columns are those
-- of the component's own index table.
CREATE TABLE idx_composite (
    rid          BIGINT NOT NULL,
    res_type     TEXT   NOT NULL,
    param        TEXT   NOT NULL,
    grp          BIGINT NOT NULL,
    pos          BIGINT NOT NULL,
    system       TEXT,
    code         TEXT,
    text_norm    TEXT,
    norm         TEXT,
    exact        TEXT,
    start_ms     BIGINT,
    end_ms       BIGINT,
    value        DOUBLE PRECISION,
    unit         TEXT,
    target_type  TEXT,
    target_id    TEXT,
    url          TEXT,
    ident_system TEXT,
    ident_value  TEXT,
    uri          TEXT
);
CREATE INDEX idx_composite_lookup ON idx_composite (res_type, param, pos, code);
CREATE INDEX idx_composite_rid ON idx_composite (rid, param, grp);
