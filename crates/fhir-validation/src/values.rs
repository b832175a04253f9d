//! Value comparisons: `fixed[x]` (exact), `pattern[x]` (the instance contains the
//! pattern), and the value ranges of the integer primitives.

use serde_json::Value;

/// JSON equality with numbers compared by value (`1.0` = `1`).
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.to_string(), y.to_string());
            x == y || matches!((x.parse::<f64>(), y.parse::<f64>()), (Ok(p), Ok(q)) if p == q)
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
        }
        _ => a == b,
    }
}

/// A fixed value: equal, except that the instance may add `id` and `extension`.
pub fn matches_fixed(actual: &Value, fixed: &Value) -> bool {
    match (actual, fixed) {
        (Value::Object(a), Value::Object(f)) => {
            f.iter()
                .all(|(k, fv)| a.get(k).is_some_and(|av| matches_fixed(av, fv)))
                && a.keys()
                    .all(|k| f.contains_key(k) || k == "id" || k == "extension")
        }
        (Value::Array(a), Value::Array(f)) => {
            a.len() == f.len() && a.iter().zip(f).all(|(x, y)| matches_fixed(x, y))
        }
        _ => same(actual, fixed),
    }
}

/// A pattern: every member of the pattern is in the instance (arrays: each pattern
/// item matches some instance item).
pub fn matches_pattern(actual: &Value, pattern: &Value) -> bool {
    match (actual, pattern) {
        (Value::Object(a), Value::Object(p)) => p
            .iter()
            .all(|(k, pv)| a.get(k).is_some_and(|av| matches_pattern(av, pv))),
        (Value::Array(a), Value::Array(p)) => p
            .iter()
            .all(|pv| a.iter().any(|av| matches_pattern(av, pv))),
        (a, Value::Array(p)) if p.len() == 1 => matches_pattern(a, &p[0]),
        _ => same(actual, pattern),
    }
}

/// The number of bytes base64 text decodes to (whitespace ignored).
pub fn base64_len(text: &str) -> u64 {
    let chars: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let padding = chars.iter().rev().take_while(|&&b| b == b'=').count();
    ((chars.len() / 4 * 3).saturating_sub(padding)) as u64
}

/// Short JSON text for messages.
pub fn shown(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        other => fhir_model::json::to_string(other),
    };
    if text.chars().count() > 120 {
        let cut: String = text.chars().take(120).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// The range rule an integer primitive breaks, if any.
pub fn integer_range(type_code: &str, v: &Value) -> Option<String> {
    let Value::Number(n) = v else { return None };
    let text = n.to_string();
    let parsed: Option<i64> = text.parse().ok();
    let (lo, hi): (i64, i64) = match type_code {
        "integer" => (i32::MIN as i64, i32::MAX as i64),
        "unsignedInt" => (0, i32::MAX as i64),
        "positiveInt" => (1, i32::MAX as i64),
        _ => return None,
    };
    match parsed {
        Some(i) if i >= lo && i <= hi => None,
        Some(i) => Some(format!(
            "The value {i} is outside the range of {type_code} ({lo}..{hi})"
        )),
        None => Some(format!("The value {text} is not a valid {type_code}")),
    }
}

/// The start (`<r`) of the first thing in a markdown text that looks like an HTML tag
/// (`<name`, `</name`), outside code spans; autolinks (`<http://…>`, `<a@b.c>`) are not
/// tags.
pub fn html_tag_in_markdown(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut in_code = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'`' => in_code = !in_code,
            b'\\' => i += 1,
            b'<' if !in_code => {
                let rest = &text[i + 1..];
                let name_start = rest.strip_prefix('/').unwrap_or(rest);
                if name_start.starts_with(|c: char| c.is_ascii_alphabetic()) {
                    let end = rest.find('>').unwrap_or(rest.len());
                    let inner = &rest[..end];
                    let name_len = name_start
                        .find(|c: char| !c.is_ascii_alphanumeric() && c != '-')
                        .unwrap_or(name_start.len());
                    let after = name_start[name_len..].chars().next();
                    let autolink = inner.contains('@') || after == Some(':');
                    if !autolink && rest.contains('>') {
                        return Some(text[i..].chars().take(2).collect());
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns_and_fixed_values() {
        let cc = json!({"coding": [{"system": "s", "code": "a"}, {"system": "t", "code": "b"}], "text": "x"});
        assert!(matches_pattern(
            &cc,
            &json!({"coding": [{"system": "t", "code": "b"}]})
        ));
        assert!(!matches_pattern(
            &cc,
            &json!({"coding": [{"system": "t", "code": "c"}]})
        ));
        assert!(!matches_fixed(
            &cc,
            &json!({"coding": [{"system": "s", "code": "a"}]})
        ));
        assert!(same(&json!(1.0), &json!(1)));
        assert!(integer_range("positiveInt", &json!(0)).is_some());
        assert!(integer_range("integer", &json!(2147483648u64)).is_some());
        assert!(integer_range("unsignedInt", &json!(0)).is_none());
    }

    #[test]
    fn html_tags_in_markdown() {
        assert_eq!(
            html_tag_in_markdown("<resource type>\\<id>").as_deref(),
            Some("<r")
        );
        assert_eq!(html_tag_in_markdown("a </b> c").as_deref(), Some("</"));
        assert_eq!(
            html_tag_in_markdown("see <http://x.org/a> or <a@b.org>"),
            None
        );
        assert_eq!(html_tag_in_markdown("`<code>` and 1 < 2 > 0"), None);
        assert_eq!(html_tag_in_markdown("x < y"), None);
    }
}
