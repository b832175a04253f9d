//! FHIRPath Patch (fhirpatch.html) on resources: each operation, the cases the page
//! describes (choice elements, anonymous types as parts, lists, primitives with
//! extensions), and the errors a client gets for a patch that is wrong.

use fhir_model::Definitions;
use fhirpath::{FhirPathPatch, PatchError};
use serde_json::{json, Value};

/// One `operation` parameter from `(part name, part)` pairs.
fn op(parts: Vec<Value>) -> Value {
    json!({"name": "operation", "part": parts})
}

fn part(name: &str, key: &str, value: Value) -> Value {
    let mut p = json!({"name": name});
    p[key] = value;
    p
}

fn kind(t: &str) -> Value {
    part("type", "valueCode", json!(t))
}

fn path(p: &str) -> Value {
    part("path", "valueString", json!(p))
}

fn patch(ops: Vec<Value>) -> Value {
    json!({"resourceType": "Parameters", "parameter": ops})
}

fn apply(ops: Vec<Value>, resource: Value) -> Result<Value, PatchError> {
    let p = FhirPathPatch::parse(&patch(ops))?;
    let mut r = resource;
    p.apply(Definitions::r4(), &mut r)?;
    Ok(r)
}

fn failed(ops: Vec<Value>, resource: Value) -> String {
    match apply(ops, resource) {
        Err(e @ PatchError::Failed { .. }) => e.to_string(),
        other => panic!("expected a failed operation, got {other:?}"),
    }
}

#[test]
fn add_sets_a_new_element_and_appends_to_lists() {
    let r = apply(
        vec![
            op(vec![
                kind("add"),
                path("Patient"),
                part("name", "valueString", json!("birthDate")),
                part("value", "valueDate", json!("1930-01-01")),
            ]),
            op(vec![
                kind("add"),
                path("Patient"),
                part("name", "valueString", json!("identifier")),
                part(
                    "value",
                    "valueIdentifier",
                    json!({"system": "http://a", "value": "2"}),
                ),
            ]),
        ],
        json!({"resourceType": "Patient", "identifier": [{"system": "http://a", "value": "1"}]}),
    )
    .unwrap();
    assert_eq!(r["birthDate"], "1930-01-01");
    assert_eq!(r["identifier"][1]["value"], "2");
    assert_eq!(r["identifier"].as_array().unwrap().len(), 2);
}

#[test]
fn add_names_choice_elements_by_the_value_type() {
    let r = apply(
        vec![op(vec![
            kind("add"),
            path("Patient"),
            part("name", "valueString", json!("deceased")),
            part("value", "valueDateTime", json!("2020-01-01T10:00:00Z")),
        ])],
        json!({"resourceType": "Patient"}),
    )
    .unwrap();
    assert_eq!(r["deceasedDateTime"], "2020-01-01T10:00:00Z");
}

#[test]
fn add_builds_anonymous_types_from_parts() {
    // Patient.contact is a backbone element: its value is given as parts.
    let value = json!({"name": "value", "part": [
        {"name": "name", "valueHumanName": {"text": "a name"}},
        {"name": "telecom", "valueContactPoint": {"system": "phone", "value": "555"}},
        {"name": "telecom", "valueContactPoint": {"system": "email", "value": "a@b"}},
        {"name": "gender", "valueCode": "female"}]});
    let r = apply(
        vec![op(vec![
            kind("add"),
            path("Patient"),
            part("name", "valueString", json!("contact")),
            value,
        ])],
        json!({"resourceType": "Patient"}),
    )
    .unwrap();
    assert_eq!(
        r["contact"],
        json!([{"name": {"text": "a name"}, "telecom": [{"system": "phone", "value": "555"}, {"system": "email", "value": "a@b"}], "gender": "female"}])
    );
}

