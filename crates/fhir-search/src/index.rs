//! Extraction of index values: each search parameter's FHIRPath expression evaluated
//! over a resource, and every result turned into typed rows, ready for index tables.
//!
//! Conventions (the same as the query AST's): dates are half-open ranges of epoch
//! milliseconds ([`crate::date`]); numbers and quantities carry their exact value and
//! the implicit range of their written precision ([`crate::number`]); strings carry
//! the exact text and the [`crate::normalize`]d form. Rows may repeat (a name given twice).

use fhir_model::{Definitions, SearchParamType};
use fhirpath::{Collection, EvalContext, Item};
use serde_json::Value;

use crate::date::DateRange;
use crate::normalize::normalize;
use crate::number::NumberRange;
use crate::registry::{SearchParam, SearchRegistry};
use crate::value::{is_id, url_tail};

/// The most combinations one composite parameter yields for one resource.
const MAX_COMPOSITE_ROWS: usize = 1024;

mod rows;

pub use rows::*;

/// Extracts the index rows of every parameter of `resource_type` from `resource`.
/// Parameters without expression are skipped; evaluation errors are collected in
/// [`IndexValues::errors`] and the other parameters still extracted.
pub fn extract(registry: &SearchRegistry, resource_type: &str, resource: &Value) -> IndexValues {
    let ctx = EvalContext::with_definitions(registry.definitions());
    let mut out = IndexValues::default();
    for param in registry.params_for(resource_type) {
        extract_param(&ctx, param, resource, &mut out);
    }
    out
}

/// Extracts the rows of the parameters named in `codes` only (a matcher that needs a
/// few of a resource's parameters need not evaluate them all).
pub fn extract_only(
    registry: &SearchRegistry,
    resource_type: &str,
    resource: &Value,
    codes: &std::collections::HashSet<String>,
) -> IndexValues {
    let ctx = EvalContext::with_definitions(registry.definitions());
    let mut out = IndexValues::default();
    let mut params: Vec<&SearchParam> = codes
        .iter()
        .filter_map(|code| registry.param(resource_type, code))
        .collect();
    params.sort_unstable_by(|a, b| a.code().cmp(b.code()));
    for param in params {
        extract_param(&ctx, param, resource, &mut out);
    }
    out
}

/// Extracts the rows of one parameter (appending to `out`).
pub fn extract_param<'a>(
    ctx: &EvalContext<'a>,
    param: &SearchParam,
    resource: &'a Value,
    out: &mut IndexValues,
) {
    let Some(expr) = &param.expression else {
        return;
    };
    let items = match expr.evaluate(ctx, resource) {
        Ok(items) => items,
        Err(e) => {
            out.errors.push(ExtractError {
                param: param.code().to_string(),
                message: e.to_string(),
            });
            return;
        }
    };
    let code = param.code();
    if param.kind() == SearchParamType::Composite {
        for item in items {
            composite_rows(ctx, param, item, out);
        }
        return;
    }
    let mut rows = Vec::new();
    for item in items.iter() {
        convert(
            ctx.definitions(),
            param.kind(),
            code,
            param.targets(),
            item,
            &mut rows,
        );
    }
    for r in rows {
        out.push(r);
    }
}

