//! Cost linear in the input, and no panic on hostile input.

use std::time::{Duration, Instant};

use fhir_validation::{ValidationOptions, Validator};
use serde_json::{json, Map, Value};

fn patient_with_names(n: usize) -> Value {
    let names: Vec<Value> = (0..n)
        .map(|i| json!({"use": "official", "family": format!("F{i}"), "given": ["A", "B"]}))
        .collect();
    json!({"resourceType": "Patient", "id": "big", "name": names, "gender": "other"})
}

fn time(v: &Validator, r: &Value) -> Duration {
    let t = Instant::now();
    let report = v.validate(r, &ValidationOptions::default());
    assert!(!report.has_errors(), "{:?}", report.errors().next());
    t.elapsed()
}

#[test]
fn twenty_thousand_names_validate_in_linear_time() {
    let t = Instant::now();
    let v = Validator::r4();
    println!("Validator::r4() built in {:?}", t.elapsed());
    time(&v, &patient_with_names(10)); // warm caches
    let small = time(&v, &patient_with_names(2_000));
    let big = time(&v, &patient_with_names(20_000));
    println!("2,000 names: {small:?}; 20,000 names: {big:?}");
    // 10x the input may cost at most ~10x (plus noise), never quadratic (100x).
    assert!(
        big < small * 25 + Duration::from_millis(50),
        "{small:?} → {big:?}"
    );
    // Release builds take ~0.1 s; unoptimised test builds a few times more.
    let limit = if cfg!(debug_assertions) { 5_000 } else { 1_000 };
    assert!(big < Duration::from_millis(limit), "{big:?}");
}

/// Every value of a resource replaced, in turn, by each hostile value.
/// A document Bundle of `n` Observations, each referring to the Patient and to the
/// Observation before it (references resolved per entry, reachability from the
/// Composition, narrative links).
fn document_with(n: usize) -> Value {
    let base = "http://x.org/fhir";
    let narrative = |s: &str| {
        serde_json::json!({"status": "generated",
        "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"#{s}\">x</a></div>")})
    };
    let mut entries = vec![
        serde_json::json!({"fullUrl": format!("{base}/Composition/c"), "resource": {"resourceType": "Composition",
            "id": "c", "text": narrative("c"), "status": "final", "type": {"text": "t"}, "date": "2020-01-01",
            "title": "t", "author": [{"display": "a"}], "subject": {"reference": "Patient/p"}}}),
        serde_json::json!({"fullUrl": format!("{base}/Patient/p"), "resource": {"resourceType": "Patient",
            "id": "p", "text": narrative("p")}}),
    ];
    for i in 0..n {
        let mut o = serde_json::json!({"resourceType": "Observation", "id": format!("o{i}"),
            "text": narrative(&format!("o{i}")), "status": "final", "code": {"text": "x"},
            "subject": {"reference": "Patient/p"}});
        if i > 0 {
            o["derivedFrom"] =
                serde_json::json!([{"reference": format!("Observation/o{}", i - 1)}]);
        }
        entries.push(
            serde_json::json!({"fullUrl": format!("{base}/Observation/o{i}"), "resource": o}),
        );
    }
    serde_json::json!({"resourceType": "Bundle", "type": "document", "timestamp": "2020-01-01T00:00:00Z",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:0c3201bd-1cbf-4d64-b04d-cd9187a4c6e0"},
        "entry": entries})
}

#[test]
fn large_documents_validate_in_linear_time() {
    let v = Validator::r4();
    time(&v, &document_with(10));
    let small = time(&v, &document_with(500));
    let big = time(&v, &document_with(5_000));
    println!("500 entries: {small:?}; 5,000 entries: {big:?}");
    assert!(
        big < small * 25 + Duration::from_millis(50),
        "{small:?} → {big:?}"
    );
}

fn mutations(v: &Value, out: &mut Vec<Value>, root: &Value, path: &mut Vec<PathStep>) {
    let hostile = [
        Value::Null,
        json!(1),
        json!(-1.5e300),
        json!("x"),
        json!(true),
        json!([]),
        json!({}),
        json!([[1]]),
        json!({"resourceType": "Patient", "a": {}}),
        json!([null, null]),
    ];
    for h in &hostile {
        out.push(replace(root, path, h.clone()));
    }
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                path.push(PathStep::Key(k.clone()));
                mutations(x, out, root, path);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                path.push(PathStep::Index(i));
                mutations(x, out, root, path);
                path.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn replace(root: &Value, path: &[PathStep], with: Value) -> Value {
    let mut copy = root.clone();
    let mut at = &mut copy;
    for step in path {
        at = match step {
            PathStep::Key(k) => &mut at[k.as_str()],
            PathStep::Index(i) => &mut at[*i],
        };
    }
    *at = with;
    copy
}

#[test]
fn hostile_inputs_never_panic() {
    let v = Validator::r4();
    let seed = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "1"}]},
            "valueQuantity": {"value": 1, "unit": "mg"},
            "component": [{"code": {"text": "c"}, "valueString": "s"}],
            "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "2020"}],
            "subject": {"reference": "#p"},
            "contained": [{"resourceType": "Patient", "id": "p", "_birthDate": {"extension": [{"url": "x"}]}}]}}]});
    let mut all = Vec::new();
    mutations(&seed, &mut all, &seed, &mut Vec::new());
    assert!(all.len() > 300);
    for m in &all {
        let _ = v.validate(m, &ValidationOptions::default());
    }
    // Profiles and options that make no sense.
    let opts = ValidationOptions {
        profiles: vec![
            "".into(),
            "http://hl7.org/fhir/StructureDefinition/Patient".into(),
            "|||".into(),
        ],
        unknown_extensions_are_errors: true,
        ..Default::default()
    };
    for m in all.iter().take(100) {
        let _ = v.validate(m, &opts);
    }
}

