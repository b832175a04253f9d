//! An OperationDefinition against its `inputProfile` and `outputProfile`, when they
//! are loaded (as the HL7 Java validator cross-checks them): each parameter slice of a
//! profile (a `Parameters.parameter` slice whose `name` is fixed) matches a parameter
//! of the same name and use in cardinality, types and target profiles; a slice without
//! such a parameter, and a parameter without such a slice, are warned about.

use fhir_model::structure::Max;
use fhir_model::{Definitions, ElementDef, IssueType, TypeDef};
use serde_json::Value;

use crate::issue::Issue;
use crate::location::{Loc, Step};
use crate::walk::Run;

/// What a profile's slice or an operation's parameter allows.
struct Allowed {
    name: String,
    min: u32,
    max: Max,
    /// Type codes; `None` when not constrained (any type).
    types: Option<Vec<String>>,
    target_profiles: Vec<String>,
}

impl Run<'_> {
    pub(crate) fn operation_definition_rules(&mut self, od: &Value, at: &Loc<'_>) {
        let params: Vec<(usize, &Value)> = od
            .get("parameter")
            .and_then(Value::as_array)
            .map(|a| a.iter().enumerate().collect())
            .unwrap_or_default();
        for (use_, key) in [("in", "inputProfile"), ("out", "outputProfile")] {
            let Some(url) = od.get(key).and_then(Value::as_str) else {
                continue;
            };
            let defs = self.defs;
            let Some(profile) = defs.structure(url).filter(|p| p.type_name == "Parameters") else {
                continue;
            };
            let mine: Vec<(usize, Allowed)> = params
                .iter()
                .filter(|(_, p)| p.get("use").and_then(Value::as_str) == Some(use_))
                .filter_map(|(i, p)| Some((*i, parameter(p)?)))
                .collect();
            self.profile_against_parameters(profile, use_, &mine, &at.then(Step::Name(key)), at);
        }
    }

    fn profile_against_parameters(
        &mut self,
        profile: &TypeDef,
        use_: &str,
        params: &[(usize, Allowed)],
        at_profile: &Loc<'_>,
        at: &Loc<'_>,
    ) {
        let label = match &profile.version {
            Some(v) => format!("{}|{v}", profile.url),
            None => profile.url.clone(),
        };
        let slices = slices(profile);
        let at_params = at.then(Step::Name("parameter"));
        for s in &slices {
            let Some((i, p)) = params.iter().find(|(_, p)| p.name == s.name) else {
                let m = format!("The '{use_}' profile {label} defines a parameter '{}' but this is not in the parameters list in the operation definition", s.name);
                self.push(Issue::warning(
                    IssueType::Unknown,
                    at_profile.to_string(),
                    m,
                ));
                continue;
            };
            self.compare(s, p, use_, &label, &at_params.then(Step::Index(*i)));
        }
        for (i, p) in params {
            if !slices.iter().any(|s| s.name == p.name) {
                let m = format!("The '{use_}' profile does not have a parameter '{}' but it is in the parameters list in the operation definition", p.name);
                let here = at_params.then(Step::Index(*i)).to_string();
                self.push(Issue::warning(IssueType::Unknown, here, m));
            }
        }
    }

    /// A profile's slice `s` against the operation's parameter `p` of the same name.
    fn compare(&mut self, s: &Allowed, p: &Allowed, use_: &str, label: &str, at: &Loc<'_>) {
        let name = &p.name;
        let mut errors = Vec::new();
        if s.min != p.min {
            errors.push(format!("The parameter '{name}' has a value for 'min' of '{}' in the '{use_}' profile {label} that is different to '{}' which is the value in the parameter definition in the operation definition", s.min, p.min));
        }
        if s.max != p.max {
            errors.push(format!("The parameter '{name}' has a value for 'max' of '{}' in the '{use_}' profile {label} that is different to '{}' which is the value in the parameter definition in the operation definition", shown_max(s.max), shown_max(p.max)));
        }
        let defs = self.defs;
        if let (Some(theirs), Some(ours)) = (&s.types, &p.types) {
            for t in theirs.iter().filter(|t| !type_allowed(defs, t, ours)) {
                errors.push(format!("The type '{t}' is allowed for the parameter '{name}' in the '{use_}' profile {label} but is not in the list of allowed types for the parameter in the operation definition: {}", ours.join(", ")));
            }
            for t in ours.iter().filter(|t| !type_allowed(defs, t, theirs)) {
                errors.push(format!("The type '{t}' is not allowed for the parameter '{name}' in the '{use_}' profile {label} but is in the list of allowed types for the parameter in the operation definition (allowed types = {})", theirs.join(", ")));
            }
        }
        for t in s
            .target_profiles
            .iter()
            .filter(|t| !p.target_profiles.contains(t))
        {
            errors.push(format!("The target profile '{t}' is allowed for the parameter '{name}' in the '{use_}' profile {label} but is not in the list of target profiles for the parameter in the operation definition: {}", listed(&p.target_profiles)));
        }
        for t in p
            .target_profiles
            .iter()
            .filter(|t| !s.target_profiles.contains(t))
        {
            errors.push(format!("The target profile '{t}' is not allowed for the parameter '{name}' in the '{use_}' profile {label} but is in the list of target profiles for the parameter in the operation definition (profile target profiles = {})", listed(&s.target_profiles)));
        }
        for m in errors {
            self.push(Issue::error(IssueType::Invalid, at.to_string(), m));
        }
    }
}

