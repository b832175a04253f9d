//! Runs the official FHIRPath test suite for FHIR R4 (tests/data/tests-fhir-r4.xml,
//! from HL7 fhir-test-cases) against the engine.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;

use fhirpath::{compile, Decimal, EvalContext, Item};
use serde_json::Value;

/// Tests not run, with the reason. Empty: every test runs.
const SKIPPED: &[(&str, &str)] = &[];

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

struct Expected {
    kind: Option<String>,
    text: String,
}

fn decimal(s: &str) -> Option<Decimal> {
    Decimal::from_str(s).ok()
}

/// Compares one result item with an `<output>`.
fn matches(item: &Item, exp: &Expected) -> bool {
    let sys = item.system();
    let text = exp.text.trim();
    match exp.kind.as_deref() {
        Some("boolean") => matches!(sys, Some(Item::Boolean(b)) if b.to_string() == text),
        Some("integer") => matches!(sys, Some(Item::Integer(i)) if i.to_string() == text),
        Some("decimal") => match (&sys, decimal(text)) {
            (Some(Item::Decimal(d)), Some(e)) => *d == e,
            (Some(Item::Integer(i)), Some(e)) => Decimal::from(*i) == e,
            _ => false,
        },
        Some("string") | Some("code") | Some("id") | Some("uri") => item.as_str() == Some(text),
        Some("date") | Some("dateTime") | Some("time") | Some("Quantity") => {
            item.to_literal() == text
        }
        _ => {
            let lit = item.to_literal();
            if lit == text {
                return true;
            }
            match (&sys, decimal(text)) {
                (Some(Item::Decimal(d)), Some(e)) => *d == e && d.scale() == e.scale(),
                (Some(Item::Integer(i)), Some(e)) => Decimal::from(*i) == e,
                _ => false,
            }
        }
    }
}

#[test]
fn r4_suite() {
    let xml = std::fs::read_to_string(data_dir().join("tests-fhir-r4.xml")).expect("suite file");
    let doc = roxmltree::Document::parse(&xml).expect("suite XML");
    let mut inputs: HashMap<String, Value> = HashMap::new();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut failures = Vec::new();
    for (n, test) in doc
        .descendants()
        .filter(|n| n.has_tag_name("test"))
        .enumerate()
    {
        let group = test
            .parent()
            .and_then(|g| g.attribute("name"))
            .unwrap_or("");
        let name = test
            .attribute("name")
            .map(str::to_string)
            .unwrap_or_else(|| format!("#{n}"));
        if let Some((_, why)) = SKIPPED.iter().find(|(s, _)| *s == name) {
            println!("skipped {name}: {why}");
            skipped += 1;
            continue;
        }
        let Some(expr_node) = test.children().find(|c| c.has_tag_name("expression")) else {
            continue;
        };
        let expr = expr_node.text().unwrap_or("");
        let invalid_kind = expr_node.attribute("invalid");
        let invalid = invalid_kind.is_some();
        let strict = test.attribute("mode") == Some("strict")
            || expr_node.attribute("mode") == Some("strict");
        let predicate = test.attribute("predicate") == Some("true");
        let unordered = test.attribute("ordered") == Some("false");
        let expected: Vec<Expected> = test
            .children()
            .filter(|c| c.has_tag_name("output"))
            .map(|o| Expected {
                kind: o.attribute("type").map(str::to_string),
                text: o.text().unwrap_or("").to_string(),
            })
            .collect();
        let input = match test.attribute("inputfile") {
            Some(f) => {
                let json_name = f.replace(".xml", ".json");
                inputs
                    .entry(json_name.clone())
                    .or_insert_with(|| {
                        let text = std::fs::read_to_string(data_dir().join(&json_name))
                            .expect("input file");
                        serde_json::from_str(&text).expect("input JSON")
                    })
                    .clone()
            }
            None => Value::Null,
        };
        let mut ctx = EvalContext::new();
        ctx.set_strict(strict);
        let outcome: Result<Vec<Item>, String> = compile(expr)
            .map_err(|e| format!("parse: {e}"))
            .and_then(|c| {
                c.evaluate(&ctx, &input)
                    .map(|r| r.0)
                    .map_err(|e| format!("eval: {e}"))
            });
        let verdict = match (&outcome, invalid) {
            // A syntax error must be found by the parser, not later.
            (Err(e), true) if invalid_kind == Some("syntax") && !e.starts_with("parse:") => {
                Err(format!("expected a syntax error, got {e}"))
            }
            (Err(_), true) => Ok(()),
            (Ok(r), true) => Err(format!(
                "expected an error, got {:?}",
                r.iter().map(Item::to_literal).collect::<Vec<_>>()
            )),
            (Err(e), false) => Err(e.clone()),
            (Ok(r), false) => {
                let got: Vec<Item> = if predicate {
                    // The spec's boolean conversion: a single Boolean keeps its value,
                    // any other single item is true, an empty result is false.
                    match r.as_slice() {
                        [Item::Boolean(b)] => vec![Item::Boolean(*b)],
                        [] => vec![Item::Boolean(false)],
                        _ => vec![Item::Boolean(true)],
                    }
                } else {
                    r.clone()
                };
                let ok = got.len() == expected.len()
                    && if unordered {
                        let mut used = vec![false; got.len()];
                        expected.iter().all(|e| {
                            match got
                                .iter()
                                .enumerate()
                                .find(|(i, g)| !used[*i] && matches(g, e))
                            {
                                Some((i, _)) => {
                                    used[i] = true;
                                    true
                                }
                                None => false,
                            }
                        })
                    } else {
                        got.iter().zip(&expected).all(|(g, e)| matches(g, e))
                    };
                if ok {
                    Ok(())
                } else {
                    Err(format!(
                        "expected {:?}, got {:?}",
                        expected.iter().map(|e| e.text.as_str()).collect::<Vec<_>>(),
                        got.iter().map(Item::to_literal).collect::<Vec<_>>()
                    ))
                }
            }
        };
        match verdict {
            Ok(()) => passed += 1,
            Err(why) => {
                failed += 1;
                failures.push(format!("{group}/{name}: {} => {why}", expr.trim()));
            }
        }
    }
    for f in &failures {
        println!("FAIL {f}");
    }
    println!("fhirpath r4 suite: {passed} passed, {failed} failed, {skipped} skipped");
    assert_eq!(failed, 0, "{failed} FHIRPath suite tests failed");
}
