//! Validates every resource of one Synthea transaction Bundle, one resource at a time
//! (as the server does on write), and a few typical resources on their own.

use criterion::{criterion_group, criterion_main, Criterion};
use fhir_validation::{ValidationOptions, Validator};
use serde_json::Value;

fn resources() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/synthea/Darrell_Erdman_c9efcb62.json"
    );
    let text = std::fs::read_to_string(path).expect("Synthea bundle (shared/synthea)");
    let bundle: Value = serde_json::from_str(&text).expect("bundle JSON");
    bundle["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["resource"].clone())
        .collect()
}

fn first<'a>(all: &'a [Value], rt: &str) -> &'a Value {
    all.iter()
        .find(|r| r["resourceType"] == rt)
        .expect("a resource of the type")
}

fn bench(c: &mut Criterion) {
    let validator = Validator::r4();
    let opts = ValidationOptions::default();
    let all = resources();
    for r in &all {
        validator.validate(r, &opts); // warm the caches (compiled invariants, expansions)
    }
    let mut g = c.benchmark_group("validate");
    g.sample_size(20);
    g.bench_function(format!("all {} resources, one by one", all.len()), |b| {
        b.iter(|| {
            for r in &all {
                criterion::black_box(validator.validate(r, &opts));
            }
        })
    });
    for rt in [
        "Patient",
        "Encounter",
        "Observation",
        "Claim",
        "ExplanationOfBenefit",
    ] {
        let r = first(&all, rt);
        g.bench_function(rt, |b| b.iter(|| validator.validate(r, &opts)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
