//! Extraction of index values over hand-made resources and a real Synthea Bundle.

use fhir_search::*;
use serde_json::{json, Value};

fn reg() -> &'static SearchRegistry {
    SearchRegistry::r4()
}

fn strings<'a>(v: &'a IndexValues, param: &str) -> Vec<(&'a str, &'a str)> {
    v.strings
        .iter()
        .filter(|r| r.param == param)
        .map(|r| (r.value.as_str(), r.normalized.as_str()))
        .collect()
}

fn tokens<'a>(v: &'a IndexValues, param: &str) -> Vec<&'a TokenRow> {
    v.tokens.iter().filter(|r| r.param == param).collect()
}

fn dates(v: &IndexValues, param: &str) -> Vec<(i64, i64)> {
    v.dates
        .iter()
        .filter(|r| r.param == param)
        .map(|r| (r.start, r.end))
        .collect()
}

const DAY: i64 = 86_400_000;
const Y2020: i64 = 1_577_836_800_000;

#[test]
fn patient_by_hand() {
    let p = json!({
        "resourceType": "Patient",
        "id": "p1",
        "meta": {
            "lastUpdated": "2020-01-01T00:00:00.000Z",
            "tag": [{"system": "http://s", "code": "t1", "display": "Tag One"}],
            "profile": ["http://example.org/StructureDefinition/p"],
            "security": [{"system": "http://sec", "code": "R"}],
            "source": "http://source.example.org#abc"
        },
        "identifier": [
            {"system": "http://mrn", "value": "123",
             "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}},
            {"value": "no-system"}
        ],
        "active": true,
        "name": [{"family": "Ångström", "given": ["Zoë", "Anne"], "prefix": ["Dr."], "text": "Dr. Zoë Ångström"}],
        "telecom": [{"system": "phone", "value": "555-1234"}],
        "gender": "female",
        "birthDate": "2020-01",
        "address": [{"line": ["1 Main St"], "city": "Zürich", "postalCode": "8000", "country": "CH"}],
        "generalPractitioner": [{"reference": "Practitioner/pr1"}, {"reference": "#c1"},
            {"identifier": {"system": "http://npi", "value": "999"}}],
        "managingOrganization": {"reference": "http://other.org/fhir/Organization/o1/_history/3"}
    });
    let v = extract(reg(), "Patient", &p);
    assert!(v.errors.is_empty(), "{:?}", v.errors);

    let family = strings(&v, "family");
    assert_eq!(family, [("Ångström", "angstrom")]);
    let name = strings(&v, "name");
    assert!(name.contains(&("Zoë", "zoe")));
    assert!(name.contains(&("Dr. Zoë Ångström", "dr. zoe angstrom")));
    assert!(name.contains(&("Dr.", "dr.")));
    assert_eq!(strings(&v, "address-city"), [("Zürich", "zurich")]);
    assert!(strings(&v, "address").contains(&("1 Main St", "1 main st")));

    let gender = tokens(&v, "gender");
    assert_eq!(gender[0].code.as_deref(), Some("female"));
    assert_eq!(tokens(&v, "active")[0].code.as_deref(), Some("true"));
    let ids = tokens(&v, "identifier");
    assert_eq!(ids.len(), 2);
    assert_eq!(
        (ids[0].system.as_deref(), ids[0].code.as_deref()),
        (Some("http://mrn"), Some("123"))
    );
    assert_eq!(ids[0].type_code.as_deref(), Some("MR"));
    assert_eq!(
        (ids[1].system.as_deref(), ids[1].code.as_deref()),
        (None, Some("no-system"))
    );
    assert_eq!(tokens(&v, "phone")[0].code.as_deref(), Some("555-1234"));
    assert_eq!(tokens(&v, "_id")[0].code.as_deref(), Some("p1"));
    let tag = tokens(&v, "_tag");
    assert_eq!(
        (
            tag[0].system.as_deref(),
            tag[0].code.as_deref(),
            tag[0].text.as_deref()
        ),
        (Some("http://s"), Some("t1"), Some("tag one"))
    );
    assert_eq!(tokens(&v, "_security")[0].code.as_deref(), Some("R"));

    assert_eq!(dates(&v, "birthdate"), [(Y2020, Y2020 + 31 * DAY)]);
    assert_eq!(dates(&v, "_lastUpdated"), [(Y2020, Y2020 + 1)]);

    let uris: Vec<(&str, &str)> = v
        .uris
        .iter()
        .map(|u| (u.param.as_str(), u.uri.as_str()))
        .collect();
    assert!(uris.contains(&("_profile", "http://example.org/StructureDefinition/p")));
    assert!(uris.contains(&("_source", "http://source.example.org#abc")));

    let gp: Vec<&ReferenceRow> = v
        .references
        .iter()
        .filter(|r| r.param == "general-practitioner")
        .collect();
    assert_eq!(gp.len(), 3);
    assert_eq!(
        (gp[0].target_type.as_deref(), gp[0].id.as_deref()),
        (Some("Practitioner"), Some("pr1"))
    );
    assert!(gp[1].contained);
    assert_eq!(gp[1].id.as_deref(), Some("c1"));
    assert_eq!(
        (
            gp[2].identifier_system.as_deref(),
            gp[2].identifier_value.as_deref()
        ),
        (Some("http://npi"), Some("999"))
    );
    let org = v
        .references
        .iter()
        .find(|r| r.param == "organization")
        .unwrap();
    assert_eq!(
        org.url.as_deref(),
        Some("http://other.org/fhir/Organization/o1/_history/3")
    );
    assert_eq!(
        (
            org.target_type.as_deref(),
            org.id.as_deref(),
            org.version.as_deref()
        ),
        (Some("Organization"), Some("o1"), Some("3"))
    );
}

#[test]
fn observation_by_hand() {
    let o: Value = serde_json::from_str(r#"{
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel"}], "text": "BP"},
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": "2020-01-01", "end": "2020-02"},
        "valueQuantity": {"value": 1.50, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"},
        "component": [
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
             "valueQuantity": {"value": 120, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
            {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
             "valueQuantity": {"value": 80, "comparator": "<", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
        ]
    }"#)
    .unwrap();
    let v = extract(reg(), "Observation", &o);
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    let code = tokens(&v, "code");
    assert_eq!(code.len(), 1);
    assert_eq!(code[0].text.as_deref(), Some("blood pressure panel"));
    assert_eq!(dates(&v, "date"), [(Y2020, Y2020 + 60 * DAY)]);
    // A Period whose end comes before its start (per-1 cannot compare a date-time with
    // a date) is indexed as the instant it starts: 2020-01-02T04:30Z.
    let mut inverted = o.clone();
    inverted["effectivePeriod"] =
        json!({"start": "2020-01-01T23:30:00-05:00", "end": "2020-01-01"});
    let at = Y2020 + DAY + (4 * 60 + 30) * 60_000;
    assert_eq!(
        dates(&extract(reg(), "Observation", &inverted), "date"),
        [(at, at + 1)]
    );
    let vq = v
        .quantities
        .iter()
        .find(|q| q.param == "value-quantity")
        .unwrap();
    assert_eq!(vq.value.unwrap().to_string(), "1.50");
    assert_eq!(
        (vq.low.unwrap().to_string(), vq.high.unwrap().to_string()),
        ("1.495".into(), "1.505".into())
    );
    assert_eq!(vq.code.as_deref(), Some("mg"));
    let subject = v.references.iter().find(|r| r.param == "subject").unwrap();
    assert_eq!(
        (subject.target_type.as_deref(), subject.id.as_deref()),
        (Some("Patient"), Some("p1"))
    );
    // `patient` is `subject.where(resolve() is Patient)`.
    assert!(v
        .references
        .iter()
        .any(|r| r.param == "patient" && r.id.as_deref() == Some("p1")));

    let ccvq: Vec<&CompositeRow> = v
        .composites
        .iter()
        .filter(|c| c.param == "component-code-value-quantity")
        .collect();
    assert_eq!(ccvq.len(), 2);
    let IndexValue::Token(t) = &ccvq[0].components[0] else {
        panic!()
    };
    assert_eq!(t.code.as_deref(), Some("8480-6"));
    let IndexValue::Quantity(q) = &ccvq[1].components[1] else {
        panic!()
    };
    assert_eq!(
        (q.low, q.high.map(|h| h.to_string())),
        (None, Some("80".to_string()))
    );
    // code × value: 1 × 1
    assert_eq!(
        v.composites
            .iter()
            .filter(|c| c.param == "code-value-quantity")
            .count(),
        1
    );
}

#[test]
fn timing_numbers_ranges_and_money() {
    let mr = json!({
        "resourceType": "MedicationRequest",
        "dosageInstruction": [{"timing": {"event": ["2020-01-01T10:00:00Z", "2020-01-02"]}}],
        "authoredOn": "2020-01-01T10:00:00+01:00"
    });
    let v = extract(reg(), "MedicationRequest", &mr);
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    assert_eq!(
        dates(&v, "authoredon"),
        [(Y2020 + 9 * 3_600_000, Y2020 + 9 * 3_600_000 + 1000)]
    );
    let ra =
        json!({"resourceType": "RiskAssessment", "prediction": [{"probabilityDecimal": 0.25}]});
    let v = extract(reg(), "RiskAssessment", &ra);
    let n = &v
        .numbers
        .iter()
        .find(|n| n.param == "probability")
        .unwrap()
        .number;
    assert_eq!(
        (n.text.as_str(), n.low.to_string(), n.high.to_string()),
        ("0.25", "0.245".into(), "0.255".into())
    );
    let claim =
        json!({"resourceType": "ChargeItem", "priceOverride": {"value": 12.5, "currency": "EUR"}});
    let v = extract(reg(), "ChargeItem", &claim);
    let price = v
        .quantities
        .iter()
        .find(|q| q.param == "price-override")
        .unwrap();
    assert_eq!(
        (price.system.as_deref(), price.code.as_deref()),
        (Some("urn:iso:std:iso:4217"), Some("EUR"))
    );
    let group = json!({"resourceType": "Group", "characteristic": [{"code": {"text": "age"}, "valueRange": {"low": {"value": 10, "unit": "a"}, "high": {"value": 20}}}]});
    // No R4 quantity parameter reaches a Range: register one.
    let mut custom = SearchRegistry::new(fhir_model::Definitions::r4());
    let def = serde_json::from_value(json!({
        "url": "http://example.org/SearchParameter/group-value-range",
        "code": "value-range", "base": ["Group"], "type": "quantity",
        "expression": "Group.characteristic.value.ofType(Range)"
    }))
    .unwrap();
    custom.register(def).unwrap();
    let v = extract(&custom, "Group", &group);
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    let r = v
        .quantities
        .iter()
        .find(|q| q.param == "value-range")
        .unwrap();
    assert_eq!(
        (
            r.low.map(|x| x.to_string()),
            r.high.map(|x| x.to_string()),
            r.value
        ),
        (Some("10".into()), Some("20".into()), None)
    );
}

#[test]
fn malformed_resources_do_not_panic() {
    for r in [
        json!({"resourceType": "Patient", "birthDate": "not a date", "name": "oops", "identifier": {"value": 3}}),
        json!({"resourceType": "Observation", "valueQuantity": {"value": "x"}, "effectiveDateTime": 12, "code": []}),
        serde_json::from_str(r#"{"resourceType": "Observation", "component": [{"valueQuantity": {"value": 1e400}}], "subject": {"reference": "/"}, "valueQuantity": {"value": 1e-400}}"#).unwrap(),
        json!({"resourceType": "Patient", "generalPractitioner": [{"reference": "#"}, {"reference": "Patient//_history/"}]}),
        json!({"resourceType": "Nope", "x": 1}),
        json!(null),
        json!([1, 2]),
    ] {
        let rt = r["resourceType"].as_str().unwrap_or("Patient");
        let _ = extract(reg(), rt, &r);
    }
}

/// The shared Synthea bundle (the test fails, saying why, when it is missing).
fn synthea() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/synthea/Darrell_Erdman_c9efcb62.json"
    );
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}. The shared Synthea data must be there"));
    serde_json::from_str(&text).expect("the Synthea bundle is JSON")
}

#[test]
fn synthea_bundle_extracts_without_errors() {
    let bundle = synthea();
    let entries = bundle["entry"].as_array().expect("entries");
    let start = std::time::Instant::now();
    let mut total_rows = 0;
    let mut all_errors = Vec::new();
    for e in entries {
        let r = &e["resource"];
        let rt = r["resourceType"].as_str().expect("resourceType");
        let v = extract(reg(), rt, r);
        total_rows += v.len();
        all_errors.extend(
            v.errors
                .iter()
                .map(|err| format!("{rt} {}: {}", err.param, err.message)),
        );
    }
    let elapsed = start.elapsed();
    println!(
        "extracted {total_rows} rows from {} resources in {elapsed:?} ({:?}/resource, debug build)",
        entries.len(),
        elapsed / entries.len() as u32
    );
    assert!(all_errors.is_empty(), "{all_errors:#?}");
    assert!(total_rows > 10 * entries.len(), "only {total_rows} rows");

    let find = |rt: &str, pred: &dyn Fn(&Value) -> bool| {
        entries
            .iter()
            .map(|e| &e["resource"])
            .find(|r| r["resourceType"] == rt && pred(r))
            .cloned()
            .expect(rt)
    };
    // Patient: name strings, birthdate range, identifiers.
    let patient = find("Patient", &|_| true);
    let v = extract(reg(), "Patient", &patient);
    assert!(strings(&v, "name").contains(&("Erdman", "erdman")));
    assert!(strings(&v, "given").contains(&("Darrell", "darrell")));
    assert_eq!(
        dates(&v, "birthdate"),
        [(1_469_836_800_000, 1_469_836_800_000 + DAY)]
    );
    assert!(tokens(&v, "identifier")
        .iter()
        .any(|t| t.code.as_deref() == Some("999-94-2255") && t.type_code.as_deref() == Some("SS")));
    assert!(tokens(&v, "email")
        .iter()
        .any(|t| t.code.as_deref() == Some("darrell.erdman700@example.com")));

    // Observation: code tokens, effectiveDateTime range, valueQuantity, subject.
    let obs = find("Observation", &|r| {
        r["code"]["coding"][0]["code"] == "8302-2"
    });
    let v = extract(reg(), "Observation", &obs);
    let code = tokens(&v, "code");
    assert_eq!(
        (code[0].system.as_deref(), code[0].code.as_deref()),
        (Some("http://loinc.org"), Some("8302-2"))
    );
    assert_eq!(code[0].text.as_deref(), Some("body height"));
    assert!(tokens(&v, "category")
        .iter()
        .any(|t| t.code.as_deref() == Some("vital-signs")));
    // 2016-08-20T12:15:57.210496+00:00 → the millisecond 12:15:57.210Z.
    assert_eq!(dates(&v, "date"), [(1_471_695_357_210, 1_471_695_357_211)]);
    let vq = v
        .quantities
        .iter()
        .find(|q| q.param == "value-quantity")
        .unwrap();
    assert_eq!(vq.value.unwrap().to_string(), "55.9");
    assert_eq!(
        (vq.system.as_deref(), vq.code.as_deref()),
        (Some("http://unitsofmeasure.org"), Some("cm"))
    );
    let subject = v.references.iter().find(|r| r.param == "subject").unwrap();
    assert_eq!(
        subject.url.as_deref(),
        Some("urn:uuid:85c63cf3-278e-454c-b5ba-df5889815eb7")
    );
    assert!(v
        .uris
        .iter()
        .any(|u| u.param == "_profile"
            && u.uri == "http://hl7.org/fhir/StructureDefinition/vitalsigns"));
    assert!(v
        .composites
        .iter()
        .any(|c| c.param == "code-value-quantity"));

    // Blood pressure: component composites.
    let bp = find("Observation", &|r| {
        r["code"]["coding"][0]["code"] == "85354-9"
    });
    let v = extract(reg(), "Observation", &bp);
    let systolic = v
        .composites
        .iter()
        .filter(|c| c.param == "component-code-value-quantity")
        .find(|c| matches!(&c.components[0], IndexValue::Token(t) if t.code.as_deref() == Some("8480-6")))
        .expect("systolic component");
    let IndexValue::Quantity(q) = &systolic.components[1] else {
        panic!()
    };
    assert_eq!(q.value.unwrap().to_string(), "117.4");
    assert_eq!(q.code.as_deref(), Some("mm[Hg]"));
}

/// A resource's full index cut to some parameters (what a writer hands a subscription
/// matcher) holds exactly the rows extracting those parameters alone gives.
#[test]
fn the_full_index_cut_to_some_parameters_is_what_extracting_them_alone_gives() {
    fn sorted(v: &IndexValues) -> Vec<String> {
        let mut rows: Vec<String> = [
            format!("{:?}", v.strings),
            format!("{:?}", v.tokens),
            format!("{:?}", v.dates),
            format!("{:?}", v.numbers),
            format!("{:?}", v.quantities),
            format!("{:?}", v.references),
            format!("{:?}", v.uris),
            format!("{:?}", v.composites),
        ]
        .into_iter()
        .flat_map(|s| s.split("}, ").map(str::to_string).collect::<Vec<_>>())
        .collect();
        rows.sort();
        rows
    }
    let bundle = synthea();
    let sets: [&[&str]; 3] = [
        &["code", "subject", "date"],
        &[
            "code-value-quantity",
            "combo-code",
            "value-quantity",
            "patient",
        ],
        &["identifier", "name", "status", "_lastUpdated"],
    ];
    let mut compared = 0;
    for e in bundle["entry"].as_array().expect("entries") {
        let r = &e["resource"];
        let rt = r["resourceType"].as_str().expect("resourceType");
        let full = extract(reg(), rt, r);
        for set in sets {
            let codes: std::collections::HashSet<String> =
                set.iter().map(|s| s.to_string()).collect();
            let alone = extract_only(reg(), rt, r, &codes);
            let cut = full.only(&codes);
            assert_eq!(sorted(&cut), sorted(&alone), "{rt} {set:?}");
            assert_eq!(cut.errors, alone.errors, "{rt} {set:?}");
            compared += alone.len();
        }
    }
    assert!(compared > 1000, "rows compared: {compared}");
}
