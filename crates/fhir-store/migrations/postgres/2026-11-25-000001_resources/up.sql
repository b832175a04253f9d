-- Every version of every resource, as the server wrote it. `seq` orders all writes.
CREATE TABLE resource_versions (
    seq          BIGSERIAL PRIMARY KEY,
    res_type     TEXT    NOT NULL,
    res_id       TEXT    NOT NULL,
    version      BIGINT  NOT NULL,
    last_updated BIGINT  NOT NULL, -- milliseconds since the Unix epoch, UTC
    deleted      BOOLEAN NOT NULL,
    method       TEXT    NOT NULL, -- POST, PUT, PATCH or DELETE
    content      TEXT    NOT NULL, -- the resource JSON ('' for a deletion)
    UNIQUE (res_type, res_id, version)
);
CREATE INDEX resource_versions_type_seq ON resource_versions (res_type, seq);

-- One row per logical resource, pointing at its current version.
CREATE TABLE resources (
    rid          BIGSERIAL PRIMARY KEY,
    res_type     TEXT    NOT NULL,
    res_id       TEXT    NOT NULL,
    version      BIGINT  NOT NULL, -- 0 only inside the transaction that creates it
    seq          BIGINT  NOT NULL,
    last_updated BIGINT  NOT NULL,
    deleted      BOOLEAN NOT NULL,
    UNIQUE (res_type, res_id)
);

-- Token search index of current versions (system|code per search parameter).
CREATE TABLE idx_token (
    rid      BIGINT NOT NULL,
    res_type TEXT   NOT NULL,
    param    TEXT   NOT NULL,
    system   TEXT,
    code     TEXT
);
CREATE INDEX idx_token_lookup ON idx_token (res_type, param, code, system);
CREATE INDEX idx_token_rid ON idx_token (rid);
