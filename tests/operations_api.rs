//! Black-box tests of the resource operations beyond CRUD: `$meta` at every level,
//! `$meta-add` and `$meta-delete` (resource-operations.html), Binary resources as raw
//! content (binary.html), Composition `$document` (composition-operations.html), and
//! `$expunge` (hard deletion for administrators, off by default).

mod common;

use std::collections::BTreeSet;

use common::{shared, unique, Backend, Server};
use serde_json::{json, Value};

fn meta_param(meta: Value) -> String {
    json!({"resourceType": "Parameters", "parameter": [{"name": "meta", "valueMeta": meta}]})
        .to_string()
}

fn returned(r: &common::Resp) -> Value {
    assert_eq!(r.status, 200, "{}", r.body);
    let p = r.json();
    assert_eq!(p["resourceType"], "Parameters", "{p}");
    assert_eq!(p["parameter"][0]["name"], "return", "{p}");
    p["parameter"][0]["valueMeta"].clone()
}

fn codes(meta: &Value, key: &str, system: &str) -> Vec<String> {
    meta[key]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|c| c["system"] == system)
        .filter_map(|c| c["code"].as_str().map(str::to_string))
        .collect()
}

fn meta_add_and_delete_change_tags_and_labels(b: Backend) {
    let s = shared(b);
    let sys = format!("urn:test:{}", unique("tags"));
    let id = s.create_id(
        "Patient",
        &json!({"resourceType": "Patient", "meta": {"tag": [{"system": sys, "code": "x"}]}})
            .to_string(),
    );
    let add = meta_param(
        json!({"tag": [{"system": sys, "code": "y", "display": "Y"}, {"system": sys, "code": "x"}],
        "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]}),
    );
    let meta = returned(
        &s.req("POST", &format!("/Patient/{id}/$meta-add"))
            .json(&add),
    );
    assert_eq!(
        codes(&meta, "tag", &sys),
        ["x", "y"],
        "sets: no duplicate x: {meta}"
    );
    assert_eq!(meta["security"][0]["code"], "R");
    assert_eq!(meta["versionId"], "2");
    let read = s.get(&format!("/Patient/{id}")).json();
    assert_eq!(codes(&read["meta"], "tag", &sys), ["x", "y"]);
    // Adding what is there already writes nothing.
    let meta = returned(
        &s.req("POST", &format!("/Patient/{id}/$meta-add"))
            .json(&add),
    );
    assert_eq!(meta["versionId"], "2");
    // The instance and version levels of $meta answer the stored meta.
    let now = returned(&s.get(&format!("/Patient/{id}/$meta")));
    assert_eq!(now, read["meta"]);
    let first = returned(&s.get(&format!("/Patient/{id}/_history/1/$meta")));
    assert_eq!(codes(&first, "tag", &sys), ["x"]);
    // Delete matches by system and code (display ignored); absent ones are no error.
    let del = meta_param(
        json!({"tag": [{"system": sys, "code": "x", "display": "other"}, {"system": sys, "code": "zz"}]}),
    );
    let meta = returned(
        &s.req("POST", &format!("/Patient/{id}/$meta-delete"))
            .json(&del),
    );
    assert_eq!(codes(&meta, "tag", &sys), ["y"]);
    assert_eq!(meta["versionId"], "3");
    // The history keeps each version.
    let history = s.get(&format!("/Patient/{id}/_history")).json();
    assert_eq!(history["total"], 3);
}

fn meta_at_type_and_system_level_lists_what_is_in_use(b: Backend) {
    let s = shared(b);
    let sys = format!("urn:test:{}", unique("inuse"));
    s.create_id(
        "Observation",
        &json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "meta": {"tag": [{"system": sys, "code": "obs-tag"}]}})
        .to_string(),
    );
    let meta = returned(&s.get("/Observation/$meta"));
    assert_eq!(codes(&meta, "tag", &sys), ["obs-tag"]);
    assert!(meta.get("versionId").is_none(), "{meta}");
    let meta = returned(&s.req("POST", "/$meta").send());
    assert_eq!(codes(&meta, "tag", &sys), ["obs-tag"]);
    let meta = returned(&s.get("/Patient/$meta"));
    assert!(codes(&meta, "tag", &sys).is_empty(), "{meta}");
}

