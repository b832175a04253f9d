//! What an export request exports: [`export_scope`] checks the kick-off parameters and
//! decides the population (all resources, the Patient compartments of all patients, or
//! those of a Group's members) and the resource types. It is the one place where that
//! decision is made, so access checks (SMART scopes) belong here.

use std::collections::HashMap;

use fhir_model::{Definitions, Subset};
use fhir_search::{Clause, SearchRegistry};
use fhir_store::{ExportQuery, Population, Store};
use serde_json::Value;

use super::{ExportError, ExportLevel, ExportRequest};

/// The formats `_outputFormat` accepts (all mean NDJSON of FHIR resources).
const OUTPUT_FORMATS: &[&str] = &["application/fhir+ndjson", "application/ndjson", "ndjson"];

/// A checked export: the store query and the `_elements` subsets.
#[derive(Debug, Clone)]
pub struct ExportPlan {
    pub query: ExportQuery,
    /// `_elements` without a type: kept for every type.
    elements_all: Vec<String>,
    /// `_elements` given as `Type.element`.
    elements_by_type: HashMap<String, Vec<String>>,
}

impl ExportPlan {
    /// The subset to write for resources of `res_type` (`None`: whole resources).
    pub fn subset_for(&self, res_type: &str) -> Option<Subset> {
        let mut names = self.elements_all.clone();
        if let Some(more) = self.elements_by_type.get(res_type) {
            names.extend(more.iter().cloned());
        }
        (!names.is_empty()).then_some(Subset::Elements(names))
    }
}

/// Checks `request` and decides what it exports. Blocking (a Group export reads the
/// Group). Scope checks for authorisation are to be added here.
pub fn export_scope(
    store: &Store,
    defs: &Definitions,
    request: &ExportRequest,
) -> Result<ExportPlan, ExportError> {
    check_format(request.output_format.as_deref())?;
    if let Some(bad) = request.types.iter().find(|t| !defs.is_resource_type(t)) {
        return Err(ExportError::UnknownType(bad.clone()));
    }
    let instant = |v: &Option<String>, err: fn(String) -> ExportError| match v {
        Some(s) => fhir_store::time::parse_fhir_instant(s)
            .map(Some)
            .ok_or_else(|| err(s.clone())),
        None => Ok(None),
    };
    let since = instant(&request.since, ExportError::Since)?;
    let until = instant(&request.until, ExportError::Until)?;
    let filters = type_filters(defs, &request.type_filters)?;
    let (elements_all, elements_by_type) = elements(defs, &request.elements)?;
    let population = population(store, defs, request)?;
    Ok(ExportPlan {
        query: ExportQuery {
            types: request.types.clone(),
            since,
            population,
            filters,
            until,
            at: None,
        },
        elements_all,
        elements_by_type,
    })
}

/// Under `Prefer: handling=lenient`: drops from `request` the types that are not
/// resource types and the `_typeFilter`s that cannot run, noting each in
/// `request.ignored`, so that the export runs with what remains.
pub fn leave_out_unsupported(
    defs: &Definitions,
    request: &mut ExportRequest,
) -> Result<(), ExportError> {
    if !request.lenient {
        return Ok(());
    }
    let (types, unknown): (Vec<String>, Vec<String>) = std::mem::take(&mut request.types)
        .into_iter()
        .partition(|t| defs.is_resource_type(t));
    if types.is_empty() && !unknown.is_empty() {
        // Leaving them all out would export every type instead of none.
        return Err(ExportError::UnknownType(unknown.join(",")));
    }
    request.types = types;
    for t in unknown {
        let e = ExportError::UnknownType(t);
        request.ignore("_type", e.to_string());
    }
    let filters = std::mem::take(&mut request.type_filters);
    for f in filters {
        match type_filters(defs, std::slice::from_ref(&f)) {
            Ok(_) => request.type_filters.push(f),
            Err(e) => request.ignore("_typeFilter", e.to_string()),
        }
    }
    Ok(())
}

fn check_format(format: Option<&str>) -> Result<(), ExportError> {
    let Some(f) = format else { return Ok(()) };
    // An unencoded '+' in a query string arrives as a space.
    let normalized = f.trim().replace(' ', "+");
    if OUTPUT_FORMATS.contains(&normalized.as_str()) {
        Ok(())
    } else {
        Err(ExportError::OutputFormat(f.to_string()))
    }
}

/// Per type, alternative searches (lists of criteria).
type TypeFilters = Vec<(String, Vec<Vec<Clause>>)>;

/// `_typeFilter` queries grouped by type: any query of a type may match.
fn type_filters(defs: &Definitions, filters: &[String]) -> Result<TypeFilters, ExportError> {
    let mut out: TypeFilters = Vec::new();
    for f in filters {
        let err = |message: String| ExportError::TypeFilter {
            filter: f.clone(),
            message,
        };
        let (res_type, query) = f
            .split_once('?')
            .ok_or_else(|| err("expected Type?search, e.g. Observation?status=final".into()))?;
        if !defs.is_resource_type(res_type) {
            return Err(err(format!("'{res_type}' is not a resource type")));
        }
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let parsed = fhir_search::parse(SearchRegistry::r4(), Some(res_type), &pairs, true)
            .map_err(|e| err(e.to_string()))?;
        if parsed.result != fhir_search::ResultParams::default() {
            return Err(err(
                "only search criteria are allowed: result parameters (_sort, _include, _count, _elements…) select no resources".into(),
            ));
        }
        match out.iter_mut().find(|(t, _)| t == res_type) {
            Some((_, alternatives)) => alternatives.push(parsed.clauses),
            None => out.push((res_type.to_string(), vec![parsed.clauses])),
        }
    }
    Ok(out)
}

