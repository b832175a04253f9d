//! Property tests: arbitrary query strings and arbitrary resources never make the query
//! parser or the index extraction panic (errors are fine). `PROPTEST_CASES=100000
//! cargo test -p fhir-search --test fuzz` runs a longer fuzz (docs/security.md).

use fhir_search::{extract, parse_query_string, SearchRegistry};
use proptest::prelude::*;
use serde_json::{json, Value};

const PARTS: &[&str] = &[
    "name",
    "given",
    "family",
    "subject",
    "patient",
    "code",
    "value-quantity",
    "date",
    "birthdate",
    "identifier",
    "link",
    "general-practitioner",
    "_id",
    "_lastUpdated",
    "_tag",
    "_has:",
    "Observation:",
    "Patient",
    ":Patient",
    ":",
    ".",
    "=",
    "&",
    ",",
    "|",
    "\\",
    "$",
    "eq",
    "ne",
    "gt",
    "lt",
    "ge",
    "le",
    "sa",
    "eb",
    "ap",
    "2020",
    "2020-01",
    "2020-01-02",
    "2020-01-02T10:00:00Z",
    "T25:61",
    "5.4",
    "-1e400",
    "1e-400",
    "|http://unitsofmeasure.org|mg",
    ":exact",
    ":contains",
    ":missing",
    ":text",
    ":not",
    ":above",
    ":below",
    ":in",
    ":of-type",
    ":identifier",
    "true",
    "false",
    "_include",
    "_revinclude",
    ":iterate",
    "*",
    "Observation:subject",
    "_sort",
    "-date",
    "_count",
    "_total",
    "accurate",
    "_summary",
    "count",
    "_elements",
    "%00",
    "%ZZ",
    "%",
    "+",
    "ü",
    "名",
    "\u{0}",
    "\u{7}",
    " ",
    "http://loinc.org",
    "urn:uuid:1",
    "Patient/1",
    "Patient/1/_history/2",
];

fn query() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PARTS), 0..40).prop_map(|p| p.concat())
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[ -~]{0,12}".prop_map(Value::String),
        prop::sample::select(
            &[
                "2020-01-02",
                "2020-13-45T99:00:00Z",
                "http://loinc.org",
                "Patient/x",
                "urn:uuid:1"
            ][..]
        )
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(
                        &[
                            "name",
                            "given",
                            "family",
                            "value",
                            "valueQuantity",
                            "code",
                            "coding",
                            "system",
                            "subject",
                            "reference",
                            "identifier",
                            "birthDate",
                            "period",
                            "start",
                            "end",
                            "unit",
                            "component",
                            "valueString",
                            "effectiveDateTime",
                            "link",
                            "other",
                            "id",
                            "_given",
                            "extension",
                            "url",
                        ][..]
                    ),
                    inner
                ),
                0..5
            )
            .prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn query_strings_never_panic(q in query(), strict in any::<bool>(),
        rt in prop::sample::select(&["Patient", "Observation", "Encounter"][..])) {
        let reg = SearchRegistry::r4();
        let _ = parse_query_string(reg, Some(rt), &q, strict);
        let _ = parse_query_string(reg, None, &q, strict);
    }

    #[test]
    fn any_text_as_a_query_never_panics(q in "\\PC{0,200}") {
        let _ = parse_query_string(SearchRegistry::r4(), Some("Observation"), &q, false);
    }

    #[test]
    fn extraction_never_panics(body in json_value(),
        rt in prop::sample::select(&["Patient", "Observation", "Encounter"][..])) {
        let mut resource = match body {
            Value::Object(m) => Value::Object(m),
            other => json!({"value": other}),
        };
        resource["resourceType"] = json!(rt);
        let rows = extract(SearchRegistry::r4(), rt, &resource);
        prop_assert!(rows.strings.iter().all(|r| r.normalized.len() <= fhir_search::MAX_INDEX_TEXT));
    }
}
