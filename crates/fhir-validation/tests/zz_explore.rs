use fhir_validation::{ValidationOptions, Validator};
use std::collections::BTreeMap;

#[test]
fn explore() {
    let v = Validator::r4();
    let mut files = std::env::var("EXPLORE").unwrap_or_default();
    if files.ends_with(".txt") {
        files = std::fs::read_to_string(&files).unwrap().replace('\n', ",");
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let t = std::time::Instant::now();
    for f in files.split(',').filter(|f| !f.is_empty()) {
        let text = std::fs::read_to_string(f).unwrap();
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let r = v.validate(&json, &ValidationOptions::default());
        for i in &r.issues {
            if std::env::var("ALL").is_ok() || i.severity.is_error() {
                println!("{f}: {i}");
            }
            let key: String = format!(
                "{:?} {}",
                i.severity,
                i.message.chars().take(70).collect::<String>()
            );
            *counts.entry(key).or_default() += 1;
        }
    }
    println!("elapsed {:?}", t.elapsed());
    for (k, n) in counts {
        println!("{n:6} {k}");
    }
}
