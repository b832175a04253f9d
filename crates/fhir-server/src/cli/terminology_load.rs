//! `fhir-server terminology load FILE…`: loads code systems, value sets and concept maps
//! (a resource, a Bundle of them or NDJSON, as JSON or XML, gzip accepted) through the
//! FHIR API, so that they are checked, indexed and audited as a client's writes are.
//! Each is written as a conditional update on its canonical URL and version
//! (`CodeSystem?url=…&version=…`, or `version:missing=true`): loading a release again
//! replaces what the last load wrote instead of adding a copy, and a new version is
//! kept beside the old ones. The terminology operations use them at once
//! (docs/terminology.md). With `--url` it loads into a running server; otherwise it
//! starts one in-process on `--database-url`, as `import` does.
//!
//! External terminologies (SNOMED CT RF2, LOINC) come as release files, not FHIR
//! resources: their loaders would turn them into CodeSystem resources and load those
//! through this same path (docs/terminology.md, "Loading terminologies").

use std::path::Path;
use std::time::Instant;

use serde_json::{json, Value};

use super::import::{bundle_values, embedded_server, files_of, json_text, post, ImportError};
use crate::config::TerminologyLoadArgs;

/// The resource types this command loads.
const TYPES: [&str; 3] = ["CodeSystem", "ValueSet", "ConceptMap"];

/// What a load wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub code_systems: usize,
    pub concepts: usize,
    pub value_sets: usize,
    pub concept_maps: usize,
}

impl Loaded {
    fn count(&mut self, r: &Value) {
        match r.get("resourceType").and_then(Value::as_str) {
            Some("CodeSystem") => {
                self.code_systems += 1;
                self.concepts += concepts(r.get("concept"));
            }
            Some("ValueSet") => self.value_sets += 1,
            _ => self.concept_maps += 1,
        }
    }

    fn total(&self) -> usize {
        self.code_systems + self.value_sets + self.concept_maps
    }
}

/// Concepts of a CodeSystem's `concept` list, nested ones included.
fn concepts(list: Option<&Value>) -> usize {
    list.and_then(Value::as_array).map_or(0, |cs| {
        cs.iter()
            .map(|c| 1 + concepts(c.get("concept")))
            .sum::<usize>()
    })
}

/// The resources of one file: a resource, the entries of a Bundle, or NDJSON lines (read
/// as `import` reads them).
fn resources_of(path: &Path) -> Result<Vec<Value>, ImportError> {
    let (text, ndjson) = json_text(path)?;
    let bundles = bundle_values(path.display().to_string(), &text, ndjson, usize::MAX)?;
    Ok(bundles
        .into_iter()
        .flat_map(|(_, mut b)| match b.get_mut("entry").map(Value::take) {
            Some(Value::Array(entries)) => entries,
            _ => Vec::new(),
        })
        .filter_map(|mut e| e.get_mut("resource").map(Value::take))
        .collect())
}

/// The transaction entry that writes `r` in place of the stored resource with its URL
/// and version; an error says why `r` cannot be loaded.
fn entry_for(r: Value) -> Result<Value, String> {
    let rt = r.get("resourceType").and_then(Value::as_str).unwrap_or("");
    if !TYPES.contains(&rt) {
        let what = if rt.is_empty() { "no resourceType" } else { rt };
        return Err(format!(
            "{what}: terminology load takes CodeSystem, ValueSet and ConceptMap resources (use import for others)"
        ));
    }
    let Some(url) = r
        .get("url")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
    else {
        return Err(format!(
            "a {rt} without url: terminology is found by its canonical URL"
        ));
    };
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("url", url);
    match r.get("version").and_then(Value::as_str) {
        Some(v) => query.append_pair("version", v),
        None => query.append_pair("version:missing", "true"),
    };
    let request = json!({"method": "PUT", "url": format!("{rt}?{}", query.finish())});
    Ok(json!({"resource": r, "request": request}))
}

fn progress(total: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {bar:30} {pos}/{len} resources, {msg} [{elapsed}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    // A single large code system is one write: the spinner shows it is under way.
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// Runs a load: every resource of every file is checked first (nothing is written when
/// one cannot be loaded), then written in transactions of `--batch`.
pub fn run(args: &TerminologyLoadArgs) -> Result<Loaded, ImportError> {
    let mut entries = Vec::new();
    for path in files_of(&args.target.paths)? {
        for (i, r) in resources_of(&path)?.into_iter().enumerate() {
            let entry = entry_for(r).map_err(|message| ImportError::Rejected {
                file: format!("{} resource {}", path.display(), i + 1),
                message,
            })?;
            entries.push(entry);
        }
    }
    let base = match &args.target.url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => embedded_server(&args.target.database_url, crate::config::OnOff::On)?,
    };
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(3600))
        .build();
    let run_id = uuid::Uuid::new_v4().to_string();
    let bar = progress(entries.len());
    let started = Instant::now();
    let mut loaded = Loaded::default();
    for (n, chunk) in entries.chunks(args.batch.max(1)).enumerate() {
        let label = format!(
            "resources {}-{}",
            n * args.batch.max(1) + 1,
            n * args.batch.max(1) + chunk.len()
        );
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": chunk});
        post(
            &agent,
            &base,
            &run_id,
            &label,
            &fhir_model::json::to_string(&bundle),
        )?;
        for e in chunk {
            loaded.count(&e["resource"]);
        }
        bar.inc(chunk.len() as u64);
        let rate = loaded.concepts as f64 / started.elapsed().as_secs_f64().max(0.001);
        bar.set_message(format!("{} concepts, {rate:.0}/s", loaded.concepts));
    }
    bar.finish_and_clear();
    debug_assert_eq!(loaded.total(), entries.len());
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_conditional_on_url_and_version() {
        let e = entry_for(
            json!({"resourceType": "CodeSystem", "url": "http://x.org/cs?a&b",
            "version": "2.1"}),
        )
        .unwrap();
        assert_eq!(
            e["request"]["url"],
            "CodeSystem?url=http%3A%2F%2Fx.org%2Fcs%3Fa%26b&version=2.1"
        );
        let e = entry_for(json!({"resourceType": "ValueSet", "url": "http://x.org/vs"})).unwrap();
        assert_eq!(
            e["request"]["url"],
            "ValueSet?url=http%3A%2F%2Fx.org%2Fvs&version%3Amissing=true"
        );
        assert!(entry_for(json!({"resourceType": "Patient"}))
            .unwrap_err()
            .contains("use import"));
        assert!(entry_for(json!({"resourceType": "ConceptMap"}))
            .unwrap_err()
            .contains("without url"));
    }

    #[test]
    fn concepts_are_counted_with_their_children() {
        let cs = json!({"concept": [{"code": "a", "concept": [{"code": "b"}, {"code": "c"}]},
            {"code": "d"}]});
        assert_eq!(concepts(cs.get("concept")), 4);
    }
}
