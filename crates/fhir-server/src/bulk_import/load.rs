//! Reading and checking a job's inputs: their lines are read, parsed and validated on a
//! thread of their own, one input after another, and handed over in batches, so that
//! checking the next batch — of this input or of the next — overlaps writing this one. A
//! line that cannot be loaded becomes an OperationOutcome naming the line; the others go
//! on to be written.

use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fhir_model::{Definitions, Issue, IssueType, OperationOutcome};
use fhir_validation::{ValidationOptions, Validator};
use serde_json::Value;

use super::{ImportError, ImportInput, Sources};
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

/// What the checking thread hands over: a batch of input `input`, or why that input
/// could not be read (to the end).
pub(super) struct FromInput {
    pub input: usize,
    pub batch: Result<Checked, ImportError>,
}

/// How every input of a job is judged, except for its type and URL.
pub(super) struct Judge {
    pub defs: &'static Definitions,
    pub validator: Option<Arc<Validator>>,
    pub strictness: Strictness,
    pub audit_on: bool,
}

/// Checks `inputs` from input `from`, line `skip` on, one after another, sending their
/// batches of `batch` lines through `send` (false: the writer has stopped) until the
/// end, a job-ending error, or `stop`. An input that cannot be read is reported and the
/// next one checked.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_inputs(
    inputs: &[ImportInput],
    (from, skip): (usize, u64),
    sources: &Sources,
    judge: &Judge,
    batch: usize,
    send: &dyn Fn(FromInput) -> bool,
    stop: &AtomicBool,
) {
    for (input, source) in inputs.iter().enumerate().skip(from) {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let checker = Checker {
            defs: judge.defs,
            validator: judge.validator.clone(),
            strictness: judge.strictness,
            res_type: &source.res_type,
            url: &source.url,
            audit_on: judge.audit_on,
        };
        let send_batch = |b: Result<Checked, ImportError>| send(FromInput { input, batch: b });
        match sources.open(&source.url) {
            Ok(reader) => {
                let skip = if input == from { skip } else { 0 };
                if !read_batches(reader, skip, batch, &checker, &send_batch, stop) {
                    return;
                }
            }
            Err(e @ ImportError::Source { .. }) => {
                if !send_batch(Err(e)) {
                    return;
                }
            }
            Err(e) => {
                send_batch(Err(e));
                return;
            }
        }
    }
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
/// `batch` lines until the end, an error reading it, or `stop`; false when the writer
/// has stopped (nothing more should be checked).
fn read_batches(
    mut reader: Box<dyn BufRead + Send>,
    skip: u64,
    batch: usize,
    checker: &Checker<'_>,
    send: &dyn Fn(Result<Checked, ImportError>) -> bool,
    stop: &AtomicBool,
) -> bool {
    let mut n = 0u64;
    let mut current = Checked {
        last_line: skip,
        resources: Vec::new(),
        errors: Vec::new(),
    };
    let mut buf = Vec::new();
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        buf.clear();
        let read = (&mut reader).take(MAX_LINE + 1).read_until(b'\n', &mut buf);
        match read {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                return send(Err(ImportError::Source {
                    url: checker.url.to_string(),
                    why: format!("reading stopped after line {n}: {e}"),
                }));
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
            if !send(Ok(std::mem::replace(&mut current, next))) {
                return false;
            }
        }
    }
    if current.last_line > skip || n == 0 {
        return send(Ok(current));
    }
    true
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