fn composite_rows<'a>(
    ctx: &EvalContext<'a>,
    param: &SearchParam,
    item: Item<'a>,
    out: &mut IndexValues,
) {
    // Component expressions are relative to nodes typed `BackboneElement` (e.g.
    // `Observation.component`), which the model check cannot follow: evaluate them
    // without it.
    let mut lenient = EvalContext::with_definitions(ctx.definitions());
    lenient.set_lenient(true);
    let mut per_component: Vec<Vec<IndexValue>> = Vec::with_capacity(param.components.len());
    for comp in &param.components {
        let values = match comp
            .expression
            .evaluate_collection(&lenient, Collection::one(item.clone()))
        {
            Ok(v) => v,
            Err(e) => {
                out.errors.push(ExtractError {
                    param: param.code().to_string(),
                    message: format!("component {}: {e}", comp.code),
                });
                return;
            }
        };
        let mut rows = Vec::new();
        for v in values.iter() {
            convert(ctx.definitions(), comp.kind, &comp.code, &[], v, &mut rows);
        }
        if rows.is_empty() {
            return;
        }
        per_component.push(rows);
    }
    if per_component.is_empty() {
        return;
    }
    let mut combos: Vec<Vec<IndexValue>> = vec![Vec::new()];
    for values in &per_component {
        let mut next = Vec::new();
        for combo in &combos {
            for v in values {
                if next.len() >= MAX_COMPOSITE_ROWS {
                    break;
                }
                let mut c = combo.clone();
                c.push(v.clone());
                next.push(c);
            }
        }
        combos = next;
    }
    for components in combos {
        out.composites.push(CompositeRow {
            param: param.code().to_string(),
            components: components.into_iter().map(IndexValue::capped).collect(),
        });
    }
}

/// Turns one evaluation result into rows of the parameter's type.
fn convert(
    defs: &Definitions,
    kind: SearchParamType,
    code: &str,
    targets: &[String],
    item: &Item<'_>,
    out: &mut Vec<IndexValue>,
) {
    match kind {
        SearchParamType::String => strings(code, item, out),
        SearchParamType::Token => tokens(code, item, out),
        SearchParamType::Date => dates(code, item, out),
        SearchParamType::Number => numbers(code, item, out),
        SearchParamType::Quantity => quantities(code, item, out),
        SearchParamType::Reference => references(defs, code, targets, item, out),
        SearchParamType::Uri => {
            if let Some(s) = text_of(item) {
                out.push(IndexValue::Uri(UriRow {
                    param: code.to_string(),
                    uri: s,
                }));
            }
        }
        SearchParamType::Special if code == "near" => crate::near::positions(item, out),
        SearchParamType::Composite | SearchParamType::Special => {}
    }
}

/// The node's JSON object and FHIR type, for complex values.
pub(crate) fn complex<'a>(
    item: &Item<'a>,
) -> Option<(&'a serde_json::Map<String, Value>, &'a str)> {
    let n = item.as_node()?;
    Some((n.value?.as_object()?, n.type_name.unwrap_or("")))
}

/// The text of a primitive (string-like, or any System value's literal form).
fn text_of(item: &Item<'_>) -> Option<String> {
    if let Some(s) = item.as_str() {
        return Some(s.to_string());
    }
    match item.system()? {
        Item::String(s) => Some(s.to_string()),
        Item::Boolean(b) => Some(b.to_string()),
        Item::Integer(i) => Some(i.to_string()),
        Item::Decimal(d) => Some(d.to_string()),
        Item::Date(d) => Some(d.to_string()),
        Item::DateTime(d) => Some(d.to_string()),
        Item::Time(t) => Some(t.to_string()),
        _ => None,
    }
}

fn str_field<'a>(obj: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

/// The strings of a field that is a string or an array of strings.
fn str_fields<'a>(
    obj: &'a serde_json::Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a str> {
    let v = obj.get(key);
    let single = v.and_then(Value::as_str);
    let many = v.and_then(Value::as_array).into_iter().flatten();
    single.into_iter().chain(many.filter_map(Value::as_str))
}

fn strings(code: &str, item: &Item<'_>, out: &mut Vec<IndexValue>) {
    let mut push = |s: &str| {
        if !s.is_empty() {
            out.push(IndexValue::String(StringRow {
                param: code.to_string(),
                value: s.to_string(),
                normalized: normalize(s),
            }));
        }
    };
    match complex(item) {
        Some((obj, "HumanName")) => {
            for key in ["text", "family", "given", "prefix", "suffix"] {
                str_fields(obj, key).for_each(&mut push);
            }
        }
        Some((obj, "Address")) => {
            for key in [
                "text",
                "line",
                "city",
                "district",
                "state",
                "postalCode",
                "country",
            ] {
                str_fields(obj, key).for_each(&mut push);
            }
        }
        Some(_) => {}
        None => {
            if let Some(s) = text_of(item) {
                push(&s);
            }
        }
    }
}

