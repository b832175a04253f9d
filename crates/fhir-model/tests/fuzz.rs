//! Property tests of the JSON reader for request bodies: arbitrary bytes never make it
//! panic; any JSON without duplicate members or control characters reads back as
//! serde_json reads it; duplicates and control characters are always refused.

use fhir_model::json::{parse, parse_strict};
use proptest::prelude::*;
use serde_json::Value;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        "[ -~]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_strict(&bytes);
    }

    #[test]
    fn clean_json_reads_back(v in json_value()) {
        let text = serde_json::to_string(&v).unwrap();
        prop_assert_eq!(parse_strict(text.as_bytes()).unwrap(), parse(text.as_bytes()).unwrap());
    }

    #[test]
    fn duplicate_members_are_refused(key in "[a-z]{1,6}", a in json_value(), b in json_value()) {
        let text = format!(
            "{{\"{key}\":{},\"{key}\":{}}}",
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
        prop_assert!(parse_strict(text.as_bytes()).is_err());
    }

    #[test]
    fn control_characters_are_refused(prefix in "[a-z]{0,5}", c in 0u32..0x20) {
        prop_assume!(![9, 10, 13].contains(&c));
        let text = format!("{{\"s\":\"{prefix}\\u{c:04x}\"}}");
        prop_assert!(parse_strict(text.as_bytes()).is_err());
    }
}
