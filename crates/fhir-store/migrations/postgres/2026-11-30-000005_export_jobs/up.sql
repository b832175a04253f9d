-- Bulk Data export jobs ($export): the kick-off request, where the job stands, and the
-- files written so far. Jobs outlive the process: a job left running is restarted at start-up.
CREATE TABLE export_jobs (
    id               TEXT   PRIMARY KEY,
    status           TEXT   NOT NULL, -- queued, running, completed or failed
    request_url      TEXT   NOT NULL, -- the kick-off URL, as the manifest reports it
    request          TEXT   NOT NULL, -- the kick-off parameters (JSON), re-planned on restart
    transaction_time BIGINT NOT NULL, -- milliseconds since the Unix epoch, UTC
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    progress         TEXT   NOT NULL, -- for X-Progress
    output           TEXT   NOT NULL, -- JSON array of {type, file, count}
    error            TEXT             -- why a failed job failed
);