fn token_row(code: &str) -> TokenRow {
    TokenRow {
        param: code.to_string(),
        system: None,
        code: None,
        text: None,
        type_system: None,
        type_code: None,
    }
}

fn coding_row(code: &str, coding: &serde_json::Map<String, Value>, text: Option<&str>) -> TokenRow {
    TokenRow {
        system: str_field(coding, "system").map(str::to_string),
        code: str_field(coding, "code").map(str::to_string),
        text: str_field(coding, "display").or(text).map(normalize),
        ..token_row(code)
    }
}

fn tokens(code: &str, item: &Item<'_>, out: &mut Vec<IndexValue>) {
    let Some((obj, ty)) = complex(item) else {
        if let Some(s) = text_of(item) {
            out.push(IndexValue::Token(TokenRow {
                code: Some(s),
                ..token_row(code)
            }));
        }
        return;
    };
    let codings = |o: &serde_json::Map<String, Value>| -> Vec<serde_json::Map<String, Value>> {
        o.get("coding")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_object().cloned())
            .collect()
    };
    match ty {
        "Coding" => out.push(IndexValue::Token(coding_row(code, obj, None))),
        "CodeableConcept" => {
            let text = str_field(obj, "text");
            let cs = codings(obj);
            for c in &cs {
                out.push(IndexValue::Token(coding_row(code, c, text)));
            }
            if let (true, Some(t)) = (cs.is_empty(), text) {
                out.push(IndexValue::Token(TokenRow {
                    text: Some(normalize(t)),
                    ..token_row(code)
                }));
            }
        }
        "Identifier" => {
            let base = TokenRow {
                system: str_field(obj, "system").map(str::to_string),
                code: str_field(obj, "value").map(str::to_string),
                text: obj
                    .get("type")
                    .and_then(Value::as_object)
                    .and_then(|t| str_field(t, "text"))
                    .map(normalize),
                ..token_row(code)
            };
            let types = obj
                .get("type")
                .and_then(Value::as_object)
                .map(codings)
                .unwrap_or_default();
            if types.is_empty() {
                out.push(IndexValue::Token(base));
            } else {
                for t in &types {
                    out.push(IndexValue::Token(TokenRow {
                        type_system: str_field(t, "system").map(str::to_string),
                        type_code: str_field(t, "code").map(str::to_string),
                        ..base.clone()
                    }));
                }
            }
        }
        "ContactPoint" => {
            if let Some(v) = str_field(obj, "value") {
                out.push(IndexValue::Token(TokenRow {
                    code: Some(v.to_string()),
                    ..token_row(code)
                }));
            }
        }
        _ => {}
    }
}

fn date_row(code: &str, r: DateRange) -> IndexValue {
    IndexValue::Date(DateRow {
        param: code.to_string(),
        start: r.start,
        end: r.end,
    })
}

fn period(code: &str, obj: &serde_json::Map<String, Value>) -> Option<IndexValue> {
    let start = str_field(obj, "start").and_then(DateRange::parse);
    let end = str_field(obj, "end").and_then(DateRange::parse);
    if start.is_none() && end.is_none() {
        return None;
    }
    let start = start.map_or(DateRange::MIN, |r| r.start);
    let end = end.map_or(DateRange::MAX, |r| r.end);
    Some(date_row(
        code,
        DateRange {
            start,
            end: ordered_end(start, end),
        },
    ))
}

/// The end of a Period's entry: its own, or when that comes before the start, the end
/// of the start's first millisecond (the Period is indexed as the instant it starts).
/// Date searches (fhir-store `values.rs`) take an entry's start not to follow its end,
/// which per-1 does not guarantee: it cannot compare a date-time with a date of another
/// precision (`2020-03-01T23:30:00-05:00` to `2020-03-01`), and a store without
/// validation takes any Period. Migration `000023_date_bounds` orders stored entries
/// the same way.
fn ordered_end(start: i64, end: i64) -> i64 {
    if end < start {
        start + 1
    } else {
        end
    }
}

