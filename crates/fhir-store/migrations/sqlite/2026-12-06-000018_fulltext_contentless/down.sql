-- A contentless index cannot give its text back: the table goes back to its earlier
-- form empty, and `fhir-server reindex` fills it again.
DROP TABLE idx_fulltext;
CREATE VIRTUAL TABLE idx_fulltext USING fts5(
    narrative,
    content,
    tokenize = 'porter unicode61 remove_diacritics 2'
);
