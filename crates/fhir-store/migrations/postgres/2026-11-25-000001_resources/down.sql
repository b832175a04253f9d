DROP TABLE idx_token;
DROP TABLE resources;
DROP TABLE resource_versions;
