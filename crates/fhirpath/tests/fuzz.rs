//! Property tests: random strings and token soups never make the parser or the
//! evaluator panic (errors are fine).

use fhirpath::{compile, EvalContext};
use proptest::prelude::*;
use serde_json::json;

const TOKENS: &[&str] = &[
    "Patient",
    "name",
    "given",
    "value",
    "Observation",
    ".",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "0",
    "1",
    "2.5",
    "'a'",
    "'x y'",
    "@2020",
    "@2020-01-02T10:00:00Z",
    "@T10:00",
    "+",
    "-",
    "*",
    "/",
    "|",
    "&",
    "=",
    "!=",
    "~",
    "<",
    ">=",
    "and",
    "or",
    "xor",
    "implies",
    "is",
    "as",
    "div",
    "mod",
    "in",
    "contains",
    "where",
    "select",
    "exists",
    "first",
    "last",
    "skip",
    "take",
    "iif",
    "true",
    "false",
    "$this",
    "$index",
    "$total",
    "%resource",
    "%context",
    "children()",
    "descendants()",
    "ofType",
    "count()",
    "5 'mg'",
    "3 days",
    "Quantity",
    "String",
    "toString()",
    "substring",
    "matches",
    "replaceMatches",
    "'[a-z]+'",
    "repeat",
    "aggregate",
    "sort",
    ",",
    "lowBoundary()",
    "highBoundary(2)",
    "resolve()",
    "extension",
];

fn input() -> serde_json::Value {
    json!({
        "resourceType": "Patient",
        "name": [{"given": ["Peter", "James"], "family": "Chalmers"}, {"given": ["Jim"]}],
        "birthDate": "1974-12-25",
        "_birthDate": {"extension": [{"url": "u", "valueString": "x"}]},
        "contained": [{"resourceType": "Observation", "status": "final", "valueQuantity": {"value": 5, "code": "mg"}}]
    })
}

fn run(expr: &str) {
    if let Ok(e) = compile(expr) {
        let p = input();
        let ctx = EvalContext::new();
        let _ = e.evaluate(&ctx, &p).map(|r| r.to_json());
        let mut strict = EvalContext::new();
        strict.set_strict(true);
        let _ = e.evaluate(&strict, &p);
    }
}

/// Cases per property: `PROPTEST_CASES` when set (longer fuzz runs), else the default.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(3000), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_strings_do_not_panic(s in "\\PC{0,60}") {
        run(&s);
    }

    #[test]
    fn token_soup_does_not_panic(tokens in prop::collection::vec(prop::sample::select(TOKENS), 1..24)) {
        run(&tokens.join(" "));
        run(&tokens.join(""));
    }
}