fn meta_operations_refuse_bad_requests(b: Backend) {
    let s = shared(b);
    let id = s.create_id("Patient", r#"{"resourceType":"Patient"}"#);
    let path = format!("/Patient/{id}/$meta-add");
    s.req("POST", &path)
        .json(r#"{"resourceType":"Patient"}"#)
        .outcome(400);
    s.req("POST", &path)
        .json(r#"{"resourceType":"Parameters","parameter":[{"name":"meta","valueString":"x"}]}"#)
        .outcome(400);
    s.req("POST", "/Patient/no-such-one/$meta-add")
        .json(&meta_param(json!({"tag": [{"code": "a"}]})))
        .outcome(404);
    s.get("/Patient/no-such-one/$meta").outcome(404);
    s.get(&format!("/Patient/{id}/_history/9/$meta"))
        .outcome(404);
    s.get("/NotAType/$meta").outcome(404);
    let r = s.get(&path);
    r.outcome(405);
    assert_eq!(r.header("Allow"), Some("POST"));
    // Deleted resources have no meta to change.
    s.req("DELETE", &format!("/Patient/{id}")).send();
    s.req("POST", &path)
        .json(&meta_param(json!({"tag": [{"code": "a"}]})))
        .outcome(410);
}

fn binary_is_read_and_written_as_raw_content(b: Backend) {
    let s = shared(b);
    let pdf = b"%PDF-1.4 a document for a partner";
    let r = s
        .req("POST", "/Binary")
        .header("Content-Type", "application/pdf")
        .header("X-Security-Context", "DocumentReference/doc-1")
        .bytes(pdf);
    assert_eq!(r.status, 201, "{}", r.body);
    let location = r.header("location").expect("Location").to_string();
    let id = location
        .split("/Binary/")
        .nth(1)
        .expect("id")
        .split('/')
        .next()
        .expect("id")
        .to_string();
    // Without a FHIR Accept: the bytes, with the Binary's content type.
    let raw = s.get(&format!("/Binary/{id}"));
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("content-type"), Some("application/pdf"));
    assert_eq!(raw.body.as_bytes(), pdf);
    assert_eq!(raw.header("etag"), Some("W/\"1\""));
    let raw = s
        .req("GET", &format!("/Binary/{id}"))
        .header("Accept", "application/pdf")
        .send();
    assert_eq!(raw.body.as_bytes(), pdf);
    // Asking for FHIR: the resource, data in base64.
    let json = s
        .req("GET", &format!("/Binary/{id}"))
        .header("Accept", "application/fhir+json")
        .send()
        .json();
    assert_eq!(json["resourceType"], "Binary");
    assert_eq!(json["contentType"], "application/pdf");
    assert_eq!(
        json["securityContext"]["reference"],
        "DocumentReference/doc-1"
    );
    assert_eq!(json["data"], "JVBERi0xLjQgYSBkb2N1bWVudCBmb3IgYSBwYXJ0bmVy");
    assert_eq!(
        s.get(&format!("/Binary/{id}?_format=json")).json()["resourceType"],
        "Binary"
    );
    // An update with raw content; vread keeps each version's bytes.
    let r = s
        .req("PUT", &format!("/Binary/{id}"))
        .header("Content-Type", "text/plain")
        .bytes(b"version two");
    assert_eq!(r.status, 200, "{}", r.body);
    let now = s.get(&format!("/Binary/{id}"));
    assert_eq!(now.header("content-type"), Some("text/plain"));
    assert_eq!(now.body, "version two");
    assert_eq!(
        s.get(&format!("/Binary/{id}/_history/1")).body.as_bytes(),
        pdf
    );
    // A Binary written as FHIR JSON reads as raw content too.
    let id = s.create_id(
        "Binary",
        r#"{"resourceType":"Binary","contentType":"text/plain","data":"aGVsbG8="}"#,
    );
    assert_eq!(s.get(&format!("/Binary/{id}")).body, "hello");
    // A Binary stored leniently whose data is not base64: answered as FHIR, never a 500.
    let r = s
        .req("POST", "/Binary")
        .header("Prefer", "handling=lenient")
        .json(r#"{"resourceType":"Binary","contentType":"text/plain","data":"!!not base64!!"}"#);
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().expect("id").to_string();
    let r = s.get(&format!("/Binary/{id}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["resourceType"], "Binary");
    // Other types still refuse bodies that are not FHIR.
    s.req("POST", "/Patient")
        .header("Content-Type", "application/pdf")
        .bytes(pdf)
        .outcome(415);
}

fn composition_document_gathers_what_it_refers_to(b: Backend) {
    let s = shared(b);
    let org = s.create_id(
        "Organization",
        r#"{"resourceType":"Organization","name":"Clinic"}"#,
    );
    let doctor = s.create_id(
        "Practitioner",
        &json!({"resourceType": "Practitioner", "name": [{"family": "Who"}]}).to_string(),
    );
    let patient = s.create_id(
        "Patient",
        &json!({"resourceType": "Patient", "managingOrganization": {"reference": format!("Organization/{org}")}}).to_string(),
    );
    let obs = s.create_id(
        "Observation",
        &json!({"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
            "subject": {"reference": format!("Patient/{patient}")}})
        .to_string(),
    );
    let composition = json!({"resourceType": "Composition", "status": "final", "type": {"text": "Discharge summary"},
        "date": "2026-12-01", "title": "Discharge", "subject": {"reference": format!("Patient/{patient}")},
        "author": [{"reference": format!("Practitioner/{doctor}")}, {"reference": "http://elsewhere.org/fhir/Practitioner/x"}],
        "section": [{"title": "Results", "entry": [{"reference": format!("Observation/{obs}")}]}]});
    let cid = s.create_id("Composition", &composition.to_string());
    let r = s.get(&format!("/Composition/{cid}/$document"));
    assert_eq!(r.status, 200, "{}", r.body);
    let doc = r.json();
    assert_eq!(doc["type"], "document");
    assert!(
        doc["identifier"]["value"].is_string() && doc["timestamp"].is_string(),
        "{doc}"
    );
    let entries = doc["entry"].as_array().expect("entries");
    assert_eq!(entries[0]["resource"]["resourceType"], "Composition");
    let keys: BTreeSet<String> = entries
        .iter()
        .map(|e| {
            let url = e["fullUrl"].as_str().expect("fullUrl");
            assert!(url.starts_with(&s.base), "{url}");
            format!(
                "{}/{}",
                e["resource"]["resourceType"].as_str().unwrap(),
                e["resource"]["id"].as_str().unwrap()
            )
        })
        .collect();
    let expected = BTreeSet::from([
        format!("Composition/{cid}"),
        format!("Patient/{patient}"),
        format!("Practitioner/{doctor}"),
        format!("Observation/{obs}"),
        format!("Organization/{org}"),
    ]);
    assert_eq!(
        keys, expected,
        "the composition, what it refers to, and what those refer to"
    );
    // persist=true stores the document as a Bundle.
    let r = s
        .req(
            "POST",
            &format!("/Composition/{cid}/$document?persist=true"),
        )
        .send();
    assert_eq!(r.status, 200, "{}", r.body);
    let stored = r.json();
    let bid = stored["id"].as_str().expect("stored id");
    assert_eq!(s.get(&format!("/Bundle/{bid}")).json()["type"], "document");
    s.get("/Composition/no-such/$document").outcome(404);
    s.get(&format!("/Composition/{cid}/$document?persist=maybe"))
        .outcome(400);
    s.get(&format!("/Composition/{cid}/$document?graph=x"))
        .outcome(400);
}

fn expunge_removes_history_and_deleted_resources(b: Backend) {
    // Off by default.
    let params = |flags: &[(&str, bool)]| {
        let p: Vec<Value> = flags
            .iter()
            .map(|(n, v)| json!({"name": n, "valueBoolean": v}))
            .collect();
        json!({"resourceType": "Parameters", "parameter": p}).to_string()
    };
    let prev = params(&[("expungePreviousVersions", true)]);
    shared(b)
        .req("POST", "/Patient/$expunge")
        .json(&prev)
        .outcome(403);
    let s = Server::start_with(b, &["--expunge", "on"]);
    let id = s.create_id("Patient", r#"{"resourceType":"Patient","active":true}"#);
    for active in [false, true] {
        let body = json!({"resourceType": "Patient", "id": id, "active": active}).to_string();
        assert_eq!(
            s.req("PUT", &format!("/Patient/{id}")).json(&body).status,
            200
        );
    }
    let gone = s.create_id("Patient", r#"{"resourceType":"Patient"}"#);
    s.req("DELETE", &format!("/Patient/{gone}")).send();
    let count = |r: common::Resp| -> i64 {
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["parameter"][0]["valueInteger"]
            .as_i64()
            .expect("count")
    };
    // Instance level: the two earlier versions go, the current one stays.
    assert_eq!(
        count(
            s.req("POST", &format!("/Patient/{id}/$expunge"))
                .json(&prev)
        ),
        2
    );
    assert_eq!(s.get(&format!("/Patient/{id}/_history")).json()["total"], 1);
    s.get(&format!("/Patient/{id}/_history/1")).outcome(404);
    assert_eq!(
        s.get(&format!("/Patient/{id}")).json()["meta"]["versionId"],
        "3"
    );
    // Type level: the deleted Patient and its versions go; it is unknown (404), not 410.
    assert_eq!(s.get(&format!("/Patient/{gone}")).status, 410);
    let del = params(&[("expungeDeletedResources", true)]);
    assert_eq!(count(s.req("POST", "/Patient/$expunge").json(&del)), 2);
    s.get(&format!("/Patient/{gone}")).outcome(404);
    assert_eq!(s.get(&format!("/Patient/{id}")).status, 200);
    // Bad requests.
    s.req("POST", "/Patient/$expunge")
        .json(&params(&[]))
        .outcome(400);
    s.req("POST", "/$expunge")
        .json(&params(&[("expungeEverything", true)]))
        .outcome(400);
    s.req("POST", "/AuditEvent/$expunge")
        .json(&del)
        .outcome(403);
    let r = s.get("/Patient/$expunge");
    r.outcome(405);
    assert_eq!(r.header("Allow"), Some("POST"));
}

both_backends!(
    expunge_removes_history_and_deleted_resources,
    composition_document_gathers_what_it_refers_to,
    binary_is_read_and_written_as_raw_content,
    meta_add_and_delete_change_tags_and_labels,
    meta_at_type_and_system_level_lists_what_is_in_use,
    meta_operations_refuse_bad_requests,
);
