//! The tamper-evident audit trail, and one-time values (nonces) for authentication.
//!
//! AuditEvents are appended to `audit_log`, each row with a SHA-256 hash over its
//! position, its JSON and the previous row's hash: changing, inserting or removing an
//! event breaks the chain, which [`crate::Store::verify_audit`] reports. A row holds
//! the events appended together (one event as an object, several as an array: the
//! reads the audit writer collected, or the versions one transaction wrote), so that
//! auditing every read costs one row per batch, not per read. The searchable
//! `AuditEvent` resources are projected from the log in batches (when the audit writer
//! is idle, and before anyone reads or searches AuditEvents); event `k` of a row with
//! several gets the id `<row id>-<k>`.
//!
//! Events that record a change are written in the same transaction as the change: the
//! server states who is writing with [`with_context`] around the blocking store call,
//! and [`crate::Store::transaction`] asks the [`AuditHook`] for the events of the
//! writes it made before committing. The context travels in a thread-local because the
//! store's write methods all run on the calling (blocking) thread, and passing it
//! through every one of them would double the API for one cross-cutting concern.

use std::cell::RefCell;
use std::sync::Arc;

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::backend::{BackendKind, Tx};
use crate::error::{StoreError, StoreResult};
use crate::sql::{Bind, Sql};

/// Who is writing, for the audit trail and `meta.source`.
#[derive(Debug, Clone, Default)]
pub struct AuditContext {
    /// Written into `meta.source` of every version this request writes.
    pub source: Option<String>,
    /// Anything the hook needs to describe the request (client, address, request line).
    pub details: Arc<Value>,
}

/// One version written by a transaction.
#[derive(Debug, Clone)]
pub struct WriteRecord {
    pub res_type: String,
    pub id: String,
    pub version: i64,
    /// `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
}

/// Builds the AuditEvents for the writes of one transaction.
/// Events are JSON text, stored as given (and hashed as stored).
pub type AuditHook = dyn Fn(&AuditContext, &[WriteRecord]) -> Vec<String> + Send + Sync;

/// Turns a logged event into its AuditEvent resource when the log is projected (the
/// log may keep a compact form).
pub type AuditExpander = dyn Fn(Value) -> StoreResult<Value> + Send + Sync;

thread_local! {
    static CONTEXT: RefCell<Option<AuditContext>> = const { RefCell::new(None) };
}

/// Runs `f` (store calls on this thread) on behalf of `ctx`.
pub fn with_context<T>(ctx: Option<AuditContext>, f: impl FnOnce() -> T) -> T {
    /// Restores the previous context, also when `f` panics (pool threads are reused).
    struct Restore(Option<AuditContext>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CONTEXT.with(|c| *c.borrow_mut() = previous);
        }
    }
    let _restore = Restore(CONTEXT.with(|c| c.replace(ctx)));
    f()
}

/// The context set by [`with_context`] on this thread, if any.
pub fn current_context() -> Option<AuditContext> {
    CONTEXT.with(|c| c.borrow().clone())
}

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of one chain row.
fn chain_hash(seq: i64, prev_hash: &str, content: &str) -> String {
    let mut h = Sha256::new();
    h.update(seq.to_string().as_bytes());
    h.update(b"|");
    h.update(prev_hash.as_bytes());
    h.update(b"|");
    h.update(content.as_bytes());
    hex::encode(h.finalize())
}

#[derive(QueryableByName)]
struct HeadRow {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    hash: String,
}

