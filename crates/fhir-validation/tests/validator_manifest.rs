//! Runs the R4 cases of the HL7 validator test suite (`shared/validator/manifest.json`)
//! as the Java validator's own test runner does, and compares our outcome with the
//! outcome it expects: the verdict (valid = no error or fatal issue) and the number of
//! errors. Every file a case names is loaded (`supporting`, `profiles`, `supporting5`,
//! `profile.source`, `profile.supporting`; from `shared/validator` or, for the files it
//! lacks, `shared/validator-extra`; JSON or XML); a file we cannot load makes the run a
//! disagreement, never an agreement. Cases the Java runner does not run (`use-test:
//! false`) and runs we cannot make (logical models from packages we do not have) are
//! printed with the reason. Disagreements are written, one line each with the reason,
//! to `tests/disagreements.md`.

use std::path::{Path, PathBuf};

use fhir_validation::{ValidationOptions, Validator};
use serde_json::Value;

/// The runs whose verdict agrees today (of 239), kept as a floor against regressions.
const VERDICT_FLOOR: usize = 232;
/// The runs whose error count agrees today, kept as a floor against regressions.
const COUNT_FLOOR: usize = 213;

fn shared_dir() -> PathBuf {
    match std::env::var("FHIR_SHARED") {
        Ok(d) => PathBuf::from(d),
        Err(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    }
}

/// Where the case files are: the suite's folder, then the folder of the files it lacked.
struct Dirs {
    cases: PathBuf,
    extra: PathBuf,
}

impl Dirs {
    fn find(&self, file: &str) -> Option<PathBuf> {
        [&self.cases, &self.extra]
            .into_iter()
            .map(|d| d.join(file))
            .find(|p| p.is_file())
    }

    /// A case file as JSON (with comments removed when `comments` are allowed) or
    /// XML read through the definitions.
    fn load(&self, file: &str, comments: bool) -> Result<Value, String> {
        let path = self
            .find(file)
            .ok_or_else(|| format!("{file} is in neither validator folder"))?;
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read {file}: {e}"))?;
        if file.ends_with(".xml") {
            let defs = fhir_model::Definitions::r4();
            return fhir_model::xml::from_xml(defs, &bytes).map_err(|e| format!("{file}: {e}"));
        }
        let parsed = if comments {
            fhir_model::json::parse_with_comments(&bytes)
        } else {
            fhir_model::json::parse(&bytes)
        };
        parsed.map_err(|e| format!("{file}: {e}"))
    }
}

/// One comparison: a case's base run, or its run against `profile.source`.
struct Check {
    name: String,
    java_errors: Vec<String>,
    /// Our errors (a resource we cannot read is one).
    ours: Vec<String>,
    /// A file the case names that we could not load: the run cannot agree.
    failure: Option<String>,
}

impl Check {
    fn agrees(&self) -> bool {
        self.failure.is_none() && self.ours.is_empty() == self.java_errors.is_empty()
    }

    fn count_agrees(&self) -> bool {
        self.failure.is_none() && self.ours.len() == self.java_errors.len()
    }
}

/// The errors and fatal issues of a Java outcome: an OperationOutcome file, an inline
/// outcome, or the runner's count.
fn java_errors(dir: &Path, java: &Value) -> Result<Vec<String>, String> {
    let outcome = match java {
        Value::String(p) => {
            let text = std::fs::read_to_string(dir.join("outcomes").join(p))
                .map_err(|e| format!("outcome {p}: {e}"))?;
            serde_json::from_str::<Value>(&text).map_err(|e| format!("outcome {p}: {e}"))?
        }
        Value::Object(o) => match o.get("outcome") {
            Some(oc) => oc.clone(),
            None => {
                let count = |k: &str| o.get(k).and_then(Value::as_u64).unwrap_or(0);
                let n = count("errorCount") + count("fatalCount");
                let out = o.get("output").and_then(Value::as_array);
                let texts = out.into_iter().flatten().filter_map(Value::as_str);
                let mut errors: Vec<String> = texts
                    .filter(|t| t.starts_with("ERROR") || t.starts_with("FATAL"))
                    .map(str::to_string)
                    .collect();
                errors.resize(n as usize, "(counted by the Java test runner)".into());
                return Ok(errors);
            }
        },
        other => return Err(format!("no Java outcome ({other})")),
    };
    let issues = outcome.get("issue").and_then(Value::as_array);
    Ok(issues
        .into_iter()
        .flatten()
        .filter(|i| matches!(i["severity"].as_str(), Some("error" | "fatal")))
        .map(|i| i["details"]["text"].as_str().unwrap_or("").to_string())
        .collect())
}

/// The file names under `key` of `v` (an array of names).
fn names(v: &Value, key: &str) -> Vec<String> {
    let list = v[key].as_array().into_iter().flatten();
    list.filter_map(Value::as_str).map(str::to_string).collect()
}

/// `base` with the definitions in `files` added; the first file that could not be
/// loaded is an error.
fn with_files(dirs: &Dirs, base: &Validator, files: &[String]) -> Result<Validator, String> {
    let resources = files
        .iter()
        .map(|f| dirs.load(f, false))
        .collect::<Result<Vec<_>, _>>()?;
    let mut v = base.clone();
    v.add_resources(&resources)
        .map_err(|e| format!("cannot load {}: {e}", files.join(", ")))?;
    Ok(v)
}

/// The options of a run: the Java test runner's settings (unknown extensions and wrong
/// displays are errors; example URLs allowed unless the case says `"examples": false`;
/// the case's `noHtmlInMarkdown`, `validateContains` and `security-checks`).
fn options(case: &Value, profiles: Vec<String>) -> ValidationOptions {
    ValidationOptions {
        profiles,
        unknown_extensions_are_errors: true,
        display_issues_are_errors: true,
        allow_example_extensions: case["examples"].as_bool() != Some(false),
        no_html_in_markdown: case["noHtmlInMarkdown"].as_bool() == Some(true),
        skip_contained: case["validateContains"].as_str() == Some("IGNORE"),
        security_checks: case["security-checks"].as_bool() == Some(true),
        terminology: None,
    }
}

/// Our errors; every issue is printed for the run named by `CASE` (debugging).
fn our_errors(run: &str, v: &Validator, resource: &Value, opts: &ValidationOptions) -> Vec<String> {
    let report = v.validate(resource, opts);
    if std::env::var("CASE").is_ok_and(|c| run.starts_with(&c)) {
        for i in &report.issues {
            println!("{run}: {i}");
        }
    }
    report
        .errors()
        .map(|i| format!("{} ({})", i.message, i.expression))
        .collect()
}

/// The runs of one case: the base run, then the run against `profile.source` if any.
/// Runs that cannot be made here are returned as skips with the reason.
fn run_case(dirs: &Dirs, case: &Value, core: &Validator) -> (Vec<Check>, Vec<String>) {
    let name = case["name"].as_str().unwrap_or("?").to_string();
    let (mut checks, mut skips) = (Vec::new(), Vec::new());
    let comments = case["allow-comments"].as_bool() == Some(true);
    let file = case["file"].as_str().unwrap_or_default();
    // A resource we cannot parse is one error of ours; one we cannot find is a failure.
    let resource = dirs.load(file, comments);
    let missing = dirs
        .find(file)
        .is_none()
        .then(|| format!("{file} is missing"));
    let mut files = names(case, "supporting");
    files.extend(names(case, "profiles"));
    files.extend(names(case, "supporting5"));
    let base = match missing {
        Some(m) => Err(m),
        None => with_files(dirs, core, &files),
    };
    checks.push(check(
        &name,
        dirs,
        &case["java"],
        &base,
        &resource,
        options(case, vec![]),
    ));
    if let Some(p) = case.get("profile").filter(|p| p.is_object()) {
        let mut more = names(p, "supporting");
        let source = p["source"].as_str().unwrap_or_default().to_string();
        more.push(source.clone());
        let url = dirs
            .load(&source, false)
            .ok()
            .and_then(|sd| sd["url"].as_str().map(str::to_string));
        let profiled = base
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|b| with_files(dirs, b, &more));
        let opts = options(case, url.into_iter().collect());
        let run = format!("{name} [profile]");
        checks.push(check(&run, dirs, &p["java"], &profiled, &resource, opts));
    }
    if let Some(l) = case.get("logical").filter(|l| l.is_object()) {
        let format = l["format"].as_str().unwrap_or("?");
        skips.push(format!(
            "{name} [logical]: validation against the logical model {format} is not run \
             (it needs {} to be loaded as a package)",
            l["packages"]
                .as_array()
                .map_or("its definitions".into(), |_| format!(
                    "the package {}",
                    names(l, "packages").join(", ")
                ))
        ));
    }
    (checks, skips)
}

