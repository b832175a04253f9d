//! Reading and checking one input: lines are read, parsed and validated on their own
//! thread and handed over in batches, so that checking the next batch overlaps writing
//! this one. A line that cannot be loaded becomes an OperationOutcome naming the line;
//! the others go on to be written.

use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use fhir_model::{Definitions, Issue, IssueType, OperationOutcome};
use fhir_validation::{ValidationOptions, Validator};
use serde_json::Value;

use super::ImportError;
use crate::validation::Strictness;

/// The longest line read (a resource with a large attachment fits).
const MAX_LINE: u64 = 64 * 1024 * 1024;

/// One batch of checked lines.
pub(super) struct Checked {
    /// The number of the batch's last line (1-based): the resume point once written.
    pub last_line: u64,
    /// The resources to write, in line order.
    pub resources: Vec<Value>,
    /// One OperationOutcome (as NDJSON text) per refused line.
    pub errors: Vec<String>,
}

/// How the lines of one input are judged.
pub(super) struct Checker<'a> {
    pub defs: &'static Definitions,
    /// `None`: lines are not validated (`--validation off`, `handling=lenient`).
    pub validator: Option<Arc<Validator>>,
    /// Which validation issues refuse a line.
    pub strictness: Strictness,
    pub res_type: &'a str,
    pub url: &'a str,
    /// AuditEvents are the audit trail's own: not loaded while auditing is on.
    pub audit_on: bool,
}

impl Checker<'_> {
    /// The resource of line `n`, or why it cannot be loaded.
    pub fn check(&self, line: &[u8]) -> Result<Value, OperationOutcome> {
        let refuse = |code: IssueType, text: String| OperationOutcome::of(Issue::error(code, text));
        let value = fhir_model::json::parse(line)
            .map_err(|e| refuse(IssueType::Structure, format!("not a JSON resource: {e}")))?;
        let rt = value.get("resourceType").and_then(Value::as_str);
        if rt != Some(self.res_type) {
            return Err(refuse(
                IssueType::Invalid,
                format!(
                    "resourceType is {}, but this input holds {} resources",
                    rt.map_or("missing".into(), |t| format!("'{t}'")),
                    self.res_type
                ),
            ));
        }
        if self.audit_on && self.res_type == "AuditEvent" {
            return Err(refuse(
                IssueType::Forbidden,
                "AuditEvents are written by the server's audit trail and cannot be imported".into(),
            ));
        }
        match value.get("id") {
            None => {}
            Some(Value::String(id)) if crate::state::valid_id(id) => {}
            Some(_) => {
                return Err(OperationOutcome::of(
                    Issue::error(
                        IssueType::Invalid,
                        "id must be 1-64 characters of A-Z, a-z, 0-9, '-' and '.'",
                    )
                    .at(format!("{}.id", self.res_type)),
                ))
            }
        }
        let issues = self.defs.structure_issues(&value);
        if !issues.is_empty() {
            let mut oo = OperationOutcome::new();
            for i in issues {
                oo = oo.with(Issue::error(IssueType::Structure, i.to_string()).at(i.path));
            }
            return Err(oo);
        }
        if let Some(v) = &self.validator {
            let report = v.validate(&value, &ValidationOptions::default());
            if crate::validation::rejects(&report, self.strictness) {
                return Err(report.to_operation_outcome());
            }
        }
        Ok(value)
    }

    /// The error line for a refused line: its outcome with a first issue naming where.
    fn error_line(&self, n: u64, oo: OperationOutcome, id: Option<&str>) -> String {
        let what = id.map_or(String::new(), |id| format!(" ({}/{id})", self.res_type));
        let mut first = Issue::error(
            IssueType::Processing,
            format!("line {n} of {}{what} was not imported", self.url),
        );
        first.diagnostics = Some(format!("line {n}"));
        let mut all = OperationOutcome::of(first);
        all.issue.extend(oo.issue);
        fhir_model::json::to_string(&all.to_value())
    }
}

/// Reads `reader` from after line `skip`, checks each line and sends batches of
/// `batch` lines to `tx` until the end, an error, or `stop`.
pub(super) fn read_batches(
    mut reader: Box<dyn BufRead + Send>,
    skip: u64,
    batch: usize,
    checker: &Checker<'_>,
    tx: &SyncSender<Result<Checked, ImportError>>,
    stop: &AtomicBool,
) {
    let mut n = 0u64;
    let mut current = Checked {
        last_line: skip,
        resources: Vec::new(),
        errors: Vec::new(),
    };
    let mut buf = Vec::new();
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        buf.clear();
        let read = (&mut reader).take(MAX_LINE + 1).read_until(b'\n', &mut buf);
        match read {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let _ = tx.send(Err(ImportError::Source {
                    url: checker.url.to_string(),
                    why: format!("reading stopped after line {n}: {e}"),
                }));
                return;
            }
        }
        n += 1;
        if n <= skip {
            continue;
        }
        check_into(&mut current, checker, n, &buf, &mut reader);
        current.last_line = n;
        if current.resources.len() + current.errors.len() >= batch.max(1) {
            let next = Checked {
                last_line: n,
                resources: Vec::new(),
                errors: Vec::new(),
            };
            if tx.send(Ok(std::mem::replace(&mut current, next))).is_err() {
                return;
            }
        }
    }
    if current.last_line > skip || n == 0 {
        let _ = tx.send(Ok(current));
    }
}

/// Checks line `n` into the batch; blank lines are skipped.
fn check_into(
    batch: &mut Checked,
    checker: &Checker<'_>,
    n: u64,
    line: &[u8],
    reader: &mut Box<dyn BufRead + Send>,
) {
    if line.len() as u64 > MAX_LINE && !line.ends_with(b"\n") {
        // Skip the rest of the over-long line.
        let _ = reader.skip_until(b'\n');
        let oo = OperationOutcome::of(Issue::error(
            IssueType::TooLong,
            format!("the line is longer than {MAX_LINE} bytes"),
        ));
        batch.errors.push(checker.error_line(n, oo, None));
        return;
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    match checker.check(line) {
        Ok(v) => batch.resources.push(v),
        Err(oo) => {
            let id = fhir_model::json::parse(line)
                .ok()
                .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string));
            batch.errors.push(checker.error_line(n, oo, id.as_deref()));
        }
    }
}
