DROP TABLE auth_nonces; DROP TABLE audit_projection; DROP TABLE audit_log;
