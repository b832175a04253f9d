//! Search criteria of conditional create, update, patch and delete.
//!
//! Until the search engine lands, conditional operations accept `_id` and the token
//! parameter `identifier` (the two most used for matching in interfaces); any other
//! parameter is refused with 400 rather than ignored, since ignoring a criterion
//! could match, and overwrite, the wrong record.

use fhir_store::{Condition, TokenValue};

use crate::error::ApiError;

/// Query-string parameters that shape the response, not the match.
const RESULT_PARAMS: &[&str] = &["_format", "_pretty", "_summary", "_elements"];

/// Splits on unescaped `sep` and removes `\` escapes.
fn split_escaped(text: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    if let Some(last) = parts.last_mut() {
                        last.push(n);
                    }
                }
            }
            c if c == sep => parts.push(String::new()),
            c => {
                if let Some(last) = parts.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    parts
}

fn token(value: &str) -> TokenValue {
    match value.find('|') {
        None => TokenValue {
            system: None,
            code: Some(value.replace("\\|", "|")),
        },
        Some(_) => {
            let parts = split_escaped(value, '|');
            let system = parts.first().cloned().unwrap_or_default();
            let code = parts.get(1).cloned().filter(|c| !c.is_empty());
            TokenValue {
                system: Some(system),
                code,
            }
        }
    }
}

/// The most values one parameter may list (`identifier=a,b,…`).
const MAX_VALUES: usize = 100;

fn values(name: &str, value: &str) -> Result<Vec<String>, ApiError> {
    let list = split_escaped(value, ',');
    if list.len() > MAX_VALUES {
        return Err(ApiError::bad_at(
            format!("'{name}' lists more than {MAX_VALUES} values"),
            name,
        ));
    }
    if list.iter().any(|v| v.is_empty() || v == "|") {
        return Err(ApiError::bad_at(
            format!("'{name}' has an empty value"),
            name,
        ));
    }
    Ok(list)
}

/// Parses `identifier=sys|val&_id=a,b` into conditions (all must hold).
pub fn parse(query: &str) -> Result<Vec<Condition>, ApiError> {
    let mut out = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if RESULT_PARAMS.contains(&name.as_ref()) {
            continue;
        }
        if value.is_empty() {
            return Err(ApiError::bad(format!(
                "search parameter '{name}' has no value"
            )));
        }
        match name.as_ref() {
            "_id" => out.push(Condition::Id(values(&name, &value)?)),
            "identifier" => out.push(Condition::Token {
                param: "identifier".into(),
                any_of: values(&name, &value)?.iter().map(|v| token(v)).collect(),
            }),
            other => {
                return Err(ApiError::bad(format!(
                    "conditional operations support the _id and identifier parameters; '{other}' is not supported"
                )))
            }
        }
    }
    if out.is_empty() {
        return Err(ApiError::bad(
            "a conditional operation needs at least one search parameter",
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tokens_and_ids() {
        let c = parse("identifier=http://x%7C1,%7C2,sys%7C&_id=a,b&_format=json").unwrap();
        assert_eq!(
            c,
            vec![
                Condition::Token {
                    param: "identifier".into(),
                    any_of: vec![
                        TokenValue {
                            system: Some("http://x".into()),
                            code: Some("1".into())
                        },
                        TokenValue {
                            system: Some(String::new()),
                            code: Some("2".into())
                        },
                        TokenValue {
                            system: Some("sys".into()),
                            code: None
                        },
                    ]
                },
                Condition::Id(vec!["a".into(), "b".into()]),
            ]
        );
        assert!(parse("name=x").is_err());
        assert!(parse("").is_err());
        assert!(parse("identifier=").is_err());
        assert!(parse("identifier=%7C").is_err());
        assert!(parse("identifier=a,,b").is_err());
        assert!(parse("_id=,").is_err());
        let many = (0..101)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert!(parse(&format!("_id={many}")).is_err());
        assert_eq!(
            parse("identifier=a\\,b").unwrap(),
            vec![Condition::Token {
                param: "identifier".into(),
                any_of: vec![TokenValue {
                    system: None,
                    code: Some("a,b".into())
                }]
            }]
        );
    }
}
