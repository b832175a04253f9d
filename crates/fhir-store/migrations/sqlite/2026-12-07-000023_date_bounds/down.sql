-- The Periods' own ends are not kept in the index; `fhir-server reindex` rewrites the
-- entries from the stored resources.
SELECT 1;
