-- Bulk import jobs ($import): the kick-off request, where the job stands (its resume
-- point, recorded in the transaction that writes each batch), and the outcome per input.
-- The same columns as export_jobs.
CREATE TABLE import_jobs (
    id               TEXT   PRIMARY KEY,
    status           TEXT   NOT NULL, -- queued, running, completed or failed
    request_url      TEXT   NOT NULL, -- the kick-off URL
    request          TEXT   NOT NULL, -- the inputs and the client (JSON)
    transaction_time BIGINT NOT NULL, -- milliseconds since the Unix epoch, UTC
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    progress         TEXT   NOT NULL, -- the resume point (JSON)
    output           TEXT   NOT NULL, -- JSON array: per input, resources loaded and refused
    error            TEXT,            -- why a failed job failed
    owner            TEXT             -- the node running it (server_nodes.node_id)
);
