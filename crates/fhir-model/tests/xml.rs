//! FHIR XML (`fhir_model::xml`): every example of the R4 specification converts JSON →
//! XML → JSON to the same JSON (decimals as written, primitive extensions, nested
//! resources, narrative), the XML of the HL7 validator's cases reads, and bad XML is
//! refused with where it went wrong.

mod common;

use common::shared;
use fhir_model::xml::{from_xml, from_xml_in_order, to_xml};
use fhir_model::{json, Definitions};
use serde_json::json;

#[test]
fn every_spec_example_converts_to_xml_and_back_unchanged() {
    let defs = Definitions::r4();
    let (mut total, mut failures) = (0usize, Vec::new());
    for (name, text) in common::spec_examples() {
        total += 1;
        let original = json::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        for pretty in [false, true] {
            // Read back refusing elements out of the definitions' order, in the FHIR
            // namespace, by an XML parser: the output is well-formed and in order.
            let outcome = to_xml(defs, &original, pretty)
                .map_err(|e| e.to_string())
                .and_then(|x| {
                    assert!(
                        x.contains(&format!(
                            "<{} xmlns=\"http://hl7.org/fhir\"",
                            original["resourceType"].as_str().unwrap_or_default()
                        )),
                        "{name}"
                    );
                    from_xml_in_order(defs, x.as_bytes()).map_err(|e| format!("{e}\n{x}"))
                });
            match outcome {
                Ok(back) if back == original => {}
                Ok(back) => failures.push(format!(
                    "{name}: differs\n  was {}\n  now {}",
                    json::to_string(&original)
                        .chars()
                        .take(600)
                        .collect::<String>(),
                    json::to_string(&back).chars().take(600).collect::<String>()
                )),
                Err(e) => failures.push(format!(
                    "{name}: {}",
                    e.chars().take(600).collect::<String>()
                )),
            }
        }
    }
    println!("spec examples: {total} read, {} failures", failures.len());
    for f in failures.iter().take(20) {
        println!("  {f}");
    }
    assert_eq!(total, 5306, "the R4 examples package holds 5,306 examples");
    assert!(failures.is_empty(), "{} failures", failures.len());
}

#[test]
fn validator_xml_files_read() {
    let defs = Definitions::r4();
    let mut read = 0;
    let mut failures = Vec::new();
    for dir in ["validator-extra", "validator"] {
        let dir = shared(dir);
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "xml") {
                continue;
            }
            let bytes = std::fs::read(&path).expect("read");
            match from_xml(defs, &bytes) {
                Ok(v) => {
                    read += 1;
                    // Written again and read back, it is the same JSON.
                    let again = to_xml(defs, &v, true).expect("write");
                    let back = from_xml(defs, again.as_bytes()).expect("reread");
                    assert_eq!(back, v, "{}", path.display());
                }
                Err(e) => failures.push(format!("{}: {e}", path.display())),
            }
        }
    }
    println!("validator XML: {read} read; not read: {failures:#?}");
    assert!(read >= 12, "the 12 XML files of the validator cases read");
}

