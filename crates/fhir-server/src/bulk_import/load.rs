//! Reading and checking a job's inputs: their lines are read, parsed and validated on a
//! thread of their own, one input after another, and handed over in batches, so that
//! checking the next batch — of this input or of the next — overlaps writing this one. A
//! line that cannot be loaded becomes an OperationOutcome naming the line; the others go
//! on to be written.

use std::cell::Cell;
use std::io::{BufRead, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use fhir_model::{Definitions, Issue, IssueType, OperationOutcome};
use fhir_store::Store;
use fhir_terminology::cache::Cache;
use fhir_validation::{TerminologySource, ValidationOptions, Validator};
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
    /// The code systems and value sets written through the API, which validation checks
    /// codes against as on any write (the store, and the gathered sets kept for reuse).
    pub stored: (Arc<Store>, Arc<Cache>),
    /// See `ServeArgs::terminology_rows_from`.
    pub rows_from: u64,
}

impl Judge {
    /// The stored terminology as it stands now: a view per batch, so a batch sees what
    /// the batches before it wrote.
    fn terminology(&self) -> Option<Arc<dyn TerminologySource>> {
        self.validator.as_ref()?;
        let (store, cache) = &self.stored;
        Some(Arc::new(crate::stored_terminology::ForValidation::new(
            store.clone(),
            cache.clone(),
            self.defs.terminology(),
            self.rows_from,
        )))
    }
}

/// Resource types that are terminology: lines of later inputs are validated against
/// them, so those inputs are checked once these are written.
const TERMINOLOGY: [&str; 3] = ["CodeSystem", "ValueSet", "ConceptMap"];

/// How far the writer is: the messages it has handled (written or recorded), and
/// whether it has stopped.
pub(super) struct Written<'a> {
    pub handled: &'a AtomicU64,
    pub stop: &'a AtomicBool,
}

/// Checks `inputs` from input `from`, line `skip` on, one after another, sending their
/// batches of `batch` lines through `send` (false: the writer has stopped) until the
/// end, a job-ending error, or `stop`. An input that cannot be read is reported and the
/// next one checked. An input after a terminology input waits until that one is
/// written, so that its codes are checked against it.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_inputs(
    inputs: &[ImportInput],
    (from, skip): (usize, u64),
    sources: &Sources,
    judge: &Judge,
    batch: usize,
    send: &dyn Fn(FromInput) -> bool,
    written: &Written<'_>,
) {
    let stop = written.stop;
    let sent = Cell::new(0u64);
    let mut terminology_sent = false;
    for (input, source) in inputs.iter().enumerate().skip(from) {
        if terminology_sent && judge.validator.is_some() {
            wait_until_written(written, sent.get());
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        terminology_sent |= TERMINOLOGY.contains(&source.res_type.as_str());
        let checker = Checker {
            defs: judge.defs,
            validator: judge.validator.clone(),
            strictness: judge.strictness,
            res_type: &source.res_type,
            url: &source.url,
            audit_on: judge.audit_on,
        };
        let send_batch = |b: Result<Checked, ImportError>| {
            sent.set(sent.get() + 1);
            send(FromInput { input, batch: b })
        };
        match sources.open(&source.url) {
            Ok(reader) => {
                let skip = if input == from { skip } else { 0 };
                let lines = Lines { skip, batch };
                if !read_batches(reader, lines, judge, &checker, &send_batch, stop) {
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

/// Waits until the writer has handled the first `sent` messages, or has stopped.
fn wait_until_written(written: &Written<'_>, sent: u64) {
    while written.handled.load(Ordering::Acquire) < sent && !written.stop.load(Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Which lines of an input are read: those after `skip`, in batches of `batch`.
struct Lines {
    skip: u64,
    batch: usize,
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
    /// The resource of line `n`, or why it cannot be loaded; codes are checked against
    /// `terminology` besides the packages'.
    pub fn check(
        &self,
        line: &[u8],
        terminology: &Option<Arc<dyn TerminologySource>>,
    ) -> Result<Value, OperationOutcome> {
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
            Some(Value::String(id)) if crate::ids::valid_id(id) => {}
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
            let options = ValidationOptions {
                terminology: terminology.clone(),
                ..Default::default()
            };
            let report = v.validate(&value, &options);
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
    Lines { skip, batch }: Lines,
    judge: &Judge,
    checker: &Checker<'_>,
    send: &dyn Fn(Result<Checked, ImportError>) -> bool,
    stop: &AtomicBool,
) -> bool {
    let mut n = 0u64;
    let mut terminology = judge.terminology();
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
        check_into(&mut current, (checker, &terminology), n, &buf, &mut reader);
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
            terminology = judge.terminology();
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
    (checker, terminology): (&Checker<'_>, &Option<Arc<dyn TerminologySource>>),
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
    match checker.check(line, terminology) {
        Ok(v) => batch.resources.push(v),
        Err(oo) => {
            let id = fhir_model::json::parse(line)
                .ok()
                .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string));
            batch.errors.push(checker.error_line(n, oo, id.as_deref()));
        }
    }
}
