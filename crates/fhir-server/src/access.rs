//! The access decision: how far the caller of a request may go with an interaction on
//! a resource type — everything, one patient's compartment, or what search-constrained
//! scopes allow — or why not. One function per kind of question ([`decide`],
//! [`decide_content`], [`decide_unrestricted`], [`search_limits`]), with no HTTP in
//! it: `crate::guard` asks it for every handler and maps a [`Denial`] to its answer
//! (`error.rs`), so the rules are unit-tested here against a table of cases.
//!
//! Which tenant a token may reach is decided here too ([`decide_tenant`]); the store
//! applies what a decision allows inside its own queries (compartments, constraints),
//! and each tenant's store holds only that tenant's records. [`scopes`] parses SMART
//! scopes into the rules these decisions read.

use serde_json::Value;

pub mod scopes;

use scopes::{Interaction, Rule, ScopeSet};

/// The caller of a request, once authenticated.
#[derive(Debug, Clone)]
pub struct Access {
    pub client_id: String,
    pub scopes: ScopeSet,
    /// The patient of a patient-context token (`patient` claim).
    pub patient: Option<String>,
    /// The tenant the token is for (`tenant` claim; none: the default tenant).
    pub tenant: Option<String>,
}

/// How far an interaction on a type is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Any resource of the type.
    All,
    /// Resources in this patient's compartment (and, for reads, resources of types
    /// outside every patient compartment, such as Practitioner).
    Patient(String),
    /// Resources allowed by any of these rules (search-constrained scopes).
    Rules(Vec<Rule>),
}

impl Access {
    /// The grant for `interaction` on `resource_type`; `None`: not allowed.
    pub fn grant(&self, interaction: Interaction, resource_type: &str) -> Option<Grant> {
        let rules = self
            .scopes
            .rules(interaction, resource_type, self.patient.as_deref());
        if rules.is_empty() {
            None
        } else if rules.iter().any(Rule::is_unrestricted) {
            Some(Grant::All)
        } else if let [Rule {
            patient: Some(p),
            constraint,
        }] = rules.as_slice()
        {
            if constraint.is_empty() {
                Some(Grant::Patient(p.clone()))
            } else {
                Some(Grant::Rules(rules))
            }
        } else {
            Some(Grant::Rules(rules))
        }
    }
}

/// What a decision needs to know of the request.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    /// The authenticated caller; `None` when authentication is off.
    pub caller: Option<&'a Access>,
    /// Whether the server keeps its audit trail (its AuditEvents are then read-only).
    pub audit_on: bool,
}

/// Why an interaction is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No granted scope allows the interaction on the type.
    NoScope {
        interaction: Interaction,
        resource_type: String,
    },
    /// The audit trail's AuditEvents are written by the server only.
    AuditTrail,
    /// Written content outside the compartment of the token's patient.
    OutsideCompartment { patient: String },
    /// Search-constrained scopes are for reading.
    RulesCannotWrite,
    /// The interaction needs a grant on every resource of the type (`what` it is).
    NeedsUnrestricted { what: String, resource_type: String },
    /// Several search constraints that no one search can express.
    ConstraintsApart { resource_type: String },
    /// A bulk export of a type needs a grant to read all of it.
    ExportNeedsAll { resource_type: String },
    /// A Group export needs a grant to read all Groups.
    GroupExport,
    /// A bulk export with no grant to read any type in full.
    NoSystemRead,
    /// `$expunge` of a type needs a grant to delete all of it.
    ExpungeNeedsAll { resource_type: String },
    /// A resource outside what the grant allows.
    Outside { resource_type: String, id: String },
    /// `$everything` needs a grant to read the Patient.
    EverythingNeedsPatient,
    /// None of the types asked for may be read.
    NoTypeAllowed,
    /// The history of a type needs a grant to search all of it.
    HistoryNeedsAll { resource_type: String },
    /// `/metrics` is for those who may read the whole audit trail.
    MetricsNeedAudit,
    /// The list of every bulk job is for operators too.
    JobsNeedAudit,
    /// The token is for another tenant than the one the request is for.
    OtherTenant { token: String, requested: String },
    /// Tenants are administered by the default tenant's operators.
    TenantsNeedOperator,
}

