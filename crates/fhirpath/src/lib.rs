//! FHIRPath: parser and evaluator over FHIR JSON (in progress).
