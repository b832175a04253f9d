//! Validates every resource of one Synthea transaction Bundle, one resource at a time
//! (as the server does on write), and a few typical resources on their own.

use criterion::{criterion_group, criterion_main, Criterion};
use fhir_validation::{ValidationOptions, Validator};
use serde_json::Value;
use std::time::{Duration, Instant};

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

/// Each resource's median time over 21 runs; prints the median and p90 over resources.
fn per_resource_medians(validator: &Validator, all: &[Value]) {
    let opts = ValidationOptions::default();
    let mut medians: Vec<Duration> = all
        .iter()
        .map(|r| {
            let mut runs: Vec<Duration> = (0..21)
                .map(|_| {
                    let t = Instant::now();
                    criterion::black_box(validator.validate(r, &opts));
                    t.elapsed()
                })
                .collect();
            runs.sort();
            runs[runs.len() / 2]
        })
        .collect();
    medians.sort();
    let at = |q: f64| medians[((medians.len() - 1) as f64 * q) as usize];
    println!(
        "per-resource median over {} resources: {:?} (p90 {:?}, max {:?})",
        medians.len(),
        at(0.5),
        at(0.9),
        at(1.0)
    );
}

fn bench(c: &mut Criterion) {
    let validator = Validator::r4();
    let opts = ValidationOptions::default();
    let all = resources();
    for r in &all {
        validator.validate(r, &opts); // warm the caches (value set expansions)
    }
    per_resource_medians(&validator, &all);
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
