-- The full-text index keeps no copy of the text it indexes (`content=''`): searches read
-- only the index (`MATCH` gives row ids), so the copy was written and never read — half
-- the full-text table's bytes on a bulk load. `contentless_delete=1` lets a replaced
-- resource's row go by `rowid`, as before. The existing rows are indexed again from the
-- old table's copy.
CREATE VIRTUAL TABLE idx_fulltext_new USING fts5(
    narrative,
    content,
    content = '',
    contentless_delete = 1,
    tokenize = 'porter unicode61 remove_diacritics 2'
);
INSERT INTO idx_fulltext_new (rowid, narrative, content)
    SELECT rowid, narrative, content FROM idx_fulltext;
DROP TABLE idx_fulltext;
ALTER TABLE idx_fulltext_new RENAME TO idx_fulltext;