impl Denial {
    /// The refusal's text, for the OperationOutcome.
    pub fn message(&self) -> String {
        match self {
            Denial::NoScope {
                interaction,
                resource_type,
            } => format!(
                "the granted scopes do not allow {} ({}) of {resource_type} resources",
                scopes::interaction_name(*interaction),
                interaction.letter()
            ),
            Denial::AuditTrail => "AuditEvents are written by the server's audit trail and cannot be changed through the API".into(),
            Denial::OutsideCompartment { patient } => format!(
                "the resource must be in the compartment of Patient/{patient}, the patient of the access token"
            ),
            Denial::RulesCannotWrite => "search-constrained scopes allow reading, not writing".into(),
            Denial::NeedsUnrestricted { what, resource_type } => format!(
                "{what} needs a scope for all {resource_type} resources (not one confined to a patient or a search)"
            ),
            Denial::ConstraintsApart { resource_type } => format!(
                "the granted scopes allow {resource_type} only under different search constraints; search with one of them"
            ),
            Denial::ExportNeedsAll { resource_type: t } => format!(
                "bulk export of {t} needs a scope to read all {t} resources (system/{t}.r)"
            ),
            Denial::GroupExport => "a Group export needs a scope to read the Group (system/Group.rs)".into(),
            Denial::NoSystemRead => "bulk export needs system-level read scopes (system/*.r or system/[type].r)".into(),
            Denial::ExpungeNeedsAll { resource_type: t } => format!(
                "$expunge needs a scope to delete all {t} resources (system/{t}.d)"
            ),
            Denial::Outside { resource_type, id } => format!(
                "{resource_type}/{id} is outside what the granted scopes allow"
            ),
            Denial::EverythingNeedsPatient => "$everything needs read access to the Patient".into(),
            Denial::NoTypeAllowed => "the granted scopes allow none of the types asked for".into(),
            Denial::HistoryNeedsAll { resource_type: t } => format!(
                "history of {t} needs a scope for all {t} resources (not one confined to a patient or a search)"
            ),
            Denial::JobsNeedAudit => "the list of all bulk jobs needs a scope to read all AuditEvents (system/AuditEvent.r), as operators have".into(),
            Denial::OtherTenant { token, requested } => format!(
                "this access token is for tenant '{token}', not for tenant '{requested}'"
            ),
            Denial::TenantsNeedOperator => "tenant administration needs a token of the default tenant with a scope to read all AuditEvents (system/AuditEvent.r), as operators have".into(),
            Denial::MetricsNeedAudit => "/metrics needs a scope to read all AuditEvents (system/AuditEvent.r), as operators have; or serve it apart with --metrics-listen".into(),
        }
    }
}

/// How far `interaction` on `resource_type` is allowed.
pub fn decide(
    ctx: &RequestContext<'_>,
    interaction: Interaction,
    resource_type: &str,
) -> Result<Grant, Denial> {
    let Some(caller) = ctx.caller else {
        return Ok(Grant::All);
    };
    caller
        .grant(interaction, resource_type)
        .ok_or_else(|| Denial::NoScope {
            interaction,
            resource_type: resource_type.to_string(),
        })
}

fn writable(ctx: &RequestContext<'_>, resource_type: &str) -> Result<(), Denial> {
    if ctx.audit_on && resource_type == "AuditEvent" {
        return Err(Denial::AuditTrail);
    }
    Ok(())
}

/// The grant for writing `resource` (create or update content): patient-confined
/// grants need the new content inside the patient's compartment; search-constrained
/// scopes do not allow writes.
pub fn decide_content(
    ctx: &RequestContext<'_>,
    defs: &fhir_model::Definitions,
    interaction: Interaction,
    resource_type: &str,
    resource: &Value,
) -> Result<Grant, Denial> {
    writable(ctx, resource_type)?;
    match decide(ctx, interaction, resource_type)? {
        Grant::All => Ok(Grant::All),
        Grant::Patient(p) if patient_allows(defs, interaction, resource_type, resource, &p) => {
            Ok(Grant::Patient(p))
        }
        Grant::Patient(patient) => Err(Denial::OutsideCompartment { patient }),
        Grant::Rules(_) => Err(Denial::RulesCannotWrite),
    }
}

/// Conditional writes, patches and writes of AuditEvents need an unrestricted grant
/// (their targets are only known inside the store's transaction).
pub fn decide_unrestricted(
    ctx: &RequestContext<'_>,
    interaction: Interaction,
    resource_type: &str,
    what: &str,
) -> Result<(), Denial> {
    writable(ctx, resource_type)?;
    match decide(ctx, interaction, resource_type)? {
        Grant::All => Ok(()),
        _ => Err(Denial::NeedsUnrestricted {
            what: what.to_string(),
            resource_type: resource_type.to_string(),
        }),
    }
}

/// Whether the caller may read every resource of `resource_type`.
fn reads_all(ctx: &RequestContext<'_>, resource_type: &str) -> bool {
    decide(ctx, Interaction::Read, resource_type) == Ok(Grant::All)
}

