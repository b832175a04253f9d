//! Every example of the IPS 2.0.0 package, validated against its `meta.profile` with
//! the package loaded: no errors except the justified ones listed in `JUSTIFIED`.

use std::io::Read;
use std::path::{Path, PathBuf};

use fhir_validation::{Severity, ValidationOptions, Validator};
use serde_json::Value;

fn ips_package() -> PathBuf {
    let shared = match std::env::var("FHIR_SHARED") {
        Ok(d) => PathBuf::from(d),
        Err(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    shared.join("fhir/hl7.fhir.uv.ips-2.0.0.tgz")
}

/// `package/example/*.json` of a package.
fn examples(tgz: &[u8]) -> Vec<(String, Value)> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    let mut out = Vec::new();
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let path = entry.path().expect("path").to_string_lossy().into_owned();
        if path.starts_with("package/example/") && path.ends_with(".json") {
            let mut text = String::new();
            entry.read_to_string(&mut text).expect("example text");
            out.push((path, serde_json::from_str(&text).expect("example JSON")));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Errors we report on the published examples, each with why it is right (message
/// fragment, example file fragment).
const JUSTIFIED: &[(&str, &str, &str)] = &[];

#[test]
fn ips_examples_validate_against_their_profiles() {
    let path = ips_package();
    let tgz = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}. The IPS package must be there (shared test data)",
            path.display()
        )
    });
    let mut validator = Validator::r4();
    let manifest = validator
        .add_package_bytes(&tgz)
        .expect("IPS package loads");
    assert_eq!(manifest.name, "hl7.fhir.uv.ips");
    let examples = examples(&tgz);
    assert!(examples.len() >= 40, "only {} examples", examples.len());
    let mut unexpected = Vec::new();
    let (mut errors, mut warnings) = (0, 0);
    for (file, example) in &examples {
        let report = validator.validate(example, &ValidationOptions::default());
        for issue in &report.issues {
            if std::env::var("IPS_VERBOSE").is_ok() {
                println!("{file}: {issue}");
            }
            match issue.severity {
                Severity::Warning => warnings += 1,
                s if s.is_error() => {
                    errors += 1;
                    let justified = JUSTIFIED
                        .iter()
                        .any(|(m, f, _)| issue.message.contains(m) && file.contains(f));
                    if !justified {
                        unexpected.push(format!("{file}: {issue}"));
                    }
                }
                _ => {}
            }
        }
    }
    // The profiles do apply: an IPS Patient needs a name and a birth date.
    let (_, patient) = examples
        .iter()
        .find(|(f, _)| f.contains("Patient-"))
        .expect("an IPS Patient example");
    let mut stripped = patient.clone();
    if let Some(o) = stripped.as_object_mut() {
        o.remove("birthDate");
    }
    let report = validator.validate(&stripped, &ValidationOptions::default());
    assert!(
        report.errors().any(|i| i
            .message
            .contains("Patient.birthDate: minimum required = 1")),
        "{:#?}",
        report.issues
    );
    println!(
        "IPS: {} examples, {errors} errors ({} justified), {warnings} warnings",
        examples.len(),
        errors - unexpected.len()
    );
    assert!(
        unexpected.is_empty(),
        "unexpected errors:\n{}",
        unexpected.join("\n")
    );
}
