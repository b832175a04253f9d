//! Property test: arbitrary JSON Patch documents applied to a resource never make the
//! patch step panic — each is applied or refused with an error, and an applied one
//! keeps the resource's type and id. `PROPTEST_CASES=100000 cargo test -p fhir-server
//! patch_fuzz` runs a longer fuzz (docs/security.md).

use proptest::prelude::*;
use serde_json::{json, Value};

use super::patch::{apply_patch, Patch};

fn pointer() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(
            &[
                "name",
                "0",
                "1",
                "-",
                "given",
                "family",
                "id",
                "resourceType",
                "birthDate",
                "~0",
                "~1",
                "",
                "telecom",
                "x",
            ][..],
        ),
        0..4,
    )
    .prop_map(|parts| parts.iter().map(|p| format!("/{p}")).collect())
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("text")),
        Just(json!(1)),
        Just(json!(null)),
        Just(json!({"family": "F"})),
        Just(json!([{"given": ["a"]}])),
        Just(json!("1970-01-01")),
    ]
}

fn operation() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(&["add", "remove", "replace", "move", "copy", "test"][..]),
        pointer(),
        pointer(),
        value(),
    )
        .prop_map(
            |(op, path, from, value)| json!({"op": op, "path": path, "from": from, "value": value}),
        )
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn patches_never_panic(ops in prop::collection::vec(operation(), 0..6), lenient in any::<bool>()) {
        let Ok(patch) = serde_json::from_value::<json_patch::Patch>(Value::Array(ops)) else {
            return Ok(());
        };
        let doc = json!({"resourceType": "Patient", "id": "p", "name": [{"family": "A", "given": ["B"]}],
            "birthDate": "1970-01-01"});
        let defs = fhir_model::Definitions::r4();
        if let Ok(out) = apply_patch(defs, "Patient".into(), Patch::Json(patch), lenient, None)(doc) {
            prop_assert_eq!(&out["resourceType"], "Patient");
            prop_assert_eq!(&out["id"], "p");
        }
    }
}
