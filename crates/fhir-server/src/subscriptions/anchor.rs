//! Which subscriptions a change can match, without a search per subscription: each
//! subscription's criteria gives, where it can, an anchor — one plain token or
//! reference criterion (no chain, no modifier) that every match must satisfy — whose
//! values are keys (`code=X` → the code, `subject=Patient/A` → the id). A changed
//! resource's own keys (its index values) pick the subscriptions anchored on them; only
//! those, and the subscriptions without an anchor, are then searched. Reference keys
//! keep only the id, a filter that may let through too much but never too little: the
//! search decides. Token keys are exact (code, and system as the criterion says: any,
//! none, or this one — the store's token comparison), so a subscription whose whole
//! criteria is one token criterion ([`Anchor::exact`]) matches exactly the resources
//! carrying one of its keys, and needs no search.

use std::collections::HashSet;

use fhir_model::SearchParamType;
use fhir_search::{Clause, IndexValues, ReferenceValue, SearchQuery, SearchValue, TokenSystem};

/// A value a resource must carry for an anchored subscription to match it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Token {
        param: String,
        code: String,
        system: SystemKey,
    },
    Reference {
        param: String,
        id: String,
    },
}

/// The system part of a token key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SystemKey {
    /// `code`: any system, or none.
    Any,
    /// `|code` (`None`) or `system|code`.
    Exactly(Option<String>),
}

/// The anchor of a criteria.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// Any of these keys may match.
    pub keys: Vec<Key>,
    /// The criteria is this one token criterion and nothing else: a key is a match.
    pub exact: bool,
}

/// The anchor of the criteria; `None`: no criterion can anchor it, so every change of
/// the type is a candidate.
pub fn anchor(query: &SearchQuery) -> Option<Anchor> {
    query.clauses.iter().find_map(|c| match c {
        Clause::Param(p) if p.chain.is_empty() && p.modifier.is_none() => {
            let param = &p.param.code;
            let keys = p
                .values
                .iter()
                .map(|v| key_of_value(p.param.kind, param, v))
                .collect::<Option<Vec<Key>>>()?;
            let exact = query.clauses.len() == 1 && p.param.kind == SearchParamType::Token;
            Some(Anchor { keys, exact })
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
            system: match &t.system {
                TokenSystem::Any => SystemKey::Any,
                TokenSystem::None => SystemKey::Exactly(None),
                TokenSystem::Is(s) => SystemKey::Exactly(Some(s.clone())),
            },
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

/// The keys a resource carries: its token codes (with any system, and with their own)
/// and reference ids, per parameter.
pub fn keys_of(values: &IndexValues) -> HashSet<Key> {
    let tokens = values
        .tokens
        .iter()
        .filter_map(|t| t.code.as_ref().map(|c| (t, c)));
    let tokens = tokens.flat_map(|(t, code)| {
        [SystemKey::Any, SystemKey::Exactly(t.system.clone())].map(|system| Key::Token {
            param: t.param.clone(),
            code: code.clone(),
            system,
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

    fn token(param: &str, code: &str, system: SystemKey) -> Key {
        Key::Token {
            param: param.into(),
            code: code.into(),
            system,
        }
    }

    #[test]
    fn anchors_on_plain_tokens_and_references() {
        let loinc = SystemKey::Exactly(Some("http://loinc.org".into()));
        let a = anchor(&query("code=http://loinc.org|1234-5")).unwrap();
        assert_eq!(a.keys, vec![token("code", "1234-5", loinc)]);
        assert!(a.exact);
        let a = anchor(&query("code=a,|b")).unwrap();
        assert_eq!(
            a.keys,
            vec![
                token("code", "a", SystemKey::Any),
                token("code", "b", SystemKey::Exactly(None))
            ]
        );
        let a = anchor(&query("status=final&subject=Patient/p1")).unwrap();
        assert_eq!(a.keys, vec![token("status", "final", SystemKey::Any)]);
        assert!(!a.exact, "two criteria: the search decides");
        let a = anchor(&query("value-quantity=gt5&subject=Patient/p1")).unwrap();
        assert_eq!(
            a.keys,
            vec![Key::Reference {
                param: "subject".into(),
                id: "p1".into()
            }]
        );
        assert!(
            !anchor(&query("subject=Patient/p1")).unwrap().exact,
            "references are searched"
        );
        assert_eq!(anchor(&query("code:not=a")), None);
        assert_eq!(anchor(&query("subject.name=peter")), None);
        assert_eq!(anchor(&query("value-quantity=gt5")), None);
    }

    #[test]
    fn a_resource_carries_exactly_the_token_keys_that_match_it() {
        let obs = json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "1234-5"}, {"code": "local-1"}]},
            "subject": {"reference": "Patient/p1"}});
        let keys = keys_of(&fhir_search::extract(
            SearchRegistry::r4(),
            "Observation",
            &obs,
        ));
        let hit = |q: &str| {
            anchor(&query(q))
                .unwrap()
                .keys
                .iter()
                .any(|k| keys.contains(k))
        };
        for q in [
            "code=http://loinc.org|1234-5",
            "code=1234-5",
            "code=|local-1",
            "code=local-1",
            "status=final",
            "value-quantity=gt5&subject=Patient/p1",
        ] {
            assert!(hit(q), "{q}");
        }
        for q in [
            "code=9999-9",
            "code=http://snomed.info/sct|1234-5",
            "code=|1234-5",
            "code=http://loinc.org|local-1",
            "code=1234-5X",
        ] {
            assert!(!hit(q), "{q}");
        }
    }
}