/// Appends AuditEvents to the log as one row, hashed with the previous row's hash.
/// Serialised: the SQLite writer, or an advisory lock on PostgreSQL held to the end of
/// the transaction. Cheap (one row, no search index): the searchable AuditEvent
/// resources are projected later ([`pending`]).
pub(crate) fn chain(tx: &mut Tx<'_>, events: &[String]) -> StoreResult<()> {
    let content = match events {
        [] => return Ok(()),
        [one] => one.clone(),
        many => format!("[{}]", many.join(",")),
    };
    if tx.kind == BackendKind::Postgres {
        Sql::new(&format!(
            "SELECT pg_advisory_xact_lock(hashtext({} || 'fhir-audit-chain')) IS NULL AS locked",
            crate::tenants::LOCK_PREFIX
        ))
        .execute(tx.conn)?;
    }
    let head = Sql::new("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .load::<HeadRow>(tx.conn)?;
    let (seq, prev) = match head.into_iter().next() {
        Some(h) => (h.seq + 1, h.hash),
        None => (1, GENESIS.to_string()),
    };
    let hash = chain_hash(seq, &prev, &content);
    let mut insert = Sql::new(
        "INSERT INTO audit_log (seq, res_id, recorded_ms, content, prev_hash, hash) VALUES (",
    );
    insert
        .bind(Bind::BigInt(seq))
        .push(", ")
        .bind(Bind::Text(crate::new_id()))
        .push(", ")
        .bind(Bind::BigInt(crate::time::now_millis()))
        .push(", ")
        .bind(Bind::Text(content))
        .push(", ")
        .bind(Bind::Text(prev))
        .push(", ")
        .bind(Bind::Text(hash))
        .push(")");
    insert.execute(tx.conn)?;
    Ok(())
}

#[derive(QueryableByName)]
struct LogRow {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    res_id: String,
    #[diesel(sql_type = Text)]
    content: String,
}

/// The events of the next log rows not yet projected into AuditEvent resources, with
/// their ids and the row they are in: whole rows, about `max` events (at least one row).
pub(crate) fn pending(tx: &mut Tx<'_>, max: i64) -> StoreResult<Vec<(i64, String, Value)>> {
    // The projection row is locked: one projection at a time.
    let lock = format!(
        "SELECT last_seq AS n FROM audit_projection WHERE id = 1{}",
        tx.for_update()
    );
    let last = Sql::new(&lock)
        .load::<crate::sql::CountRow>(tx.conn)?
        .first()
        .map_or(0, |r| r.n);
    let mut q = Sql::new("SELECT seq, res_id, content FROM audit_log WHERE seq > ");
    q.bind(Bind::BigInt(last))
        .push(" ORDER BY seq LIMIT ")
        .bind(Bind::BigInt(max));
    let rows = q.load::<LogRow>(tx.conn)?;
    let mut out = Vec::new();
    for r in rows {
        if !out.is_empty() && out.len() as i64 >= max {
            break;
        }
        let v = fhir_model::json::parse(r.content.as_bytes())
            .map_err(|e| StoreError::Corrupt(format!("audit log row {}: {e}", r.seq)))?;
        match v {
            Value::Array(events) => out.extend(
                events
                    .into_iter()
                    .enumerate()
                    .map(|(k, e)| (r.seq, format!("{}-{k}", r.res_id), e)),
            ),
            event => out.push((r.seq, r.res_id, event)),
        }
    }
    Ok(out)
}

/// Records that the log is projected up to `seq`.
pub(crate) fn projected(tx: &mut Tx<'_>, seq: i64) -> StoreResult<()> {
    let mut q = Sql::new("UPDATE audit_projection SET last_seq = ");
    q.bind(Bind::BigInt(seq)).push(" WHERE id = 1");
    q.execute(tx.conn)?;
    Ok(())
}

/// What [`crate::Store::verify_audit`] found.
#[derive(Debug, Clone, Default)]
pub struct AuditReport {
    /// Log rows checked.
    pub checked: u64,
    /// The hash of the last row: keep it outside the database to detect removal of
    /// the newest events too.
    pub head: Option<String>,
    /// Each break of the chain, in order.
    pub problems: Vec<String>,
}

#[derive(QueryableByName)]
struct ChainRow {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    prev_hash: String,
    #[diesel(sql_type = Text)]
    hash: String,
    #[diesel(sql_type = Text)]
    content: String,
}

const BATCH: i64 = 2000;

/// Walks the whole log in order, recomputing every hash.
pub(crate) fn verify(tx: &mut Tx<'_>) -> StoreResult<AuditReport> {
    let mut report = AuditReport::default();
    let mut expected_seq = 1;
    let mut prev = GENESIS.to_string();
    loop {
        let mut q = Sql::new("SELECT seq, prev_hash, hash, content FROM audit_log WHERE seq >= ");
        q.bind(Bind::BigInt(expected_seq))
            .push(" ORDER BY seq LIMIT ")
            .bind(Bind::BigInt(BATCH));
        let rows = q.load::<ChainRow>(tx.conn)?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            check_row(&mut report, &row, expected_seq, &prev);
            expected_seq = row.seq + 1;
            prev = row.hash;
            report.checked += 1;
        }
    }
    if report.checked > 0 {
        report.head = Some(prev);
    }
    check_unlogged(tx, &mut report)?;
    Ok(report)
}

fn check_row(report: &mut AuditReport, row: &ChainRow, expected_seq: i64, prev: &str) {
    let seq = row.seq;
    if seq != expected_seq {
        report.problems.push(format!(
            "events {expected_seq}..{} were removed from the log",
            seq - 1
        ));
    }
    if row.prev_hash != prev {
        report.problems.push(format!(
            "event {seq} does not follow the event before it (previous hash differs)"
        ));
    }
    if chain_hash(seq, &row.prev_hash, &row.content) != row.hash {
        report
            .problems
            .push(format!("event {seq} was altered (its hash does not match)"));
    }
}

/// AuditEvent resources that no log row stands for were added behind the server's back.
fn check_unlogged(tx: &mut Tx<'_>, report: &mut AuditReport) -> StoreResult<()> {
    let extra = Sql::new(
        "SELECT COUNT(*) AS n FROM resource_versions v WHERE v.res_type = 'AuditEvent' \
         AND NOT EXISTS (SELECT 1 FROM audit_log l WHERE l.res_id = v.res_id) \
         AND NOT EXISTS (SELECT 1 FROM audit_log l WHERE l.res_id = substr(v.res_id, 1, 36) \
                         AND substr(l.content, 1, 1) = '[')",
    )
    .load::<crate::sql::CountRow>(tx.conn)?;
    let n = extra.first().map_or(0, |r| r.n);
    if n > 0 {
        report.problems.push(format!(
            "{n} AuditEvent resource version(s) are not in the audit log"
        ));
    }
    Ok(())
}

