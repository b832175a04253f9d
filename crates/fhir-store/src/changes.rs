//! The change feed that subscriptions read. Every version a transaction writes is also
//! a row of `change_outbox`, inserted in that transaction (so a change is announced
//! exactly when it commits, and never for one rolled back). The subscription dispatcher
//! takes rows out in its own transaction ([`TxOps::take_changes`]; on PostgreSQL with
//! `SKIP LOCKED`, so nodes sharing the database never take the same row) and turns
//! those that match a subscription into rows of `subscription_events`, numbered per
//! subscription ([`TxOps::add_events`]), which the deliverer sends in order and marks
//! delivered ([`Store::events_delivered`]; kept for `$events` until
//! [`Store::prune_events`]); a node claims events before it sends them
//! ([`Store::claim_due`]), so nodes sharing the database send each event once (twice
//! only if the claiming node dies before its claim ends). Every statement here takes
//! one of a few fixed texts (lists cut into runs of fixed lengths, or padded), so each
//! connection keeps it prepared: with a delivery per write, parsing them had cost the
//! subscription threads more than running them.

use std::collections::{HashMap, HashSet};

use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::QueryableByName;

use crate::audit::WriteRecord;
use crate::backend::{BackendKind, Tx};
use crate::error::{StoreError, StoreResult};
use crate::sql::{in_fixed_runs, padded, Bind, CountRow, Sql};
use crate::{Store, TxOps};

/// One committed change.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Change {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub res_type: String,
    #[diesel(sql_type = Text)]
    pub res_id: String,
    #[diesel(sql_type = BigInt)]
    pub version: i64,
    /// `POST`, `PUT`, `PATCH` or `DELETE`.
    #[diesel(sql_type = Text)]
    pub method: String,
    /// When it was written (ms since the epoch).
    #[diesel(sql_type = BigInt)]
    pub at: i64,
}

/// A notification to deliver: a change that matched a subscription.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Event {
    #[diesel(sql_type = Text)]
    pub subscription_id: String,
    /// 1, 2, … per subscription (the backport IG's `eventNumber`).
    #[diesel(sql_type = BigInt)]
    pub event_number: i64,
    #[diesel(sql_type = Text)]
    pub res_type: String,
    #[diesel(sql_type = Text)]
    pub res_id: String,
    #[diesel(sql_type = BigInt)]
    pub version: i64,
    #[diesel(sql_type = Text)]
    pub method: String,
    #[diesel(sql_type = BigInt)]
    pub at: i64,
    /// Failed deliveries so far.
    #[diesel(sql_type = BigInt)]
    pub attempts: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    /// `None` while it waits; when it was sent (ms); 0 if it was never to be sent.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub delivered: Option<i64>,
}

/// Inserts the outbox rows of a transaction's writes.
pub(crate) fn record(tx: &mut Tx<'_>, writes: &[WriteRecord], at: i64) -> StoreResult<()> {
    for chunk in in_fixed_runs(writes) {
        let mut q =
            Sql::new("INSERT INTO change_outbox (res_type, res_id, version, method, at) VALUES ");
        q.prepared();
        for (i, w) in chunk.iter().enumerate() {
            q.push(if i > 0 { ", (" } else { "(" });
            q.bind(Bind::Text(w.res_type.clone())).push(", ");
            q.bind(Bind::Text(w.id.clone())).push(", ");
            q.bind(Bind::BigInt(w.version)).push(", ");
            q.bind(Bind::Text(w.method.clone())).push(", ");
            q.bind(Bind::BigInt(at)).push(")");
        }
        q.execute(tx.conn)?;
    }
    Ok(())
}

