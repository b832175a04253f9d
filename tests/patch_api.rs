//! Black-box tests of FHIRPath Patch (fhirpatch.html) over HTTP: a Parameters body
//! (JSON or XML) on `PATCH [type]/[id]` and on conditional patch, and as a Bundle
//! entry; bad patches get 400, patches that cannot be applied or that would make the
//! resource invalid get 422 and write nothing.

mod common;

use common::{shared, unique, Backend};
use serde_json::{json, Value};

fn op(kind: &str, path: &str, more: Vec<Value>) -> Value {
    let mut parts = vec![
        json!({"name": "type", "valueCode": kind}),
        json!({"name": "path", "valueString": path}),
    ];
    parts.extend(more);
    json!({"name": "operation", "part": parts})
}

fn params(ops: Vec<Value>) -> String {
    json!({"resourceType": "Parameters", "parameter": ops}).to_string()
}

fn patient(s: &common::Server) -> (String, String) {
    let id = s.create_id(
        "Patient",
        r#"{"resourceType":"Patient","active":false,"name":[{"family":"Doe","given":["Jo","Ann"]}],"birthDate":"1970-01-01"}"#,
    );
    let path = format!("/Patient/{id}");
    (id, path)
}

fn fhirpath_patch_changes_a_resource(b: Backend) {
    let s = shared(b);
    let (_, path) = patient(s);
    let body = params(vec![
        op(
            "replace",
            "Patient.birthDate",
            vec![json!({"name": "value", "valueDate": "1975-05-05"})],
        ),
        op(
            "add",
            "Patient",
            vec![
                json!({"name": "name", "valueString": "deceased"}),
                json!({"name": "value", "valueBoolean": false}),
            ],
        ),
        op(
            "insert",
            "Patient.name[0].given",
            vec![
                json!({"name": "index", "valueInteger": 0}),
                json!({"name": "value", "valueString": "Mary"}),
            ],
        ),
        op("delete", "Patient.active", vec![]),
        op(
            "move",
            "Patient.name[0].given",
            vec![
                json!({"name": "source", "valueInteger": 2}),
                json!({"name": "destination", "valueInteger": 1}),
            ],
        ),
    ]);
    let r = s.req("PATCH", &path).json(&body);
    assert_eq!(r.status, 200, "{}", r.body);
    let p = s.get(&path).json();
    assert_eq!(p["birthDate"], "1975-05-05");
    assert_eq!(p["deceasedBoolean"], false);
    assert_eq!(p["name"][0]["given"], json!(["Mary", "Ann", "Jo"]));
    assert!(p.get("active").is_none(), "{p}");
    assert_eq!(p["meta"]["versionId"], "2");
}

fn fhirpath_patch_in_xml_and_conditionally(b: Backend) {
    let s = shared(b);
    let mrn = unique("fpp");
    s.create_id(
        "Patient",
        &json!({"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": mrn}]})
            .to_string(),
    );
    let xml = r#"<Parameters xmlns="http://hl7.org/fhir"><parameter><name value="operation"/>
        <part><name value="type"/><valueCode value="add"/></part>
        <part><name value="path"/><valueString value="Patient"/></part>
        <part><name value="name"/><valueString value="gender"/></part>
        <part><name value="value"/><valueCode value="female"/></part></parameter></Parameters>"#;
    let r = s
        .req("PATCH", &format!("/Patient?identifier=urn:mrn|{mrn}"))
        .header("Content-Type", "application/fhir+xml")
        .bytes(xml.as_bytes());
    assert_eq!(r.status, 200, "{}", r.body);
    let found = s.get(&format!("/Patient?identifier=urn:mrn|{mrn}")).json();
    assert_eq!(found["entry"][0]["resource"]["gender"], "female");
}

fn fhirpath_patch_errors_write_nothing(b: Backend) {
    let s = shared(b);
    let (_, path) = patient(s);
    // Not a FHIRPath Patch: 400 naming the part.
    let r = s
        .req("PATCH", &path)
        .json(&params(vec![op("rename", "Patient", vec![])]));
    let oo = r.outcome(400);
    assert!(
        oo.to_string().contains("'rename' is not a patch operation"),
        "{oo}"
    );
    assert_eq!(r.issue_expression(), "Parameters.parameter[0].part");
    // Cannot be applied: 422 naming the operation.
    let r = s.req("PATCH", &path).json(&params(vec![op(
        "replace",
        "Patient.gender",
        vec![json!({"name": "value", "valueCode": "male"})],
    )]));
    let oo = r.outcome(422);
    assert!(
        oo.to_string()
            .contains("operation 0 (replace at 'Patient.gender')"),
        "{oo}"
    );
    // Applies, but the result is invalid (gender not in its required value set).
    let r = s.req("PATCH", &path).json(&params(vec![op(
        "add",
        "Patient",
        vec![
            json!({"name": "name", "valueString": "gender"}),
            json!({"name": "value", "valueCode": "robot"}),
        ],
    )]));
    r.outcome(422);
    // A later operation failing undoes the earlier ones.
    let r = s.req("PATCH", &path).json(&params(vec![
        op("delete", "Patient.birthDate", vec![]),
        op("delete", "Patient.name.given", vec![]),
    ]));
    let oo = r.outcome(422);
    assert!(oo.to_string().contains("finds 2 elements"), "{oo}");
    let p = s.get(&path).json();
    assert_eq!(
        p["meta"]["versionId"], "1",
        "refused patches write nothing: {p}"
    );
    assert_eq!(p["birthDate"], "1970-01-01");
    // A Parameters that is not JSON, and an unknown media type.
    s.req("PATCH", &path).json("{").outcome(400);
    s.req("PATCH", &path)
        .header("Content-Type", "text/plain")
        .json("x")
        .outcome(415);
}

fn fhirpath_patch_in_a_transaction(b: Backend) {
    let s = shared(b);
    let (id, path) = patient(s);
    let body = json!({"resourceType": "Parameters", "parameter": [op("replace", "Patient.active",
        vec![json!({"name": "value", "valueBoolean": true})])]});
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": body, "request": {"method": "PATCH", "url": format!("Patient/{id}")}}]});
    let r = s.req("POST", "").json(&tx.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.get(&path).json()["active"], true);
    // A malformed one is refused, pointing into the entry.
    let bad =
        json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": []}]});
    let tx = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": bad, "request": {"method": "PATCH", "url": format!("Patient/{id}")}}]});
    let r = s.req("POST", "").json(&tx.to_string());
    r.outcome(400);
    assert!(
        r.issue_expression()
            .starts_with("Bundle.entry[0].resource.parameter[0]"),
        "{}",
        r.body
    );
}

fn capability_statement_lists_both_patch_formats(b: Backend) {
    let s = shared(b);
    let cs = s.get("/metadata").json();
    let formats: Vec<&str> = cs["patchFormat"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        formats.contains(&"application/json-patch+json"),
        "{formats:?}"
    );
    assert!(formats.contains(&"application/fhir+json"), "{formats:?}");
}

both_backends!(
    fhirpath_patch_changes_a_resource,
    fhirpath_patch_in_xml_and_conditionally,
    fhirpath_patch_errors_write_nothing,
    fhirpath_patch_in_a_transaction,
    capability_statement_lists_both_patch_formats,
);
