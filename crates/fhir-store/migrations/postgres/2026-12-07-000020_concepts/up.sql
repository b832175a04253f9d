-- Large CodeSystems (at least 1,000 concepts) as rows beside the resource, written
-- with its other index rows (fhir-model terminology/rows.rs, fhir-store concepts.rs):
-- the terminology operations read the concepts they need and page expansions from
-- these tables instead of reading the whole resource. Keyed by the resource's `rid`.
CREATE TABLE tx_code_system (
    rid      BIGINT PRIMARY KEY,
    url      TEXT   NOT NULL,
    version  TEXT,
    concepts BIGINT NOT NULL,
    header   TEXT   NOT NULL -- the CodeSystem's JSON without `concept`
);
CREATE INDEX tx_code_system_url ON tx_code_system (url);

-- One row per concept, in document order (`ord`).
CREATE TABLE tx_concept (
    rid            BIGINT  NOT NULL,
    ord            BIGINT  NOT NULL,
    code           TEXT    NOT NULL,
    code_key       TEXT    NOT NULL, -- lower-cased, for case-insensitive systems
    display        TEXT,
    words          TEXT    NOT NULL, -- the display's words, lower-cased, each after a space
    inactive       BOOLEAN NOT NULL,
    not_selectable BOOLEAN NOT NULL,
    concept        TEXT    NOT NULL, -- the concept's JSON without nested concepts
    PRIMARY KEY (rid, ord)
);
CREATE INDEX tx_concept_code ON tx_concept (rid, code);
CREATE INDEX tx_concept_code_key ON tx_concept (rid, code_key);

-- The hierarchy: each concept's parents.
CREATE TABLE tx_concept_parent (
    rid    BIGINT NOT NULL,
    code   TEXT   NOT NULL,
    parent TEXT   NOT NULL
);
CREATE INDEX tx_concept_parent_code ON tx_concept_parent (rid, code);
CREATE INDEX tx_concept_parent_parent ON tx_concept_parent (rid, parent);
