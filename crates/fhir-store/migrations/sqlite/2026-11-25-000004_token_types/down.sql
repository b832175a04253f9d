ALTER TABLE idx_token DROP COLUMN type_code;
ALTER TABLE idx_token DROP COLUMN type_system;
