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
    let since = match &request.since {
        Some(s) => Some(
            fhir_store::time::parse_fhir_instant(s).ok_or_else(|| ExportError::Since(s.clone()))?,
        ),
        None => None,
    };
    let filters = type_filters(defs, &request.type_filters)?;
    let (elements_all, elements_by_type) = elements(defs, &request.elements)?;
    let population = population(store, defs, request)?;
    Ok(ExportPlan {
        query: ExportQuery {
            types: request.types.clone(),
            since,
            population,
            filters,
        },
        elements_all,
        elements_by_type,
    })
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

/// The ids of the Patients a Group's `member.entity` refers to.
fn group_members(store: &Store, id: &str) -> Result<Vec<String>, ExportError> {
    let stored = store
        .read("Group", id)?
        .filter(|g| !g.deleted)
        .ok_or_else(|| ExportError::GroupNotFound(id.to_string()))?;
    let group = fhir_model::json::parse(stored.content.as_bytes())
        .map_err(|e| ExportError::Io(format!("Group/{id} is unreadable: {e}")))?;
    let mut out = Vec::new();
    for m in group
        .get("member")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let reference = m
            .pointer("/entity/reference")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some((_, pid)) = reference.rsplit_once("Patient/") {
            if crate::state::valid_id(pid) && !out.iter().any(|o| o == pid) {
                out.push(pid.to_string());
            }
        }
    }
    Ok(out)
}
