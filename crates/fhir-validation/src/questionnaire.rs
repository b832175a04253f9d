//! A QuestionnaireResponse checked against its Questionnaire (when loaded): every
//! `linkId` exists at its level, required items are answered, answers have the item's
//! type and respect its options and constraint extensions (min/max value and length,
//! decimal places, regex, units, MIME type, size, resource types, exclusive options).

use fhir_model::IssueType;
use serde_json::Value;

use crate::issue::Issue;
use crate::location::{Loc, Step};
use crate::values;
use crate::walk::Run;

const EXT: &str = "http://hl7.org/fhir/StructureDefinition/";
const SDC: &str = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-";

/// The extension `name` (under the FHIR core extension URL, or the SDC one) of an item.
fn ext<'a>(item: &'a Value, url: &str) -> impl Iterator<Item = &'a Value> + 'a {
    let url = url.to_string();
    item.get("extension")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |x| x.get("url").and_then(Value::as_str) == Some(url.as_str()))
}

/// The `value[x]` of an element, with its type suffix.
fn value_x(v: &Value) -> Option<(&str, &Value)> {
    v.as_object()?.iter().find_map(|(k, x)| {
        k.strip_prefix("value")
            .filter(|s| !s.is_empty())
            .map(|s| (s, x))
    })
}

fn items(v: &Value) -> &[Value] {
    v.get("item")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn link_id(v: &Value) -> &str {
    v.get("linkId").and_then(Value::as_str).unwrap_or("")
}

/// The answer type suffixes an item type allows.
fn allowed_types(item_type: &str) -> &'static [&'static str] {
    match item_type {
        "boolean" => &["Boolean"],
        "decimal" => &["Decimal"],
        "integer" => &["Integer"],
        "date" => &["Date"],
        "dateTime" => &["DateTime"],
        "time" => &["Time"],
        "string" | "text" => &["String"],
        "url" => &["Uri"],
        // As the HL7 validator: options may be codings, dates, times, integers or strings.
        "choice" | "open-choice" => &["Coding", "Date", "Time", "Integer", "String"],
        "attachment" => &["Attachment"],
        "reference" => &["Reference"],
        "quantity" => &["Quantity"],
        _ => &[],
    }
}

