//! Which subscriptions a change can match, without a search per subscription: each
//! subscription's criteria gives, where it can, an anchor — one plain token or
//! reference criterion (no chain, no modifier) that every match must satisfy — whose
//! values are keys (`code=X` → the code, `subject=Patient/A` → the id). A changed
//! resource's own keys (its index values) pick the subscriptions anchored on them; only
//! those, and the subscriptions without an anchor, are then searched. The keys are a
//! filter that may let through too much, never too little (the system of a token is
//! ignored, a reference keeps only its id): the search still decides.

use std::collections::HashSet;

use fhir_model::SearchParamType;
use fhir_search::{Clause, IndexValues, ReferenceValue, SearchQuery, SearchValue};

/// A value a resource must carry for an anchored subscription to match it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Token { param: String, code: String },
    Reference { param: String, id: String },
}

/// The keys of the criteria's anchor (any of them may match); `None`: no criterion can
/// anchor it, so every change of the type is a candidate.
pub fn anchor(query: &SearchQuery) -> Option<Vec<Key>> {
    query.clauses.iter().find_map(|c| match c {
        Clause::Param(p) if p.chain.is_empty() && p.modifier.is_none() => {
            let param = &p.param.code;
            p.values
                .iter()
                .map(|v| key_of_value(p.param.kind, param, v))
                .collect::<Option<Vec<Key>>>()
        }
        _ => None,
    })
}

fn key_of_value(kind: SearchParamType, param: &str, value: &SearchValue) -> Option<Key> {
    let param = param.to_string();
    match (kind, value) {
        (SearchParamType::Token, SearchValue::Token(t)) => Some(Key::Token {
            param,
            code: t.code.clone()?,
        }),
        (SearchParamType::Reference, SearchValue::Reference(r)) => match r {
            ReferenceValue::Local { id, .. } => Some(Key::Reference {
                param,
                id: id.clone(),
            }),
            ReferenceValue::Url { id: Some(id), .. } => Some(Key::Reference {
                param,
                id: id.clone(),
            }),
            _ => None,
        },
        _ => None,
    }
}

/// The keys a resource carries: its token codes and reference ids, per parameter.
pub fn keys_of(values: &IndexValues) -> HashSet<Key> {
    let tokens = values.tokens.iter().filter_map(|t| {
        Some(Key::Token {
            param: t.param.clone(),
            code: t.code.clone()?,
        })
    });
    let references = values.references.iter().filter_map(|r| {
        Some(Key::Reference {
            param: r.param.clone(),
            id: r.id.clone()?,
        })
    });
    tokens.chain(references).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fhir_search::SearchRegistry;
    use serde_json::json;

    fn query(q: &str) -> SearchQuery {
        fhir_search::parse_query_string(SearchRegistry::r4(), Some("Observation"), q, true).unwrap()
    }

    #[test]
    fn anchors_on_plain_tokens_and_references() {
        let code = |c: &str| Key::Token {
            param: "code".into(),
            code: c.into(),
        };
        assert_eq!(
            anchor(&query("code=http://loinc.org|1234-5")),
            Some(vec![code("1234-5")])
        );
        assert_eq!(anchor(&query("code=a,b")), Some(vec![code("a"), code("b")]));
        assert_eq!(
            anchor(&query("status=final&subject=Patient/p1")),
            Some(vec![Key::Token {
                param: "status".into(),
                code: "final".into()
            }])
        );
        assert_eq!(
            anchor(&query("value-quantity=gt5&subject=Patient/p1")),
            Some(vec![Key::Reference {
                param: "subject".into(),
                id: "p1".into()
            }])
        );
        assert_eq!(anchor(&query("code:not=a")), None);
        assert_eq!(anchor(&query("subject.name=peter")), None);
        assert_eq!(anchor(&query("value-quantity=gt5")), None);
    }

    #[test]
    fn a_resource_carries_the_keys_that_anchor_it() {
        let obs = json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "1234-5"}]},
            "subject": {"reference": "Patient/p1"}});
        let keys = keys_of(&fhir_search::extract(
            SearchRegistry::r4(),
            "Observation",
            &obs,
        ));
        for q in [
            "code=http://loinc.org|1234-5",
            "status=final",
            "value-quantity=gt5&subject=Patient/p1",
        ] {
            let anchored = anchor(&query(q)).unwrap();
            assert!(anchored.iter().any(|k| keys.contains(k)), "{q}");
        }
        let other = anchor(&query("code=9999-9")).unwrap();
        assert!(!other.iter().any(|k| keys.contains(k)));
    }
}
