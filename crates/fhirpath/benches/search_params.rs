//! Evaluates the expressions of every Observation search parameter over a Synthea
//! Observation (the first one of a patient's transaction Bundle).

use criterion::{criterion_group, criterion_main, Criterion};
use fhir_model::Definitions;
use fhirpath::{compile, EvalContext, Expression};
use serde_json::Value;

fn observation() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/synthea/Darrell_Erdman_c9efcb62.json"
    );
    let text = std::fs::read_to_string(path).expect("Synthea bundle (shared/synthea)");
    let bundle: Value = serde_json::from_str(&text).expect("bundle JSON");
    bundle["entry"]
        .as_array()
        .and_then(|entries| {
            entries
                .iter()
                .map(|e| &e["resource"])
                .find(|r| r["resourceType"] == "Observation")
                .cloned()
        })
        .expect("an Observation in the bundle")
}

fn expressions() -> Vec<(String, String)> {
    Definitions::r4()
        .search_params_for("Observation")
        .into_iter()
        .filter_map(|sp| sp.expression.clone().map(|e| (sp.code.clone(), e)))
        .collect()
}

fn bench(c: &mut Criterion) {
    let obs = observation();
    let sources = expressions();
    let compiled: Vec<(String, Expression)> = sources
        .iter()
        .map(|(code, e)| {
            (
                code.clone(),
                compile(e).expect("search parameter expression compiles"),
            )
        })
        .collect();
    let ctx = EvalContext::new();
    // Warm the per-type model check once, as the server would.
    for (_, e) in &compiled {
        e.evaluate(&ctx, &obs).expect("evaluates");
    }
    println!(
        "{} Observation search parameters with an expression",
        compiled.len()
    );

    c.bench_function(
        "compile all Observation search parameter expressions",
        |b| {
            b.iter(|| {
                for (_, e) in &sources {
                    std::hint::black_box(compile(e).ok());
                }
            })
        },
    );
    c.bench_function(
        "evaluate all Observation search parameter expressions",
        |b| {
            b.iter(|| {
                let mut n = 0;
                for (_, e) in &compiled {
                    n += e.evaluate(&ctx, &obs).map(|r| r.len()).unwrap_or(0);
                }
                std::hint::black_box(n)
            })
        },
    );
    for code in [
        "code",
        "date",
        "subject",
        "value-quantity",
        "combo-code-value-quantity",
    ] {
        if let Some((_, e)) = compiled.iter().find(|(c, _)| c == code) {
            c.bench_function(&format!("evaluate {code}"), |b| {
                b.iter(|| {
                    std::hint::black_box(e.evaluate(&ctx, &obs).map(|r| r.len()).unwrap_or(0))
                })
            });
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
