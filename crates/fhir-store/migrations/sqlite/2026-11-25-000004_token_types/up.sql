-- Identifier.type codings of token rows, for :of-type.
ALTER TABLE idx_token ADD COLUMN type_system TEXT;
ALTER TABLE idx_token ADD COLUMN type_code TEXT;
