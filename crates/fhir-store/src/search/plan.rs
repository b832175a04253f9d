//! Plan choices a search makes from bounded counts before its page is written, and
//! that the SQL of its criteria ([`criteria::conditions`]) follows:
//! - a leading `_has` starts from the referrers its inner criterion matches when they
//!   are few, and is checked per candidate (candidates walked in order, stopping after
//!   the page) when they are many;
//! - a search sorted by `_lastUpdated` with many matches lets the database walk the
//!   `(res_type, last_updated, seq)` index and check every criterion per row, stopping
//!   after the page, instead of starting from the leading criterion's matches and
//!   ordering them all;
//! - a leading chain drives when its referrers are few and is checked per candidate
//!   when they are many ([`chain`]);
//! - a search's one criterion on a frequent value is checked per candidate walked in
//!   `rid` order ([`frequent`]);
//! - on PostgreSQL a driving sub-query of a chain or `_has` ends with `OFFSET 0`.
//!
//! The choices hold for the search being run on this thread ([`with_plan`]), so that
//! the page, its total and its cursors are written alike; outside it (conditional
//! matches, includes) criteria drive as before.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::*;
use crate::backend::BackendKind;

/// How the criteria of the search being planned are written.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    /// A leading `_has` is checked per candidate instead of driving.
    pub has_checked: bool,
    /// A leading chain is checked per candidate instead of driving.
    pub chain_checked: bool,
    /// No criterion drives: the database walks the order's index.
    pub none_drives: bool,
    /// Every criterion checked per row is fenced ([`walking_few`]).
    pub checks_fenced: bool,
    /// What ends a driving sub-query of a chain or `_has`, and the per-candidate check
    /// of a leading one that does not drive. PostgreSQL flattens
    /// `IN (SELECT …)` and, misjudging a rare value as a frequent one, walked 100
    /// Patients' 92,000 referrers (387 ms) instead of starting from 420 matches (26 ms);
    /// `OFFSET 0` keeps the sub-query whole. A correlated `EXISTS` it would turn into a
    /// join starting from the other end (walking 17,200 referrers of 50 Patients for a
    /// page of 50: 73 ms); past `OFFSET 0` it is checked per candidate. SQLite runs such
    /// sub-queries as written anyway.
    pub fence: &'static str,
    /// What was decided for a search's one criterion ([`frequent`]).
    pub lead: Option<frequent::Lead>,
    /// The rows checked are index entries of the searched types ([`typed_rows`]).
    pub rows_typed: bool,
}

const DEFAULT: Plan = Plan {
    has_checked: false,
    chain_checked: false,
    none_drives: false,
    checks_fenced: false,
    fence: "",
    lead: None,
    rows_typed: false,
};

impl Plan {
    /// Whether `clause`, the first in checking order, drives the search.
    pub fn drives(&self, clause: &Clause) -> bool {
        let checked = match clause {
            Clause::Has(_) => self.has_checked,
            Clause::Param(p) => {
                (self.chain_checked && !p.chain.is_empty()) || self.lead.is_some_and(|l| l.checked)
            }
            Clause::List(_) | Clause::Text(_) | Clause::Filter(_) | Clause::Near(_) => false,
        };
        !(self.none_drives || checked)
    }
}

thread_local! {
    static CURRENT: Cell<Plan> = const { Cell::new(DEFAULT) };
    /// The targets of the search's leading `_has`, when they were listed ([`list_has`]).
    static LISTED: RefCell<Option<Listed>> = const { RefCell::new(None) };
    /// The matches of the search's one criterion, when [`frequent`] listed them.
    static MATCHED: RefCell<Option<Rc<[i64]>>> = const { RefCell::new(None) };
}

/// Every match of the search being run, in `rid` order, if [`frequent`] listed them.
pub(super) fn matched() -> Option<Rc<[i64]>> {
    MATCHED.with(|m| m.borrow().clone())
}

/// The `rid`s of the resources a `_has` criterion matches, listed once for a page and
/// its count.
struct Listed {
    /// The criterion's address: the leading one of the search being run.
    clause: usize,
    rids: Rc<[i64]>,
}

/// The resources matched by `h` if it is the leading `_has` of the search being run
/// and they were listed.
pub(super) fn listed(h: &HasClause) -> Option<Rc<[i64]>> {
    LISTED.with(|l| {
        l.borrow()
            .as_ref()
            .filter(|x| x.clause == std::ptr::from_ref(h) as usize)
            .map(|x| x.rids.clone())
    })
}

/// Resources matched by a leading `_has` that drives up to which they are listed
/// ([`list_has`]).
const HAS_LISTED_AT_MOST: usize = 2000;