fn dates(code: &str, item: &Item<'_>, out: &mut Vec<IndexValue>) {
    match complex(item) {
        Some((obj, "Period")) => out.extend(period(code, obj)),
        Some((obj, "Timing")) => {
            for e in str_fields(obj, "event") {
                out.extend(DateRange::parse(e).map(|r| date_row(code, r)));
            }
            let bounds = obj
                .get("repeat")
                .and_then(|r| r.get("boundsPeriod"))
                .and_then(Value::as_object);
            if let Some(b) = bounds {
                out.extend(period(code, b));
            }
        }
        Some(_) => {}
        None => {
            if let Some(r) = text_of(item).as_deref().and_then(DateRange::parse) {
                out.push(date_row(code, r));
            }
        }
    }
}

/// The text of a JSON number (as written), or of a System number item.
fn number_text(item: &Item<'_>) -> Option<String> {
    match item.as_node().and_then(|n| n.value) {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => None,
        None => match item.system()? {
            Item::Integer(i) => Some(i.to_string()),
            Item::Decimal(d) => Some(d.to_string()),
            _ => None,
        },
    }
}

fn numbers(code: &str, item: &Item<'_>, out: &mut Vec<IndexValue>) {
    if let Some(number) = number_text(item).as_deref().and_then(NumberRange::parse) {
        out.push(IndexValue::Number(NumberRow {
            param: code.to_string(),
            number,
        }));
    }
}

pub(crate) fn json_number(v: Option<&Value>) -> Option<NumberRange> {
    match v? {
        Value::Number(n) => NumberRange::parse(&n.to_string()),
        _ => None,
    }
}

fn quantity_row(code: &str, obj: &serde_json::Map<String, Value>) -> Option<QuantityRow> {
    let n = json_number(obj.get("value"))?;
    let (low, high) = match str_field(obj, "comparator") {
        Some("<" | "<=") => (None, Some(n.value)),
        Some(">" | ">=") => (Some(n.value), None),
        _ => (Some(n.low), Some(n.high)),
    };
    Some(QuantityRow {
        param: code.to_string(),
        value: Some(n.value),
        low,
        high,
        system: str_field(obj, "system").map(str::to_string),
        code: str_field(obj, "code").map(str::to_string),
        unit: str_field(obj, "unit").map(str::to_string),
    })
}

fn quantities(code: &str, item: &Item<'_>, out: &mut Vec<IndexValue>) {
    match complex(item) {
        Some((obj, "Money")) => {
            if let Some(n) = json_number(obj.get("value")) {
                let currency = str_field(obj, "currency").map(str::to_string);
                out.push(IndexValue::Quantity(QuantityRow {
                    param: code.to_string(),
                    value: Some(n.value),
                    low: Some(n.low),
                    high: Some(n.high),
                    system: currency
                        .as_ref()
                        .map(|_| "urn:iso:std:iso:4217".to_string()),
                    code: currency.clone(),
                    unit: currency,
                }));
            }
        }
        Some((obj, "Range")) => {
            let bound = |k: &str| {
                obj.get(k)
                    .and_then(Value::as_object)
                    .and_then(|q| Some((q, json_number(q.get("value"))?)))
            };
            let (low, high) = (bound("low"), bound("high"));
            let unit_from = low.as_ref().or(high.as_ref()).map(|(q, _)| *q);
            if low.is_some() || high.is_some() {
                out.push(IndexValue::Quantity(QuantityRow {
                    param: code.to_string(),
                    value: None,
                    low: low.as_ref().map(|(_, n)| n.value),
                    high: high.as_ref().map(|(_, n)| n.value),
                    system: unit_from
                        .and_then(|q| str_field(q, "system"))
                        .map(str::to_string),
                    code: unit_from
                        .and_then(|q| str_field(q, "code"))
                        .map(str::to_string),
                    unit: unit_from
                        .and_then(|q| str_field(q, "unit"))
                        .map(str::to_string),
                }));
            }
        }
        Some((obj, _)) => out.extend(quantity_row(code, obj).map(IndexValue::Quantity)),
        None => match item.system() {
            Some(Item::Quantity(q)) => {
                if let Some(n) = NumberRange::parse(&q.value.to_string()) {
                    out.push(IndexValue::Quantity(QuantityRow {
                        param: code.to_string(),
                        value: Some(n.value),
                        low: Some(n.low),
                        high: Some(n.high),
                        system: Some("http://unitsofmeasure.org".into()),
                        code: Some(q.unit.clone()),
                        unit: Some(q.unit),
                    }));
                }
            }
            _ => numbers_as_quantity(code, item, out),
        },
    }
}