impl Run<'_> {
    pub(crate) fn questionnaire_response(&mut self, qr: &Value, at: &Loc<'_>) {
        let Some(url) = qr.get("questionnaire").and_then(Value::as_str) else {
            return;
        };
        let v = self.v;
        let Some(q) = v.questionnaire(url) else {
            return; // not loaded: nothing to compare with (the HL7 validator only informs)
        };
        self.qr_items(items(q), items(qr), at);
    }

    /// The response items of one level against the questionnaire items of that level.
    fn qr_items(&mut self, q_items: &[Value], r_items: &[Value], at: &Loc<'_>) {
        let item_step = at.then(Step::Name("item"));
        for (i, r) in r_items.iter().enumerate() {
            let here = item_step.then(Step::Index(i));
            match q_items.iter().find(|q| link_id(q) == link_id(r)) {
                Some(q) => self.qr_item(q, r, &here),
                None => {
                    let m = format!("LinkId '{}' not found in questionnaire", link_id(r));
                    self.push(Issue::error(IssueType::Structure, here.to_string(), m));
                }
            }
        }
        for q in q_items {
            self.required_item(q, r_items, at);
        }
    }

    fn required_item(&mut self, q: &Value, r_items: &[Value], at: &Loc<'_>) {
        let required = q.get("required").and_then(Value::as_bool) == Some(true);
        if !required || q.get("enableWhen").is_some() {
            return;
        }
        let found: Vec<&Value> = r_items
            .iter()
            .filter(|r| link_id(r) == link_id(q))
            .collect();
        let group = q.get("type").and_then(Value::as_str) == Some("group");
        let answered = found.iter().any(|r| {
            if group {
                !items(r).is_empty()
            } else {
                r.get("answer")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty())
            }
        });
        if !answered {
            let m = if group && !found.is_empty() {
                "No sub-items found for required group".to_string()
            } else {
                format!(
                    "No response answer found for required item '{}'",
                    link_id(q)
                )
            };
            self.push(Issue::error(IssueType::Required, at.to_string(), m));
        }
    }

    fn qr_item(&mut self, q: &Value, r: &Value, at: &Loc<'_>) {
        let item_type = q.get("type").and_then(Value::as_str).unwrap_or("");
        let answers = r
            .get("answer")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        if matches!(item_type, "group" | "display" | "question") && !answers.is_empty() {
            let m = format!("Items of type {item_type} should not have answers");
            self.push(Issue::error(IssueType::Structure, at.to_string(), m));
        }
        self.answer_count(q, answers.len(), at);
        let answer_step = at.then(Step::Name("answer"));
        for (i, a) in answers.iter().enumerate() {
            let here = answer_step.then(Step::Index(i));
            self.answer(q, item_type, a, answers, &here);
            self.qr_items(items(q), items(a), &here);
        }
        self.qr_items(items(q), items(r), at);
    }

    fn answer_count(&mut self, q: &Value, n: usize, at: &Loc<'_>) {
        let repeats = q.get("repeats").and_then(Value::as_bool) == Some(true);
        let max_occurs = ext(q, &format!("{EXT}questionnaire-maxOccurs"))
            .find_map(|x| x.get("valueInteger").and_then(Value::as_u64));
        let min_occurs = ext(q, &format!("{EXT}questionnaire-minOccurs"))
            .find_map(|x| x.get("valueInteger").and_then(Value::as_u64));
        let max = if repeats { max_occurs } else { Some(1) };
        if let Some(max) = max.filter(|&m| n as u64 > m) {
            let m = format!("The maximum number of answers is {max} but this has {n} answers");
            self.push(Issue::error(IssueType::Structure, at.to_string(), m));
        }
        if let Some(min) = min_occurs.filter(|&m| (n as u64) < m) {
            let m = format!("The minimum number of answers is {min} but this has {n} answers");
            self.push(Issue::error(IssueType::Structure, at.to_string(), m));
        }
    }

    /// One answer: its type, then the rules of that type.
    fn answer(&mut self, q: &Value, item_type: &str, a: &Value, all: &[Value], at: &Loc<'_>) {
        let Some((suffix, value)) = value_x(a) else {
            return;
        };
        let allowed = allowed_types(item_type);
        if !allowed.is_empty() && !allowed.contains(&suffix) {
            let expected = match item_type {
                "url" => "uri",
                "choice" | "open-choice" => "Coding",
                "attachment" => "Attachment",
                "reference" => "Reference",
                "quantity" => "Quantity",
                "text" => "string",
                t => t,
            };
            let m = format!("Answer value must be of the type {expected} not {suffix}");
            self.push(Issue::error(IssueType::Structure, at.to_string(), m));
            return;
        }
        let mut problems = Vec::new();
        options(q, suffix, value, all, &mut problems);
        bounds(q, suffix, value, &mut problems);
        text_rules(q, value, &mut problems);
        attachment_rules(q, suffix, value, &mut problems);
        reference_rules(self, q, suffix, value, &mut problems);
        quantity_rules(q, suffix, value, &mut problems);
        for m in problems {
            self.push(Issue::error(IssueType::Value, at.to_string(), m));
        }
    }
}

/// `answerOption`: the answer is one of them (open-choice strings excepted); an
/// exclusive option stands alone.
fn options(q: &Value, suffix: &str, value: &Value, all: &[Value], out: &mut Vec<String>) {
    let Some(opts) = q.get("answerOption").and_then(Value::as_array) else {
        return;
    };
    let open = q.get("type").and_then(Value::as_str) == Some("open-choice");
    if open && suffix == "String" {
        return;
    }
    let same = |o: &Value| match value_x(o) {
        Some((s, ov)) if s == suffix && suffix == "Coding" => {
            ov.get("system") == value.get("system") && ov.get("code") == value.get("code")
        }
        Some((s, ov)) => s == suffix && values::same(ov, value),
        None => false,
    };
    let Some(chosen) = opts.iter().find(|o| same(o)) else {
        let shown = match (value.get("system"), value.get("code")) {
            (Some(s), Some(c)) => format!("{}::{}", values::shown(s), values::shown(c)),
            _ => values::shown(value),
        };
        let kind = match suffix {
            "Coding" => "code".to_string(),
            s => s.to_lowercase(),
        };
        out.push(format!(
            "The {kind} {shown} is not in the set of permitted values"
        ));
        return;
    };
    let exclusive = ext(chosen, &format!("{EXT}questionnaire-optionExclusive"))
        .any(|x| x.get("valueBoolean").and_then(Value::as_bool) == Some(true));
    if exclusive && all.len() > 1 {
        out.push(format!(
            "Selected answer {} is an exclusive option - can't select anything else at the same time",
            values::shown(value.get("code").unwrap_or(value))
        ));
    }
}

