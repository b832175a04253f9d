//! The limits an element definition sets on its values, and the specification's own
//! limit on strings (1 MB): `maxLength` of strings, and
//! `minValue[x]`/`maxValue[x]` of numbers, dates and times, and quantities (converted
//! between UCUM units with `ucum-units` when the units differ). A date limited by a
//! Duration is counted from today, as the HL7 Java validator reads it: `minValueDuration`
//! of 100 a allows dates from 100 years ago, `maxValueDuration` of 10 a until 10 years
//! from now.

use fhir_model::structure::ElementDef;
use fhir_model::IssueType;
use serde_json::Value;

use crate::issue::Issue;
use crate::location::Loc;
use crate::walk::Run;

const UCUM: &str = "http://unitsofmeasure.org";

/// The most bytes a string may have (datatypes.html: 1 MB).
const MAX_STRING: usize = 1024 * 1024;

/// Which limit a value is held to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bound {
    Min,
    Max,
}

impl Bound {
    /// True when `value` compared with the limit (`Ordering` of value to limit) breaks it.
    fn broken(self, order: std::cmp::Ordering) -> bool {
        match self {
            Bound::Min => order.is_lt(),
            Bound::Max => order.is_gt(),
        }
    }

    fn words(self) -> (&'static str, &'static str) {
        match self {
            Bound::Min => ("less", "minValue"),
            Bound::Max => ("greater", "maxValue"),
        }
    }
}

impl Run<'_> {
    /// `maxLength`, `minValue[x]` and `maxValue[x]` of element `e` on one value.
    pub(crate) fn limits(&mut self, e: &ElementDef, type_code: &str, value: &Value, at: &Loc<'_>) {
        if let (Some(max), Some(s)) = (e.max_length, value.as_str()) {
            if s.chars().count() as u64 > max {
                let m = format!("value is longer than permitted maximum length of {max}");
                self.push(Issue::error(IssueType::Value, at.to_string(), m));
            }
        }
        // datatypes.html: "Strings SHALL NOT exceed 1MB in size".
        let text = matches!(type_code, "string" | "markdown");
        if let Some(s) = value.as_str().filter(|s| text && s.len() > MAX_STRING) {
            let m = format!(
                "value is longer than permitted maximum length of 1 MB ({MAX_STRING} bytes): {} bytes",
                s.len()
            );
            self.push(Issue::error(IssueType::Value, at.to_string(), m));
        }
        let bounds = [(Bound::Min, &e.min_value), (Bound::Max, &e.max_value)];
        for (bound, limit) in bounds {
            let Some((_, limit)) = limit else { continue };
            if let Some(m) = breaks(type_code, value, limit, bound) {
                self.push(Issue::error(IssueType::Value, at.to_string(), m));
            }
        }
    }
}

