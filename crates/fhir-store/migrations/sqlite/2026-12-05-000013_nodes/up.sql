-- Server nodes sharing this database (several `fhir-server serve` processes, or an
-- import beside a server). Each node beats every half second; a node whose beat is
-- older than a few seconds is gone. A node caches reads without asking the database
-- only while it is the only live node (fhir-store nodes.rs).
CREATE TABLE server_nodes (
    node_id      TEXT   PRIMARY KEY,
    host         TEXT   NOT NULL, -- host name and process id, for operators
    started_ms   BIGINT NOT NULL, -- database clock, milliseconds since the Unix epoch
    heartbeat_ms BIGINT NOT NULL  -- database clock
);

-- The node running an export job; another node takes the job over when that node
-- is gone.
ALTER TABLE export_jobs ADD COLUMN owner TEXT;

-- Secrets every node must share (the access-token signing key when none is
-- configured), made once by the first node that needs them.
CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
