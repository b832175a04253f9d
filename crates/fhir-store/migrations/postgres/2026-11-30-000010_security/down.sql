DROP TABLE auth_nonces; DROP TABLE audit_chain;