/// The resources (of the searched types) a leading `_has` that drives matches, if they
/// are at most [`HAS_LISTED_AT_MOST`]: the page and its count then read the list
/// instead of each going from the matching referrers to their targets again (2,475
/// Observations with a rare code, to 215 Patients: 27 ms each on PostgreSQL at 1 M
/// resources).
fn list_has(tx: &mut Tx<'_>, req: &SearchRequest) -> StoreResult<Option<Listed>> {
    let Some(c @ Clause::Has(h)) = ordered_clauses(req).first().copied() else {
        return Ok(None);
    };
    if req.count == 0 || !current().drives(c) {
        return Ok(None);
    }
    let mut q = Sql::new("SELECT r.rid FROM resources r WHERE r.version > 0 AND r.deleted = ");
    q.bind(Bind::Bool(false));
    if !req.query.resource_types.is_empty() {
        q.push(" AND r.res_type").in_list(&req.query.resource_types);
    }
    q.push(" AND ");
    has_sql(&mut q, "r", h, 0, true, req.linked_within.as_ref())?;
    q.push(" LIMIT ")
        .bind(Bind::BigInt(HAS_LISTED_AT_MOST as i64 + 1));
    let rids: Vec<i64> = q
        .load::<RidRow>(tx.conn)?
        .into_iter()
        .map(|r| r.rid)
        .collect();
    Ok((rids.len() <= HAS_LISTED_AT_MOST).then(|| Listed {
        clause: std::ptr::from_ref(h) as usize,
        rids: rids.into(),
    }))
}

/// The plan of the search being run on this thread (the default outside one).
pub(super) fn current() -> Plan {
    CURRENT.with(|c| c.get())
}

/// Runs `f` (a count of the search's matches) with a leading chain driving even where
/// the page checks it per candidate: a count that stops at the total threshold (1,000)
/// goes twenty pages deep, where walking 36,000 candidates cost 150 ms and starting
/// from the chain's 17,000 referrers 6 ms. A frequent criterion drives too: an exact
/// count reads all its entries either way, and walking would check every candidate.
pub(super) fn counting<T>(f: impl FnOnce() -> T) -> T {
    let page = current();
    changed(
        Plan {
            chain_checked: false,
            lead: page.lead.map(|l| frequent::Lead {
                checked: false,
                ..l
            }),
            ..page
        },
        f,
    )
}

/// Runs `f` under `plan`, then restores the plan it replaced.
fn changed<T>(plan: Plan, f: impl FnOnce() -> T) -> T {
    let before = CURRENT.with(|c| c.replace(plan));
    let out = f();
    CURRENT.with(|c| c.set(before));
    out
}

/// Runs `f` (writing the conditions of a walk over a sort index, which is the outer
/// loop) with no criterion driving: each is checked per walked row, a leading chain
/// or `_has` too (fenced on PostgreSQL, which would otherwise turn its check into a
/// join from the other end).
pub(super) fn walking<T>(f: impl FnOnce() -> T) -> T {
    let page = current();
    changed(
        Plan {
            none_drives: true,
            chain_checked: true,
            has_checked: true,
            ..page
        },
        f,
    )
}

/// Runs `f` (writing the conditions of a walk over index entries of the searched types
/// only — an entry names its resource's type) without restricting `r.res_type` again.
/// With that restriction PostgreSQL takes the resources of the types for a small part
/// of all, judges that the walk's join to them keeps one entry in a thousand, and
/// orders every entry instead of walking: the boundary of `Patient?_sort=family,given`
/// (500 Patients among 1 M resources) took 5.7 ms; walked, 1.2 ms.
pub(super) fn typed_rows<T>(f: impl FnOnce() -> T) -> T {
    let outer = current();
    changed(
        Plan {
            rows_typed: true,
            ..outer
        },
        f,
    )
}

/// [`walking`] rows the query itself bounds — a walk with a `LIMIT` of its own, a list
/// of candidates: every criterion is checked per row, fenced on PostgreSQL. Seeing few
/// rows to check, PostgreSQL would turn a check into a join that reads all the
/// entries of the value first (a page of `_sort=status,-date` hashed a code's 31,600
/// entries, 38 ms, to check the 1,140 rows a walk needed: 8 ms fenced). A walk that
/// only the page's `LIMIT` bounds it plans well unfenced (probing each row's entries
/// by `rid`: 4.3 ms for `_sort=-date` with a code, 6.3 ms fenced).
pub(super) fn walking_few<T>(f: impl FnOnce() -> T) -> T {
    let outer = current();
    let fenced = Plan {
        checks_fenced: true,
        ..outer
    };
    changed(fenced, || walking(f))
}

/// Matching referrers per candidate from which a leading `_has` is checked per
/// candidate (candidates walked in order, each checked through its own referrers,
/// stopping after the page); below it, the search starts from the matching referrers
/// (about three index probes each). A check reads a candidate's referrers until one
/// matches: when matches are many per candidate it finds one at once, when they are
/// few it reads all of them for most candidates — with 2,100 matches among 584,000
/// Observations of 550 Patients, 0.6 s for a page, where starting from the matches
/// takes 20 ms.
const HAS_CHECK_PER_TARGET: i64 = 10;

