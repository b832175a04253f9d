//! `ValueSet/$validate-code`: whether each coding is in the value set's expansion, and
//! if not, why — as HL7's terminology servers say it (the ecosystem's test cases): the
//! code is not in the value set (`not-in-vs`), and the cause where there is one: an
//! unknown code (`invalid-code`), code system (`not-found`, `x-caused-by-unknown-system`)
//! or code system version, a coding without a system or naming a value set
//! (`invalid-data`), an inactive code under `activeOnly`. A code that differs only by
//! case from one of a case-insensitive code system is valid, with its
//! `normalized-code` and an information issue.

use fhir_model::terminology::{CodeSystemDef, ExpandedCode, Terminology};
use serde_json::Value;

use super::{answer, check_display, expansion_failed, Checked, Issue};
use crate::lookup::concept;
use crate::{codings, invalid, Coding, Params, TxError};

/// `ValueSet/$validate-code`; `instance_url` is the value set of an instance-level
/// call (else `url`).
pub fn value_set(
    t: &Terminology,
    p: &Params,
    instance_url: Option<&str>,
) -> Result<Value, TxError> {
    value_set_with(t, p, instance_url, None)
}

/// [`value_set`], with `extra` code systems the value set does not reach, for the
/// codings that name them (checked against their own code system).
pub fn value_set_with(
    t: &Terminology,
    p: &Params,
    instance_url: Option<&str>,
    extra: Option<&Terminology>,
) -> Result<Value, TxError> {
    let url = instance_url
        .or(p.text("url"))
        .ok_or_else(|| invalid("the value set is needed (url)", "url"))?;
    let (found, from) = codings(p, "system")?;
    // A code system the value set draws on is not here: its codes cannot be checked
    // (the others are checked against an empty value set).
    let (codes, missing) = match t.expand_shared(url) {
        Ok(codes) => (codes, None),
        Err(fhir_model::terminology::ExpansionError::UnknownCodeSystem(system)) => {
            (std::sync::Arc::new(Vec::new()), Some(system))
        }
        Err(e) => return Err(expansion_failed(url, "url", e)),
    };
    let check = Check {
        t,
        extra,
        codes: &codes,
        label: label(t, url),
        active_only: p.boolean("activeOnly")?.unwrap_or(false),
        membership_only: p.boolean("valueset-membership-only")?.unwrap_or(false),
        system_implied: from == "code",
        p,
    };
    let checked = found
        .iter()
        .map(|c| match &missing {
            // Of the missing code system, or of a known one the value set may hold
            // through the includes it could not expand: unknown either way.
            Some(m)
                if c.system.as_deref() == Some(m.as_str())
                    || c.system
                        .as_deref()
                        .is_some_and(|s| check.code_system(s).is_some()) =>
            {
                check.unchecked(c, m)
            }
            _ => check.coding(c),
        })
        .collect();
    let notes: Vec<Issue> = crate::status::notes(t, url)
        .into_iter()
        .map(|n| Issue {
            severity: "information",
            code: "business-rule",
            tx: "status-check",
            text: n.text(),
            element: None,
        })
        .collect();
    Ok(answer(
        checked,
        &from,
        p.json("codeableConcept"),
        Some(&check.label),
        &notes,
    ))
}

/// The value set as messages name it: `url|version` when it has a version.
fn label(t: &Terminology, url: &str) -> String {
    match t.value_set(url).and_then(|v| v.version.as_deref()) {
        Some(v) if !url.contains('|') => format!("{url}|{v}"),
        _ => url.to_string(),
    }
}

/// One value set's check of codings.
struct Check<'a> {
    t: &'a Terminology,
    extra: Option<&'a Terminology>,
    codes: &'a [ExpandedCode],
    label: String,
    active_only: bool,
    /// `valueset-membership-only` (HL7's terminology servers): whether the code is in
    /// the value set, not what its code system says of it.
    membership_only: bool,
    /// A `code` without `system` takes the system of the value set's code.
    system_implied: bool,
    p: &'a Params,
}