/// Records `nonce` until `expires_ms`; false if it was seen before (a replay).
pub(crate) fn claim_nonce(tx: &mut Tx<'_>, nonce: &str, expires_ms: i64) -> StoreResult<bool> {
    let mut purge = Sql::new("DELETE FROM auth_nonces WHERE expires_ms < ");
    purge.bind(Bind::BigInt(crate::time::now_millis()));
    purge.execute(tx.conn)?;
    let mut insert = Sql::new("INSERT INTO auth_nonces (nonce, expires_ms) VALUES (");
    insert
        .bind(Bind::Text(nonce.to_string()))
        .push(", ")
        .bind(Bind::BigInt(expires_ms))
        .push(") ON CONFLICT (nonce) DO NOTHING");
    Ok(insert.execute(tx.conn)? == 1)
}

/// Sets `meta.source` of a resource about to be written.
pub(crate) fn set_source(resource: &mut Value, source: &str) -> StoreResult<()> {
    let obj = resource
        .as_object_mut()
        .ok_or_else(|| StoreError::Invalid {
            message: "a resource must be a JSON object".into(),
            expression: None,
        })?;
    let meta = obj
        .entry("meta")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(m) = meta.as_object_mut() {
        m.insert("source".into(), Value::String(source.to_string()));
    }
    Ok(())
}

/// The audit trail's operations on the store.
impl crate::Store {
    /// Appends AuditEvents (of reads, searches, refusals) to the audit trail in one
    /// transaction.
    pub fn append_audit(&self, events: &[String]) -> StoreResult<()> {
        self.transaction(|ops| ops.append_audit(events))
    }

    /// Projects up to `max` logged AuditEvents into searchable AuditEvent resources;
    /// returns how many (0: up to date).
    pub fn project_audit(&self, max: i64) -> StoreResult<usize> {
        self.transaction(|ops| {
            let rows = pending(ops.tx, max)?;
            let Some(last) = rows.last().map(|r| r.0) else {
                return Ok(0);
            };
            let n = rows.len();
            for (_, id, event) in rows {
                let event = match &self.audit_expander {
                    Some(expand) => expand(event)?,
                    None => event,
                };
                let current = crate::writes::lock_current(ops.tx, "AuditEvent", &id)?;
                ops.write("AuditEvent", &id, &current, Some(event), "POST")?;
            }
            projected(ops.tx, last)?;
            Ok(n)
        })
    }

    /// Projects every logged AuditEvent (before AuditEvents are read or searched).
    pub fn project_audit_all(&self) -> StoreResult<()> {
        while self.project_audit(2000)? > 0 {}
        Ok(())
    }

    /// Recomputes the audit chain (see [`audit`]).
    pub fn verify_audit(&self) -> StoreResult<AuditReport> {
        self.db.read(verify)
    }

    /// Records a one-time value (a JWT `jti`) until `expires_ms`; false for a replay.
    pub fn claim_nonce(&self, nonce: &str, expires_ms: i64) -> StoreResult<bool> {
        self.db.write(|tx| claim_nonce(tx, nonce, expires_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::CountRow;
    use crate::{NoIndex, PoolOptions, Store};

    fn count(store: &Store, sql: &str) -> i64 {
        store
            .db
            .read(|tx| Sql::new(sql).load::<CountRow>(tx.conn))
            .expect("count")
            .first()
            .map_or(0, |r| r.n)
    }

    #[test]
    fn rows_of_several_events_project_into_one_resource_each_and_verify() {
        let dir = std::env::temp_dir().join(format!("fhir-store-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let url = format!("sqlite://{}/db", dir.display());
        let store = Store::open(&url, &PoolOptions::default(), Arc::new(NoIndex)).expect("open");
        let ev =
            |n: u32| format!(r#"{{"resourceType":"AuditEvent","action":"R","outcome":"{n}"}}"#);
        store.append_audit(&[ev(0)]).expect("one");
        store.append_audit(&[ev(1), ev(4), ev(8)]).expect("three");
        store.project_audit_all().expect("project");
        let report = store.verify_audit().expect("verify");
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(report.checked, 2, "two rows");
        let events = "SELECT COUNT(*) AS n FROM resources WHERE res_type = 'AuditEvent'";
        assert_eq!(count(&store, events), 4);
        let suffixed = "SELECT COUNT(*) AS n FROM resources WHERE res_type = 'AuditEvent' \
                        AND (res_id LIKE '%-0' OR res_id LIKE '%-1' OR res_id LIKE '%-2')";
        assert_eq!(count(&store, suffixed), 3);
        // An AuditEvent stored beside the log, not from it, is reported.
        store
            .update(
                "AuditEvent",
                "forged-0",
                serde_json::json!({"resourceType": "AuditEvent"}),
                Default::default(),
            )
            .expect("forge");
        let report = store.verify_audit().expect("verify");
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.contains("not in the audit log")),
            "{:?}",
            report.problems
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
