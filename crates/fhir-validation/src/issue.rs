//! What validation finds: [`Issue`]s with a severity, an issue type, a message and a
//! FHIRPath location, gathered in a [`ValidationReport`] that becomes an
//! OperationOutcome.

use std::collections::HashSet;

use fhir_model::{IssueSeverity, IssueType, OperationOutcome};

/// How bad an issue is (`OperationOutcome.issue.severity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl Severity {
    pub fn is_error(self) -> bool {
        matches!(self, Severity::Fatal | Severity::Error)
    }

    fn to_model(self) -> IssueSeverity {
        match self {
            Severity::Fatal => IssueSeverity::Fatal,
            Severity::Error => IssueSeverity::Error,
            Severity::Warning => IssueSeverity::Warning,
            Severity::Information => IssueSeverity::Information,
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub severity: Severity,
    /// `OperationOutcome.issue.code`: structure, required, value, invariant, code-invalid…
    pub code: IssueType,
    /// Human text naming the rule (`minimum required = 1, but only found 0`).
    pub message: String,
    /// Where, in FHIRPath with indexes (`Patient.name[0].given[1]`).
    pub expression: String,
}

impl Issue {
    pub fn new(
        severity: Severity,
        code: IssueType,
        expression: impl Into<String>,
        message: impl Into<String>,
    ) -> Issue {
        Issue {
            severity,
            code,
            message: message.into(),
            expression: expression.into(),
        }
    }

    pub fn error(code: IssueType, at: impl Into<String>, message: impl Into<String>) -> Issue {
        Issue::new(Severity::Error, code, at, message)
    }

    pub fn warning(code: IssueType, at: impl Into<String>, message: impl Into<String>) -> Issue {
        Issue::new(Severity::Warning, code, at, message)
    }

    pub fn information(
        code: IssueType,
        at: impl Into<String>,
        message: impl Into<String>,
    ) -> Issue {
        Issue::new(Severity::Information, code, at, message)
    }

    /// The model's OperationOutcome issue (`details.text`, `expression`).
    pub fn to_model(&self) -> fhir_model::Issue {
        fhir_model::Issue::new(self.severity.to_model(), self.code, self.message.clone())
            .at(self.expression.clone())
    }
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} at {}: {}",
            self.severity, self.expression, self.message
        )
    }
}

/// The outcome of one validation: every issue, in the order found, without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationReport {
    pub issues: Vec<Issue>,
}

impl ValidationReport {
    pub(crate) fn from_issues(issues: Vec<Issue>) -> ValidationReport {
        let mut seen = HashSet::new();
        let issues = issues
            .into_iter()
            .filter(|i| seen.insert((i.severity, i.expression.clone(), i.message.clone())))
            .collect();
        ValidationReport { issues }
    }

    /// True when any issue is an error or fatal: the resource is not valid.
    pub fn has_errors(&self) -> bool {
        self.issues.iter().any(|i| i.severity.is_error())
    }

    pub fn errors(&self) -> impl Iterator<Item = &Issue> {
        self.issues.iter().filter(|i| i.severity.is_error())
    }

    /// The issues as an OperationOutcome; an `information` "all OK" issue when empty.
    pub fn to_operation_outcome(&self) -> OperationOutcome {
        if self.issues.is_empty() {
            return OperationOutcome::of(fhir_model::Issue::information(
                IssueType::Informational,
                "All OK",
            ));
        }
        let mut oo = OperationOutcome::new();
        oo.issue = self.issues.iter().map(Issue::to_model).collect();
        oo
    }
}