#[test]
fn add_refuses_an_element_that_already_has_a_value_or_does_not_exist() {
    let add = |name: &str| {
        vec![op(vec![
            kind("add"),
            path("Patient"),
            part("name", "valueString", json!(name)),
            part("value", "valueDate", json!("1930-01-01")),
        ])]
    };
    let m = failed(
        add("birthDate"),
        json!({"resourceType": "Patient", "birthDate": "1920-01-01"}),
    );
    assert!(m.contains("already has a value"), "{m}");
    let m = failed(add("birthday"), json!({"resourceType": "Patient"}));
    assert!(m.contains("'birthday' is not an element"), "{m}");
    // The value's type must fit the element.
    let wrong = vec![op(vec![
        kind("add"),
        path("Patient"),
        part("name", "valueString", json!("maritalStatus")),
        part("value", "valueQuantity", json!({"value": 1})),
    ])];
    let m = failed(wrong, json!({"resourceType": "Patient"}));
    assert!(
        m.contains("Quantity") && m.contains("CodeableConcept"),
        "{m}"
    );
}

#[test]
fn insert_places_a_value_at_an_index() {
    let ins = |i: u64, v: &str| {
        op(vec![
            kind("insert"),
            path("Patient.name[0].given"),
            part("index", "valueInteger", json!(i)),
            part("value", "valueString", json!(v)),
        ])
    };
    let r = apply(
        vec![ins(0, "first"), ins(3, "last")],
        json!({"resourceType": "Patient", "name": [{"given": ["a", "b"]}]}),
    )
    .unwrap();
    assert_eq!(r["name"][0]["given"], json!(["first", "a", "b", "last"]));
    // Into an empty list at 0; beyond the end is an error.
    let r = apply(
        vec![ins(0, "only")],
        json!({"resourceType": "Patient", "name": [{"family": "f"}]}),
    )
    .unwrap();
    assert_eq!(r["name"][0]["given"], json!(["only"]));
    let m = failed(
        vec![ins(5, "x")],
        json!({"resourceType": "Patient", "name": [{"given": ["a"]}]}),
    );
    assert!(m.contains("beyond the end"), "{m}");
    // Not a list.
    let not_list = vec![op(vec![
        kind("insert"),
        path("Patient.birthDate"),
        part("index", "valueInteger", json!(0)),
        part("value", "valueDate", json!("2000-01-01")),
    ])];
    let m = failed(not_list, json!({"resourceType": "Patient"}));
    assert!(m.contains("not a list"), "{m}");
}

#[test]
fn delete_removes_one_element_and_what_it_leaves_empty() {
    let del = |p: &str| op(vec![kind("delete"), path(p)]);
    let r = apply(
        vec![
            del("Patient.identifier.where(value = '2')"),
            del("Patient.name[0].family"),
            del("Patient.gender"),
        ],
        json!({"resourceType": "Patient", "gender": "male",
            "identifier": [{"value": "1"}, {"value": "2"}], "name": [{"family": "f"}]}),
    )
    .unwrap();
    assert_eq!(
        r,
        json!({"resourceType": "Patient", "identifier": [{"value": "1"}]})
    );
    // Nothing found: no change, no error.
    let r = apply(
        vec![del("Patient.birthDate")],
        json!({"resourceType": "Patient", "active": true}),
    )
    .unwrap();
    assert_eq!(r, json!({"resourceType": "Patient", "active": true}));
    let m = failed(
        vec![del("Patient.identifier")],
        json!({"resourceType": "Patient",
        "identifier": [{"value": "1"}, {"value": "2"}]}),
    );
    assert!(m.contains("finds 2 elements"), "{m}");
}