/// The types a bulk export covers: those asked for (each must be readable in full),
/// or, when none is, every type of `known` that is; a Group export needs the Group
/// readable in full too.
pub fn decide_export(
    ctx: &RequestContext<'_>,
    group: bool,
    asked: &[String],
    known: &[String],
) -> Result<Vec<String>, Denial> {
    if ctx.caller.is_none() {
        return Ok(asked.to_vec());
    }
    if group && !reads_all(ctx, "Group") {
        return Err(Denial::GroupExport);
    }
    if let Some(t) = asked.iter().find(|t| !reads_all(ctx, t)) {
        return Err(Denial::ExportNeedsAll {
            resource_type: t.clone(),
        });
    }
    if !asked.is_empty() {
        return Ok(asked.to_vec());
    }
    let readable: Vec<String> = known
        .iter()
        .filter(|t| reads_all(ctx, t))
        .cloned()
        .collect();
    if readable.is_empty() {
        return Err(Denial::NoSystemRead);
    }
    Ok(readable)
}

/// `$expunge` of one type, or of every type of `known` but AuditEvent: each needs a
/// grant to delete all of it.
pub fn decide_expunge(
    ctx: &RequestContext<'_>,
    resource_type: Option<&str>,
    known: &[String],
) -> Result<(), Denial> {
    if ctx.caller.is_none() {
        return Ok(());
    }
    let full = |t: &str| decide(ctx, Interaction::Delete, t) == Ok(Grant::All);
    let refused = match resource_type {
        Some(t) => (!full(t)).then(|| t.to_string()),
        None => known
            .iter()
            .filter(|t| *t != "AuditEvent")
            .find(|t| !full(t))
            .cloned(),
    };
    match refused {
        Some(resource_type) => Err(Denial::ExpungeNeedsAll { resource_type }),
        None => Ok(()),
    }
}

/// What `$everything` covers: the Patient (`id`, or the token's patient when none is
/// named) and the types asked for that may be read (in full or in that patient's
/// compartment), or every such type of `known` when none is asked for.
pub fn decide_everything(
    ctx: &RequestContext<'_>,
    id: Option<String>,
    asked: &[String],
    known: &[String],
) -> Result<(Option<String>, Vec<String>), Denial> {
    if ctx.caller.is_none() {
        return Ok((id, asked.to_vec()));
    }
    let id = match decide(ctx, Interaction::Read, "Patient") {
        Ok(Grant::All) => id,
        Ok(Grant::Patient(p)) => match id {
            Some(i) if i != p => {
                return Err(Denial::Outside {
                    resource_type: "Patient".into(),
                    id: i,
                })
            }
            _ => Some(p),
        },
        _ => return Err(Denial::EverythingNeedsPatient),
    };
    let readable = |t: &&String| {
        matches!(
            decide(ctx, Interaction::Read, t),
            Ok(Grant::All | Grant::Patient(_))
        )
    };
    if asked.is_empty() {
        return Ok((id, known.iter().filter(readable).cloned().collect()));
    }
    let types: Vec<String> = asked.iter().filter(readable).cloned().collect();
    if types.is_empty() {
        return Err(Denial::NoTypeAllowed);
    }
    Ok((id, types))
}

