//! Round-trips every example of the R4 specification (`../shared/fhir/`) through the
//! lossless JSON model and checks that the definitions know every element in them.

mod common;

use fhir_model::{json, Definitions};

#[test]
fn every_spec_example_round_trips_and_has_only_known_elements() {
    let defs = Definitions::r4();
    let (mut total, mut round_trip_ok, mut known_ok) = (0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    for (name, text) in common::spec_examples() {
        total += 1;
        let first = json::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let written = json::to_string(&first);
        let second = json::parse(written.as_bytes()).expect("reparse");
        if first == second && json::to_string(&second) == written {
            round_trip_ok += 1;
        } else {
            failures.push(format!("{name}: round trip differs"));
        }
        let issues = defs.structure_issues(&first);
        if issues.is_empty() {
            known_ok += 1;
        } else {
            let list: Vec<String> = issues.iter().take(5).map(|i| i.to_string()).collect();
            failures.push(format!("{name}: {}", list.join("; ")));
        }
    }
    println!("spec examples: {total} read, {round_trip_ok} round-tripped, {known_ok} with only known elements");
    for f in failures.iter().take(40) {
        println!("  {f}");
    }
    assert_eq!(total, 5306, "the R4 examples package holds 5,306 examples");
    assert!(failures.is_empty(), "{} failures", failures.len());
}
