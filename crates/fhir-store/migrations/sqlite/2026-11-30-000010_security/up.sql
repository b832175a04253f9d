-- The tamper-evident audit trail (see src/audit.rs): every AuditEvent as written, in
-- order, each hashed together with the previous row's hash. The searchable AuditEvent
-- resources are projected from it (`res_id` is their id) up to `audit_projection`.
CREATE TABLE audit_log (
    seq         BIGINT PRIMARY KEY,
    res_id      TEXT   NOT NULL,
    recorded_ms BIGINT NOT NULL,
    content     TEXT   NOT NULL,
    prev_hash   TEXT   NOT NULL,
    hash        TEXT   NOT NULL
);
CREATE INDEX audit_log_res_id ON audit_log (res_id);
CREATE TABLE audit_projection (
    id       INTEGER PRIMARY KEY,
    last_seq BIGINT  NOT NULL
);
INSERT INTO audit_projection (id, last_seq) VALUES (1, 0);
-- One-time values (JWT `jti`) already seen, until they expire.
CREATE TABLE auth_nonces (
    nonce      TEXT   PRIMARY KEY,
    expires_ms BIGINT NOT NULL
);
