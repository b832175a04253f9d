DROP TABLE tx_concept_parent;
DROP TABLE tx_concept;
DROP TABLE tx_code_system;
