-- Full text of current versions for `_text` (narrative) and `_content` (all text),
-- already lower-cased and accent-folded by the server; FTS5 stems English words
-- (Porter). The row id is the resource's `rid`.
CREATE VIRTUAL TABLE idx_fulltext USING fts5(
    narrative,
    content,
    tokenize = 'porter unicode61 remove_diacritics 2'
);
