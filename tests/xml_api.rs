//! FHIR XML over HTTP: resources sent as XML are stored as the JSON they stand for,
//! reads, searches, transactions and the CapabilityStatement answer in XML when asked
//! (`Accept`, `_format`), and bad XML is a 400 that says where.

mod common;

use common::{shared, unique, Backend, Server};
use fhir_model::{xml::from_xml, Definitions};
use serde_json::{json, Value};

fn xml_of(r: &common::Resp) -> Value {
    assert_eq!(
        r.header("content-type"),
        Some("application/fhir+xml; charset=utf-8"),
        "{}",
        r.body
    );
    from_xml(Definitions::r4(), r.body.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{}", r.body))
}

fn post_xml(s: &Server, path: &str, body: &str) -> common::Resp {
    s.req("POST", path)
        .header("Content-Type", "application/fhir+xml")
        .json(body)
}

fn a_resource_sent_as_xml_reads_back_as_json_and_xml(b: Backend) {
    let s = shared(b);
    let family = unique("Xml");
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Patient xmlns="http://hl7.org/fhir">
  <text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>Ann &amp; co</p></div></text>
  <active value="true"/>
  <name><family value="{family}"/><given value="Ann"/><given value="B."/></name>
  <birthDate value="1970-01-02"><extension url="http://example.org/accuracy"><valueDecimal value="0.50"/></extension></birthDate>
</Patient>"#
    );
    let created = post_xml(s, "/Patient", &body);
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.json()["id"].as_str().expect("id").to_string();
    let json = s.get(&format!("/Patient/{id}")).json();
    assert_eq!(json["active"], json!(true));
    assert_eq!(json["name"][0]["given"], json!(["Ann", "B."]));
    assert_eq!(
        json["_birthDate"]["extension"][0]["valueDecimal"].to_string(),
        "0.50"
    );
    assert_eq!(
        json["text"]["div"],
        json!("<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Ann &amp; co</p></div>")
    );
    let read = s
        .req("GET", &format!("/Patient/{id}"))
        .header("Accept", "application/fhir+xml")
        .send();
    assert_eq!(read.status, 200);
    assert!(read.header("etag").is_some());
    assert_eq!(xml_of(&read), json, "the XML says what the JSON says");
    let pretty = s.get(&format!("/Patient/{id}?_format=xml&_pretty=true"));
    assert!(
        pretty.body.contains("\n  <active value=\"true\"/>"),
        "{}",
        pretty.body
    );
    assert_eq!(xml_of(&pretty), json);
    // Updated with XML too; the answer in XML when asked.
    let update = body
        .replace("<active value=\"true\"/>", "<active value=\"false\"/>")
        .replace(
            "<Patient xmlns=\"http://hl7.org/fhir\">",
            &format!("<Patient xmlns=\"http://hl7.org/fhir\"><id value=\"{id}\"/>"),
        );
    let r = s
        .req(
            "PUT",
            &format!("/Patient/{id}?_format=application/fhir%2Bxml"),
        )
        .header("Content-Type", "application/xml")
        .header("Prefer", "return=representation")
        .json(&update);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(xml_of(&r)["active"], json!(false));
}

fn searches_transactions_and_metadata_answer_in_xml(b: Backend) {
    let s = shared(b);
    let family = unique("XmlT");
    let bundle = format!(
        r#"<Bundle xmlns="http://hl7.org/fhir"><type value="transaction"/>
  <entry><fullUrl value="urn:uuid:8f8b1c2e-0000-4000-8000-000000000001"/>
    <resource><Patient><name><family value="{family}"/></name></Patient></resource>
    <request><method value="POST"/><url value="Patient"/></request></entry>
  <entry><resource><Observation><status value="final"/><code><text value="x"/></code>
      <subject><reference value="urn:uuid:8f8b1c2e-0000-4000-8000-000000000001"/></subject>
      <valueQuantity><value value="1.50"/></valueQuantity></Observation></resource>
    <request><method value="POST"/><url value="Observation"/></request></entry>
</Bundle>"#
    );
    let r = s
        .req("POST", "/")
        .header("Content-Type", "text/xml")
        .header("Accept", "application/fhir+xml")
        .json(&bundle);
    assert_eq!(r.status, 200, "{}", r.body);
    let response = xml_of(&r);
    assert_eq!(response["type"], json!("transaction-response"));
    assert_eq!(response["entry"].as_array().map(Vec::len), Some(2));
    let found = s.get(&format!(
        "/Observation?subject:Patient.family={family}&_include=Observation:subject&_format=xml"
    ));
    let found = xml_of(&found);
    assert_eq!(found["resourceType"], json!("Bundle"));
    assert_eq!(found["total"], json!(1));
    let entries = found["entry"].as_array().expect("entries");
    assert_eq!(entries.len(), 2, "the match and its subject");
    assert_eq!(
        entries[0]["resource"]["valueQuantity"]["value"].to_string(),
        "1.50"
    );
    let cs = xml_of(&s.get("/metadata?_format=xml"));
    assert_eq!(cs["resourceType"], json!("CapabilityStatement"));
    assert!(cs["format"]
        .as_array()
        .expect("format")
        .contains(&json!("application/fhir+xml")));
}