#[derive(QueryableByName)]
struct ClaimRow {
    #[diesel(sql_type = Text)]
    s: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Appends ` FROM (VALUES (…, …), …) AS v WHERE subscription_id = v.column1 AND
/// event_number = v.column2` to an `UPDATE subscription_events SET …`, for each event (a
/// list from [`padded`]): a join on the primary key, on both databases. Not
/// `(subscription_id = … AND event_number = …) OR …`, which PostgreSQL plans as one
/// bitmap index scan per pair and re-checks every pair on every row (2.7 ms planning
/// and 2.2 ms running for 100 events, against 0.4 and 0.9 ms for the join); nor
/// `(subscription_id, event_number) IN (VALUES …)`, which SQLite runs as a scan of the
/// whole table.
fn from_each(q: &mut Sql, events: &[(String, i64)]) {
    q.push(" FROM (VALUES ");
    for (i, (sub, number)) in events.iter().enumerate() {
        q.push(if i > 0 { ", (" } else { "(" });
        q.bind(Bind::Text(sub.clone()))
            .push(", ")
            .bind(Bind::BigInt(*number))
            .push(")");
    }
    q.push(") AS v WHERE subscription_id = v.column1 AND event_number = v.column2");
}

const EVENT_COLUMNS: &str = "subscription_id, event_number, res_type, res_id, version, method, \
     at, attempts, last_error, delivered";

impl TxOps<'_, '_> {
    /// Takes up to `limit` changes out of the outbox, oldest first: they are gone when
    /// this transaction commits (and back if it rolls back).
    pub fn take_changes(&mut self, limit: usize) -> StoreResult<Vec<Change>> {
        let mut q = Sql::new(
            "SELECT id, res_type, res_id, version, method, at FROM change_outbox ORDER BY id LIMIT ",
        );
        q.prepared().bind(Bind::BigInt(limit.max(1) as i64));
        if self.tx.kind == BackendKind::Postgres {
            q.push(" FOR UPDATE SKIP LOCKED");
        }
        let changes: Vec<Change> = q.load(self.tx.conn)?;
        let ids: Vec<i64> = changes.iter().map(|c| c.id).collect();
        for list in padded(&ids) {
            Sql::new("DELETE FROM change_outbox WHERE id")
                .prepared()
                .in_ints(&list)
                .execute(self.tx.conn)?;
        }
        Ok(changes)
    }

    /// Records events — each a change that matched a subscription, due for delivery at
    /// `due` (ms) or, with `due` `None`, counted and kept for `$events` but never sent
    /// (the subscription is in error) — numbered per subscription in the order given,
    /// after that subscription's events so far. A few statements for the whole batch:
    /// counter upserts and event inserts of up to 256 rows each.
    ///
    /// With `claim`, an event that is due and would be its subscription's first waiting
    /// one is recorded already claimed by `claim.node` (as [`Store::claim_due`] would
    /// claim it), and returned: the caller hands it to its deliverer in memory, which
    /// saves a claiming statement per event and a poll. Events behind another waiting
    /// one are left to `claim_due`, which keeps each subscription's events in order.
    /// The counters are upserted first: on PostgreSQL that waits for another node's
    /// batch with events of the same subscriptions to commit, so its events are seen.
    pub fn add_events(
        &mut self,
        events: &[NewEvent<'_>],
        claim: Option<&Claim<'_>>,
    ) -> StoreResult<Vec<Event>> {
        let mut order: Vec<&str> = Vec::new();
        let mut counts: HashMap<&str, i64> = HashMap::new();
        for e in events {
            let n = counts.entry(e.subscription).or_insert(0);
            if *n == 0 {
                order.push(e.subscription);
            }
            *n += 1;
        }
        let mut next = self.count_events(&order, &counts)?;
        let mut first_free: HashSet<&str> = match claim {
            Some(_) => {
                let waiting = self.waiting_among(&order)?;
                order
                    .iter()
                    .copied()
                    .filter(|s| !waiting.contains(*s))
                    .collect()
            }
            None => HashSet::new(),
        };
        let mut rows = Vec::with_capacity(events.len());
        let mut claimed = Vec::new();
        for e in events {
            let number = next.get_mut(e.subscription).map_or(0, |n| {
                *n += 1;
                *n - 1
            });
            let c = e.change;
            let event = Event {
                subscription_id: e.subscription.to_string(),
                event_number: number,
                res_type: c.res_type.clone(),
                res_id: c.res_id.clone(),
                version: c.version,
                method: c.method.clone(),
                at: c.at,
                attempts: 0,
                last_error: None,
                delivered: e.due.is_none().then_some(0),
            };
            // Only the subscription's first event of the batch, and only if it is due:
            // a later one must not overtake it.
            let first = first_free.remove(e.subscription);
            let claim = claim.filter(|k| first && e.due.is_some_and(|d| d <= k.now));
            if claim.is_some() {
                claimed.push(event.clone());
            }
            rows.push((event, e.due.unwrap_or(0), claim));
        }
        self.insert_events(&rows)?;
        Ok(claimed)
    }

    /// Adds each subscription's new events to its counter; the number each one's first
    /// new event gets.
    fn count_events(
        &mut self,
        order: &[&str],
        counts: &HashMap<&str, i64>,
    ) -> StoreResult<HashMap<String, i64>> {
        let mut next = HashMap::new();
        for chunk in in_fixed_runs(order) {
            let mut q = Sql::new(
                "INSERT INTO subscription_counters (subscription_id, events_since_start) VALUES ",
            );
            q.prepared();
            for (i, sub) in chunk.iter().enumerate() {
                q.push(if i > 0 { ", (" } else { "(" });
                q.bind(Bind::Text(sub.to_string())).push(", ");
                q.bind(Bind::BigInt(counts[sub])).push(")");
            }
            q.push(
                " ON CONFLICT (subscription_id) DO UPDATE SET events_since_start = \
                 subscription_counters.events_since_start + excluded.events_since_start \
                 RETURNING subscription_id AS s, events_since_start AS n",
            );
            for row in q.load::<ClaimRow>(self.tx.conn)? {
                let first = row.n - counts.get(row.s.as_str()).copied().unwrap_or(0) + 1;
                next.insert(row.s, first);
            }
        }
        Ok(next)
    }

    /// The subscriptions among `subs` with an event waiting (not yet delivered).
    fn waiting_among(&mut self, subs: &[&str]) -> StoreResult<HashSet<String>> {
        let subs: Vec<String> = subs.iter().map(|s| s.to_string()).collect();
        let mut waiting = HashSet::new();
        for list in padded(&subs) {
            let mut q = Sql::new(
                "SELECT DISTINCT subscription_id AS s, CAST(0 AS BIGINT) AS n FROM subscription_events \
                 WHERE delivered IS NULL AND subscription_id",
            );
            q.prepared().in_list(&list);
            waiting.extend(q.load::<ClaimRow>(self.tx.conn)?.into_iter().map(|r| r.s));
        }
        Ok(waiting)
    }

    /// Inserts events, each with its next attempt and the claim it is recorded with.
    fn insert_events(&mut self, rows: &[(Event, i64, Option<&Claim<'_>>)]) -> StoreResult<()> {
        for chunk in in_fixed_runs(rows) {
            let mut q = Sql::new(&format!(
                "INSERT INTO subscription_events ({EVENT_COLUMNS}, next_attempt, claimed_by, \
                 claimed_until) VALUES "
            ));
            q.prepared();
            for (i, (e, due, claim)) in chunk.iter().enumerate() {
                q.push(if i > 0 { ", (" } else { "(" });
                q.bind(Bind::Text(e.subscription_id.clone())).push(", ");
                q.bind(Bind::BigInt(e.event_number)).push(", ");
                q.bind(Bind::Text(e.res_type.clone())).push(", ");
                q.bind(Bind::Text(e.res_id.clone())).push(", ");
                q.bind(Bind::BigInt(e.version)).push(", ");
                q.bind(Bind::Text(e.method.clone())).push(", ");
                q.bind(Bind::BigInt(e.at)).push(", 0, NULL, ");
                q.bind(Bind::OptBigInt(e.delivered)).push(", ");
                q.bind(Bind::BigInt(*due)).push(", ");
                q.bind(Bind::OptText(claim.map(|k| k.node.to_string())))
                    .push(", ");
                q.bind(Bind::OptBigInt(claim.map(|k| k.until))).push(")");
            }
            q.execute(self.tx.conn)?;
        }
        Ok(())
    }
}

/// Tells this process's dispatcher that a transaction committed changes, so that it
/// need not wait for its next poll.
#[derive(Default)]
pub(crate) struct Committed {
    changed: std::sync::Mutex<bool>,
    ready: std::sync::Condvar,
}

impl Committed {
    pub(crate) fn signal(&self) {
        let mut changed = self.changed.lock().unwrap_or_else(|p| p.into_inner());
        if !*changed {
            *changed = true;
            self.ready.notify_all();
        }
    }

    fn wait(&self, timeout: std::time::Duration) -> bool {
        let changed = self.changed.lock().unwrap_or_else(|p| p.into_inner());
        let (mut changed, _) = self
            .ready
            .wait_timeout_while(changed, timeout, |c| !*c)
            .unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *changed, false)
    }
}

/// Whose claim the events [`TxOps::add_events`] may record claimed carry: `node`'s,
/// until `until` (ms); events due at or before `now` may be claimed.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    pub node: &'a str,
    pub now: i64,
    pub until: i64,
}

/// An event to record ([`TxOps::add_events`]).
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub subscription: &'a str,
    pub change: &'a Change,
    /// When it is due (ms); `None`: counted and kept, never sent.
    pub due: Option<i64>,
}

impl Store {
    /// Claims, for `node` until `until` (ms), up to `limit` events that are due: for
    /// each subscription with events waiting, its first one, if its next attempt is at
    /// or before `now` and no other claim on it runs (events go out in order, one at a
    /// time). One statement of fixed text: the rows are chosen and claimed together, so
    /// nodes sharing the database never claim the same event (on PostgreSQL the rows
    /// another node is claiming are skipped, and a claim taken meanwhile is seen when
    /// the row is updated).
    pub fn claim_due(
        &self,
        node: &str,
        now: i64,
        until: i64,
        limit: usize,
    ) -> StoreResult<Vec<Event>> {
        self.db.write(|tx| {
            let mut q = Sql::new("UPDATE subscription_events SET claimed_by = ");
            q.prepared()
                .bind(Bind::Text(node.into()))
                .push(", claimed_until = ")
                .bind(Bind::BigInt(until))
                .push(
                    " WHERE (subscription_id, event_number) IN (SELECT e.subscription_id, \
                     e.event_number FROM subscription_events e WHERE e.event_number = \
                     (SELECT MIN(f.event_number) FROM subscription_events f \
                     WHERE f.subscription_id = e.subscription_id AND f.delivered IS NULL) \
                     AND e.delivered IS NULL AND e.next_attempt <= ",
                )
                .bind_int_unprobed(now)
                .push(" AND (e.claimed_until IS NULL OR e.claimed_until < ")
                .bind_int_unprobed(now)
                .push(") ORDER BY e.next_attempt LIMIT ")
                .bind(Bind::BigInt(limit.max(1) as i64));
            if tx.kind == BackendKind::Postgres {
                q.push(" FOR UPDATE SKIP LOCKED");
            }
            q.push(") AND (claimed_until IS NULL OR claimed_until < ")
                .bind_int_unprobed(now)
                .push(&format!(") RETURNING {EVENT_COLUMNS}"));
            q.load(tx.conn)
        })
    }

    /// Whether any event that no node is sending waits with its next attempt at or
    /// before `now` (a read: the deliverer asks before it claims, when its last round
    /// found nothing).
    pub fn has_due_events(&self, now: i64) -> StoreResult<bool> {
        let mut q = Sql::new(
            "SELECT COUNT(*) AS n FROM (SELECT 1 FROM subscription_events \
             WHERE delivered IS NULL AND next_attempt <= ",
        );
        q.prepared()
            .bind_int_unprobed(now)
            .push(" AND (claimed_until IS NULL OR claimed_until < ")
            .bind_int_unprobed(now)
            .push(") LIMIT 1) x");
        self.db.read(|tx| {
            Ok(q.load::<CountRow>(tx.conn)?
                .first()
                .is_some_and(|r| r.n > 0))
        })
    }

    /// Gives up this node's claim on events it will not send now: they are due again
    /// at once, for any node.
    pub fn release_events(&self, events: &[(String, i64)]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.db.write(|tx| {
            for list in padded(events) {
                let mut q = Sql::new("UPDATE subscription_events SET claimed_until = NULL");
                from_each(q.prepared(), &list);
                q.execute(tx.conn)?;
            }
            Ok(())
        })
    }

    /// Marks events delivered at `now` (ms; 0: kept unsent), in one transaction; they
    /// are kept for `$events` until pruned ([`Store::prune_events`]).
    pub fn events_delivered(&self, events: &[(String, i64)], now: i64) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.db.write(|tx| {
            for list in padded(events) {
                let mut q =
                    Sql::new("UPDATE subscription_events SET claimed_until = NULL, delivered = ");
                q.prepared().bind(Bind::BigInt(now.max(0)));
                from_each(&mut q, &list);
                q.execute(tx.conn)?;
            }
            Ok(())
        })
    }

    /// Records a failed attempt; the next one is at `next_attempt` (ms).
    pub fn event_failed(
        &self,
        subscription: &str,
        number: i64,
        error: &str,
        next_attempt: i64,
    ) -> StoreResult<()> {
        let mut q = Sql::new(
            "UPDATE subscription_events SET attempts = attempts + 1, claimed_until = NULL, last_error = ",
        );
        q.bind(Bind::Text(error.into()));
        q.push(", next_attempt = ").bind(Bind::BigInt(next_attempt));
        q.push(" WHERE subscription_id = ")
            .bind(Bind::Text(subscription.into()))
            .push(" AND event_number = ")
            .bind(Bind::BigInt(number));
        self.db.write(|tx| q.execute(tx.conn).map(|_| ()))
    }

    /// Stops every waiting event of a subscription (it stopped: error, off, deleted):
    /// they are kept, as never sent, for `$events`.
    pub fn drop_events(&self, subscription: &str) -> StoreResult<()> {
        let mut q = Sql::new(
            "UPDATE subscription_events SET delivered = 0 WHERE delivered IS NULL AND subscription_id = ",
        );
        q.bind(Bind::Text(subscription.into()));
        self.db.write(|tx| q.execute(tx.conn).map(|_| ()))
    }

    /// Removes events that are no longer waiting and happened before `before` (ms).
    pub fn prune_events(&self, before: i64) -> StoreResult<usize> {
        let mut q =
            Sql::new("DELETE FROM subscription_events WHERE delivered IS NOT NULL AND at < ");
        q.bind(Bind::BigInt(before));
        self.db.write(|tx| q.execute(tx.conn))
    }

    /// A subscription's events numbered `from..=to` still kept, in order, at most
    /// `limit` (the Backport IG's `$events`).
    pub fn events_of(
        &self,
        subscription: &str,
        from: i64,
        to: i64,
        limit: usize,
    ) -> StoreResult<Vec<Event>> {
        let mut q = Sql::new(&format!(
            "SELECT {EVENT_COLUMNS} FROM subscription_events WHERE subscription_id = "
        ));
        q.bind(Bind::Text(subscription.into()))
            .push(" AND event_number >= ")
            .bind(Bind::BigInt(from))
            .push(" AND event_number <= ")
            .bind(Bind::BigInt(to))
            .push(" ORDER BY event_number LIMIT ")
            .bind(Bind::BigInt(limit.max(1) as i64));
        self.db.read(|tx| q.load(tx.conn))
    }

    /// Waits up to `timeout` for a transaction of this process to commit changes;
    /// whether one did since the last call (at once if so). Other processes' changes
    /// are not signalled: the dispatcher still reads the feed when this times out.
    pub fn wait_for_changes(&self, timeout: std::time::Duration) -> bool {
        self.db.committed.wait(timeout)
    }

    /// Whether the change feed holds anything (a read: the dispatcher asks before it
    /// opens a write transaction).
    pub fn has_changes(&self) -> StoreResult<bool> {
        // Through the primary key: the rows taken out leave dead tuples at the start of
        // the table until it is vacuumed, which a scan of the table would walk.
        let mut q = Sql::new(
            "SELECT COUNT(*) AS n FROM (SELECT 1 FROM change_outbox ORDER BY id LIMIT 1) x",
        );
        q.prepared();
        self.db.read(|tx| {
            Ok(q.load::<CountRow>(tx.conn)?
                .first()
                .is_some_and(|r| r.n > 0))
        })
    }

    /// The highest `seq` of the current versions of `res_type` (0 when there are
    /// none): it changes whenever a resource of the type is written, on any node. For
    /// Subscription and Basic, one entry of a partial index; other types are scanned.
    pub fn latest_seq_of(&self, res_type: &str) -> StoreResult<i64> {
        // The type is written into the text, not bound, so that the planner sees it
        // is the partial index's type; a resource type name is letters and digits.
        if !res_type.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(StoreError::BadRequest {
                message: format!("{res_type:?} is not a resource type"),
                expression: None,
            });
        }
        let mut q = Sql::new(&format!(
            "SELECT COALESCE(MAX(seq), 0) AS n FROM resources WHERE res_type = '{res_type}'"
        ));
        q.prepared();
        self.db
            .read(|tx| Ok(q.load::<CountRow>(tx.conn)?.first().map_or(0, |r| r.n)))
    }