/// `minValue`/`maxValue` (numbers, dates) and `maxDecimalPlaces`.
fn bounds(q: &Value, suffix: &str, value: &Value, out: &mut Vec<String>) {
    let cmp = |bound: &Value| -> Option<std::cmp::Ordering> {
        let (_, b) = value_x(bound)?;
        match (value, b) {
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (
                    x.to_string().parse::<f64>().ok()?,
                    y.to_string().parse::<f64>().ok()?,
                );
                x.partial_cmp(&y)
            }
            (Value::String(x), Value::String(y)) => Some(x.as_str().cmp(y.as_str())),
            _ => None,
        }
    };
    let shown = values::shown(value);
    for b in ext(q, &format!("{EXT}minValue")) {
        if cmp(b) == Some(std::cmp::Ordering::Less) {
            let limit = value_x(b)
                .map(|(_, v)| values::shown(v))
                .unwrap_or_default();
            out.push(format!(
                "The value {shown} is less than the allowed minimum of {limit}"
            ));
        }
    }
    for b in ext(q, &format!("{EXT}maxValue")) {
        if cmp(b) == Some(std::cmp::Ordering::Greater) {
            let limit = value_x(b)
                .map(|(_, v)| values::shown(v))
                .unwrap_or_default();
            out.push(format!(
                "The value {shown} is greater than the allowed maximum of {limit}"
            ));
        }
    }
    if suffix == "Decimal" {
        let places = ext(q, &format!("{EXT}maxDecimalPlaces"))
            .find_map(|x| x.get("valueInteger").and_then(Value::as_u64));
        let text = value.to_string();
        let have = text.split_once('.').map_or(0, |(_, f)| f.len()) as u64;
        if let Some(limit) = places.filter(|&p| have > p) {
            out.push(format!(
                "The value {text} has too many decimal places (limit = {limit})"
            ));
        }
    }
}

/// `minLength`, `maxLength` and `regex` of string answers.
fn text_rules(q: &Value, value: &Value, out: &mut Vec<String>) {
    let Some(s) = value.as_str() else { return };
    let len = s.chars().count() as u64;
    let min = ext(q, &format!("{EXT}minLength"))
        .find_map(|x| x.get("valueInteger").and_then(Value::as_u64));
    if let Some(min) = min.filter(|&m| len < m) {
        out.push(format!(
            "The answer '{s}' is shorter then the required minimum length of {min}"
        ));
    }
    if let Some(max) = q
        .get("maxLength")
        .and_then(Value::as_u64)
        .filter(|&m| len > m)
    {
        out.push(format!(
            "The answer '{s}' is longer then the allowed maximum length of {max}"
        ));
    }
    for x in ext(q, &format!("{EXT}regex")) {
        let Some(re) = x.get("valueString").and_then(Value::as_str) else {
            continue;
        };
        if regex::Regex::new(re).is_ok_and(|r| !r.is_match(s)) {
            out.push(format!(
                "The answer '{s}' does not conform to the expected format (regex '{re}')"
            ));
        }
    }
}