impl Check<'_> {
    /// A coding of `system`, a code system the value set draws on that this server
    /// does not have: it cannot be checked.
    fn unchecked(&self, coding: &Coding, system: &str) -> Checked {
        let text = format!(
            "A definition for CodeSystem '{system}' could not be found, so the code cannot be validated"
        );
        self.not_checkable(Checked::of(coding), system.to_string(), text)
    }

    /// A coding that cannot be checked because code system `missing` (`url` or
    /// `url|version`) is not here: `text` says which.
    fn not_checkable(&self, mut checked: Checked, missing: String, text: String) -> Checked {
        let warning = format!(
            "Unable to check whether the code is in the value set '{}' because the code system {missing} was not found",
            self.label
        );
        checked.unknown_system = Some(missing);
        let mut checked = checked.failed(Issue::error("not-found", "not-found", text, "system"));
        checked.issues.push(Issue {
            severity: "warning",
            code: "not-found",
            tx: "vs-invalid",
            text: warning,
            element: None,
        });
        checked
    }

    fn code_system(&self, system: &str) -> Option<&CodeSystemDef> {
        self.t
            .code_system(system)
            .or_else(|| self.extra?.code_system(system))
    }

    fn not_in_vs(&self, coding: &Coding) -> Issue {
        Issue::error(
            "code-invalid",
            "not-in-vs",
            format!(
                "The provided code '{}' was not found in the value set '{}'",
                coding.label(),
                self.label
            ),
            "code",
        )
    }

    fn coding(&self, coding: &Coding) -> Checked {
        let code = coding.code.as_deref().unwrap_or("");
        let Some(system) = coding.system.as_deref() else {
            return self.without_system(coding, code);
        };
        let checked = Checked::of(coding);
        let cs = self.code_system(system);
        if cs.is_none() && self.t.value_set(system).is_some() {
            let text = format!("The Coding references a value set, not a code system ('{system}')");
            return checked.failed(self.not_in_vs(coding)).failed(Issue::error(
                "invalid",
                "invalid-data",
                text,
                "system",
            ));
        }
        if let (Some(want), Some(cs)) = (coding.version.as_deref(), cs) {
            if cs.version.as_deref() != Some(want) {
                return self.unknown_version(checked, cs, want);
            }
        }
        let exact = self
            .codes
            .iter()
            .find(|c| c.system == system && c.code == code);
        let insensitive = || {
            (cs?.case_sensitive == Some(false))
                .then(|| {
                    self.codes
                        .iter()
                        .find(|c| c.system == system && c.code.eq_ignore_ascii_case(code))
                })
                .flatten()
        };
        match (exact.or_else(insensitive), cs) {
            (Some(hit), _) => self.member(checked, coding, hit, cs),
            (None, None) if !system.contains(':') => {
                let text =
                    "Coding.system must be an absolute reference, not a local reference".into();
                self.unknown_system(checked, coding, system)
                    .failed(Issue::error("invalid", "invalid-data", text, "system"))
            }
            (None, None) => self.unknown_system(checked, coding, system),
            (None, Some(cs)) => self.outside(checked, coding, cs),
        }
    }

    /// A coding without a system: only a bare `code` may be matched by code alone.
    fn without_system(&self, coding: &Coding, code: &str) -> Checked {
        if self.system_implied {
            if let Some(hit) = self.codes.iter().find(|c| c.code == code) {
                let implied = Coding {
                    system: Some(hit.system.clone()),
                    ..coding.clone()
                };
                let cs = self.code_system(&hit.system);
                return self.member(Checked::of(&implied), &implied, hit, cs);
            }
            return Checked::of(coding).failed(self.not_in_vs(coding));
        }
        let mut checked = Checked::of(coding).failed(self.not_in_vs(coding));
        checked.issues.push(Issue {
            severity: "warning",
            code: "invalid",
            tx: "invalid-data",
            text: "Coding has no system. A code with no system has no defined meaning, and it cannot be validated. A system should be provided".into(),
            element: Some(""),
        });
        checked
    }

    /// A code of the value set: valid unless inactive under `activeOnly` or its display
    /// is wrong.
    fn member(
        &self,
        mut checked: Checked,
        coding: &Coding,
        hit: &ExpandedCode,
        cs: Option<&CodeSystemDef>,
    ) -> Checked {
        let code = coding.code.as_deref().unwrap_or("");
        checked.member = true;
        checked.system = Some(hit.system.clone());
        checked.version = cs.and_then(|cs| cs.version.clone());
        let concept = cs.and_then(|cs| concept(cs, &hit.code));
        checked.inactive = concept.is_some_and(|c| c.inactive());
        if hit.code != code {
            checked.normalized = Some(hit.code.clone());
            let version = checked
                .version
                .as_deref()
                .map(|v| format!("|{v}"))
                .unwrap_or_default();
            checked.issues.push(Issue {
                severity: "information",
                code: "business-rule",
                tx: "code-rule",
                text: format!(
                    "The code '{code}' differs from the correct code '{}' by case. Although the code system '{}{version}' is case insensitive, implementers are strongly encouraged to use the correct case anyway",
                    hit.code, hit.system
                ),
                element: Some("code"),
            });
        }
        if self.active_only && checked.inactive {
            checked.display = concept
                .and_then(|c| c.display.clone())
                .or(hit.display.clone());
            let text = format!("The code '{code}' is valid but is not active");
            return checked
                .failed(Issue::error("business-rule", "code-rule", text, "code"))
                .failed(self.not_in_vs(coding));
        }
        check_display(checked, coding, concept, hit.display.as_deref(), self.p)
    }

    /// A code of a known code system that the value set does not hold.
    fn outside(&self, mut checked: Checked, coding: &Coding, cs: &CodeSystemDef) -> Checked {
        let code = coding.code.as_deref().unwrap_or("");
        let known = concept(cs, code);
        checked.version = known.and(cs.version.clone());
        checked.display = known.and_then(|k| k.display.clone());
        checked.inactive = known.is_some_and(|k| k.inactive());
        let mut checked = checked.failed(self.not_in_vs(coding));
        if known.is_none() && cs.content == "complete" && !self.membership_only {
            let version = cs
                .version
                .as_deref()
                .map(|v| format!(" version '{v}'"))
                .unwrap_or_default();
            let text = format!(
                "Unknown code '{code}' in the CodeSystem '{}'{version}",
                cs.url
            );
            checked = checked.failed(Issue::error("code-invalid", "invalid-code", text, "code"));
        }
        checked
    }

    fn unknown_system(&self, mut checked: Checked, coding: &Coding, system: &str) -> Checked {
        if self.membership_only {
            return checked.failed(self.not_in_vs(coding));
        }
        checked.unknown_system = Some(system.to_string());
        let text = format!(
            "A definition for CodeSystem {system} could not be found, so the code cannot be validated"
        );
        checked.failed(self.not_in_vs(coding)).failed(Issue::error(
            "not-found",
            "not-found",
            text,
            "system",
        ))
    }

    fn unknown_version(&self, mut checked: Checked, cs: &CodeSystemDef, want: &str) -> Checked {
        checked.version = Some(want.to_string());
        let valid = cs.version.as_deref().unwrap_or("");
        let text = format!(
            "A definition for CodeSystem '{}' version '{want}' could not be found, so the code cannot be validated. Valid versions: [{valid}]",
            cs.url
        );
        self.not_checkable(checked, format!("{}|{want}", cs.url), text)
    }
}
