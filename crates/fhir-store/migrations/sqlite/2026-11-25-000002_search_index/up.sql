-- Search index tables: one row per value of a search parameter of a current version,
-- replaced in the transaction that writes the version. `rid` is resources.rid.
ALTER TABLE idx_token ADD COLUMN text_norm TEXT; -- display/text, normalised, for :text

CREATE TABLE idx_string (
    rid      BIGINT NOT NULL,
    res_type TEXT   NOT NULL,
    param    TEXT   NOT NULL,
    norm     TEXT   NOT NULL, -- lower case, accents removed
    exact    TEXT   NOT NULL
);
CREATE INDEX idx_string_lookup ON idx_string (res_type, param, norm);
CREATE INDEX idx_string_rid ON idx_string (rid);

CREATE TABLE idx_date (
    rid      BIGINT NOT NULL,
    res_type TEXT   NOT NULL,
    param    TEXT   NOT NULL,
    start_ms BIGINT NOT NULL, -- inclusive
    end_ms   BIGINT NOT NULL  -- exclusive
);
CREATE INDEX idx_date_lookup ON idx_date (res_type, param, start_ms);
CREATE INDEX idx_date_rid ON idx_date (rid);

CREATE TABLE idx_number (
    rid      BIGINT NOT NULL,
    res_type TEXT   NOT NULL,
    param    TEXT   NOT NULL,
    value    DOUBLE PRECISION NOT NULL
);
CREATE INDEX idx_number_lookup ON idx_number (res_type, param, value);
CREATE INDEX idx_number_rid ON idx_number (rid);

CREATE TABLE idx_quantity (
    rid      BIGINT NOT NULL,
    res_type TEXT   NOT NULL,
    param    TEXT   NOT NULL,
    system   TEXT,
    code     TEXT,
    unit     TEXT,
    value    DOUBLE PRECISION NOT NULL
);
CREATE INDEX idx_quantity_lookup ON idx_quantity (res_type, param, code, value);
CREATE INDEX idx_quantity_rid ON idx_quantity (rid);

CREATE TABLE idx_reference (
    rid          BIGINT NOT NULL,
    res_type     TEXT   NOT NULL,
    param        TEXT   NOT NULL,
    target_type  TEXT,
    target_id    TEXT,
    url          TEXT,
    ident_system TEXT,
    ident_value  TEXT
);
CREATE INDEX idx_reference_lookup ON idx_reference (res_type, param, target_id);
CREATE INDEX idx_reference_target ON idx_reference (target_type, target_id);
CREATE INDEX idx_reference_rid ON idx_reference (rid);

CREATE TABLE idx_uri (
    rid      BIGINT NOT NULL,
    res_type TEXT   NOT NULL,
    param    TEXT   NOT NULL,
    uri      TEXT   NOT NULL
);
CREATE INDEX idx_uri_lookup ON idx_uri (res_type, param, uri);
CREATE INDEX idx_uri_rid ON idx_uri (rid);
