//! Search criteria of conditional create, update, patch and delete: any search the
//! search engine understands, parsed strictly (an unknown or unsupported parameter is a
//! 400, never ignored: ignoring a criterion could match, and overwrite, the wrong record).

use fhir_search::{Clause, SearchRegistry};

use crate::error::ApiError;

/// Parses the query part of a conditional request into criteria (all must hold).
pub fn parse(resource_type: &str, query: &str) -> Result<Vec<Clause>, ApiError> {
    let registry = SearchRegistry::r4();
    let parsed = fhir_search::parse_query_string(registry, Some(resource_type), query, true)
        .map_err(|e| match e.param().map(str::to_string) {
            Some(p) => ApiError::bad_at(e.to_string(), p),
            None => ApiError::bad(e.to_string()),
        })?;
    if parsed.clauses.is_empty() {
        return Err(ApiError::bad(
            "a conditional operation needs at least one search parameter",
        ));
    }
    Ok(parsed.clauses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_criteria_strictly() {
        assert_eq!(
            parse("Patient", "identifier=http://x%7C1,%7C2&_id=a,b")
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            parse("Patient", "name=smith&birthdate=1970").unwrap().len(),
            2
        );
        assert!(parse("Patient", "nonsense=x").is_err());
        assert!(parse("Patient", "").is_err());
        assert!(parse("Patient", "_count=3").is_err());
        assert!(parse("Patient", "birthdate=notadate").is_err());
    }
}
