-- A date entry's start does not follow its end: the date prefixes (fhir-store
-- search/values.rs) bound the one column an index ranges over on that ground. A Period
-- whose end comes before its start (per-1 cannot compare a date-time with a date of
-- another precision) is indexed as the instant it starts (fhir-search index.rs,
-- `ordered_end`); entries written before that are ordered the same way here.
UPDATE idx_date SET end_ms = start_ms + 1 WHERE end_ms < start_ms;
UPDATE idx_composite SET end_ms = start_ms + 1 WHERE end_ms < start_ms;