fn check(
    name: &str,
    dirs: &Dirs,
    java: &Value,
    validator: &Result<Validator, String>,
    resource: &Result<Value, String>,
    opts: ValidationOptions,
) -> Check {
    let (java_errors, outcome_failure) = match java_errors(&dirs.cases, java) {
        Ok(e) => (e, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let (ours, failure) = match (validator, resource) {
        (Err(e), _) => (Vec::new(), Some(e.clone())),
        (_, Err(e)) => (vec![e.clone()], None),
        (Ok(v), Ok(r)) => (our_errors(name, v, r, &opts), None),
    };
    Check {
        name: name.to_string(),
        java_errors,
        ours,
        failure: failure.or(outcome_failure),
    }
}

fn verdict(invalid: bool) -> &'static str {
    if invalid {
        "invalid"
    } else {
        "valid"
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '|'], " ").chars().take(220).collect()
}

/// Why the disagreements of today are out of reach here, by run: shown beside them in
/// `disagreements.md` (the verdicts themselves come from the rules, never from here).
const OUT_OF_REACH: &[(&str, &str)] = &[
    ("mr-covid-m2", "terminology server: SNOMED CT displays"),
    ("sdoh-type-slice", "terminology server: LOINC displays"),
    ("bundle-id-4", "terminology server: CVX displays"),
    ("PulseOxBundle_25Oct2022", "terminology server: LOINC displays"),
    (
        "PulseOxBundle_25Oct2022 [profile]",
        "manifest: the profile is US Core's, which neither folder holds",
    ),
    (
        "obs-temp-bad",
        "Java-only rule: its own table maps SNOMED CT 276885007 to the body temperature profile",
    ),
    (
        "ext-derived-circle",
        "Java-only rule: when HL7 publishes, a work group extension is required (the condition is not documented)",
    ),
];

