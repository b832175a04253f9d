//! Which resources a search may pass through. Chained criteria
//! (`subject:Patient.name=x`) and reverse chains (`_has:Observation:subject:code=y`)
//! test resources other than those returned; by comparing the results of two
//! criteria a caller learns their values. So every resource a chain or `_has` steps
//! on must be one the caller could search itself: a type the scopes allow, and, under
//! a `patient/` grant, a resource in that patient's compartment.

use fhir_model::Definitions;
use fhir_search::{Clause, SearchQuery};
use fhir_store::Compartment;

use super::{Access, Grant};
use crate::access::scopes::Interaction;
use crate::error::ApiError;

/// The confinement of a search's linked resources ([`fhir_store::SearchRequest::linked_within`]),
/// or 403 when a criterion steps on a type the scopes do not allow searching.
pub fn linked_scope(
    defs: &Definitions,
    access: &Access,
    query: &SearchQuery,
) -> Result<Option<Compartment>, ApiError> {
    let mut steps: Vec<(&str, &str)> = Vec::new();
    for c in &query.clauses {
        linked_types(c, &mut steps);
    }
    let mut patient: Option<String> = None;
    let mut params: Vec<(String, Vec<String>)> = Vec::new();
    for (criterion, t) in steps {
        let confined = match access.grant(Interaction::Search, t) {
            Some(Grant::All) => continue,
            Some(Grant::Patient(p)) => p,
            Some(Grant::Rules(_)) => {
                return Err(ApiError::Forbidden(format!(
                    "'{criterion}' follows references to {t} resources, which the granted scopes allow searching only under constraints; search {t} directly"
                )))
            }
            None => {
                return Err(ApiError::Forbidden(format!(
                    "'{criterion}' follows references to {t} resources, which the granted scopes do not allow searching"
                )))
            }
        };
        if patient.as_ref().is_some_and(|p| *p != confined) {
            return Err(ApiError::Forbidden(
                "the granted scopes name more than one patient".into(),
            ));
        }
        patient = Some(confined);
        let members = defs
            .compartment("Patient")
            .map(|d| d.params_for(t).to_vec())
            .unwrap_or_default();
        // Types outside every patient compartment (Practitioner, Medication…) are
        // readable under a patient grant; the Patient type itself is confined to the
        // token's patient.
        if (t == "Patient" || !members.is_empty()) && !params.iter().any(|(x, _)| x == t) {
            params.push((t.to_string(), members));
        }
    }
    Ok(match (patient, params.is_empty()) {
        (Some(id), false) => Some(Compartment {
            resource_type: "Patient".into(),
            id,
            params,
        }),
        _ => None,
    })
}

/// The types a criterion steps on, with the criterion's name: chain targets and
/// `_has` sources, nested ones included.
fn linked_types<'q>(clause: &'q Clause, out: &mut Vec<(&'q str, &'q str)>) {
    match clause {
        Clause::Param(p) => {
            for link in &p.chain {
                for t in &link.target_types {
                    out.push((&p.name, t));
                }
            }
        }
        Clause::Has(h) => {
            out.push((&h.name, &h.source_type));
            linked_types(&h.inner, out);
        }
        Clause::List(l) => out.push((&l.name, "List")),
        Clause::Text(_) | Clause::Near(_) => {}
        Clause::Filter(f) => f
            .expr
            .clauses()
            .into_iter()
            .for_each(|c| linked_types(c, out)),
    }
}
