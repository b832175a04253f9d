//! Every R4 search parameter expression compiles and passes the model check for each
//! of its base resource types.

use fhir_model::Definitions;
use fhirpath::{compile, EvalContext};
use serde_json::json;

#[test]
fn all_r4_search_param_expressions_compile_and_check() {
    let defs = Definitions::r4();
    let ctx = EvalContext::new();
    let mut failures = Vec::new();
    let mut count = 0;
    for sp in defs.search_params() {
        let Some(expr) = &sp.expression else { continue };
        count += 1;
        let compiled = match compile(expr) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{}: {expr}: {e}", sp.url));
                continue;
            }
        };
        for base in &sp.base {
            if !defs.is_resource_type(base) {
                continue;
            }
            if let Err(e) = compiled.check(&ctx, Some(base)) {
                failures.push(format!("{} on {base}: {expr}: {e}", sp.url));
            }
            // And evaluating over an empty resource of that type works.
            let empty = json!({ "resourceType": base });
            if let Err(e) = compiled.evaluate(&ctx, &empty) {
                failures.push(format!("{} eval on {base}: {expr}: {e}", sp.url));
            }
        }
    }
    for f in &failures {
        println!("{f}");
    }
    assert!(count > 1000, "only {count} expressions");
    assert!(failures.is_empty(), "{} failures", failures.len());
}

#[test]
fn observation_search_params_evaluate_on_synthea() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/synthea/Darrell_Erdman_c9efcb62.json"
    );
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}. The shared Synthea data must be there"));
    let bundle: serde_json::Value = serde_json::from_str(&text).expect("bundle JSON");
    let ctx = EvalContext::new();
    let mut values = 0;
    for entry in bundle["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .take(400)
    {
        let resource = &entry["resource"];
        let Some(rt) = resource["resourceType"].as_str() else {
            continue;
        };
        for sp in Definitions::r4().search_params_for(rt) {
            let Some(expr) = &sp.expression else { continue };
            let e = compile(expr).expect("compiles");
            match e.evaluate(&ctx, resource) {
                Ok(r) => values += r.len(),
                Err(err) => panic!("{rt} {}: {expr}: {err}", sp.code),
            }
        }
    }
    assert!(values > 100, "only {values} values extracted");
}
