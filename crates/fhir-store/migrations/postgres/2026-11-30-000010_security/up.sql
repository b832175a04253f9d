-- The tamper-evident audit trail: one row per AuditEvent version, in order, each
-- hashed together with the previous row's hash (see src/audit.rs).
CREATE TABLE audit_chain (
    seq         BIGINT PRIMARY KEY,
    version_seq BIGINT NOT NULL,
    prev_hash   TEXT   NOT NULL,
    hash        TEXT   NOT NULL
);
-- One-time values (JWT `jti`) already seen, until they expire.
CREATE TABLE auth_nonces (
    nonce      TEXT   PRIMARY KEY,
    expires_ms BIGINT NOT NULL
);
