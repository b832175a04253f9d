//! A MeasureReport against its Measure, when the Measure is loaded (as the HL7 Java
//! validator checks it): no `measureScore` where the Measure's scoring is `cohort`, and
//! each group's stratifiers match the stratifiers of the Measure's group by code, both
//! ways.

use fhir_model::IssueType;
use serde_json::Value;

use crate::issue::Issue;
use crate::location::{Loc, Step};
use crate::walk::Run;

impl Run<'_> {
    pub(crate) fn measure_report(&mut self, report: &Value, at: &Loc<'_>) {
        let Some(url) = report.get("measure").and_then(Value::as_str) else {
            return;
        };
        let Some(measure) = self.v.measure(url) else {
            return;
        };
        let cohort = codes(measure.get("scoring")).any(|(_, c)| c == "cohort");
        let defined = items(measure, "group");
        let group_step = at.then(Step::Name("group"));
        for (i, g) in items(report, "group").into_iter().enumerate() {
            let here = group_step.then(Step::Index(i));
            if cohort && g.get("measureScore").is_some() {
                let m = "No measureScore when the scoring of the message is 'cohort'";
                let loc = here.then(Step::Name("measureScore")).to_string();
                self.push(Issue::error(IssueType::BusinessRule, loc, m.to_string()));
            }
            if let Some(def) = matching_group(&defined, g) {
                self.stratifiers(g, def, &here);
            }
        }
    }

    /// The stratifiers of report group `g` against those of Measure group `def`.
    fn stratifiers(&mut self, g: &Value, def: &Value, at: &Loc<'_>) {
        let defined = items(def, "stratifier");
        let reported = items(g, "stratifier");
        let step = at.then(Step::Name("stratifier"));
        let mut used = vec![false; defined.len()];
        for (i, s) in reported.iter().enumerate() {
            let codes_of_s = items(s, "code");
            let found = defined.iter().position(|d| {
                codes_of_s
                    .iter()
                    .any(|c| same_concept(d.get("code"), Some(c)))
            });
            match found {
                Some(k) => used[k] = true,
                None => {
                    let m = "Group should have a code that matches the group stratifier definition in the measure";
                    let loc = step.then(Step::Index(i)).to_string();
                    self.push(Issue::error(IssueType::BusinessRule, loc, m.to_string()));
                }
            }
        }
        for (d, _) in defined.iter().zip(&used).filter(|(_, u)| !**u) {
            let code = codes(d.get("code"))
                .next()
                .map_or(String::new(), |(_, c)| c.to_string());
            let id = d.get("id").and_then(Value::as_str).unwrap_or("");
            let m = format!(
                "The MeasureReport does not include a stratifier for the stratifier with code '{code}' (id = '{id}')"
            );
            self.push(Issue::error(IssueType::BusinessRule, at.to_string(), m));
        }
    }
}

/// The items of array member `key` of `v` (none when absent).
fn items<'a>(v: &'a Value, key: &str) -> Vec<&'a Value> {
    let array = v.get(key).and_then(Value::as_array);
    array.map(|a| a.iter().collect()).unwrap_or_default()
}

/// The Measure group a report group answers: the one with the same code, or the only
/// one.
fn matching_group<'m>(defined: &[&'m Value], g: &Value) -> Option<&'m Value> {
    match defined {
        [only] => Some(only),
        _ => defined
            .iter()
            .copied()
            .find(|d| same_concept(d.get("code"), g.get("code"))),
    }
}

/// The (system, code) pairs of a CodeableConcept.
fn codes(cc: Option<&Value>) -> impl Iterator<Item = (Option<&str>, &str)> {
    cc.and_then(|c| c.get("coding"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some((
                c.get("system").and_then(Value::as_str),
                c.get("code")?.as_str()?,
            ))
        })
}

/// Two CodeableConcepts share a coding, or (without codings) their text.
fn same_concept(a: Option<&Value>, b: Option<&Value>) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return false;
    };
    if codes(Some(a)).any(|x| codes(Some(b)).any(|y| x == y)) {
        return true;
    }
    let (ta, tb) = (a.get("text"), b.get("text"));
    ta.and_then(Value::as_str).is_some() && ta == tb
}