/// An operation's parameter (R4: one `type`; a parameter with parts has none).
fn parameter(p: &Value) -> Option<Allowed> {
    let name = p.get("name").and_then(Value::as_str)?.to_string();
    let min = p.get("min").and_then(Value::as_u64).unwrap_or(0) as u32;
    let max = match p.get("max").and_then(Value::as_str) {
        Some("*") | None => Max(None),
        Some(n) => Max(Some(n.parse().ok()?)),
    };
    let types = p
        .get("type")
        .and_then(Value::as_str)
        .map(|t| vec![t.to_string()]);
    let target_profiles = p
        .get("targetProfile")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Some(Allowed {
        name,
        min,
        max,
        types,
        target_profiles,
    })
}

/// The slices of `Parameters.parameter` whose `name` is fixed (or patterned), with
/// what their `value[x]` and `resource` allow.
fn slices(profile: &TypeDef) -> Vec<Allowed> {
    let child = |slice: &ElementDef, name: &str| {
        let id = format!("{}.{name}", slice.id);
        profile.elements.iter().find(|e| e.id == id)
    };
    profile
        .elements
        .iter()
        .filter(|e| e.path == "Parameters.parameter" && e.slice_name.is_some())
        .filter_map(|slice| {
            let name = child(slice, "name").and_then(|n| {
                let fixed = n.fixed.as_ref().or(n.pattern.as_ref());
                fixed.and_then(|(_, v)| v.as_str())
            })?;
            let value = child(slice, "value[x]").filter(|e| e.max != Max(Some(0)));
            let resource = child(slice, "resource").filter(|e| e.max != Max(Some(0)));
            Some(Allowed {
                name: name.to_string(),
                min: slice.min,
                max: slice.max,
                types: slice_types(value, resource),
                target_profiles: value
                    .into_iter()
                    .flat_map(|v| &v.types)
                    .flat_map(|t| t.target_profiles.iter().cloned())
                    .collect(),
            })
        })
        .collect()
}

/// The types a slice allows, `None` when its value and resource are not constrained
/// (the base's dozens of value types, or any resource).
fn slice_types(value: Option<&ElementDef>, resource: Option<&ElementDef>) -> Option<Vec<String>> {
    const OPEN: usize = 20;
    let mut types = Vec::new();
    if let Some(v) = value {
        if v.types.len() > OPEN {
            return None;
        }
        types.extend(v.types.iter().map(|t| t.code.clone()));
    }
    if let Some(r) = resource {
        if r.types.iter().any(|t| t.code == "Resource") {
            return None;
        }
        types.extend(r.types.iter().map(|t| t.code.clone()));
    }
    Some(types)
}

/// `t` is among `allowed`, where an abstract resource type on either side stands for
/// any resource (an operation's `Resource` parameter narrowed to one type by a profile).
fn type_allowed(defs: &Definitions, t: &str, allowed: &[String]) -> bool {
    let any_resource = |x: &str| x == "Resource" || x == "DomainResource";
    allowed.iter().any(|a| {
        a == t
            || (any_resource(a) && defs.is_resource_type(t))
            || (any_resource(t) && defs.is_resource_type(a))
    })
}

fn shown_max(m: Max) -> String {
    m.0.map_or("*".to_string(), |n| n.to_string())
}

fn listed(urls: &[String]) -> String {
    if urls.is_empty() {
        "(none)".to_string()
    } else {
        urls.join(", ")
    }
}