/// Why `value` (of type `type_code`) breaks `limit`, if it does and can be judged.
fn breaks(type_code: &str, value: &Value, limit: &Value, bound: Bound) -> Option<String> {
    match type_code {
        "integer" | "positiveInt" | "unsignedInt" | "integer64" | "decimal" => {
            let order = number(value)?.partial_cmp(&number(limit)?)?;
            let (word, _) = bound.words();
            let kind = if bound == Bound::Min {
                "minimum"
            } else {
                "maximum"
            };
            bound
                .broken(order)
                .then(|| format!("value is {word} than permitted {kind} value of {limit}"))
        }
        "date" | "dateTime" | "instant" => date_breaks(value.as_str()?, limit, bound),
        "time" => {
            let (v, l) = (value.as_str()?, limit.as_str()?);
            let (word, name) = bound.words();
            let order = v.cmp(l);
            bound
                .broken(order)
                .then(|| format!("The value {v} is {word} than the specified {name} ({l})"))
        }
        _ if value.get("value").is_some() && limit.is_object() => {
            quantity_breaks(value, limit, bound)
        }
        _ => None,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.to_string().parse().ok(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A quantity against a quantity limit: in the same unit, or converted between UCUM
/// units; units that cannot be compared are not judged.
fn quantity_breaks(value: &Value, limit: &Value, bound: Bound) -> Option<String> {
    let (v, l) = (number(&value["value"])?, number(&limit["value"])?);
    let unit = |q: &Value| {
        let code = q.get("code").or_else(|| q.get("unit"));
        code.and_then(Value::as_str).unwrap_or("").to_string()
    };
    let (vu, lu) = (unit(value), unit(limit));
    let ucum = |q: &Value| q.get("system").and_then(Value::as_str) == Some(UCUM);
    let (word, name) = bound.words();
    let shown = |n: &Value, u: &str| format!("{} {u}", n.to_string().trim_matches('"'));
    let (vs, ls) = (shown(&value["value"], &vu), shown(&limit["value"], &lu));
    if vu == lu {
        let order = v.partial_cmp(&l)?;
        return bound.broken(order).then(|| {
            format!("The value in the instance ({vs}) is {word} than the specified {name} ({ls})")
        });
    }
    if !(ucum(value) && ucum(limit)) {
        return None;
    }
    let converted = ucum::convert(v, &vu, &lu).ok()?;
    let order = converted.partial_cmp(&l)?;
    bound.broken(order).then(|| {
        format!(
            "The value in the instance ({vs}) is {word} than the specified {name} ({ls}) after UCUM conversion"
        )
    })
}

/// A date or date-time against a date limit, or against a Duration counted from today.
/// Values and limits of different precision are compared on the precision they share,
/// and not judged when they agree on it.
fn date_breaks(value: &str, limit: &Value, bound: Bound) -> Option<String> {
    let (word, name) = bound.words();
    let limit_text = match limit {
        Value::String(s) => s.clone(),
        Value::Object(_) => relative_date(limit, bound)?,
        _ => return None,
    };
    // Bytes, not characters: a malformed date (reported by its format check) must not
    // be cut inside a character.
    let (v, l) = (value.as_bytes(), limit_text.as_bytes());
    let shared = v.len().min(l.len()).min(10);
    let order = v[..shared].cmp(&l[..shared]);
    let order = if order.is_eq() && value.len() == limit_text.len() {
        value.cmp(&limit_text)
    } else {
        order
    };
    bound
        .broken(order)
        .then(|| format!("The value {value} is {word} than the specified {name} ({limit_text})"))
}

/// Today less (`minValue`) or plus (`maxValue`) a Duration in UCUM time units, as a date.
fn relative_date(duration: &Value, bound: Bound) -> Option<String> {
    let amount = number(duration.get("value")?)?;
    let code = duration
        .get("code")
        .or_else(|| duration.get("unit"))
        .and_then(Value::as_str)?;
    let days = ucum::convert(amount, code, "d").ok()?;
    // A Duration beyond what a date can hold is not judged (no panic on overflow).
    let span = time::Duration::checked_seconds_f64(days * 86_400.0)?;
    let today = time::OffsetDateTime::now_utc();
    let at = match bound {
        Bound::Min => today.checked_sub(span)?,
        Bound::Max => today.checked_add(span)?,
    };
    let d = at.date();
    Some(format!(
        "{:04}-{:02}-{:02}",
        d.year(),
        u8::from(d.month()),
        d.day()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_dates_and_quantities_are_held_to_their_limits() {
        assert!(breaks("integer", &json!(5), &json!(3), Bound::Max).is_some());
        assert!(breaks("integer", &json!(3), &json!(3), Bound::Max).is_none());
        assert!(breaks("decimal", &json!(-0.5), &json!(0), Bound::Min).is_some());
        assert!(breaks(
            "date",
            &json!("2001-02-03"),
            &json!("2001-02-04"),
            Bound::Min
        )
        .is_some());
        assert!(breaks("date", &json!("2001"), &json!("2001-02-04"), Bound::Min).is_none());
        let kg = json!({"value": 0, "system": UCUM, "code": "kg"});
        let grams = |v: i64| json!({"value": v, "system": UCUM, "code": "g"});
        let m = breaks("Quantity", &grams(-1), &kg, Bound::Min).expect("below");
        assert!(m.contains("after UCUM conversion"), "{m}");
        assert!(breaks("Quantity", &grams(11000), &kg, Bound::Max).is_some());
        let metres = json!({"value": 1, "system": UCUM, "code": "m"});
        assert!(
            breaks("Quantity", &metres, &kg, Bound::Max).is_none(),
            "not comparable"
        );
        let century = json!({"value": 100, "system": UCUM, "code": "a"});
        assert!(breaks("date", &json!("1850-01-01"), &century, Bound::Min).is_some());
        assert!(breaks("date", &json!("1950-01-01"), &century, Bound::Min).is_none());
        let decade = json!({"value": 10, "system": UCUM, "code": "a"});
        assert!(breaks("date", &json!("2020-01-01"), &decade, Bound::Max).is_none());
        assert!(breaks("date", &json!("2999-01-01"), &decade, Bound::Max).is_some());
        // Malformed values and absurd limits are not judged, and never panic.
        breaks(
            "date",
            &json!("20é0-01-01é"),
            &json!("2020-01-01"),
            Bound::Min,
        );
        let huge = json!({"value": 1e300, "system": UCUM, "code": "a"});
        assert!(breaks("date", &json!("2020-01-01"), &huge, Bound::Min).is_none());
    }
}
