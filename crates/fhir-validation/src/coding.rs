//! Codings and quantity units: the system is an absolute URL of a code system (not a
//! value set); codes and displays of the code systems known here in full are checked;
//! UCUM units are checked for syntax with `ucum-units` (no terminology server is
//! needed for it); and, once per validation, a note says which code systems met are
//! not available here, so that their codes were not checked.

use fhir_model::IssueType;
use serde_json::Value;

use crate::issue::{Issue, Severity};
use crate::location::Loc;
use crate::terminology;
use crate::walk::Run;

const UCUM: &str = "http://unitsofmeasure.org";

/// Well-known code systems that are not distributed with FHIR, so not available here
/// (their codes and displays need a terminology server).
const EXTERNAL: &[&str] = &[
    "http://snomed.info/sct",
    "http://loinc.org",
    "http://www.nlm.nih.gov/research/umls/rxnorm",
    "http://hl7.org/fhir/sid/cvx",
    "http://hl7.org/fhir/sid/icd-10",
    "http://hl7.org/fhir/sid/icd-10-cm",
    "http://hl7.org/fhir/sid/icd-9-cm",
    "http://hl7.org/fhir/sid/ndc",
    "http://www.ama-assn.org/go/cpt",
    "urn:ietf:bcp:13",
    "urn:ietf:bcp:47",
    "urn:iso:std:iso:3166",
    "urn:iso:std:iso:4217",
];

impl<'v> Run<'v> {
    pub(crate) fn coding(&mut self, value: &'v Value, at: &Loc<'_>) {
        let system = value.get("system").and_then(Value::as_str);
        let code = value.get("code").and_then(Value::as_str);
        if let Some(s) = system.filter(|s| !s.contains(':')) {
            let m = format!(
                "Coding.system must be an absolute reference, not a local reference ('{s}')"
            );
            self.push(Issue::error(IssueType::Value, at.to_string(), m));
        }
        if let Some(s) = system.filter(|s| self.refers_to_value_set(s)) {
            let m = format!("The Coding references a value set, not a code system ('{s}')");
            self.push(Issue::error(IssueType::Value, at.to_string(), m));
        }
        let (Some(s), Some(c)) = (system, code) else {
            return;
        };
        if s == UCUM {
            return self.ucum_code(c, at);
        }
        // The packages' code system, else one the caller stores.
        let stored = match self.defs.code_system(s) {
            Some(_) => None,
            None => self
                .opts
                .terminology
                .as_ref()
                .and_then(|t| t.code_system(s, c)),
        };
        let cs = self
            .defs
            .code_system(s)
            .or_else(|| stored.as_deref().and_then(|t| t.code_system(s)));
        let Some(cs) = cs else {
            return self.unavailable(s, at);
        };
        if let Some((severity, m)) = terminology::unknown_code(cs, s, c) {
            self.push(Issue::new(
                severity,
                IssueType::CodeInvalid,
                at.to_string(),
                m,
            ));
        }
        let display = value.get("display").and_then(Value::as_str);
        // A warning by default (displays vary between terminology releases, and real
        // data such as Synthea's carries older ones); an error with the option, as the
        // HL7 validator does by default.
        if let Some(m) = display.and_then(|d| terminology::wrong_display(cs, s, c, d)) {
            let severity = if self.opts.display_issues_are_errors {
                Severity::Error
            } else {
                Severity::Warning
            };
            self.push(Issue::new(
                severity,
                IssueType::CodeInvalid,
                at.to_string(),
                m,
            ));
        }
    }

    /// The unit of a Quantity (or Age, Duration…) coded in UCUM is a UCUM expression.
    pub(crate) fn quantity_unit(&mut self, value: &'v Value, at: &Loc<'_>) {
        let system = value.get("system").and_then(Value::as_str);
        if let (Some(UCUM), Some(code)) = (system, value.get("code").and_then(Value::as_str)) {
            self.ucum_code(code, at);
        }
    }

    fn ucum_code(&mut self, code: &str, at: &Loc<'_>) {
        if let Err(e) = ucum::validate(code) {
            let m = format!("Error processing unit '{code}': {e}");
            self.push(Issue::error(IssueType::CodeInvalid, at.to_string(), m));
        }
    }

    /// Says once per validation (where it is first met) that the codes of `system` were
    /// not checked, when it is a well-known external code system not loaded here.
    fn unavailable(&mut self, system: &'v str, at: &Loc<'_>) {
        let external = EXTERNAL.contains(&system);
        if !external || self.defs.code_system(system).is_some() {
            return;
        }
        if self.unavailable_noted.insert(system) {
            let m = format!(
                "The code system {system} is not available here: its codes and displays were not checked"
            );
            self.push(Issue::new(
                Severity::Information,
                IssueType::NotSupported,
                at.to_string(),
                m,
            ));
        }
    }

    /// A `Coding.system` that is the URL of a known ValueSet and of no CodeSystem.
    fn refers_to_value_set(&self, system: &str) -> bool {
        self.defs.code_system(system).is_none() && self.defs.value_set(system).is_some()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn common_clinical_units_are_valid_ucum() {
        let units = [
            "mg",
            "mL",
            "mm[Hg]",
            "/min",
            "kg/m2",
            "%",
            "Cel",
            "[degF]",
            "10*3/uL",
            "mmol/L",
            "g/dL",
            "[in_i]",
            "[lb_av]",
            "cm",
            "a",
            "mo",
            "wk",
            "d",
            "h",
            "min",
            "s",
            "{beats}/min",
            "1",
            "U/L",
            "[iU]/L",
            "mg/dL",
            "ug/mL",
            "meq/L",
            "[pH]",
            "fL",
            "pg",
            "10*6/uL",
            "{score}",
            "m2",
            "L/min",
            "mL/min/{1.73_m2}",
            "nmol/L",
            "ng/mL",
            "[ppm]",
            "/[HPF]",
            "kPa",
            "[mi_i]",
            "km",
            "mm",
            "um",
            "kg",
            "g",
            "[drp]",
            "{tbl}",
            "mL/h",
        ];
        for u in units {
            assert!(ucum::validate(u).is_ok(), "{u}: {:?}", ucum::validate(u));
        }
        for bad in ["mcg", "ea", "TAB", "hr", "month", "mEq"] {
            assert!(ucum::validate(bad).is_err(), "{bad} passed");
        }
    }
}