fn bad_xml_is_a_400_that_says_where(b: Backend) {
    let s = shared(b);
    let r = post_xml(
        s,
        "/Patient",
        "<Patient xmlns=\"http://hl7.org/fhir\">\n  <active value=\"true\"/>\n  <colour value=\"red\"/>\n</Patient>",
    );
    let oo = r.outcome(400);
    let text = oo["issue"][0]["details"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        text.contains("line 3, column 3") && text.contains("colour"),
        "{text}"
    );
    assert_eq!(r.issue_expression(), "Patient.colour");
    for (body, says) in [
        ("<Patient xmlns=\"http://hl7.org/fhir\"><active value=\"true\">", "ends inside"),
        ("<Patient><active value=\"true\"/></Patient>", "namespace"),
        (
            "<!DOCTYPE Patient [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><Patient xmlns=\"http://hl7.org/fhir\"><gender value=\"&e;\"/></Patient>",
            "DTD",
        ),
        (
            "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;\">]><Patient xmlns=\"http://hl7.org/fhir\"><gender value=\"&lol2;\"/></Patient>",
            "DTD",
        ),
        ("<Patient xmlns=\"http://hl7.org/fhir\">mixed<active value=\"true\"/></Patient>", "text between elements"),
        ("", "no element"),
    ] {
        let r = post_xml(s, "/Patient", body);
        let oo = r.outcome(400);
        assert!(oo.to_string().contains(says), "{body}: {oo}");
    }
    // Valid XML of another type than the URL's, as for JSON.
    post_xml(
        s,
        "/Patient",
        "<Observation xmlns=\"http://hl7.org/fhir\"><status value=\"final\"/></Observation>",
    )
    .outcome(400);
}

fn errors_answer_in_xml_when_xml_is_asked_for(b: Backend) {
    let s = shared(b);
    let missing = s
        .req("GET", "/Patient/no-such-patient")
        .header("Accept", "application/fhir+xml")
        .send();
    assert_eq!(missing.status, 404);
    let oo = xml_of(&missing);
    assert_eq!(oo["resourceType"], json!("OperationOutcome"));
    assert_eq!(oo["issue"][0]["code"], json!("not-found"));
    let bad = s
        .req("POST", "/Patient?_format=xml")
        .header("Content-Type", "application/fhir+xml")
        .json("<Patient xmlns=\"http://hl7.org/fhir\"><colour value=\"red\"/></Patient>");
    assert_eq!(bad.status, 400);
    let oo = xml_of(&bad);
    assert_eq!(oo["issue"][0]["expression"], json!(["Patient.colour"]));
    // A resource stored with `handling=lenient` may hold members the definitions do
    // not know: its XML view leaves them out, the JSON keeps them.
    let lenient = s
        .req("POST", "/Patient")
        .header("Prefer", "handling=lenient")
        .json(r#"{"resourceType":"Patient","active":true,"extra":1}"#);
    assert_eq!(lenient.status, 201, "{}", lenient.body);
    let id = lenient.json()["id"].as_str().expect("id").to_string();
    let xml = s.get(&format!("/Patient/{id}?_format=xml"));
    assert_eq!(xml.status, 200);
    let v = xml_of(&xml);
    assert_eq!((v["active"].clone(), v.get("extra")), (json!(true), None));
    assert_eq!(s.get(&format!("/Patient/{id}")).json()["extra"], json!(1));
    // JSON when JSON is asked for, and for a format the server does not speak.
    let json_error = s.get("/Patient/no-such-patient");
    assert_eq!(
        json_error.header("content-type"),
        Some("application/fhir+json; charset=utf-8")
    );
    s.get("/Patient/no-such-patient?_format=text/turtle")
        .outcome(406);
}

fn history_everything_and_validate_speak_xml(b: Backend) {
    let s = shared(b);
    let family = unique("XmlH");
    let r = post_xml(
        s,
        "/Patient",
        &format!(
            r#"<Patient xmlns="http://hl7.org/fhir"><name><family value="{family}"/></name></Patient>"#
        ),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().expect("id").to_string();
    let history = xml_of(&s.get(&format!("/Patient/{id}/_history?_format=xml")));
    assert_eq!(history["type"], json!("history"));
    assert_eq!(
        history["entry"][0]["resource"]["name"][0]["family"],
        json!(family)
    );
    let everything = s
        .req("GET", &format!("/Patient/{id}/$everything"))
        .header("Accept", "application/xml")
        .send();
    assert_eq!(everything.status, 200, "{}", everything.body);
    assert_eq!(xml_of(&everything)["type"], json!("searchset"));
    let checked = s
        .req("POST", "/Patient/$validate?_format=xml")
        .header("Content-Type", "application/fhir+xml")
        .json(r#"<Patient xmlns="http://hl7.org/fhir"><birthDate value="soon"/></Patient>"#);
    let oo = xml_of(&checked);
    assert_eq!(oo["resourceType"], json!("OperationOutcome"));
    assert!(oo.to_string().contains("Patient.birthDate"), "{oo}");
}

both_backends!(
    a_resource_sent_as_xml_reads_back_as_json_and_xml,
    searches_transactions_and_metadata_answer_in_xml,
    bad_xml_is_a_400_that_says_where,
    errors_answer_in_xml_when_xml_is_asked_for,
    history_everything_and_validate_speak_xml,
);