/// Whose history is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryOf<'a> {
    /// One resource of this type (its versions are then checked one by one).
    Instance(&'a str),
    /// Every resource of this type.
    Type(&'a str),
    /// Every resource of the types of `known`.
    System,
}

/// How far a history may be read: an instance's as the type may be read; a type's or
/// the system's only with grants to search every resource of each type.
pub fn decide_history(
    ctx: &RequestContext<'_>,
    of: HistoryOf<'_>,
    known: &[String],
) -> Result<Grant, Denial> {
    let unrestricted = |t: &str| match decide(ctx, Interaction::Search, t)? {
        Grant::All => Ok(Grant::All),
        _ => Err(Denial::HistoryNeedsAll {
            resource_type: t.to_string(),
        }),
    };
    match of {
        HistoryOf::Instance(t) => decide(ctx, Interaction::Read, t),
        HistoryOf::Type(t) => unrestricted(t),
        HistoryOf::System if ctx.caller.is_none() => Ok(Grant::All),
        HistoryOf::System => {
            for t in known {
                unrestricted(t)?;
            }
            Ok(Grant::All)
        }
    }
}

/// `/metrics` on the API's listener: the server's operational figures (no records, but
/// how busy each interaction is) for whoever may read the whole audit trail.
pub fn decide_metrics(ctx: &RequestContext<'_>) -> Result<(), Denial> {
    match decide(ctx, Interaction::Read, "AuditEvent") {
        Ok(Grant::All) => Ok(()),
        _ => Err(Denial::MetricsNeedAudit),
    }
}

/// Whether the caller may reach `tenant` (the one the URL or the token's claim chose;
/// `None`: tenancy is off). A token is for one tenant — its `tenant` claim, or the
/// default tenant without one — and reaches no other, whatever its scopes.
pub fn decide_tenant(caller: Option<&Access>, tenant: Option<&str>) -> Result<(), Denial> {
    let (Some(caller), Some(requested)) = (caller, tenant) else {
        return Ok(());
    };
    let token = caller
        .tenant
        .as_deref()
        .unwrap_or(fhir_store::tenants::DEFAULT);
    if token == requested {
        Ok(())
    } else {
        Err(Denial::OtherTenant {
            token: token.to_string(),
            requested: requested.to_string(),
        })
    }
}

/// Tenant administration (list, add, disable over HTTP): the default tenant's
/// operators, who may read its whole audit trail, as for `/metrics`.
pub fn decide_tenant_admin(ctx: &RequestContext<'_>) -> Result<(), Denial> {
    let default_tenant = ctx.caller.is_none_or(|c| c.tenant.is_none());
    if default_tenant && decide_metrics(ctx).is_ok() {
        Ok(())
    } else {
        Err(Denial::TenantsNeedOperator)
    }
}

/// Every bulk job of the server (`/console/jobs.json`: their kick-off URLs may name
/// patients): for operators, as `/metrics` is.
pub fn decide_job_list(ctx: &RequestContext<'_>) -> Result<(), Denial> {
    decide_metrics(ctx).map_err(|_| Denial::JobsNeedAudit)
}

/// Whether `resource` (of `resource_type`) is in the compartment of Patient `patient`;
/// `None` when resources of the type are never in a patient compartment.
pub fn in_patient_compartment(
    defs: &fhir_model::Definitions,
    resource_type: &str,
    resource: &Value,
    patient: &str,
) -> Option<bool> {
    if resource_type == "Patient" {
        return Some(resource.get("id").and_then(Value::as_str) == Some(patient));
    }
    let params = defs.compartment("Patient")?.params_for(resource_type);
    if params.is_empty() {
        return None;
    }
    let values = fhir_search::extract(fhir_search::SearchRegistry::r4(), resource_type, resource);
    Some(values.references.iter().any(|r| {
        params.iter().any(|p| p == &r.param)
            && r.target_type.as_deref() == Some("Patient")
            && r.id.as_deref() == Some(patient)
    }))
}

/// Whether a patient-confined grant allows `interaction` on this resource. Resources
/// of types outside every patient compartment may be read, not written.
pub fn patient_allows(
    defs: &fhir_model::Definitions,
    interaction: Interaction,
    resource_type: &str,
    resource: &Value,
    patient: &str,
) -> bool {
    match in_patient_compartment(defs, resource_type, resource, patient) {
        Some(inside) => inside,
        None => matches!(interaction, Interaction::Read | Interaction::Search),
    }
}

/// The search restrictions of a grant: a patient compartment to search in, and extra
/// parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchLimits {
    pub patient: Option<String>,
    pub extra: Vec<(String, String)>,
}

/// What a search under `grant` is confined to; refused when the grant's rules cannot
/// be expressed as one search.
pub fn search_limits(grant: &Grant, resource_type: &str) -> Result<SearchLimits, Denial> {
    match grant {
        Grant::All => Ok(SearchLimits {
            patient: None,
            extra: Vec::new(),
        }),
        Grant::Patient(p) => Ok(SearchLimits {
            patient: Some(p.clone()),
            extra: Vec::new(),
        }),
        Grant::Rules(rules) => merge_rules(rules).ok_or_else(|| Denial::ConstraintsApart {
            resource_type: resource_type.to_string(),
        }),
    }
}

/// Rules that differ only in the values of one parameter combine as `param=a,b`.
fn merge_rules(rules: &[Rule]) -> Option<SearchLimits> {
    let first = rules.first()?;
    if rules.len() == 1 {
        return Some(SearchLimits {
            patient: first.patient.clone(),
            extra: first.constraint.clone(),
        });
    }
    let key = match first.constraint.as_slice() {
        [(k, _)] => k.clone(),
        _ => return None,
    };
    let mut values = Vec::new();
    for r in rules {
        match r.constraint.as_slice() {
            [(k, v)] if *k == key && r.patient == first.patient => values.push(v.clone()),
            _ => return None,
        }
    }
    Some(SearchLimits {
        patient: first.patient.clone(),
        extra: vec![(key, values.join(","))],
    })
}

#[cfg(test)]
mod tests;
