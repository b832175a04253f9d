DROP TABLE idx_uri;
DROP TABLE idx_reference;
DROP TABLE idx_quantity;
DROP TABLE idx_number;
DROP TABLE idx_date;
DROP TABLE idx_string;
ALTER TABLE idx_token DROP COLUMN text_norm;
