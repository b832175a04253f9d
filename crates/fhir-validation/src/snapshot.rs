//! Snapshot generation for StructureDefinitions published with a differential only:
//! the base's snapshot (core, the same batch, or loaded before), with each differential
//! element merged into the element of the same id; new slices are copies of the sliced
//! element's subtree, and elements below a data type are reached by unfolding the
//! type's own snapshot.

use std::collections::HashMap;
use std::sync::OnceLock;

use fhir_model::definitions::R4_CORE_PACKAGE;
use fhir_model::package::PackageFile;
use fhir_model::Package;
use serde_json::{Map, Value};

use crate::validator::Validator;

const CORE_PREFIX: &str = "http://hl7.org/fhir/StructureDefinition/";
/// Bases followed before giving up (profiles of profiles of …).
const MAX_CHAIN: usize = 16;

/// The raw JSON of the core StructureDefinitions by id (file bytes, parsed on demand).
fn core_files() -> &'static HashMap<String, Vec<u8>> {
    static CORE: OnceLock<HashMap<String, Vec<u8>>> = OnceLock::new();
    CORE.get_or_init(|| {
        let files = Package::read_tgz(R4_CORE_PACKAGE, &["StructureDefinition"])
            .map(|p| p.files)
            .unwrap_or_default();
        files
            .into_iter()
            .filter_map(|f| {
                let id = f
                    .name
                    .strip_prefix("StructureDefinition-")?
                    .strip_suffix(".json")?
                    .to_string();
                Some((id, f.bytes))
            })
            .collect()
    })
}

fn core_sd(url: &str) -> Option<Value> {
    let id = url.strip_prefix(CORE_PREFIX)?;
    serde_json::from_slice(core_files().get(id)?).ok()
}

/// Gives every StructureDefinition of `files` without a snapshot one built from its
/// base, and fills in a missing `name`. Others pass through unchanged.
pub fn complete(v: &mut Validator, files: Vec<PackageFile>) -> Vec<PackageFile> {
    let mut parsed: Vec<(PackageFile, Option<Value>)> = files
        .into_iter()
        .map(|f| {
            let json = (f.resource_type == "StructureDefinition")
                .then(|| serde_json::from_slice::<Value>(&f.bytes).ok())
                .flatten();
            (f, json)
        })
        .collect();
    for (_, json) in &parsed {
        if let Some(url) = json.as_ref().and_then(|j| j["url"].as_str()) {
            v.raw_structures
                .insert(url.to_string(), json.clone().unwrap_or_default());
        }
    }
    for (file, json) in &mut parsed {
        let Some(sd) = json else { continue };
        let url = sd["url"].as_str().unwrap_or("").to_string();
        let generated = ensure_snapshot(v, &url, 0);
        if let Some(done) = generated {
            *sd = done;
        }
        fill_name(sd);
        file.bytes = serde_json::to_vec(sd).unwrap_or_default();
    }
    parsed.into_iter().map(|(f, _)| f).collect()
}

fn fill_name(sd: &mut Value) {
    if sd.get("name").is_none() {
        let url = sd["url"].as_str().unwrap_or("unnamed");
        let name = url.rsplit('/').next().unwrap_or(url).to_string();
        if let Some(o) = sd.as_object_mut() {
            o.insert("name".into(), Value::String(name));
        }
    }
}

/// The StructureDefinition at `url` with a snapshot (generated and remembered when it
/// had none).
fn ensure_snapshot(v: &mut Validator, url: &str, depth: usize) -> Option<Value> {
    let sd = match v.raw_structures.get(url) {
        Some(sd) => sd.clone(),
        None => return core_sd(url),
    };
    if has_snapshot(&sd) || depth > MAX_CHAIN {
        return Some(sd);
    }
    let base_url = sd["baseDefinition"].as_str()?.to_string();
    let base = ensure_snapshot(v, &base_url, depth + 1)?;
    let done = generate(&sd, &base);
    v.raw_structures.insert(url.to_string(), done.clone());
    Some(done)
}