#[test]
fn primitives_keep_their_types_text_and_extensions() {
    let defs = Definitions::r4();
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<Observation xmlns="http://hl7.org/fhir">
  <!-- a comment is dropped -->
  <status value="final"/>
  <code><text value="line one&#10;line two &amp; &quot;three&quot;"/></code>
  <valueQuantity><value value="1.50"/><unit value="mg"/></valueQuantity>
  <interpretation><coding id="c1"><system value="http://example.org"/><code value="H"/></coding></interpretation>
</Observation>"#;
    let v = from_xml(defs, xml.as_bytes()).expect("reads");
    assert_eq!(
        v["valueQuantity"]["value"].to_string(),
        "1.50",
        "decimal as written"
    );
    assert_eq!(v["code"]["text"], json!("line one\nline two & \"three\""));
    assert_eq!(v["interpretation"][0]["coding"][0]["id"], json!("c1"));
    let patient = json!({"resourceType": "Patient", "active": true,
        "name": [{"given": ["Ann", null], "_given": [null, {"extension": [{"url": "http://x", "valueString": "B"}]}]}],
        "_birthDate": {"id": "b", "extension": [{"url": "http://y", "valueBoolean": false}]},
        "multipleBirthInteger": 2});
    let xml = to_xml(defs, &patient, false).expect("writes");
    assert!(xml.contains(r#"<birthDate id="b"><extension url="http://y"><valueBoolean value="false"/></extension></birthDate>"#), "{xml}");
    assert!(
        xml.find("<active").unwrap() < xml.find("<name").unwrap(),
        "definition order: {xml}"
    );
    assert_eq!(from_xml(defs, xml.as_bytes()).expect("reads"), patient);
}

fn refused(xml: &str) -> fhir_model::xml::XmlError {
    match from_xml(Definitions::r4(), xml.as_bytes()) {
        Ok(v) => panic!("read {xml} as {v}"),
        Err(e) => e,
    }
}

#[test]
fn bad_xml_is_refused_with_where() {
    let e = refused("<Patient xmlns=\"http://hl7.org/fhir\">\n  <active value=\"true\"/>\n  <colour value=\"x\"/>\n</Patient>");
    assert_eq!((e.line, e.column), (3, 3), "{e}");
    assert_eq!(e.path.as_deref(), Some("Patient.colour"), "{e}");
    let e = refused("<Patient xmlns=\"http://hl7.org/fhir\"><active value=\"true\"></Patient>");
    assert!(e.message.contains("malformed"), "{e}");
    let e = refused("<Patient><active value=\"true\"/></Patient>");
    assert!(e.message.contains("namespace"), "{e}");
    let e = refused("<?xml version=\"1.0\"?><!DOCTYPE Patient [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><Patient xmlns=\"http://hl7.org/fhir\"><gender value=\"&x;\"/></Patient>");
    assert!(e.message.contains("DTD"), "{e}");
    let e = refused("<Patient xmlns=\"http://hl7.org/fhir\"><gender value=\"&x;\"/></Patient>");
    assert!(e.path.as_deref() == Some("Patient.gender"), "{e}");
    let e =
        refused("<Patient xmlns=\"http://hl7.org/fhir\">text<active value=\"true\"/></Patient>");
    assert!(e.message.contains("text between elements"), "{e}");
    let e = refused("<Patient xmlns=\"http://hl7.org/fhir\"><active value=\"yes\"/></Patient>");
    assert!(e.message.contains("not a boolean"), "{e}");
    let e = refused("<Patient xmlns=\"http://hl7.org/fhir\"><gender value=\"male\"/><gender value=\"female\"/></Patient>");
    assert!(e.message.contains("only once"), "{e}");
    let e = refused(
        "<Patient xmlns=\"http://hl7.org/fhir\"><active colour=\"x\" value=\"true\"/></Patient>",
    );
    assert!(e.message.contains("unknown attribute"), "{e}");
    let swapped = "<Patient xmlns=\"http://hl7.org/fhir\"><gender value=\"male\"/><active value=\"true\"/></Patient>";
    let e = from_xml_in_order(Definitions::r4(), swapped.as_bytes()).expect_err("out of order");
    assert_eq!(e.path.as_deref(), Some("Patient.active"), "{e}");
    assert!(
        from_xml(Definitions::r4(), swapped.as_bytes()).is_ok(),
        "taken as it comes"
    );
    let e = refused("<Colour xmlns=\"http://hl7.org/fhir\"/>");
    assert!(e.message.contains("not a resource type"), "{e}");
    let deep = format!(
        "<Patient xmlns=\"http://hl7.org/fhir\">{}{}</Patient>",
        "<extension url=\"u\">".repeat(200),
        "</extension>".repeat(200)
    );
    assert!(refused(&deep).message.contains("deeper"));
}

/// A package `.tgz` with `package.json` and the given files.
fn package_tgz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let manifest = br#"{"name": "example.xml.ig", "version": "0.1.0"}"#;
    let all = std::iter::once(("package.json", &manifest[..])).chain(files.iter().copied());
    for (name, bytes) in all {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, format!("package/{name}"), bytes)
            .expect("append");
    }
    tar.into_inner().expect("tar").finish().expect("gzip")
}