#[test]
fn deep_nesting_and_huge_arrays_are_handled() {
    let v = Validator::r4();
    // Questionnaire items nest through a content reference: 3,000 levels deep.
    // (Built by hand: `json!` would serialize the nested value recursively.)
    let mut item = json!({"linkId": "leaf", "type": "string"});
    for i in 0..3_000 {
        let mut m = Map::new();
        m.insert("linkId".into(), Value::String(format!("l{i}")));
        m.insert("type".into(), Value::String("group".into()));
        m.insert("item".into(), Value::Array(vec![item]));
        item = Value::Object(m);
    }
    let mut q = json!({"resourceType": "Questionnaire", "status": "draft"});
    q["item"] = Value::Array(vec![item]);
    let r = v.validate(&q, &ValidationOptions::default());
    assert!(r.has_errors(), "too deep must be reported");
    // Nested objects under an unknown key: only the structure check sees them.
    let mut deep = json!(1);
    for _ in 0..5_000 {
        let mut m = Map::new();
        m.insert("a".into(), deep);
        deep = Value::Object(m);
    }
    let mut p = json!({"resourceType": "Patient"});
    p["bogus"] = deep;
    assert!(v.validate(&p, &ValidationOptions::default()).has_errors());
    forget_deep(p);
    // 200,000 identifiers of the wrong shape.
    let ids: Vec<Value> = (0..200_000).map(|i| json!(i)).collect();
    let p = json!({"resourceType": "Patient", "identifier": ids});
    let t = Instant::now();
    assert!(v.validate(&p, &ValidationOptions::default()).has_errors());
    assert!(t.elapsed() < Duration::from_secs(10));
    forget_deep(q);
}

/// Questionnaire items nested as deep as the depth limit allows, validated on a thread
/// with a 2 MiB stack (the size of the server's blocking threads).
#[test]
fn nesting_below_the_limit_fits_a_small_stack() {
    let mut item = json!({"linkId": "leaf", "type": "string"});
    for i in 0..124 {
        let mut m = Map::new();
        m.insert("linkId".into(), Value::String(format!("l{i}")));
        m.insert("type".into(), Value::String("group".into()));
        m.insert("item".into(), Value::Array(vec![item]));
        item = Value::Object(m);
    }
    let mut q = json!({"resourceType": "Questionnaire", "status": "draft"});
    q["item"] = Value::Array(vec![item]);
    let h = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let v = Validator::r4();
            let r = v.validate(&q, &ValidationOptions::default());
            forget_deep(q);
            r
        })
        .expect("thread");
    let report = h.join().expect("no stack overflow");
    assert!(!report
        .issues
        .iter()
        .any(|i| i.severity.is_error() && i.message.contains("deeper")));
}

/// Dropping very deep JSON recurses; hand it to a thread with a large stack.
fn forget_deep(v: Value) {
    let h = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || drop(v))
        .expect("thread");
    let _ = h.join();
}