fn reason(c: &Check) -> String {
    let why = OUT_OF_REACH.iter().find(|(n, _)| *n == c.name);
    let prefix = why.map_or(String::new(), |(_, w)| format!("**{w}**; "));
    format!("{prefix}{}", observed(c))
}

fn observed(c: &Check) -> String {
    if let Some(f) = &c.failure {
        return format!("harness could not load: {}", one_line(f));
    }
    if c.java_errors.is_empty() {
        format!("we report: {}", one_line(c.ours.first().map_or("", |s| s)))
    } else {
        let first = c.java_errors.first().map_or("", |s| s);
        format!("not detected: {}", one_line(first))
    }
}

fn report(checks: &[Check], skips: &[String]) -> String {
    let disagree: Vec<&Check> = checks.iter().filter(|c| !c.agrees()).collect();
    let counts = checks.iter().filter(|c| c.count_agrees()).count();
    let mut md = String::from(
        "# Validator test cases where we disagree with the HL7 Java validator\n\n\
         Generated by `tests/validator_manifest.rs` (do not edit). Verdict: valid = no\n\
         error or fatal issue. Error count: the number of error and fatal issues.\n\n",
    );
    md.push_str(&format!(
        "Verdict: {} of {} runs agree. Error count: {counts} of {} agree. \
         {} runs skipped (listed at the end).\n\n",
        checks.len() - disagree.len(),
        checks.len(),
        checks.len(),
        skips.len()
    ));
    md.push_str("| run | Java | ours | reason |\n|---|---|---|---|\n");
    for c in &disagree {
        md.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            c.name,
            verdict(!c.java_errors.is_empty()),
            verdict(!c.ours.is_empty() || c.failure.is_some()),
            reason(c)
        ));
    }
    md.push_str(
        "\n## Same verdict, other error count\n\n| run | Java errors | ours |\n|---|---|---|\n",
    );
    for c in checks.iter().filter(|c| c.agrees() && !c.count_agrees()) {
        md.push_str(&format!(
            "| {} | {} | {} |\n",
            c.name,
            c.java_errors.len(),
            c.ours.len()
        ));
    }
    md.push_str("\n## Skipped\n\n");
    for s in skips {
        md.push_str(&format!("- {s}\n"));
    }
    md
}

#[test]
fn validator_manifest() {
    let shared = shared_dir();
    let dirs = Dirs {
        cases: shared.join("validator"),
        extra: shared.join("validator-extra"),
    };
    let manifest = dirs.cases.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap_or_else(|e| {
        panic!(
            "{}: {e}. The HL7 validator cases must be there (or set FHIR_SHARED)",
            manifest.display()
        )
    });
    assert!(dirs.extra.is_dir(), "{} is missing", dirs.extra.display());
    let manifest: Value = serde_json::from_str(&text).expect("manifest.json is JSON");
    let core = Validator::r4();
    let (mut checks, mut skips) = (Vec::new(), Vec::new());
    for case in manifest["test-cases"].as_array().into_iter().flatten() {
        let name = case["name"].as_str().unwrap_or("?");
        let version = case["version"].as_str().unwrap_or("4.0");
        if case["use-test"].as_bool() == Some(false) {
            skips.push(format!(
                "{name}: use-test is false (the Java runner does not run it)"
            ));
        } else if !version.starts_with("4.0") {
            skips.push(format!("{name}: FHIR version {version}, not R4"));
        } else {
            let (c, s) = run_case(&dirs, case, &core);
            checks.extend(c);
            skips.extend(s);
        }
    }
    for s in &skips {
        println!("skipped {s}");
    }
    let agree = checks.iter().filter(|c| c.agrees()).count();
    let counts = checks.iter().filter(|c| c.count_agrees()).count();
    let total = checks.len().max(1) as f64;
    let (verdicts, count_ratio) = (agree as f64 / total, counts as f64 / total);
    println!(
        "validator cases: verdict {agree} of {} ({:.1} %), error count {counts} ({:.1} %)",
        checks.len(),
        verdicts * 100.0,
        count_ratio * 100.0
    );
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/disagreements.md");
    std::fs::write(out, report(&checks, &skips)).expect("write disagreements.md");
    assert!(
        agree >= VERDICT_FLOOR,
        "verdicts agree on {agree} runs, fewer than {VERDICT_FLOOR}"
    );
    assert!(
        counts >= COUNT_FLOOR,
        "error counts agree on {counts} runs, fewer than {COUNT_FLOOR}"
    );
}
