-- Idempotency keys (src/idempotency.rs): a transaction sent with an `Idempotency-Key`
-- is recorded with its response in the same database transaction as its writes, so a
-- retry (after a lost response, a crash, a killed import) replays it instead of
-- writing twice.
CREATE TABLE idempotency_keys (
    idem_key    TEXT   PRIMARY KEY,
    fingerprint TEXT   NOT NULL,
    created_ms  BIGINT NOT NULL,
    response    TEXT   NOT NULL
);