type Elements = (Vec<String>, HashMap<String, Vec<String>>);

fn elements(defs: &Definitions, names: &[String]) -> Result<Elements, ExportError> {
    let valid = |n: &str| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric());
    let mut all = Vec::new();
    let mut by_type: HashMap<String, Vec<String>> = HashMap::new();
    for name in names {
        match name.split_once('.') {
            None if valid(name) => all.push(name.clone()),
            Some((t, e)) if defs.is_resource_type(t) && valid(e) => {
                by_type
                    .entry(t.to_string())
                    .or_default()
                    .push(e.to_string());
            }
            _ => return Err(ExportError::Elements(name.clone())),
        }
    }
    Ok((all, by_type))
}

/// The Patient compartment of `ids` (all patients when `None`), from the
/// CompartmentDefinition: every member type with the parameters linking it.
pub fn patient_compartment(defs: &Definitions, ids: Option<Vec<String>>) -> Population {
    let params = defs
        .compartment("Patient")
        .map(|c| {
            c.resource
                .iter()
                .filter(|r| !r.param.is_empty())
                .map(|r| (r.code.clone(), r.param.clone()))
                .collect()
        })
        .unwrap_or_default();
    Population::Compartment {
        resource_type: "Patient".into(),
        ids,
        params,
    }
}

fn population(
    store: &Store,
    defs: &Definitions,
    request: &ExportRequest,
) -> Result<Population, ExportError> {
    let patients = (!request.patients.is_empty()).then(|| request.patients.clone());
    match &request.level {
        ExportLevel::System if patients.is_some() => Err(ExportError::Patient(
            "the patient parameter applies to Patient and Group exports only".into(),
        )),
        ExportLevel::System => Ok(Population::All),
        ExportLevel::Patient => Ok(patient_compartment(defs, patients)),
        ExportLevel::Group(id) => {
            let mut members = group_members(store, id)?;
            if let Some(wanted) = patients {
                members.retain(|m| wanted.contains(m));
            }
            Ok(patient_compartment(defs, Some(members)))
        }
    }
}

/// The ids of the Patients a Group's current members are: `member.entity` references
/// to Patients, and the members of nested Groups; members marked `inactive` or whose
/// `period` has ended are left out.
fn group_members(store: &Store, id: &str) -> Result<Vec<String>, ExportError> {
    let mut out = Vec::new();
    let mut seen = vec![id.to_string()];
    members_of(store, id, &mut out, &mut seen)?;
    Ok(out)
}

/// Groups nested deeper than this are not followed.
const MAX_NESTING: usize = 8;

fn members_of(
    store: &Store,
    id: &str,
    out: &mut Vec<String>,
    seen: &mut Vec<String>,
) -> Result<(), ExportError> {
    let stored = store
        .read("Group", id)?
        .filter(|g| !g.deleted)
        .ok_or_else(|| ExportError::GroupNotFound(id.to_string()))?;
    let group = fhir_model::json::parse(stored.content.as_bytes())
        .map_err(|e| ExportError::Io(format!("Group/{id} is unreadable: {e}")))?;
    if group.get("modifierExtension").is_some() {
        return Err(ExportError::Parameters(format!(
            "Group/{id} has a modifier extension (such as member-filter) this server does not apply: its members cannot be told"
        )));
    }
    if group.get("actual").and_then(Value::as_bool) == Some(false) {
        return Err(ExportError::Parameters(format!(
            "Group/{id} is a definition (actual = false), not a list of members: export an actual Group"
        )));
    }
    let now = fhir_store::time::fhir_instant(fhir_store::time::now_millis());
    for m in group
        .get("member")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if !is_current_member(m, &now) {
            continue;
        }
        let reference = m
            .pointer("/entity/reference")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some((_, pid)) = reference.rsplit_once("Patient/") {
            if crate::ids::valid_id(pid) && !out.iter().any(|o| o == pid) {
                out.push(pid.to_string());
            }
        } else if let Some((_, gid)) = reference.rsplit_once("Group/") {
            if crate::ids::valid_id(gid)
                && !seen.iter().any(|g| g == gid)
                && seen.len() < MAX_NESTING
            {
                seen.push(gid.to_string());
                members_of(store, gid, out, seen)?;
            }
        }
    }
    Ok(())
}

/// Not `inactive`, and no `period.end` before `now` (ISO 8601 texts compare in time
/// order over the precision both give).
fn is_current_member(m: &Value, now: &str) -> bool {
    if m.get("inactive").and_then(Value::as_bool) == Some(true) {
        return false;
    }
    match m.pointer("/period/end").and_then(Value::as_str) {
        Some(end) => {
            let n = end.len().min(now.len()).min(19);
            match (end.get(..n), now.get(..n)) {
                (Some(e), Some(t)) => e >= t,
                _ => true,
            }
        }
        None => true,
    }
}