#[test]
fn replace_changes_values_and_the_type_of_choice_elements() {
    let rep =
        |p: &str, key: &str, v: Value| op(vec![kind("replace"), path(p), part("value", key, v)]);
    let r = apply(
        vec![
            rep("Patient.birthDate", "valueDate", json!("1930-01-01")),
            rep("Patient.deceased", "valueDateTime", json!("2020-01-01")),
            rep("Patient.name[0].given[1]", "valueString", json!("B")),
            rep(
                "Patient.identifier[0]",
                "valueIdentifier",
                json!({"value": "new"}),
            ),
        ],
        json!({"resourceType": "Patient", "birthDate": "1920-01-01", "deceasedBoolean": true,
            "identifier": [{"value": "old"}], "name": [{"given": ["a", "b", "c"]}]}),
    )
    .unwrap();
    assert_eq!(
        r,
        json!({"resourceType": "Patient", "birthDate": "1930-01-01", "identifier": [{"value": "new"}],
            "name": [{"given": ["a", "B", "c"]}], "deceasedDateTime": "2020-01-01"})
    );
    let m = failed(
        vec![rep("Patient.birthDate", "valueDate", json!("1930-01-01"))],
        json!({"resourceType": "Patient"}),
    );
    assert!(m.contains("finds no element"), "{m}");
}

#[test]
fn move_reorders_a_list_with_its_extensions() {
    let mv = |from: u64, to: u64| {
        op(vec![
            kind("move"),
            path("Patient.name[0].given"),
            part("source", "valueInteger", json!(from)),
            part("destination", "valueInteger", json!(to)),
        ])
    };
    let ext = json!({"extension": [{"url": "http://x", "valueString": "e"}]});
    let r = apply(
        vec![mv(0, 2)],
        json!({"resourceType": "Patient", "name": [{"given": ["a", "b", "c"], "_given": [ext.clone(), null, null]}]}),
    )
    .unwrap();
    assert_eq!(r["name"][0]["given"], json!(["b", "c", "a"]));
    assert_eq!(r["name"][0]["_given"], json!([null, null, ext]));
    let m = failed(
        vec![mv(0, 3)],
        json!({"resourceType": "Patient", "name": [{"given": ["a", "b", "c"]}]}),
    );
    assert!(m.contains("within the 3 elements"), "{m}");
}

#[test]
fn primitive_extensions_travel_with_their_values() {
    let ext = json!({"extension": [{"url": "http://x", "valueString": "e"}]});
    let value = json!({"name": "value", "valueString": "b", "_valueString": ext});
    let r = apply(
        vec![op(vec![
            kind("insert"),
            path("Patient.name[0].given"),
            part("index", "valueInteger", json!(1)),
            value,
        ])],
        json!({"resourceType": "Patient", "name": [{"given": ["a", "c"]}]}),
    )
    .unwrap();
    assert_eq!(r["name"][0]["given"], json!(["a", "b", "c"]));
    assert_eq!(r["name"][0]["_given"], json!([null, ext, null]));
    // Deleting it leaves no all-null `_given` behind.
    let r = apply(
        vec![op(vec![kind("delete"), path("Patient.name[0].given[1]")])],
        r,
    )
    .unwrap();
    assert_eq!(r["name"][0], json!({"given": ["a", "c"]}));
}

#[test]
fn contained_resources_are_reached_and_added() {
    let r = apply(
        vec![
            op(vec![kind("replace"), path("Patient.contained[0].name"), part("value", "valueString", json!("B"))]),
            op(vec![kind("add"), path("Patient"), part("name", "valueString", json!("contained")),
                json!({"name": "value", "resource": {"resourceType": "Practitioner", "id": "p"}})]),
        ],
        json!({"resourceType": "Patient", "contained": [{"resourceType": "Organization", "id": "o", "name": "A"}]}),
    )
    .unwrap();
    assert_eq!(r["contained"][0]["name"], "B");
    assert_eq!(r["contained"][1]["resourceType"], "Practitioner");
}