#[test]
fn packages_load_xml_conformance_resources() {
    let profile = std::fs::read(shared(
        "validator-extra/mycommunication.structureDefinition.xml",
    ))
    .expect("profile");
    let tgz = package_tgz(&[("StructureDefinition-min.xml", &profile)]);
    let core = std::fs::read(shared("fhir/hl7.fhir.r4.core-4.0.1.tgz")).expect("core");
    let defs = Definitions::from_packages(&[&core, &tgz]).expect("loads");
    let url = "http://hl7.dk/fhir/core/StructureDefinition/MyCommunication";
    assert!(
        defs.structure(url).is_some(),
        "the XML profile is known by its URL"
    );
    // Every XML profile of the validator's cases loads as a StructureDefinition.
    for dir in ["validator", "validator-extra"] {
        for entry in std::fs::read_dir(shared(dir)).expect("dir") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "xml") {
                continue;
            }
            let bytes = std::fs::read(&path).expect("read");
            let v = from_xml(Definitions::r4(), &bytes).expect("reads");
            let url = v["url"]
                .as_str()
                .expect("a StructureDefinition with a url")
                .to_string();
            let tgz = package_tgz(&[("StructureDefinition-x.xml", &bytes)]);
            let defs = Definitions::from_packages(&[&core, &tgz])
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(defs.structure(&url).is_some(), "{}: {url}", path.display());
        }
    }
    let broken = package_tgz(&[("bad.xml", b"<StructureDefinition xmlns=\"http://hl7.org/fhir\"><colour value=\"x\"/></StructureDefinition>")]);
    let e = Definitions::from_packages(&[&core, &broken]).expect_err("refused");
    assert!(e.to_string().contains("bad.xml"), "{e}");
}

/// Namespaces as XML scopes them: prefixes, declarations on any element, redeclared
/// defaults that end with their element.
#[test]
fn namespaces_follow_their_scopes() {
    let defs = Definitions::r4();
    let prefixed =
        "<f:Patient xmlns:f=\"http://hl7.org/fhir\"><f:text><f:status value=\"generated\"/>\
        <h:div xmlns:h=\"http://www.w3.org/1999/xhtml\"><h:p>x</h:p></h:div></f:text>\
        <f:active value=\"true\"/></f:Patient>";
    let v = from_xml(defs, prefixed.as_bytes()).expect("prefixed FHIR XML reads");
    assert_eq!(v["active"], serde_json::json!(true));
    assert!(v["text"]["div"].as_str().unwrap().starts_with("<h:div"));
    // A default namespace declared again on a child holds for it and its children only.
    let scoped = "<Patient xmlns=\"http://hl7.org/fhir\"><name xmlns=\"http://hl7.org/fhir\">\
        <family value=\"Chalmers\"/></name><active value=\"true\"/></Patient>";
    let v = from_xml(defs, scoped.as_bytes()).expect("redeclared default reads");
    assert_eq!(v["name"][0]["family"], "Chalmers");
    let e = refused(
        "<Patient xmlns=\"http://hl7.org/fhir\"><active xmlns=\"\" value=\"true\"/></Patient>",
    );
    assert!(e.message.contains("namespace"), "{e}");
    assert_eq!(e.path.as_deref(), Some("Patient.active"), "{e}");
    let e = refused("<Patient xmlns=\"http://hl7.org/fhir\"><g:active value=\"true\"/></Patient>");
    assert!(e.message.contains("namespace"), "undeclared prefix: {e}");
    // A prefix declared on a child ends with it: its next sibling cannot use it.
    let e = refused("<Patient xmlns=\"http://hl7.org/fhir\"><active xmlns:f=\"http://hl7.org/fhir\" value=\"true\"/>\
        <f:gender value=\"male\"/></Patient>");
    assert_eq!(e.path.as_deref(), Some("Patient.gender"), "{e}");
    let e = refused(
        "<Patient xmlns=\"http://hl7.org/fhir\"><text><status value=\"generated\"/>\
        <div><p>x</p></div></text></Patient>",
    );
    assert!(
        e.message.contains("http://www.w3.org/1999/xhtml"),
        "a div in FHIR's namespace: {e}"
    );
}