/// A bare number where a quantity is expected (no unit).
fn numbers_as_quantity(code: &str, item: &Item<'_>, out: &mut Vec<IndexValue>) {
    if let Some(n) = number_text(item).as_deref().and_then(NumberRange::parse) {
        out.push(IndexValue::Quantity(QuantityRow {
            param: code.to_string(),
            value: Some(n.value),
            low: Some(n.low),
            high: Some(n.high),
            system: None,
            code: None,
            unit: None,
        }));
    }
}

/// Parses a literal reference into the row's type/id/version/url/contained fields.
fn parse_reference(defs: &Definitions, reference: &str, row: &mut ReferenceRow) {
    row.reference = Some(reference.to_string());
    if let Some(id) = reference.strip_prefix('#') {
        row.contained = true;
        row.id = (!id.is_empty()).then(|| id.to_string());
        return;
    }
    if reference.contains("://") || reference.starts_with("urn:") {
        let (url, version) = match reference.split_once('|') {
            Some((u, v)) => (u, Some(v.to_string())),
            None => (reference, None),
        };
        row.url = Some(url.to_string());
        let (ty, id, hist) = url_tail(defs, url);
        row.target_type = ty.or(row.target_type.take());
        row.id = id;
        row.version = hist.or(version);
        return;
    }
    let parts: Vec<&str> = reference.split('/').collect();
    match parts.as_slice() {
        [ty, id] if is_id(id) && defs.is_resource_type(ty) => {
            row.target_type = Some((*ty).to_string());
            row.id = Some((*id).to_string());
        }
        [ty, id, "_history", v] if is_id(id) && defs.is_resource_type(ty) => {
            row.target_type = Some((*ty).to_string());
            row.id = Some((*id).to_string());
            row.version = Some((*v).to_string());
        }
        _ => {}
    }
}

fn references(
    defs: &Definitions,
    code: &str,
    targets: &[String],
    item: &Item<'_>,
    out: &mut Vec<IndexValue>,
) {
    let mut row = ReferenceRow {
        param: code.to_string(),
        ..ReferenceRow::default()
    };
    match complex(item) {
        Some((obj, "Reference")) => {
            row.target_type = str_field(obj, "type").map(str::to_string);
            if let Some(r) = str_field(obj, "reference") {
                parse_reference(defs, r, &mut row);
            }
            if let Some(ident) = obj.get("identifier").and_then(Value::as_object) {
                row.identifier_system = str_field(ident, "system").map(str::to_string);
                row.identifier_value = str_field(ident, "value").map(str::to_string);
            }
            if row.reference.is_none() && row.identifier_value.is_none() {
                return;
            }
        }
        Some(_) => return,
        None => match text_of(item) {
            Some(s) if !s.is_empty() => parse_reference(defs, &s, &mut row),
            _ => return,
        },
    }
    if row.target_type.is_none() && !row.contained && row.id.is_some() {
        if let [only] = targets {
            row.target_type = Some(only.clone());
        }
    }
    out.push(IndexValue::Reference(row));
}
