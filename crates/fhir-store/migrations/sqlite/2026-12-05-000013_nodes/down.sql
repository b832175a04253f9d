DROP TABLE server_secrets;
ALTER TABLE export_jobs DROP COLUMN owner;
DROP TABLE server_nodes;
