DROP TABLE idx_composite;