/// `mimeType` and `maxSize` of attachments.
fn attachment_rules(q: &Value, suffix: &str, value: &Value, out: &mut Vec<String>) {
    if suffix != "Attachment" {
        return;
    }
    let types: Vec<&str> = ext(q, &format!("{EXT}mimeType"))
        .filter_map(|x| x.get("valueCode").and_then(Value::as_str))
        .collect();
    if let Some(ct) = value.get("contentType").and_then(Value::as_str) {
        if !types.is_empty() && !types.contains(&ct) {
            out.push(format!(
                "The mime type {ct} is not valid for this answer (allowed = {})",
                types.join(",")
            ));
        }
    }
    let max = ext(q, &format!("{EXT}maxSize")).find_map(|x| {
        x.get("valueDecimal")
            .or(x.get("valueInteger"))
            .and_then(Value::as_f64)
    });
    let size = match value.get("data").and_then(Value::as_str) {
        Some(d) => Some(values::base64_len(d)),
        None => value.get("size").and_then(Value::as_u64),
    };
    if let (Some(max), Some(size)) = (max, size) {
        if size as f64 > max {
            out.push(format!(
                "The attachment is too large (allowed = {max}, found = {size})"
            ));
        }
    }
}

/// `questionnaire-referenceResource`: the resource types a reference answer may name.
fn reference_rules(run: &Run<'_>, q: &Value, suffix: &str, value: &Value, out: &mut Vec<String>) {
    if suffix != "Reference" {
        return;
    }
    let Some(reference) = value.get("reference").and_then(Value::as_str) else {
        return;
    };
    let parts: Vec<&str> = reference.split('/').collect();
    let Some(rt) = parts.len().checked_sub(2).and_then(|i| parts.get(i)) else {
        return;
    };
    if !run.defs.is_resource_type(rt) {
        out.push(format!(
            "The resource type {rt} in the reference {reference} is not valid"
        ));
        return;
    }
    let allowed: Vec<&str> = ext(q, &format!("{EXT}questionnaire-referenceResource"))
        .filter_map(|x| x.get("valueCode").and_then(Value::as_str))
        .collect();
    if !allowed.is_empty() && !allowed.contains(rt) {
        out.push(format!(
            "The resource type '{rt}' in the reference {reference} is not allowed (allowed = {})",
            allowed.join(",")
        ));
    }
}

/// `questionnaire-unitOption` and the SDC `minQuantity`/`maxQuantity`.
fn quantity_rules(q: &Value, suffix: &str, value: &Value, out: &mut Vec<String>) {
    if suffix != "Quantity" {
        return;
    }
    let units: Vec<&Value> = ext(q, &format!("{EXT}questionnaire-unitOption"))
        .filter_map(|x| x.get("valueCoding"))
        .collect();
    let code = value.get("code").and_then(Value::as_str);
    if !units.is_empty()
        && !units
            .iter()
            .any(|u| u.get("code").and_then(Value::as_str) == code)
    {
        out.push(format!(
            "The value {} has a unit that is not valid",
            values::shown(value)
        ));
    }
    for (name, less) in [("minQuantity", true), ("maxQuantity", false)] {
        for b in ext(q, &format!("{SDC}{name}")).filter_map(|x| x.get("valueQuantity")) {
            match (in_base_unit(value), in_base_unit(b)) {
                (Some((x, ux)), Some((y, uy))) if ux == uy => {
                    if (less && x < y) || (!less && x > y) {
                        let what = if less { "less than the allowed minimum" } else { "greater than the allowed maximum" };
                        out.push(format!("The quantity {} is {what} of {}", values::shown(value), values::shown(b)));
                    }
                }
                _ => out.push(format!(
                    "The quantity {} cannot be compared to the limit {} because no formal units are specified",
                    values::shown(value),
                    values::shown(b)
                )),
            }
        }
    }
}

/// A UCUM quantity in its base unit, for the common metric prefixes.
fn in_base_unit(q: &Value) -> Option<(f64, String)> {
    if q.get("system").and_then(Value::as_str) != Some("http://unitsofmeasure.org") {
        return None;
    }
    let value = q.get("value")?.to_string().parse::<f64>().ok()?;
    let code = q.get("code").and_then(Value::as_str)?;
    let prefixes = [("k", 1e3), ("c", 1e-2), ("m", 1e-3), ("u", 1e-6)];
    for base in ["m", "g", "L", "s"] {
        if code == base {
            return Some((value, base.to_string()));
        }
        for (p, f) in prefixes {
            if code.strip_prefix(p) == Some(base) {
                return Some((value * f, base.to_string()));
            }
        }
    }
    Some((value, code.to_string()))
}
