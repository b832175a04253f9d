//! Runs the R4 cases of the HL7 validator test suite (`shared/validator/manifest.json`)
//! and compares our verdict (valid = no error or fatal issue) with the HL7 Java
//! validator's expected outcome. Disagreements are written, one line each with the
//! reason, to `tests/disagreements.md`.

use std::path::{Path, PathBuf};

use fhir_validation::{ValidationOptions, Validator};
use serde_json::Value;

/// The agreement reached today (221 of 245, 90.2%), kept as a floor against
/// regressions. The goal of issue #7 is 95% (at most 12 disagreements); 18 of the 24
/// remaining need what this suite does not provide here (profile files absent from the
/// folder, US Core, an external terminology server for LOINC/SNOMED/CVX displays, JSON
/// with comments), see `tests/disagreements.md` and `docs/validation.md`.
const AGREEMENT_FLOOR: f64 = 0.90;

fn shared_dir() -> PathBuf {
    match std::env::var("FHIR_SHARED") {
        Ok(d) => PathBuf::from(d),
        Err(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

/// One comparison: a case's base run, or its run against `profile.source`.
struct Check {
    name: String,
    java_errors: Vec<String>,
    /// Our errors (a JSON text we cannot read is one).
    ours: Vec<String>,
    /// Why the comparison is not fair (supporting files we cannot load).
    note: Option<String>,
}

impl Check {
    fn agrees(&self) -> bool {
        self.ours.is_empty() == self.java_errors.is_empty()
    }
}

fn java_errors(dir: &Path, java: &Value) -> Option<Vec<String>> {
    let outcome = match java {
        Value::String(p) => {
            let text = std::fs::read_to_string(dir.join("outcomes").join(p)).ok()?;
            serde_json::from_str::<Value>(&text).ok()?
        }
        Value::Object(o) => match o.get("outcome") {
            Some(oc) => oc.clone(),
            None => {
                let n = o.get("errorCount").and_then(Value::as_u64).unwrap_or(0)
                    + o.get("fatalCount").and_then(Value::as_u64).unwrap_or(0);
                return Some(vec![
                    "(error counted by the Java test runner)".into();
                    n as usize
                ]);
            }
        },
        _ => return None,
    };
    let issues = outcome.get("issue").and_then(Value::as_array);
    Some(
        issues
            .into_iter()
            .flatten()
            .filter(|i| matches!(i["severity"].as_str(), Some("error" | "fatal")))
            .map(|i| i["details"]["text"].as_str().unwrap_or("").to_string())
            .collect(),
    )
}

fn load_json(dir: &Path, file: &str) -> Result<Value, String> {
    let text =
        std::fs::read_to_string(dir.join(file)).map_err(|e| format!("cannot read {file}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{file} is not JSON we can read: {e}"))
}

/// A validator with the case's supporting definitions; the files we cannot load
/// (XML) are named in the second member.
fn validator_for(dir: &Path, case: &Value, core: &Validator) -> (Option<Validator>, Vec<String>) {
    let mut files: Vec<String> = Vec::new();
    for key in ["supporting", "profiles"] {
        for f in case[key].as_array().into_iter().flatten() {
            files.extend(f.as_str().map(str::to_string));
        }
    }
    if let Some(src) = case["profile"]["source"].as_str() {
        files.push(src.to_string());
    }
    if files.is_empty() {
        return (None, Vec::new());
    }
    let mut missing = Vec::new();
    let mut resources = Vec::new();
    for f in files {
        match load_json(dir, &f) {
            Ok(v) => resources.push(v),
            Err(_) => missing.push(f),
        }
    }
    let mut v = core.clone();
    if let Err(e) = v.add_resources(&resources) {
        missing.push(format!("({e})"));
    }
    (Some(v), missing)
}

/// The options of a run: the Java test runner's settings (unknown extensions and wrong
/// displays are errors; example URLs allowed unless the case says `"examples": false`;
/// the case's `noHtmlInMarkdown`).
fn options(case: &Value, profiles: Vec<String>) -> ValidationOptions {
    ValidationOptions {
        profiles,
        unknown_extensions_are_errors: true,
        display_issues_are_errors: true,
        allow_example_extensions: case["examples"].as_bool() != Some(false),
        no_html_in_markdown: case["noHtmlInMarkdown"].as_bool() == Some(true),
    }
}

fn our_errors(v: &Validator, resource: &Value, opts: &ValidationOptions) -> Vec<String> {
    v.validate(resource, opts)
        .errors()
        .map(|i| format!("{} ({})", i.message, i.expression))
        .collect()
}

fn run_case(dir: &Path, case: &Value, core: &Validator, out: &mut Vec<Check>) {
    let name = case["name"].as_str().unwrap_or("?").to_string();
    let file = case["file"].as_str().unwrap_or("");
    let (custom, missing) = validator_for(dir, case, core);
    let v = custom.as_ref().unwrap_or(core);
    let resource = load_json(dir, file);
    let mut runs = vec![(name.clone(), case["java"].clone(), Vec::new())];
    if let Some(p) = case.get("profile").filter(|p| p.is_object()) {
        let url = p["source"]
            .as_str()
            .and_then(|s| load_json(dir, s).ok())
            .and_then(|sd| sd["url"].as_str().map(str::to_string))
            .unwrap_or_else(|| format!("(unreadable {})", p["source"]));
        runs.push((format!("{name} [profile]"), p["java"].clone(), vec![url]));
    }
    for (run_name, java, profiles) in runs {
        let Some(java_errors) = java_errors(dir, &java) else {
            continue;
        };
        if std::env::var("CASE").is_ok_and(|c| c == name) {
            if let Ok(r) = &resource {
                let opts = options(case, profiles.clone());
                for i in v.validate(r, &opts).issues {
                    println!("{run_name}: {i}");
                }
            }
        }
        let ours = match &resource {
            Err(e) => vec![e.clone()],
            Ok(r) => our_errors(v, r, &options(case, profiles)),
        };
        let note = (!missing.is_empty())
            .then(|| format!("supporting files we cannot load: {}", missing.join(", ")));
        out.push(Check {
            name: run_name,
            java_errors,
            ours,
            note,
        });
    }
}

fn verdict(invalid: bool) -> &'static str {
    if invalid {
        "invalid"
    } else {
        "valid"
    }
}

fn reason(c: &Check) -> String {
    let one_line = |s: &str| {
        s.replace(['\n', '|'], " ")
            .chars()
            .take(220)
            .collect::<String>()
    };
    let base = if c.java_errors.is_empty() {
        format!("we report: {}", one_line(c.ours.first().map_or("", |s| s)))
    } else {
        format!(
            "not detected: {}",
            one_line(c.java_errors.first().map_or("", |s| s))
        )
    };
    match &c.note {
        Some(n) => format!("{n}; {base}"),
        None => base,
    }
}

#[test]
fn validator_manifest() {
    let dir = shared_dir().join("validator");
    let Ok(text) = std::fs::read_to_string(dir.join("manifest.json")) else {
        println!("validator cases: skipped, {} is absent", dir.display());
        return;
    };
    let manifest: Value = serde_json::from_str(&text).expect("manifest.json is JSON");
    let core = Validator::r4();
    let mut checks = Vec::new();
    let mut skipped = 0;
    for case in manifest["test-cases"].as_array().into_iter().flatten() {
        let file = case["file"].as_str().unwrap_or("");
        let r4 = case["version"]
            .as_str()
            .is_none_or(|v| v.starts_with("4.0"));
        if !file.ends_with(".json") || !r4 {
            skipped += 1;
            continue;
        }
        run_case(&dir, case, &core, &mut checks);
    }
    let disagree: Vec<&Check> = checks.iter().filter(|c| !c.agrees()).collect();
    let agree = checks.len() - disagree.len();
    println!(
        "validator cases: {agree} agree, {} disagree",
        disagree.len()
    );
    let mut md = String::from(
        "# Validator test cases where we disagree with the HL7 Java validator\n\n\
         Generated by `tests/validator_manifest.rs` (do not edit). Verdict: valid = no\n\
         error or fatal issue.\n\n",
    );
    md.push_str(&format!(
        "{agree} agree, {} disagree ({skipped} cases skipped: not R4 JSON).\n\n",
        disagree.len()
    ));
    md.push_str("| case | Java | ours | reason |\n|---|---|---|---|\n");
    for c in &disagree {
        let ours_invalid = !c.ours.is_empty();
        md.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            c.name,
            verdict(!c.java_errors.is_empty()),
            verdict(ours_invalid),
            reason(c)
        ));
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/disagreements.md");
    std::fs::write(out, md).expect("write disagreements.md");
    let ratio = agree as f64 / checks.len().max(1) as f64;
    assert!(
        ratio >= AGREEMENT_FLOOR,
        "agreement {:.1}% is below {:.0}% ({agree} of {})",
        ratio * 100.0,
        AGREEMENT_FLOOR * 100.0,
        checks.len()
    );
}
