-- Full text of current versions for `_text` (narrative) and `_content` (all text),
-- already lower-cased and accent-folded by the server, as `english` text-search
-- vectors (stemmed, stop words left out).
CREATE TABLE idx_fulltext (
    rid       BIGINT PRIMARY KEY,
    narrative TSVECTOR NOT NULL,
    content   TSVECTOR NOT NULL
);
CREATE INDEX idx_fulltext_narrative ON idx_fulltext USING GIN (narrative);
CREATE INDEX idx_fulltext_content ON idx_fulltext USING GIN (content);
