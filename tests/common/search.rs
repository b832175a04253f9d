//! Helpers of the search tests (`search_api.rs`, `search_results.rs`,
//! `search_scope.rs`): resources tagged per test, searches checked to be searchsets,
//! ids of matches and includes, paging links.

use serde_json::{json, Value};

use super::{unique, Resp, Server};

pub const TAG_SYSTEM: &str = "http://example.org/fhir/test-run";
pub const LOINC: &str = "http://loinc.org";
pub const UCUM: &str = "http://unitsofmeasure.org";

/// A tag code unique to one test; `_tag` restricts searches to that test's resources.
pub fn new_tag() -> String {
    unique("search")
}

/// `_tag=system|code` for a query string.
pub fn tag_param(tag: &str) -> String {
    format!("_tag={TAG_SYSTEM}|{tag}")
}

/// Creates a resource of `resource_type` from `body` (resourceType and the test tag are
/// added) and returns its id.
pub fn create(s: &Server, tag: &str, resource_type: &str, mut body: Value) -> String {
    body["resourceType"] = json!(resource_type);
    let mut tags = body["meta"]["tag"].as_array().cloned().unwrap_or_default();
    tags.push(json!({"system": TAG_SYSTEM, "code": tag}));
    body["meta"]["tag"] = Value::Array(tags);
    s.create_id(resource_type, &body.to_string())
}

/// A Patient with a family name, given names and (optionally) a birth date.
pub fn patient(s: &Server, tag: &str, family: &str, given: &[&str], birth: Option<&str>) -> String {
    let mut body = json!({"name": [{"family": family, "given": given}]});
    if let Some(b) = birth {
        body["birthDate"] = json!(b);
    }
    create(s, tag, "Patient", body)
}

/// A final vital-signs Observation with one LOINC code, about `Patient/{subject}`.
pub fn observation(s: &Server, tag: &str, subject: &str, code: &str, display: &str) -> String {
    create(
        s,
        tag,
        "Observation",
        json!({
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
            "subject": {"reference": format!("Patient/{subject}")},
            "effectiveDateTime": "2021-05-04T09:30:00Z"
        }),
    )
}

/// Checks what every search response must be, and returns the Bundle.
pub fn check_searchset(r: &Resp, query: &str) -> Value {
    assert_eq!(r.status, 200, "search {query}: {}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("application/fhir+json; charset=utf-8"),
        "search {query}"
    );
    let b = r.json();
    assert_eq!(b["resourceType"], "Bundle", "search {query}: {}", r.body);
    assert_eq!(b["type"], "searchset", "search {query}");
    b
}

/// `GET {base}{path}` (path like `/Patient?name=x`); asserts a searchset Bundle.
pub fn search(s: &Server, path: &str) -> Value {
    check_searchset(&s.get(path), path)
}

/// The ids of the `match` entries, sorted.
pub fn ids(bundle: &Value) -> Vec<String> {
    let mut v = ordered_ids(bundle);
    v.sort();
    v
}

/// The ids of the `match` entries, in Bundle order.
pub fn ordered_ids(bundle: &Value) -> Vec<String> {
    entries_with_mode(bundle, "match")
        .iter()
        .map(|e| e["resource"]["id"].as_str().expect("entry id").to_string())
        .collect()
}

/// `Type/id` of the `match` entries, sorted (system searches).
pub fn typed_ids(bundle: &Value) -> Vec<String> {
    typed(&entries_with_mode(bundle, "match"))
}

/// `Type/id` of the `include` entries, sorted.
pub fn included(bundle: &Value) -> Vec<String> {
    typed(&entries_with_mode(bundle, "include"))
}

pub fn typed(entries: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = entries
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap(),
                e["resource"]["id"].as_str().unwrap()
            )
        })
        .collect();
    v.sort();
    v
}

pub fn entries_with_mode(bundle: &Value, mode: &str) -> Vec<Value> {
    bundle["entry"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["search"]["mode"] == mode)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Sorted owned strings, for comparing with [`ids`].
pub fn set(v: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// `Type/id` strings, sorted.
pub fn tset(v: &[(&str, &String)]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|(t, id)| format!("{t}/{id}")).collect();
    v.sort();
    v
}

/// The URL of the link with `relation`, if any.
pub fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"].as_array().and_then(|a| {
        a.iter()
            .find(|l| l["relation"] == relation)
            .and_then(|l| l["url"].as_str().map(str::to_string))
    })
}

/// Follows an absolute link of this server.
pub fn follow(s: &Server, url: &str) -> Value {
    assert!(
        url.starts_with(&s.base),
        "link {url} is not under the server base {}",
        s.base
    );
    search(s, &url[s.base.len()..])
}

/// Percent-encodes one query value.
pub fn enc(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}
