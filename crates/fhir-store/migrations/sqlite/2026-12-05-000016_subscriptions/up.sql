-- The change feed subscriptions read: one row per version written, inserted in the
-- write's transaction and taken out by the subscription dispatcher (fhir-store changes.rs).
CREATE TABLE change_outbox (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    res_type TEXT   NOT NULL,
    res_id   TEXT   NOT NULL,
    version  BIGINT NOT NULL,
    method   TEXT   NOT NULL, -- POST, PUT, PATCH or DELETE
    at       BIGINT NOT NULL  -- milliseconds since the Unix epoch
);

-- Notifications waiting for delivery: a change that matched a subscription, numbered
-- per subscription; claimed by one node while it sends it; removed once delivered.
CREATE TABLE subscription_events (
    subscription_id TEXT   NOT NULL,
    event_number    BIGINT NOT NULL,
    res_type        TEXT   NOT NULL,
    res_id          TEXT   NOT NULL,
    version         BIGINT NOT NULL,
    method          TEXT   NOT NULL,
    at              BIGINT NOT NULL,
    attempts        BIGINT NOT NULL,
    last_error      TEXT,
    next_attempt    BIGINT NOT NULL,
    claimed_by      TEXT,             -- the node delivering it now
    claimed_until   BIGINT,           -- its claim ends then (ms): another node may retry
    PRIMARY KEY (subscription_id, event_number)
);
CREATE INDEX subscription_events_due ON subscription_events (next_attempt);

-- Events per subscription so far (eventsSinceSubscriptionStart).
CREATE TABLE subscription_counters (
    subscription_id    TEXT   PRIMARY KEY,
    events_since_start BIGINT NOT NULL
);