#[test]
fn malformed_patches_say_what_is_wrong_and_where() {
    let bad = |ops: Vec<Value>| match FhirPathPatch::parse(&patch(ops)) {
        Err(PatchError::Malformed { message, at }) => format!("{at}: {message}"),
        other => panic!("expected malformed, got {other:?}"),
    };
    let m = bad(vec![op(vec![kind("rename"), path("Patient")])]);
    assert!(m.contains("'rename' is not a patch operation"), "{m}");
    let m = bad(vec![op(vec![
        kind("add"),
        path("Patient"),
        part("value", "valueString", json!("x")),
    ])]);
    assert!(
        m.starts_with("Parameters.parameter[0]") && m.contains("needs a 'name' part"),
        "{m}"
    );
    let m = bad(vec![op(vec![kind("delete"), path("Patient.name.where(")])]);
    assert!(m.contains("is not FHIRPath"), "{m}");
    let m = bad(vec![json!({"name": "op", "part": []})]);
    assert!(m.contains("only parameters named 'operation'"), "{m}");
    let m = bad(vec![op(vec![
        kind("insert"),
        path("Patient.name.where(use = 'official')"),
        part("index", "valueInteger", json!(0)),
        part("value", "valueString", json!("x")),
    ])]);
    assert!(m.contains("does not name a list"), "{m}");
    let m = bad(vec![]);
    assert!(m.contains("at least one"), "{m}");
    // A path that evaluates to a value rather than an element.
    let m = failed(
        vec![op(vec![kind("delete"), path("Patient.name.count()")])],
        json!({"resourceType": "Patient", "name": [{"text": "x"}]}),
    );
    assert!(m.contains("not an element of the resource"), "{m}");
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    fn paths() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "Patient",
            "Patient.name",
            "Patient.name[0]",
            "Patient.name[5]",
            "Patient.name.given",
            "Patient.name[0].given",
            "Patient.name[0].given[1]",
            "Patient.birthDate",
            "Patient.deceased",
            "Patient.contact",
            "Patient.contact[0].name",
            "Patient.id",
            "Patient.name.count()",
            "name",
            "Patient.extension",
            "Patient.contained[0].name",
            "%resource",
            "Patient.name.first().given",
        ])
    }

    fn values() -> impl Strategy<Value = Value> {
        prop::sample::select(vec![
            json!({"name": "value", "valueString": "x"}),
            json!({"name": "value", "valueDate": "2000-01-01"}),
            json!({"name": "value", "valueBoolean": true}),
            json!({"name": "value", "valueHumanName": {"family": "F"}}),
            json!({"name": "value", "part": [{"name": "name", "valueHumanName": {"text": "t"}}]}),
            json!({"name": "value", "part": [{"name": "nonsense", "valueString": "t"}]}),
            json!({"name": "value", "resource": {"resourceType": "Organization", "id": "o"}}),
            json!({"name": "value", "valueString": "x", "_valueString": {"id": "a"}}),
        ])
    }

    fn operation() -> impl Strategy<Value = Value> {
        (
            prop::sample::select(vec!["add", "insert", "delete", "replace", "move"]),
            paths(),
            prop::sample::select(vec![
                "given",
                "name",
                "birthDate",
                "deceased",
                "contact",
                "contained",
                "x",
            ]),
            values(),
            0u64..4,
            0u64..4,
        )
            .prop_map(|(k, p, n, v, a, b)| {
                op(vec![
                    kind(k),
                    path(p),
                    part("name", "valueString", json!(n)),
                    v,
                    part("index", "valueInteger", json!(a)),
                    part("source", "valueInteger", json!(a)),
                    part("destination", "valueInteger", json!(b)),
                ])
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn patches_never_panic(ops in prop::collection::vec(operation(), 1..5)) {
            let patient = json!({"resourceType": "Patient", "id": "p",
                "name": [{"family": "A", "given": ["B", "C"], "_given": [null, {"id": "g"}]}],
                "contact": [{"name": {"text": "c"}}], "deceasedBoolean": false,
                "contained": [{"resourceType": "Organization", "id": "o", "name": "O"}]});
            if let Ok(out) = apply(ops, patient) {
                prop_assert!(out.is_object());
            }
        }
    }
}