/// Candidates counted at most for the decision (and matches at most this many times
/// [`HAS_CHECK_PER_TARGET`]).
const HAS_TARGETS_COUNTED: i64 = 5000;

/// Runs `f` (the page and total of `req`) under the plan chosen for `req`.
pub(super) fn with_plan<T>(
    tx: &mut Tx<'_>,
    req: &SearchRequest,
    f: impl FnOnce(&mut Tx<'_>) -> StoreResult<T>,
) -> StoreResult<T> {
    let plan = Plan {
        has_checked: has_checked(tx, req)?,
        // A count alone lets the chain drive anyway (`counting`).
        chain_checked: req.count > 0 && chain::checked(tx, req)?,
        none_drives: last_updated_walks(tx, req)?,
        checks_fenced: false,
        fence: match tx.kind {
            BackendKind::Postgres => " OFFSET 0",
            BackendKind::Sqlite => "",
        },
        lead: None,
        rows_typed: false,
    };
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(DEFAULT));
            LISTED.with(|l| l.replace(None));
            MATCHED.with(|m| m.replace(None));
        }
    }
    let _reset = Reset;
    let (lead, matched) = frequent::decide(tx, req)?.unzip();
    // A frequent criterion checked per row is fenced: PostgreSQL would turn the check
    // into a join that reads every entry first.
    let checks_fenced = lead.is_some_and(|l| l.checked);
    let plan = Plan {
        lead,
        checks_fenced,
        ..plan
    };
    MATCHED.with(|m| m.replace(matched.flatten()));
    CURRENT.with(|c| c.set(plan));
    let listed = list_has(tx, req)?;
    LISTED.with(|l| l.replace(listed));
    f(tx)
}

/// A leading `_has` whose inner criterion matches [`HAS_CHECK_PER_TARGET`] referrers
/// or more per resource of the searched types (both counted as searches that stop at
/// the bound; a count along a token's index entries when the inner criterion is one
/// code). The counts leave out the caller's compartment confinement: they only choose
/// the plan.
fn has_checked(tx: &mut Tx<'_>, req: &SearchRequest) -> StoreResult<bool> {
    let Some(Clause::Has(h)) = ordered_clauses(req).first().copied() else {
        return Ok(false);
    };
    if !matches!(&*h.inner, Clause::Param(p) if p.chain.is_empty()) {
        return Ok(false);
    }
    let of = |types: Vec<String>, clauses: Vec<Clause>| SearchRequest {
        query: SearchQuery {
            resource_types: types,
            clauses,
            ..Default::default()
        },
        ..Default::default()
    };
    let targets = of(req.query.resource_types.clone(), Vec::new());
    let referrers = of(vec![h.source_type.clone()], vec![(*h.inner).clone()]);
    // Keyed by both counts' statements (the second's bound aside).
    let mut key = total::capped_query(tx.kind, &targets, 0)?;
    key.append(&total::capped_query(tx.kind, &referrers, 0)?);
    kept_decision(tx, "has checked", &key, |tx| {
        let targets = total::capped(tx, &targets, HAS_TARGETS_COUNTED)?.max(1);
        let bound = targets * HAS_CHECK_PER_TARGET;
        Ok(total::capped(tx, &referrers, bound - 1)? >= bound)
    })
}

/// A plan decision kept with the planner estimates ([`super::estimates`]), under
/// `what` and the statement `q` that decides it: counting cost about as much as the
/// page (a chain's referrers counted to 5,000: 2.6 ms of a 12 ms search on PostgreSQL
/// at 1 million resources; a `_has`'s targets and referrers, 4.5 ms). A decision only
/// chooses a plan: one that the data outgrew within the minute costs time, never a
/// wrong page.
pub(super) fn kept_decision(
    tx: &mut Tx<'_>,
    what: &str,
    q: &Sql,
    decide: impl FnOnce(&mut Tx<'_>) -> StoreResult<bool>,
) -> StoreResult<bool> {
    let (text, binds) = q.parts();
    let key = format!("{what}\u{0}{text}\u{0}{binds:?}");
    let estimates = tx.estimates;
    Ok(estimates.get_or(key, || decide(tx).map(|d| Some(i64::from(d))))? == Some(1))
}

/// A search of given types with criteria, sorted by `_lastUpdated` alone, that has more
/// matches than `sort_walk_above` (a count that stops there): walking the index in
/// order finds a page after about `_count` ÷ (share of matches) rows.
fn last_updated_walks(tx: &mut Tx<'_>, req: &SearchRequest) -> StoreResult<bool> {
    let by_last_updated =
        matches!(req.query.result.sort.as_slice(), [k] if k.code == "_lastUpdated");
    if !by_last_updated || req.query.clauses.is_empty() || req.query.resource_types.is_empty() {
        return Ok(false);
    }
    let above = req.sort_walk_above.min(i64::MAX as u64 - 1) as i64;
    Ok(total::capped(tx, req, above)? > above)
}