    /// How many resources of `types` there are (deleted ones too) and the highest `seq`
    /// of their current versions: one of the two changes whenever one of them is
    /// written, deleted or expunged, on any node.
    pub fn fingerprint_of(&self, types: &[String]) -> StoreResult<(i64, i64)> {
        let mut q = Sql::new(
            "SELECT COUNT(*) AS n, COALESCE(MAX(seq), 0) AS m FROM resources WHERE res_type",
        );
        q.prepared().in_list_unprobed(types);
        self.db.read(|tx| {
            Ok(q.load::<CountMaxRow>(tx.conn)?
                .first()
                .map_or((0, 0), |r| (r.n, r.m)))
        })
    }

    /// The events of a subscription counted so far (`eventsSinceSubscriptionStart`).
    pub fn events_since_start(&self, subscription: &str) -> StoreResult<i64> {
        let mut q = Sql::new(
            "SELECT events_since_start AS n FROM subscription_counters WHERE subscription_id = ",
        );
        q.bind(Bind::Text(subscription.into()));
        self.db
            .read(|tx| Ok(q.load::<CountRow>(tx.conn)?.first().map_or(0, |r| r.n)))
    }
}

#[derive(QueryableByName)]
struct CountMaxRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = BigInt)]
    m: i64,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{NoIndex, PoolOptions};

    fn change(id: &str) -> Change {
        Change {
            id: 0,
            res_type: "Observation".into(),
            res_id: id.into(),
            version: 1,
            method: "POST".into(),
            at: 0,
        }
    }

    /// A store on a fresh SQLite file of its own, and its folder (the test removes it).
    fn temp_store(name: &str) -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("fhir-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let url = format!("sqlite://{}/db", dir.display());
        let store = Store::open(&url, &PoolOptions::default(), Arc::new(NoIndex)).expect("open");
        (store, dir)
    }

    fn numbers(events: &[Event]) -> Vec<(String, i64)> {
        events
            .iter()
            .map(|e| (e.subscription_id.clone(), e.event_number))
            .collect()
    }

    /// A transaction that records changes wakes a waiting dispatcher; one that writes
    /// nothing, or a store without a change feed, does not.
    #[test]
    fn committed_changes_wake_the_dispatcher_once() {
        let (mut store, dir) = temp_store("wake");
        let short = std::time::Duration::from_millis(20);
        let obs = || serde_json::json!({"resourceType": "Observation", "status": "final"});
        store.create("Observation", obs(), None).expect("create");
        assert!(
            !store.wait_for_changes(short),
            "no change feed: nothing recorded"
        );
        store.set_change_feed(true);
        store.transaction(|_| Ok(())).expect("empty");
        assert!(!store.wait_for_changes(short), "nothing written");
        let store = Arc::new(store);
        let writer = store.clone();
        let wrote = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            writer.create("Observation", obs(), None).expect("create");
        });
        let started = std::time::Instant::now();
        assert!(store.wait_for_changes(std::time::Duration::from_secs(30)));
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        wrote.join().unwrap();
        assert!(!store.wait_for_changes(short), "the signal was taken");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Events recorded claimed are each subscription's first waiting one only: no other
    /// claim takes them, and the events behind them wait their turn.
    #[test]
    fn events_recorded_claimed_keep_each_subscription_in_order() {
        let (store, dir) = temp_store("claim");
        let (c1, c2, c3) = (change("o1"), change("o2"), change("o3"));
        let now = 1_000;
        let claim = Claim {
            node: "node-a",
            now,
            until: now + 30_000,
        };
        let new = |sub, change, due| NewEvent {
            subscription: sub,
            change,
            due,
        };
        let batch = [
            new("a", &c1, Some(now)),
            new("a", &c2, Some(now)),
            new("b", &c1, Some(now)),
            new("c", &c3, None),          // in error: kept, never sent
            new("d", &c3, Some(now + 5)), // not due yet
            new("d", &c1, Some(now)),     // due, but behind d's first
        ];
        let claimed = store
            .transaction(|ops| ops.add_events(&batch, Some(&claim)))
            .expect("add");
        assert_eq!(numbers(&claimed), [("a".into(), 1), ("b".into(), 1)]);
        let other = store
            .claim_due("node-b", now, now + 30_000, 10)
            .expect("claim");
        assert!(
            other.is_empty(),
            "a's second waits behind its first: {other:?}"
        );
        store
            .events_delivered(&numbers(&claimed), now)
            .expect("delivered");
        let next = store
            .claim_due("node-b", now, now + 30_000, 10)
            .expect("claim");
        assert_eq!(numbers(&next), [("a".into(), 2)]);
        // b's first was delivered, a's second is still out: only b's new one is claimed.
        let later = [new("a", &c3, Some(now)), new("b", &c3, Some(now))];
        let claimed = store
            .transaction(|ops| ops.add_events(&later, Some(&claim)))
            .expect("add");
        assert_eq!(numbers(&claimed), [("b".into(), 2)]);
        // Given back, b's second is any node's to claim at once.
        store.release_events(&numbers(&claimed)).expect("release");
        let taken = store
            .claim_due("node-b", now, now + 30_000, 10)
            .expect("claim");
        assert_eq!(numbers(&taken), [("b".into(), 2)]);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The dispatcher reads its subscriptions again when this number moves: every
    /// write of the type moves it (create, update, delete), writes of others do not.
    #[test]
    fn the_latest_seq_of_a_type_moves_with_its_writes_only() {
        let (store, dir) = temp_store("seq");
        let seq = |t: &str| store.latest_seq_of(t).expect("seq");
        assert_eq!((seq("Subscription"), seq("Basic")), (0, 0));
        let sub = serde_json::json!({"resourceType": "Subscription", "status": "off",
            "reason": "r", "criteria": "Observation?code=x",
            "channel": {"type": "rest-hook", "endpoint": "http://example.org/hook"}});
        let created = store
            .create("Subscription", sub.clone(), None)
            .expect("create");
        let first = seq("Subscription");
        assert!(first > 0);
        let obs = serde_json::json!({"resourceType": "Observation", "status": "final"});
        store.create("Observation", obs, None).expect("create");
        assert_eq!(seq("Subscription"), first, "another type's write");
        let crate::Created::New(created) = created else {
            panic!("created")
        };
        let id = created.res_id.clone();
        store
            .update("Subscription", &id, sub, Default::default())
            .expect("update");
        let updated = seq("Subscription");
        assert!(updated > first, "an update");
        store
            .delete("Subscription", &id, Default::default())
            .expect("delete");
        assert!(seq("Subscription") > updated, "a delete");
        assert_eq!(seq("Basic"), 0);
        assert!(store.latest_seq_of("Basic' OR 1=1 --").is_err());
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
