//! Extraction of every search parameter from each resource of a Synthea patient Bundle
//! (`shared/synthea/Darrell_Erdman_c9efcb62.json`, 566 resources).

use criterion::{criterion_group, criterion_main, Criterion};
use fhir_search::{extract, SearchRegistry};
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
        .map(|entries| entries.iter().map(|e| e["resource"].clone()).collect())
        .unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    let reg = SearchRegistry::r4();
    let all = resources();
    let first = |t: &str| {
        all.iter()
            .find(|r| r["resourceType"] == t)
            .cloned()
            .expect("resource of that type")
    };
    let mut g = c.benchmark_group("extract");
    g.sample_size(20);
    g.bench_function("whole bundle (566 resources)", |b| {
        b.iter(|| {
            let mut rows = 0;
            for r in &all {
                let rt = r["resourceType"].as_str().unwrap_or_default();
                rows += extract(reg, rt, r).len();
            }
            rows
        })
    });
    for t in [
        "Patient",
        "Observation",
        "Encounter",
        "Claim",
        "ExplanationOfBenefit",
    ] {
        let r = first(t);
        g.bench_function(t, |b| b.iter(|| extract(reg, t, &r).len()));
    }
    g.finish();
    c.bench_function("registry build (R4, all expressions)", |b| {
        b.iter(|| SearchRegistry::new(fhir_model::Definitions::r4()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
