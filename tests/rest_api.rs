//! Black-box tests of the RESTful API (http.html of FHIR R4) against a real server
//! process, on SQLite and on PostgreSQL.

mod common;

use std::sync::{Arc, Barrier};

use common::{shared, unique, Backend, Server};
use serde_json::{json, Value};

fn patient(identifier: &str) -> String {
    json!({
        "resourceType": "Patient",
        "identifier": [{"system": "http://hospital.example/mrn", "value": identifier}],
        "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
        "birthDate": "1974-12-25"
    })
    .to_string()
}

fn version_of(r: &common::Resp) -> String {
    r.json()["meta"]["versionId"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

// ------------------------------------------------------------------ create / read

fn create_returns_201_with_location_etag_and_the_resource(b: Backend) {
    let s = shared(b);
    let r = s.req("POST", "/Patient").json(&patient(&unique("c")));
    assert_eq!(r.status, 201, "{}", r.body);
    let body = r.json();
    let id = body["id"].as_str().unwrap();
    assert_eq!(body["meta"]["versionId"], "1");
    assert!(body["meta"]["lastUpdated"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        r.header("location").unwrap(),
        s.url(&format!("/Patient/{id}/_history/1"))
    );
    assert_eq!(r.header("etag"), Some("W/\"1\""));
    assert!(r.header("last-modified").unwrap().ends_with("GMT"));
    assert_eq!(
        r.header("content-type"),
        Some("application/fhir+json; charset=utf-8")
    );
}

fn create_ignores_a_client_id(b: Backend) {
    let s = shared(b);
    let r = s.create(
        "Patient",
        r#"{"resourceType":"Patient","id":"client-chosen"}"#,
    );
    assert_eq!(r.status, 201);
    assert_ne!(r.json()["id"], "client-chosen");
}

fn read_returns_the_current_version_with_headers(b: Backend) {
    let s = shared(b);
    let id = s.create_id("Patient", &patient(&unique("r")));
    let r = s.get(&format!("/Patient/{id}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("etag"), Some("W/\"1\""));
    assert!(r.header("last-modified").is_some());
    assert_eq!(r.json()["name"][0]["given"][1], "James");
}

fn summary_and_elements_on_read(b: Backend) {
    let s = shared(b);
    let body = json!({"resourceType": "Patient", "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">P</div>"},
        "name": [{"family": "Sum"}], "contact": [{"name": {"family": "C"}}], "birthDate": "1970-01-01"});
    let id = s.create_id("Patient", &body.to_string());
    let summary = s.get(&format!("/Patient/{id}?_summary=true")).json();
    assert_eq!(summary["name"][0]["family"], "Sum");
    assert!(summary.get("contact").is_none() && summary.get("text").is_none());
    assert_eq!(summary["meta"]["tag"][0]["code"], "SUBSETTED");
    let elements = s.get(&format!("/Patient/{id}?_elements=contact")).json();
    assert!(elements.get("contact").is_some() && elements.get("name").is_none());
    let data = s
        .get(&format!("/Patient/{id}/_history/1?_summary=data"))
        .json();
    assert!(data.get("text").is_none() && data.get("contact").is_some());
    assert!(
        s.get(&format!("/Patient/{id}?_summary=false")).json()["meta"]
            .get("tag")
            .is_none()
    );
    s.get(&format!("/Patient/{id}?_summary=count")).outcome(400);
    s.get(&format!("/Patient/{id}?_summary=maybe")).outcome(400);
}

fn stored_json_is_lossless(b: Backend) {
    let s = shared(b);
    let body = r#"{"resourceType":"Observation","status":"final","code":{"text":"weight"},"valueQuantity":{"value":70.50,"unit":"kg"},"component":[{"code":{"text":"tiny"},"valueQuantity":{"value":0.000001}}],"note":[{"text":"x","_text":{"extension":[{"url":"http://e.org/a","valueString":"b"}]}}],"extension":[{"url":"http://e.org/list","valueString":"y"}]}"#;
    let id = s.create_id("Observation", body);
    let text = s.get(&format!("/Observation/{id}")).body;
    assert!(
        text.contains(r#""valueQuantity":{"value":70.50,"unit":"kg"}"#),
        "{text}"
    );
    assert!(text.contains(r#""value":0.000001"#), "{text}");
    assert!(
        text.contains(r#""_text":{"extension":[{"url":"http://e.org/a","valueString":"b"}]}"#),
        "{text}"
    );
}

fn vread_returns_each_version_and_404_for_unknown_versions(b: Backend) {
    let s = shared(b);
    let id = s.create_id("Patient", &patient(&unique("v")));
    let mut p: Value = s.get(&format!("/Patient/{id}")).json();
    p["active"] = json!(true);
    assert_eq!(
        s.req("PUT", &format!("/Patient/{id}"))
            .json(&p.to_string())
            .status,
        200
    );
    let v1 = s.get(&format!("/Patient/{id}/_history/1"));
    assert_eq!(v1.status, 200);
    assert!(v1.json().get("active").is_none());
    assert_eq!(v1.header("etag"), Some("W/\"1\""));
    let v2 = s.get(&format!("/Patient/{id}/_history/2"));
    assert_eq!(v2.json()["active"], true);
    s.get(&format!("/Patient/{id}/_history/3")).outcome(404);
    s.get(&format!("/Patient/{id}/_history/x")).outcome(404);
}

fn read_of_unknown_resources_and_types(b: Backend) {
    let s = shared(b);
    s.get("/Patient/does-not-exist").outcome(404);
    let r = s.get("/Patientx/1");
    r.outcome(404);
    assert!(r.body.contains("unknown resource type"));
    s.get("/Patient/bad$id").outcome(400);
    s.get(&format!("/Patient/{}", "a".repeat(65))).outcome(400);
}

// ------------------------------------------------------------------------ update

fn update_creates_a_new_version(b: Backend) {
    let s = shared(b);
    let id = s.create_id("Patient", &patient(&unique("u")));
    let mut p: Value = s.get(&format!("/Patient/{id}")).json();
    p["gender"] = json!("male");
    let r = s.req("PUT", &format!("/Patient/{id}")).json(&p.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(version_of(&r), "2");
    assert_eq!(r.header("etag"), Some("W/\"2\""));
    assert_eq!(s.get(&format!("/Patient/{id}")).json()["gender"], "male");
}

fn update_as_create_uses_the_client_id(b: Backend) {
    let s = shared(b);
    let id = unique("client");
    let r = s
        .req("PUT", &format!("/Patient/{id}"))
        .json(&format!(r#"{{"resourceType":"Patient","id":"{id}"}}"#));
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.header("location").unwrap(),
        s.url(&format!("/Patient/{id}/_history/1"))
    );
    assert_eq!(s.get(&format!("/Patient/{id}")).status, 200);
}

fn update_checks_the_id(b: Backend) {
    let s = shared(b);
    let r = s
        .req("PUT", "/Patient/abc")
        .json(r#"{"resourceType":"Patient","id":"xyz"}"#);
    r.outcome(400);
    assert_eq!(r.issue_expression(), "Patient.id");
    let r = s
        .req("PUT", "/Patient/abc")
        .json(r#"{"resourceType":"Patient"}"#);
    r.outcome(400);
    assert_eq!(r.issue_expression(), "Patient.id");
    s.req("PUT", "/Patient/a_b")
        .json(r#"{"resourceType":"Patient","id":"a_b"}"#)
        .outcome(400);
}

fn if_match_guards_updates(b: Backend) {
    let s = shared(b);
    let id = s.create_id("Patient", &patient(&unique("m")));
    let body = format!(r#"{{"resourceType":"Patient","id":"{id}","active":true}}"#);
    let ok = s
        .req("PUT", &format!("/Patient/{id}"))
        .header("If-Match", "W/\"1\"")
        .json(&body);
    assert_eq!(ok.status, 200);
    let stale = s
        .req("PUT", &format!("/Patient/{id}"))
        .header("If-Match", "W/\"1\"")
        .json(&body);
    stale.outcome(412);
    assert_eq!(
        version_of(&s.get(&format!("/Patient/{id}"))),
        "2",
        "a failed update writes nothing"
    );
    s.req("PUT", &format!("/Patient/{id}"))
        .header("If-Match", "garbage")
        .json(&body)
        .outcome(400);
    let del = s
        .req("DELETE", &format!("/Patient/{id}"))
        .header("If-Match", "W/\"1\"")
        .send();
    del.outcome(412);
}

fn if_none_match_star_only_creates(b: Backend) {
    let s = shared(b);
    let id = unique("inm");
    let body = format!(r#"{{"resourceType":"Patient","id":"{id}"}}"#);
    assert_eq!(
        s.req("PUT", &format!("/Patient/{id}"))
            .header("If-None-Match", "*")
            .json(&body)
            .status,
        201
    );
    s.req("PUT", &format!("/Patient/{id}"))
        .header("If-None-Match", "*")
        .json(&body)
        .outcome(412);
}

fn conditional_reads_answer_304(b: Backend) {
    let s = shared(b);
    let id = s.create_id("Patient", &patient(&unique("304")));
    let r = s
        .req("GET", &format!("/Patient/{id}"))
        .header("If-None-Match", "W/\"1\"")
        .send();
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some("W/\"1\""));
    let r = s
        .req("GET", &format!("/Patient/{id}"))
        .header("If-None-Match", "W/\"7\"")
        .send();
    assert_eq!(r.status, 200);
    let lm = r.header("last-modified").unwrap().to_string();
    assert_eq!(
        s.req("GET", &format!("/Patient/{id}"))
            .header("If-Modified-Since", &lm)
            .send()
            .status,
        304
    );
    let old = "Mon, 01 Jan 2001 00:00:00 GMT";
    assert_eq!(
        s.req("GET", &format!("/Patient/{id}"))
            .header("If-Modified-Since", old)
            .send()
            .status,
        200
    );
}

// ------------------------------------------------------------------------ delete

fn delete_is_logical_and_kept_in_history(b: Backend) {
    let s = shared(b);
    let id = s.create_id("Patient", &patient(&unique("d")));
    let r = s.req("DELETE", &format!("/Patient/{id}")).send();
    assert_eq!(r.status, 204);
    assert_eq!(r.header("etag"), Some("W/\"2\""));
    let gone = s.get(&format!("/Patient/{id}"));
    gone.outcome(410);
    let h = s.get(&format!("/Patient/{id}/_history")).json();
    assert_eq!(h["total"], 2);
    assert_eq!(h["entry"][0]["request"]["method"], "DELETE");
    assert!(h["entry"][0].get("resource").is_none());
    assert_eq!(h["entry"][1]["resource"]["id"], id.as_str());
    s.get(&format!("/Patient/{id}/_history/2")).outcome(410);
    assert_eq!(s.get(&format!("/Patient/{id}/_history/1")).status, 200);
    // Deleting again, or deleting what never existed, has no effect.
    assert_eq!(
        s.req("DELETE", &format!("/Patient/{id}")).send().status,
        204
    );
    assert_eq!(s.req("DELETE", "/Patient/never-existed").send().status, 204);
    assert_eq!(s.get(&format!("/Patient/{id}/_history")).json()["total"], 2);
    // Updating a deleted resource brings it back as a new version.
    let back = s
        .req("PUT", &format!("/Patient/{id}"))
        .json(&format!(r#"{{"resourceType":"Patient","id":"{id}"}}"#));
    assert_eq!(back.status, 201);
    assert_eq!(version_of(&back), "3");
}

// ----------------------------------------------------------------------- history

fn history_pages_cover_every_version_exactly_once(b: Backend) {
    let s = Server::start(b);
    let mut ids = Vec::new();
    for i in 0..7 {
        let id = s.create_id("Patient", &patient(&format!("h{i}")));
        let body = format!(r#"{{"resourceType":"Patient","id":"{id}","active":true}}"#);
        assert_eq!(
            s.req("PUT", &format!("/Patient/{id}")).json(&body).status,
            200
        );
        ids.push(id);
    }
    s.create_id(
        "Observation",
        r#"{"resourceType":"Observation","status":"final","code":{"text":"x"}}"#,
    );
    // Type level: 14 Patient versions, read 3 at a time through `next` links.
    let mut seen = Vec::new();
    let mut page = s.get("/Patient/_history?_count=3").json();
    assert_eq!(page["type"], "history");
    assert_eq!(page["total"], 14);
    assert!(page["link"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["relation"] == "self"));
    loop {
        for e in page["entry"].as_array().unwrap() {
            let key = format!(
                "{}@{}",
                e["resource"]["id"].as_str().unwrap(),
                e["response"]["etag"].as_str().unwrap()
            );
            seen.push(key);
        }
        let next = page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .cloned();
        match next {
            Some(l) => {
                let url = l["url"].as_str().unwrap().replace(&s.base, "");
                // A write between pages must not shift them.
                s.create_id("Patient", &patient("between-pages"));
                page = s.get(&url).json();
                for rel in ["previous", "first"] {
                    assert!(
                        page["link"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|l| l["relation"] == rel),
                        "a later history page has a {rel} link"
                    );
                }
            }
            None => break,
        }
    }
    let mut unique_seen = seen.clone();
    unique_seen.sort();
    unique_seen.dedup();
    assert_eq!(seen.len(), 14, "{seen:?}");
    assert_eq!(unique_seen.len(), 14);
    // Newest first.
    assert!(seen[0].ends_with("W/\"2\""));
    // System level sees the Observation too; instance level only its versions.
    let sys = s.get("/_history?_count=100").json();
    assert!(sys["entry"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["resource"]["resourceType"] == "Observation"));
    let inst = s.get(&format!("/Patient/{}/_history", ids[0])).json();
    assert_eq!(inst["total"], 2);
    assert_eq!(inst["entry"][0]["response"]["etag"], "W/\"2\"");
    assert_eq!(inst["entry"][1]["request"]["method"], "POST");
}

/// A history's total is exact up to `--total-threshold` versions and left out past it
/// (the count stops one past the threshold, so a page never costs in proportion to the
/// whole history); a first page that holds every version gives its total uncounted.
fn history_totals_are_exact_up_to_the_threshold(b: Backend) {
    let s = Server::start_with(b, &["--total-threshold", "5"]);
    let mut ids = Vec::new();
    for i in 0..4 {
        let id = s.create_id("Patient", &patient(&format!("t{i}")));
        let body = format!(r#"{{"resourceType":"Patient","id":"{id}","active":true}}"#);
        let r = s.req("PUT", &format!("/Patient/{id}")).json(&body);
        assert_eq!(r.status, 200, "{}", r.body);
        ids.push(id);
    }
    let page = s.get("/Patient/_history?_count=3").json();
    assert!(
        page.get("total").is_none(),
        "8 versions, threshold 5: {page}"
    );
    assert_eq!(page["entry"].as_array().map(Vec::len), Some(3));
    let next = page["link"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["relation"] == "next");
    assert!(next, "paging does not depend on the total");
    assert_eq!(s.get("/Patient/_history?_count=100").json()["total"], 8);
    assert_eq!(
        s.get("/Patient/_history?_count=2&_since=2000-01-01T00:00:00Z")
            .json()
            .get("total"),
        None
    );
    let inst = s
        .get(&format!("/Patient/{}/_history?_count=1", ids[0]))
        .json();
    assert_eq!(inst["total"], 2);
    let later = s
        .get("/Patient/_history?_since=2999-01-01T00:00:00Z")
        .json();
    assert_eq!(later["total"], 0);
    assert_eq!(s.get("/Patient/unknown-id/_history").status, 404);
    // The largest threshold the flag takes counts every version.
    let all = Server::start_with(b, &["--total-threshold", "18446744073709551615"]);
    for i in 0..3 {
        all.create_id("Patient", &patient(&format!("u{i}")));
    }
    assert_eq!(all.get("/Patient/_history?_count=2").json()["total"], 3);
}

fn history_since_and_at(b: Backend) {
    let s = Server::start(b);
    let id = s.create_id("Patient", &patient("since"));
    std::thread::sleep(std::time::Duration::from_millis(30));
    let mid = s.get(&format!("/Patient/{id}")).json()["meta"]["lastUpdated"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(std::time::Duration::from_millis(30));
    let body = format!(r#"{{"resourceType":"Patient","id":"{id}","active":false}}"#);
    s.req("PUT", &format!("/Patient/{id}")).json(&body);
    let v2 = s.get(&format!("/Patient/{id}")).json()["meta"]["lastUpdated"]
        .as_str()
        .unwrap()
        .to_string();
    let since = s
        .get(&format!(
            "/Patient/{id}/_history?_since={}",
            v2.replace('+', "%2B")
        ))
        .json();
    assert_eq!(since["total"], 1);
    assert_eq!(since["entry"][0]["response"]["etag"], "W/\"2\"");
    let at = s.get(&format!("/Patient/{id}/_history?_at={mid}")).json();
    assert_eq!(at["total"], 1);
    assert_eq!(at["entry"][0]["response"]["etag"], "W/\"1\"");
    let day = &mid[..10];
    assert!(
        s.get(&format!("/Patient/{id}/_history?_at={day}")).json()["total"]
            .as_i64()
            .unwrap()
            >= 1
    );
    s.get("/_history?_count=2&_count=3").outcome(400);
    s.get("/Patient/never-existed/_history").outcome(404);
    s.get("/_history?_since=yesterday").outcome(400);
    s.get("/_history?_count=-1").outcome(400);
}

// ------------------------------------------------------------------------- patch

fn json_patch_updates_and_guards(b: Backend) {
    let s = shared(b);
    let id = s.create_id("Patient", &patient(&unique("p")));
    let path = format!("/Patient/{id}");
    let ct = ("Content-Type", "application/json-patch+json");
    let r = s.req("PATCH", &path).header(ct.0, ct.1).json(r#"[{"op":"replace","path":"/birthDate","value":"1975-01-01"},{"op":"add","path":"/active","value":true}]"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(version_of(&r), "2");
    assert_eq!(s.get(&path).json()["birthDate"], "1975-01-01");
    // A failing `test` op, a broken document, and changes to id or type are refused.
    s.req("PATCH", &path)
        .header(ct.0, ct.1)
        .json(r#"[{"op":"test","path":"/birthDate","value":"2000-01-01"}]"#)
        .outcome(422);
    s.req("PATCH", &path)
        .header(ct.0, ct.1)
        .json(r#"{"op":"nonsense"}"#)
        .outcome(400);
    s.req("PATCH", &path)
        .header(ct.0, ct.1)
        .json(r#"[{"op":"replace","path":"/id","value":"other"}]"#)
        .outcome(422);
    let bad = s
        .req("PATCH", &path)
        .header(ct.0, ct.1)
        .json(r#"[{"op":"add","path":"/bogus","value":1}]"#);
    bad.outcome(422);
    assert_eq!(bad.issue_expression(), "Patient.bogus");
    s.req("PATCH", &path)
        .header("Content-Type", "text/plain")
        .json("[]")
        .outcome(415);
    s.req("PATCH", &path)
        .header(ct.0, ct.1)
        .header("If-Match", "W/\"1\"")
        .json("[]")
        .outcome(412);
    s.req("PATCH", "/Patient/nope")
        .header(ct.0, ct.1)
        .json("[]")
        .outcome(404);
    assert_eq!(
        version_of(&s.get(&path)),
        "2",
        "refused patches write nothing"
    );
}

// ------------------------------------------------------------------ conditionals

fn conditional_create_with_if_none_exist(b: Backend) {
    let s = shared(b);
    let mrn = unique("cc");
    let cond = format!("identifier=http://hospital.example/mrn|{mrn}");
    let first = s
        .req("POST", "/Patient")
        .header("If-None-Exist", &cond)
        .json(&patient(&mrn));
    assert_eq!(first.status, 201);
    let again = s
        .req("POST", "/Patient")
        .header("If-None-Exist", &cond)
        .json(&patient(&mrn));
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["id"], first.json()["id"]);
    // Two matches: 412, and nothing is created.
    let dup = s.create_id("Patient", &patient(&mrn));
    let r = s
        .req("POST", "/Patient")
        .header("If-None-Exist", &cond)
        .json(&patient(&mrn));
    r.outcome(412);
    let by_id = s
        .req("POST", "/Patient")
        .header("If-None-Exist", &format!("_id={dup}"))
        .json(&patient(&mrn));
    assert_eq!(by_id.status, 200);
    s.req("POST", "/Patient")
        .header("If-None-Exist", "nonsense=x")
        .json(&patient(&mrn))
        .outcome(400);
}

fn conditional_update_and_delete(b: Backend) {
    let s = shared(b);
    let mrn = unique("cu");
    let q = format!("/Patient?identifier=http://hospital.example/mrn|{mrn}");
    let created = s.req("PUT", &q).json(&patient(&mrn));
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.json()["id"].as_str().unwrap().to_string();
    let updated = s.req("PUT", &q).json(&patient(&mrn));
    assert_eq!(updated.status, 200);
    assert_eq!(updated.json()["id"], id.as_str());
    assert_eq!(version_of(&updated), "2");
    let mut wrong: Value = serde_json::from_str(&patient(&mrn)).unwrap();
    wrong["id"] = json!("some-other-id");
    s.req("PUT", &q).json(&wrong.to_string()).outcome(400);
    // No match, and the body names another existing resource: it is not overwritten.
    let other = s.create_id("Patient", &patient(&unique("other")));
    let mut body: Value = serde_json::from_str(&patient(&unique("nomatch"))).unwrap();
    body["id"] = json!(other);
    let nomatch = format!("/Patient?identifier={}", unique("nomatch"));
    s.req("PUT", &nomatch).json(&body.to_string()).outcome(409);
    assert_eq!(version_of(&s.get(&format!("/Patient/{other}"))), "1");
    s.create_id("Patient", &patient(&mrn));
    s.req("PUT", &q).json(&patient(&mrn)).outcome(412);
    s.req("DELETE", &q).send().outcome(412);
    // With one match left, conditional delete removes it.
    let single = unique("cd");
    let keep = s.create_id("Patient", &patient(&single));
    let stale = s
        .req("DELETE", &format!("/Patient?identifier={single}"))
        .header("If-Match", "W/\"9\"")
        .send();
    stale.outcome(412);
    let del = s
        .req("DELETE", &format!("/Patient?identifier={single}"))
        .send();
    assert_eq!(del.status, 204);
    s.get(&format!("/Patient/{keep}")).outcome(410);
    assert_eq!(
        s.req("DELETE", &format!("/Patient?identifier={single}"))
            .send()
            .status,
        204
    );
    s.req("DELETE", "/Patient").send().outcome(400);
    s.req("DELETE", "/Device?identifier=%7C")
        .send()
        .outcome(400);
}

// ------------------------------------------------------------------- negotiation

fn prefer_return_shapes_the_response(b: Backend) {
    let s = shared(b);
    let minimal = s
        .req("POST", "/Patient")
        .header("Prefer", "return=minimal")
        .json(&patient(&unique("pm")));
    assert_eq!(minimal.status, 201);
    assert!(minimal.body.is_empty());
    assert!(minimal.header("location").is_some());
    let oo = s
        .req("POST", "/Patient")
        .header("Prefer", "return=OperationOutcome")
        .json(&patient(&unique("po")));
    assert_eq!(oo.status, 201);
    assert_eq!(oo.json()["resourceType"], "OperationOutcome");
    let rep = s
        .req("POST", "/Patient")
        .header("Prefer", "return=representation")
        .json(&patient(&unique("pr")));
    assert_eq!(rep.json()["resourceType"], "Patient");
}

fn format_negotiation(b: Backend) {
    let s = shared(b);
    let id = s.create_id("Patient", &patient(&unique("f")));
    let path = format!("/Patient/{id}");
    let plain = s
        .req("GET", &path)
        .header("Accept", "application/json")
        .send();
    assert_eq!(
        plain.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let fhir = s
        .req("GET", &path)
        .header("Accept", "application/fhir+json")
        .send();
    assert_eq!(
        fhir.header("content-type"),
        Some("application/fhir+json; charset=utf-8")
    );
    let browser = s
        .req("GET", &path)
        .header("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send();
    assert_eq!(browser.status, 200);
    let xml = s
        .req("GET", &path)
        .header("Accept", "application/fhir+xml")
        .send();
    assert_eq!(xml.status, 200);
    assert_eq!(
        xml.header("content-type"),
        Some("application/fhir+xml; charset=utf-8")
    );
    assert_eq!(s.get(&format!("{path}?_format=xml")).status, 200);
    s.req("GET", &path)
        .header("Accept", "application/pdf")
        .send()
        .outcome(406);
    assert_eq!(s.get(&format!("{path}?_format=json")).status, 200);
    // `+` unencoded in a query string reads as a space; the intent is clear.
    assert_eq!(
        s.get(&format!("{path}?_format=application/fhir+json"))
            .status,
        200
    );
    s.req("GET", &path)
        .header("Accept", "application/fhir+json;q=0.0")
        .send()
        .outcome(406);
    let pretty = s.get(&format!("{path}?_pretty=true"));
    assert!(
        pretty.body.contains("\n  \"resourceType\""),
        "{}",
        pretty.body
    );
    assert_eq!(pretty.json(), s.get(&path).json());
}

// --------------------------------------------------------------------- bad input

fn bad_input_gets_4xx_operation_outcomes(b: Backend) {
    let s = shared(b);
    let r = s.create(
        "Patient",
        r#"{"resourceType":"Patient","name":[{"family":"x"}"#,
    );
    r.outcome(400);
    assert!(r.body.contains("line 1"), "{}", r.body);
    let r = s.create(
        "Patient",
        r#"{"resourceType":"Observation","status":"final","code":{"text":"x"}}"#,
    );
    r.outcome(400);
    assert_eq!(r.issue_expression(), "resourceType");
    s.create("Patient", r#"{"name":"x"}"#).outcome(400);
    s.create("Patient", r#"[1,2]"#).outcome(400);
    s.create("Patient", "").outcome(400);
    let r = s.create(
        "Patient",
        r#"{"resourceType":"Patient","name":[{"famly":"x"}]}"#,
    );
    r.outcome(400);
    assert_eq!(r.issue_expression(), "Patient.name[0].famly");
    let r = s.create(
        "Patient",
        r#"{"resourceType":"Patient","birthDate":"garbage","active":"yes"}"#,
    );
    r.outcome(400);
    assert_eq!(r.issue_expression(), "Patient.birthDate");
    assert_eq!(r.json()["issue"][1]["expression"][0], "Patient.active");
    let lenient = s
        .req("POST", "/Patient")
        .header("Prefer", "handling=lenient")
        .json(r#"{"resourceType":"Patient","extra":1}"#);
    assert_eq!(lenient.status, 201);
    s.create("Unknowntype", r#"{"resourceType":"Unknowntype"}"#)
        .outcome(404);
    s.req("POST", "/Patient")
        .header("Content-Type", "application/fhir+xml")
        .json("<Patient/>")
        .outcome(400);
    s.req("POST", "/Patient")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .json("a=b")
        .outcome(415);
    s.req("POST", "/Patient/some-id")
        .json(&patient("x"))
        .outcome(405);
    s.get("/Patient/x/y/z/w").outcome(404);
    s.get("/nothing-here/at/all/really/deep").outcome(404);
    let empty_batch = s
        .req("POST", "/")
        .json(r#"{"resourceType":"Bundle","type":"batch"}"#);
    assert_eq!(empty_batch.json()["type"], "batch-response");
}

fn oversized_bodies_get_413(b: Backend) {
    let s = Server::start_with(b, &["--max-body-bytes", "1000"]);
    let big = format!(
        r#"{{"resourceType":"Patient","name":[{{"family":"{}"}}]}}"#,
        "x".repeat(2000)
    );
    s.create("Patient", &big).outcome(413);
    assert_eq!(s.get("/_history").json()["total"], 0, "nothing was written");
    assert_eq!(
        s.create("Patient", r#"{"resourceType":"Patient"}"#).status,
        201
    );
}

// ----------------------------------------------------------- metadata and health

fn metadata_states_what_the_server_supports(b: Backend) {
    let s = shared(b);
    let r = s.get("/metadata");
    assert_eq!(r.status, 200);
    assert!(r.header("etag").is_some_and(|e| e.starts_with("W/")));
    s.req("GET", "/metadata")
        .header("Accept", "application/fhir+json; fhirVersion=3.0")
        .send()
        .outcome(406);
    let r4 = s
        .req("GET", "/metadata")
        .header("Accept", "application/fhir+json; fhirVersion=4.0")
        .send();
    assert_eq!(r4.status, 200);
    let cs = r.json();
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["fhirVersion"], "4.0.1");
    assert_eq!(cs["kind"], "instance");
    let resources = cs["rest"][0]["resource"].as_array().unwrap();
    assert_eq!(resources.len(), 146);
    let patient = resources.iter().find(|r| r["type"] == "Patient").unwrap();
    let interactions: Vec<&str> = patient["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    assert!(interactions.contains(&"patch") && interactions.contains(&"history-instance"));
    assert!(interactions.contains(&"search-type"));
    let params = patient["searchParam"].as_array().unwrap();
    assert!(params
        .iter()
        .any(|p| p["name"] == "birthdate" && p["type"] == "date"));
    let observation = resources
        .iter()
        .find(|r| r["type"] == "Observation")
        .unwrap();
    let obs_params = observation["searchParam"].as_array().unwrap();
    assert!(obs_params
        .iter()
        .any(|p| p["name"] == "code-value-quantity" && p["type"] == "composite"));
    assert_eq!(patient["versioning"], "versioned-update");
}

fn every_resource_type_is_accepted(b: Backend) {
    let s = shared(b);
    let cs = s.get("/metadata").json();
    for r in cs["rest"][0]["resource"].as_array().unwrap() {
        let t = r["type"].as_str().unwrap();
        // Bare resources miss required elements: lenient handling stores them anyway.
        let created = s
            .req("POST", &format!("/{t}"))
            .header("Prefer", "handling=lenient")
            .json(&format!(r#"{{"resourceType":"{t}"}}"#));
        assert_eq!(created.status, 201, "{t}: {}", created.body);
        let id = created.json()["id"].as_str().unwrap().to_string();
        assert_eq!(s.get(&format!("/{t}/{id}")).status, 200, "{t}");
    }
}

fn health_and_readiness(b: Backend) {
    let s = shared(b);
    let head = s.req("HEAD", "/metadata").send();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let not_allowed = s.req("DELETE", "/metadata").send();
    not_allowed.outcome(405);
    assert!(not_allowed.header("allow").is_some());
    assert_eq!(
        s.req("DELETE", "/Patient/?identifier=nobody-has-this")
            .send()
            .status,
        204
    );
    let health = ureq::get(&s.base.replace("/fhir", "/health"))
        .call()
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = ureq::get(&s.base.replace("/fhir", "/ready"))
        .call()
        .unwrap();
    assert_eq!(ready.status(), 200);
}

// ------------------------------------------------------------------- concurrency

fn fifty_racing_conditional_creates_make_one_resource(b: Backend) {
    let s = Arc::new(Server::start(b));
    let barrier = Arc::new(Barrier::new(50));
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let (s, barrier) = (s.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let r = s
                    .req("POST", "/Patient")
                    .header(
                        "If-None-Exist",
                        "identifier=http://hospital.example/mrn|RACE",
                    )
                    .json(&patient("RACE"));
                (
                    r.status,
                    r.json()["id"].as_str().unwrap_or_default().to_string(),
                )
            })
        })
        .collect();
    let results: Vec<(u16, String)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        results.iter().filter(|(st, _)| *st == 201).count(),
        1,
        "{results:?}"
    );
    assert_eq!(
        results.iter().filter(|(st, _)| *st == 200).count(),
        49,
        "{results:?}"
    );
    assert!(results.iter().all(|(_, id)| *id == results[0].1));
    assert_eq!(s.get("/Patient/_history").json()["total"], 1);
}

fn racing_if_match_updates_lose_nothing(b: Backend) {
    let s = Arc::new(Server::start(b));
    let id = s.create_id("Patient", r#"{"resourceType":"Patient"}"#);
    // Round 1: 50 writers all holding version 1: exactly one wins.
    let barrier = Arc::new(Barrier::new(50));
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let (s, barrier, id) = (s.clone(), barrier.clone(), id.clone());
            std::thread::spawn(move || {
                let body = format!(
                    r#"{{"resourceType":"Patient","id":"{id}","gender":"{}"}}"#,
                    if i % 2 == 0 { "male" } else { "female" }
                );
                barrier.wait();
                s.req("PUT", &format!("/Patient/{id}"))
                    .header("If-Match", "W/\"1\"")
                    .json(&body)
                    .status
            })
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        49,
        "{statuses:?}"
    );
    // Round 2: 20 writers each add one tag with read-modify-write and retry on 412.
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let (s, id) = (s.clone(), id.clone());
            std::thread::spawn(move || loop {
                let cur = s.get(&format!("/Patient/{id}"));
                let etag = cur.header("etag").unwrap().to_string();
                let mut p = cur.json();
                let mut tags = p["meta"]["tag"].as_array().cloned().unwrap_or_default();
                tags.push(json!({"code": format!("writer-{i}")}));
                p["meta"]["tag"] = Value::Array(tags);
                let r = s
                    .req("PUT", &format!("/Patient/{id}"))
                    .header("If-Match", &etag)
                    .json(&p.to_string());
                match r.status {
                    200 => break,
                    412 => continue,
                    other => panic!("unexpected {other}: {}", r.body),
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let last = s.get(&format!("/Patient/{id}")).json();
    assert_eq!(last["meta"]["versionId"], "22");
    let mut codes: Vec<String> = last["meta"]["tag"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["code"].as_str().unwrap().to_string())
        .collect();
    codes.sort();
    codes.dedup();
    assert_eq!(codes.len(), 20, "every writer's change survived: {codes:?}");
}

both_backends!(
    history_totals_are_exact_up_to_the_threshold,
    create_returns_201_with_location_etag_and_the_resource,
    create_ignores_a_client_id,
    read_returns_the_current_version_with_headers,
    stored_json_is_lossless,
    summary_and_elements_on_read,
    vread_returns_each_version_and_404_for_unknown_versions,
    read_of_unknown_resources_and_types,
    update_creates_a_new_version,
    update_as_create_uses_the_client_id,
    update_checks_the_id,
    if_match_guards_updates,
    if_none_match_star_only_creates,
    conditional_reads_answer_304,
    delete_is_logical_and_kept_in_history,
    history_pages_cover_every_version_exactly_once,
    history_since_and_at,
    json_patch_updates_and_guards,
    conditional_create_with_if_none_exist,
    conditional_update_and_delete,
    prefer_return_shapes_the_response,
    format_negotiation,
    bad_input_gets_4xx_operation_outcomes,
    oversized_bodies_get_413,
    metadata_states_what_the_server_supports,
    every_resource_type_is_accepted,
    health_and_readiness,
    fifty_racing_conditional_creates_make_one_resource,
    racing_if_match_updates_lose_nothing,
);