fn has_snapshot(sd: &Value) -> bool {
    sd["snapshot"]["element"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
}

/// The snapshot of `sd` from its base's snapshot and its differential.
pub fn generate(sd: &Value, base: &Value) -> Value {
    let mut elements: Vec<Value> = base["snapshot"]["element"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let diff = sd["differential"]["element"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let base_elements = elements.clone();
    for d in &diff {
        apply(&mut elements, d, &base_elements);
    }
    let mut out = sd.clone();
    if let Some(o) = out.as_object_mut() {
        let mut snap = Map::new();
        snap.insert("element".into(), Value::Array(elements));
        o.insert("snapshot".into(), Value::Object(snap));
    }
    out
}

fn id_of(e: &Value) -> String {
    if let Some(id) = e["id"].as_str() {
        return id.to_string();
    }
    let path = e["path"].as_str().unwrap_or("");
    match e["sliceName"].as_str() {
        Some(s) => format!("{path}:{s}"),
        None => path.to_string(),
    }
}

fn find(elements: &[Value], id: &str) -> Option<usize> {
    elements.iter().position(|e| id_of(e) == id)
}

/// Merges one differential element into the snapshot under construction.
fn apply(elements: &mut Vec<Value>, d: &Value, base: &[Value]) {
    let id = choice_alias(elements, id_of(d));
    if let Some(i) = find(elements, &id) {
        return merge(&mut elements[i], d);
    }
    let (parent, last) = crate::tree::split_id(&id);
    if let Some((name, _)) = last.split_once(':') {
        let sliced = join(parent, name);
        if let Some(i) = add_slice(elements, &sliced, &id) {
            merge(&mut elements[i], d);
        }
        return;
    }
    if let Some(p) = find(elements, parent) {
        unfold(elements, p, base);
        if let Some(i) = find(elements, &id) {
            merge(&mut elements[i], d);
        }
    }
}

/// An id that names a choice element by one of its types (`Observation.valueQuantity`,
/// the shorthand of R4 differentials) as the choice element (`Observation.value[x]`),
/// segment by segment, where the snapshot has that choice element with that type.
fn choice_alias(elements: &[Value], id: String) -> String {
    if find(elements, &id).is_some() {
        return id;
    }
    let mut out = String::new();
    for seg in id.split('.') {
        let plain = join(&out, seg);
        out = match find(elements, &plain) {
            Some(_) => plain,
            None => typed_choice(elements, &out, seg).unwrap_or(plain),
        };
    }
    out
}

/// The id of the choice element below `parent` that `seg` names by one of its types
/// (`valueQuantity` for `parent.value[x]` with a Quantity type).
fn typed_choice(elements: &[Value], parent: &str, seg: &str) -> Option<String> {
    elements.iter().find_map(|e| {
        let eid = id_of(e);
        let name = eid.strip_prefix(parent)?.strip_prefix('.')?;
        let stem = name
            .strip_suffix("[x]")
            .filter(|s| !s.contains(['.', ':']))?;
        let type_name = seg.strip_prefix(stem)?;
        let codes = e["type"]
            .as_array()?
            .iter()
            .filter_map(|t| t["code"].as_str());
        codes
            .map(upper_first)
            .any(|c| c == type_name)
            .then_some(eid)
    })
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

fn in_subtree(id: &str, root: &str) -> bool {
    id == root
        || id
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with(':'))
}

/// Adds slice `slice_id` of element `sliced`: a copy of its subtree placed after its
/// last slice. Returns the new slice's index.
fn add_slice(elements: &mut Vec<Value>, sliced: &str, slice_id: &str) -> Option<usize> {
    let b = find(elements, sliced)?;
    let mut end = b;
    while end + 1 < elements.len() && in_subtree(&id_of(&elements[end + 1]), sliced) {
        end += 1;
    }
    let copies: Vec<Value> = elements[b..=end]
        .iter()
        .filter(|e| {
            let id = id_of(e);
            id == sliced || id.starts_with(&format!("{sliced}."))
        })
        .map(|e| {
            let mut c = e.clone();
            let id = id_of(e);
            let new_id = format!("{slice_id}{}", &id[sliced.len()..]);
            if let Some(o) = c.as_object_mut() {
                o.insert("id".into(), Value::String(new_id));
            }
            c
        })
        .collect();
    let mut copies = copies;
    if let Some(root) = copies.first_mut().and_then(Value::as_object_mut) {
        root.remove("slicing");
        let name = slice_id.rsplit(':').next().unwrap_or(slice_id);
        root.insert("sliceName".into(), Value::String(name.to_string()));
    }
    let at = end + 1;
    elements.splice(at..at, copies);
    Some(at)
}

/// Inserts the children of element `p`'s type after it, when it has none yet.
fn unfold(elements: &mut Vec<Value>, p: usize, base: &[Value]) {
    let parent_id = id_of(&elements[p]);
    let has_children = elements
        .get(p + 1)
        .is_some_and(|e| id_of(e).starts_with(&format!("{parent_id}.")));
    if has_children {
        return;
    }
    let parent_path = elements[p]["path"].as_str().unwrap_or("").to_string();
    if let Some(r) = elements[p]["contentReference"].as_str() {
        let target = r.rsplit('#').next().unwrap_or(r).to_string();
        return unfold_reference(elements, p, &target, base);
    }
    let Some(code) = elements[p]["type"][0]["code"].as_str() else {
        return;
    };
    let Some(type_sd) = core_sd(&format!("{CORE_PREFIX}{code}")) else {
        return;
    };
    let kids: Vec<Value> = type_sd["snapshot"]["element"]
        .as_array()
        .into_iter()
        .flatten()
        .skip(1)
        .map(|e| rebase(e, code, &parent_id, &parent_path))
        .collect();
    let at = p + 1;
    elements.splice(at..at, kids);
}

/// Copies the children of the element a content reference names (`#Parameters.parameter`),
/// as the base defines them, under element `p`, which then stands on its own.
fn unfold_reference(elements: &mut Vec<Value>, p: usize, target: &str, base: &[Value]) {
    let parent_id = id_of(&elements[p]);
    let parent_path = elements[p]["path"].as_str().unwrap_or("").to_string();
    let Some(t) = find(base, target) else {
        return;
    };
    let target_path = base[t]["path"].as_str().unwrap_or("").to_string();
    let prefix = format!("{target}.");
    let kids: Vec<Value> = base
        .iter()
        .filter(|e| id_of(e).starts_with(&prefix) && !id_of(e).contains(':'))
        .map(|e| {
            let mut c = e.clone();
            let id = id_of(e);
            let path = e["path"].as_str().unwrap_or("").to_string();
            if let Some(o) = c.as_object_mut() {
                let rest = id.get(target.len()..).unwrap_or("");
                o.insert("id".into(), Value::String(format!("{parent_id}{rest}")));
                let tail = path.strip_prefix(&target_path).unwrap_or("");
                o.insert("path".into(), Value::String(format!("{parent_path}{tail}")));
            }
            c
        })
        .collect();
    if let Some(o) = elements[p].as_object_mut() {
        o.remove("contentReference");
        o.insert(
            "type".into(),
            serde_json::json!([{"code": "BackboneElement"}]),
        );
    }
    let at = p + 1;
    elements.splice(at..at, kids);
}

/// A type's element re-rooted under an element (`Coding.system` → `Observation.code.coding.system`).
fn rebase(e: &Value, type_name: &str, parent_id: &str, parent_path: &str) -> Value {
    let mut c = e.clone();
    let id = id_of(e);
    let path = e["path"].as_str().unwrap_or("").to_string();
    if let Some(o) = c.as_object_mut() {
        let tail = |s: &str| s.strip_prefix(type_name).unwrap_or(s).to_string();
        o.insert(
            "id".into(),
            Value::String(format!("{parent_id}{}", tail(&id))),
        );
        o.insert(
            "path".into(),
            Value::String(format!("{parent_path}{}", tail(&path))),
        );
    }
    c
}

/// Differential members replace the base's; constraints are added to the base's.
fn merge(target: &mut Value, d: &Value) {
    let (Some(t), Some(d)) = (target.as_object_mut(), d.as_object()) else {
        return;
    };
    for (k, v) in d {
        match k.as_str() {
            "id" | "path" => {}
            "constraint" => {
                let mut all = t
                    .get("constraint")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                all.extend(v.as_array().cloned().unwrap_or_default());
                t.insert(k.clone(), Value::Array(all));
            }
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generates_min_and_slices_from_a_differential() {
        let base = core_sd("http://hl7.org/fhir/StructureDefinition/Patient").unwrap();
        let sd = json!({
            "url": "http://example.org/p", "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
            "differential": {"element": [
                {"id": "Patient.name", "path": "Patient.name", "min": 1},
                {"id": "Patient.identifier", "path": "Patient.identifier",
                 "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"}},
                {"id": "Patient.identifier:mrn", "path": "Patient.identifier", "sliceName": "mrn", "min": 1},
                {"id": "Patient.identifier:mrn.system", "path": "Patient.identifier.system", "fixedUri": "urn:mrn"}
            ]}
        });
        let out = generate(&sd, &base);
        let els = out["snapshot"]["element"].as_array().unwrap();
        let name = els.iter().find(|e| e["id"] == "Patient.name").unwrap();
        assert_eq!(name["min"], 1);
        let sys = els
            .iter()
            .find(|e| e["id"] == "Patient.identifier:mrn.system")
            .unwrap();
        assert_eq!(sys["fixedUri"], "urn:mrn");
        assert_eq!(sys["path"], "Patient.identifier.system");
    }

    #[test]
    fn a_choice_named_by_its_type_constrains_the_choice_element() {
        let base = core_sd("http://hl7.org/fhir/StructureDefinition/Observation").unwrap();
        let sd = json!({
            "url": "http://example.org/o", "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Observation",
            "differential": {"element": [
                {"path": "Observation.valueQuantity", "maxValueQuantity": {"value": 5, "code": "kg"}},
                {"path": "Observation.valueQuantity.unit", "min": 1}
            ]}
        });
        let out = generate(&sd, &base);
        let els = out["snapshot"]["element"].as_array().unwrap();
        let value = els
            .iter()
            .find(|e| e["id"] == "Observation.value[x]")
            .unwrap();
        assert_eq!(value["maxValueQuantity"]["value"], 5);
        let unit = els.iter().find(|e| e["id"] == "Observation.value[x].unit");
        assert_eq!(unit.expect("the Quantity unfolded")["min"], 1);
    }
}
