-- The tenants (partner organisations) of this database, when the server runs with
-- `--tenancy url|claim`. Each tenant's records live in a database of their own — a
-- schema `tenant_<name>` of this PostgreSQL database, or a SQLite file beside this
-- one — holding every table of this one; this table, in the default tenant's
-- database, lists them (fhir-store tenants.rs).
CREATE TABLE tenants (
    name       TEXT   PRIMARY KEY,
    active     BOOLEAN NOT NULL,
    created_ms BIGINT NOT NULL
);
