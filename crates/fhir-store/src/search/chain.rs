//! Chains at scale (`subject:Patient.name=…`): counted from the reference index, and
//! driving or checked as their referrers are few or many.
//!
//! A chain drives by collecting every resource that refers to a matching target, then
//! ordering them for the page: 36,650 referrers of 50 Patients sharing a family name
//! cost 50 ms for a page of 50, twice over with its total. Counting them stops early
//! when the count is a query of its own (the targets, then their referrers, along
//! `idx_reference_target`), so a search of the referring type asks first how many
//! there are, up to [`DRIVE_BELOW`]:
//! - fewer: the chain drives, as before;
//! - as many or more: the candidates are walked in `rid` order and the chain is checked
//!   per candidate (three or four index probes), stopping after the page. A page then
//!   costs `_count` ÷ (share of the type's resources that match) candidates.
//!
//! Whichever way the chain would drive, a page in the default order of a search whose
//! only criterion is a chain that reaches few targets through its first link (at most
//! [`PER_TARGET_AT_MOST`]: the Patients sharing a family name) is merged from each
//! target's first referrers ([`per_target_page`]): the reference index lists a
//! target's referrers in `rid` order, so each gives at most a page, and the page is the
//! first of their union. At 1 M resources driving collected the 4,000 referrers of
//! five Patients to order them (9.7 ms for a page on PostgreSQL; 1.3 ms merged). With
//! further criteria, a chain that drives reads those targets' referrers off the index in
//! `rid` order and checks them against the other criteria a round at a time until a
//! page is found.
//!
//! A count of matches that stops at the total threshold is twenty pages deep: it lets
//! the chain drive ([`plan::counting`]). A search whose only criterion is a chain
//! counts its distinct referrers, stopping there, not every referrer; one whose
//! leading criterion is a chain streams the referrers and checks the other criteria per
//! referrer ([`streamed_count_query`]), stopping there too.

use super::*;

/// Referrers of a leading chain below which it drives (see the module doc). Driving
/// costs the referrers `R`; walking costs `_count · N / R` candidates of a type with
/// `N` resources, so the two meet at `R² = _count · N`: 7,000 for a page of 50 among a
/// million. Below the bound driving costs at most this many rows; above it a walk
/// among ten million costs at most 100,000 probes, and the rows are gone through
/// once more only to count them.
pub(super) const DRIVE_BELOW: i64 = 5000;

/// The chained criterion of a search that has no other, and no compartment: its
/// total is the count of its distinct referrers.
pub(super) fn lone(req: &SearchRequest) -> Option<&ParamClause> {
    match req.query.clauses.as_slice() {
        [Clause::Param(p)] if !p.chain.is_empty() && req.compartment.is_none() => Some(p),
        _ => None,
    }
}

/// The chain that leads the search in checking order, if one does.
pub(super) fn leading(req: &SearchRequest) -> Option<&ParamClause> {
    leading_clause(req).map(|(_, p)| p)
}

/// The leading chain as a clause of the search, and its parameter.
pub(super) fn leading_clause(req: &SearchRequest) -> Option<(&Clause, &ParamClause)> {
    match ordered_clauses(req).first().copied() {
        Some(c @ Clause::Param(p)) if !p.chain.is_empty() => Some((c, p)),
        _ => None,
    }
}

/// Whether the leading chain has at least [`DRIVE_BELOW`] referrers of the searched
/// types (counted no further): then it is checked per candidate instead of driving.
pub(super) fn checked(tx: &mut Tx<'_>, req: &SearchRequest) -> StoreResult<bool> {
    let Some(p) = leading(req) else {
        return Ok(false);
    };
    let mut q = Sql::new("SELECT COUNT(*) AS n FROM (");
    chain_referrers(
        &mut q,
        p,
        0,
        0,
        Some(&req.query.resource_types),
        req.linked_within.as_ref(),
    )?;
    q.push(" LIMIT ")
        .bind(Bind::BigInt(DRIVE_BELOW))
        .push(") c");
    plan::kept_decision(tx, "chain checked", &q, |tx| {
        Ok(q.load::<crate::sql::CountRow>(tx.conn)?
            .first()
            .is_some_and(|c| c.n >= DRIVE_BELOW))
    })
}

/// The count of a [`lone`] chain's matches: its distinct referrers of the searched
/// types (index rows exist only for current versions of live resources), at most
/// `limit`.
pub(super) fn count_query(
    req: &SearchRequest,
    p: &ParamClause,
    limit: Option<i64>,
) -> StoreResult<Sql> {
    let mut q = Sql::new("SELECT COUNT(*) AS n FROM (SELECT DISTINCT rid FROM (");
    chain_referrers(
        &mut q,
        p,
        0,
        0,
        Some(&req.query.resource_types),
        req.linked_within.as_ref(),
    )?;
    q.push(") refs");
    if let Some(n) = limit {
        q.push(" LIMIT ").bind(Bind::BigInt(n));
    }
    q.push(") c");
    Ok(q)
}

/// A count of the matches of a search led by a chain, at most `limit`: the chain's
/// referrers are streamed (not collected), each checked against the other criteria,
/// until `limit` distinct matches are seen. Driving as `r.rid IN (…)`, the chain would
/// collect all its referrers before the first match is counted (17,200 referrers of
/// the Patients sharing a family name: 24 ms on SQLite for a count that stops at
/// 1,001, which this makes 2 ms). SQLite only (see [`total::capped`]).
pub(super) fn streamed_count_query(
    req: &SearchRequest,
    (chain, p): (&Clause, &ParamClause),
    limit: i64,
) -> StoreResult<Sql> {
    let mut q = Sql::new("SELECT COUNT(*) AS n FROM (SELECT DISTINCT r.rid FROM (");
    chain_referrers(
        &mut q,
        p,
        0,
        0,
        Some(&req.query.resource_types),
        req.linked_within.as_ref(),
    )?;
    // `CROSS JOIN` keeps the referrers the outer loop on SQLite; `+refs.rid` keeps
    // the other criteria from driving through `r.rid`.
    q.push(") refs CROSS JOIN resources r WHERE r.rid = +refs.rid AND ");
    conditions(&mut q, req, Some(chain))?;
    q.push(" LIMIT ").bind(Bind::BigInt(limit)).push(") c");
    Ok(q)
}

/// First-link targets of a leading chain up to which a page is merged from each
/// target's referrers ([`per_target_page`]).
const PER_TARGET_AT_MOST: usize = 32;

#[derive(QueryableByName)]
struct TargetRow {
    #[diesel(sql_type = Text)]
    res_type: String,
    #[diesel(sql_type = Text)]
    res_id: String,
}

/// The `rid`s of a page (and one more) of a search in the default order led by a chain
/// whose first link reaches at most [`PER_TARGET_AT_MOST`] targets, in page order
/// (descending before a `BeforeRid` cursor); `None` when the plan does not apply. The
/// targets' referrers of the searched types are read off the reference index in `rid`
/// order, past the cursor, and checked against the search's conditions (live, type,
/// compartment, the other criteria): merged from each target's first page when the
/// chain is the only criterion ([`merged_page`]), walked a round at a time when there
/// are others ([`walked_page`]).
pub(super) fn per_target_page(
    tx: &mut Tx<'_>,
    req: &SearchRequest,
    backwards: bool,
) -> StoreResult<Option<Vec<i64>>> {
    let Some((clause, p)) = leading_clause(req) else {
        return Ok(None);
    };
    // With other criteria, the walk is for a chain that drives (fewer than
    // `DRIVE_BELOW` referrers): it reads all the targets' referrers at once.
    let alone = req.query.clauses.len() == 1;
    if !alone && plan::current().chain_checked {
        return Ok(None);
    }
    let past = match req.cursor {
        None => None,
        Some(SearchCursor::AfterRid(rid) | SearchCursor::BeforeRid(rid)) => Some(rid),
        Some(_) => return Ok(None),
    };
    if req.query.resource_types.is_empty() || beyond::near_of(&req.query.clauses).is_some() {
        return Ok(None);
    }
    let Some(targets) = first_targets(tx, req, p)? else {
        return Ok(None);
    };
    if targets.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let walk = Walk {
        req,
        clause,
        p,
        targets,
        backwards,
    };
    match alone {
        true => walk.merged_page(tx, past).map(Some),
        false => walk.walked_page(tx, past).map(Some),
    }
}

/// Candidates the first round of [`Walk::walked_page`] checks; each further round checks
/// twice as many.
const FIRST_ROUND: usize = 128;

/// A page walked along the referrers of a leading chain's few targets.
struct Walk<'a> {
    req: &'a SearchRequest,
    clause: &'a Clause,
    p: &'a ParamClause,
    targets: Vec<TargetRow>,
    backwards: bool,
}

impl Walk<'_> {
    fn order(&self) -> &'static str {
        if self.backwards {
            "DESC"
        } else {
            "ASC"
        }
    }

    /// ` AND x.rid > past` (`<` backwards).
    fn past_sql(&self, q: &mut Sql, past: Option<i64>) {
        if let Some(rid) = past {
            let op = if self.backwards { "<" } else { ">" };
            q.push(&format!(" AND x.rid {op} ")).bind(Bind::BigInt(rid));
        }
    }

    /// The chain is the only criterion: each target's referrers give at most a page
    /// (distinct: a referrer may name its target twice), and the page is the first of
    /// their union. With further criteria, each target would be read until it gives a
    /// page of matches: when they are rare among its first referrers (`date=ge2015` on
    /// records in date order), every target's early referrers are read where the
    /// ordered referrers of all targets stop within the first target's.
    fn merged_page(&self, tx: &mut Tx<'_>, past: Option<i64>) -> StoreResult<Vec<i64>> {
        let (req, order) = (self.req, self.order());
        let n = Bind::BigInt(req.count as i64 + 1);
        let mut q = Sql::new("SELECT rid FROM (");
        for (i, t) in self.targets.iter().enumerate() {
            if i > 0 {
                q.push(" UNION ");
            }
            q.push(
                "SELECT rid FROM (SELECT DISTINCT x.rid AS rid FROM idx_reference x \
                CROSS JOIN resources r WHERE r.rid = +x.rid AND x.res_type",
            )
            .in_list(&req.query.resource_types);
            q.push(" AND x.param = ")
                .bind(Bind::Text(self.p.chain[0].code.clone()));
            q.push(" AND x.target_type = ")
                .bind(Bind::Text(t.res_type.clone()))
                .push(" AND x.target_id = ")
                .bind(Bind::Text(t.res_id.clone()));
            self.past_sql(&mut q, past);
            q.push(" AND ");
            plan::walking_few(|| conditions(&mut q, req, Some(self.clause)))?;
            q.push(&format!(" ORDER BY x.rid {order} LIMIT "))
                .bind(n.clone())
                .push(&format!(") p{i}"));
        }
        q.push(&format!(") u ORDER BY rid {order} LIMIT ")).bind(n);
        Ok(q.load::<RidRow>(tx.conn)?
            .into_iter()
            .map(|r| r.rid)
            .collect())
    }

    /// The chain has further criteria: the targets' referrers are read in page order
    /// off the reference index (index entries only; all of them, as a chain drives only
    /// below [`DRIVE_BELOW`] referrers), and checked against the other criteria a round
    /// at a time ([`FIRST_ROUND`] at first, twice as many each round) until a page is
    /// found or the referrers end. At 1 M resources, driving collected and checked the
    /// 3,475 Observations of the five Patients sharing a family name (16.5 ms for
    /// `date=ge2015-01-01` on PostgreSQL, whose first page lies within the first
    /// Patient's 695); reading them off the index costs 1.6 ms, checking the first 508
    /// 1 ms.
    fn walked_page(&self, tx: &mut Tx<'_>, mut past: Option<i64>) -> StoreResult<Vec<i64>> {
        let want = self.req.count + 1;
        let read = DRIVE_BELOW as usize;
        let mut found: Vec<i64> = Vec::new();
        let mut round = FIRST_ROUND.max(want);
        loop {
            let referrers = self.referrers(tx, past, read)?;
            let mut rest = referrers.as_slice();
            while !rest.is_empty() && found.len() < want {
                let (now, later) = rest.split_at(round.min(rest.len()));
                found.extend(self.matching(tx, now, want - found.len())?);
                rest = later;
                round = round.saturating_mul(2);
            }
            match referrers.last() {
                Some(&last) if found.len() < want && referrers.len() == read => past = Some(last),
                _ => return Ok(found),
            }
        }
    }

    /// Those of `candidates` (in page order) that match the search, at most `limit`.
    fn matching(&self, tx: &mut Tx<'_>, candidates: &[i64], limit: usize) -> StoreResult<Vec<i64>> {
        let mut q = Sql::new("SELECT r.rid FROM resources r WHERE r.rid");
        q.in_ints(candidates).push(" AND ");
        plan::walking_few(|| conditions(&mut q, self.req, Some(self.clause)))?;
        q.push(&format!(" ORDER BY r.rid {} LIMIT ", self.order()))
            .bind(Bind::BigInt(limit as i64));
        Ok(q.load::<RidRow>(tx.conn)?
            .into_iter()
            .map(|r| r.rid)
            .collect())
    }

    /// Up to `limit` distinct referrers of the searched types to the targets, past
    /// `past`, in page order, from the reference index alone.
    fn referrers(&self, tx: &mut Tx<'_>, past: Option<i64>, limit: usize) -> StoreResult<Vec<i64>> {
        let mut q = Sql::new("SELECT DISTINCT x.rid AS rid FROM idx_reference x WHERE x.res_type");
        q.in_list(&self.req.query.resource_types);
        q.push(" AND x.param = ")
            .bind(Bind::Text(self.p.chain[0].code.clone()));
        q.push(" AND (");
        let mut types: Vec<&str> = self.targets.iter().map(|t| t.res_type.as_str()).collect();
        types.sort_unstable();
        types.dedup();
        for (i, ty) in types.into_iter().enumerate() {
            let ids: Vec<String> = self
                .targets
                .iter()
                .filter(|t| t.res_type == ty)
                .map(|t| t.res_id.clone())
                .collect();
            if i > 0 {
                q.push(" OR ");
            }
            q.push("(x.target_type = ")
                .bind(Bind::Text(ty.to_string()))
                .push(" AND x.target_id")
                .in_list(&ids)
                .push(")");
        }
        q.push(")");
        self.past_sql(&mut q, past);
        q.push(&format!(" ORDER BY x.rid {} LIMIT ", self.order()))
            .bind(Bind::BigInt(limit.min(i64::MAX as usize) as i64));
        Ok(q.load::<RidRow>(tx.conn)?
            .into_iter()
            .map(|r| r.rid)
            .collect())
    }
}

/// The live targets of the chain's first link that match the rest of it, if there
/// are at most [`PER_TARGET_AT_MOST`].
fn first_targets(
    tx: &mut Tx<'_>,
    req: &SearchRequest,
    p: &ParamClause,
) -> StoreResult<Option<Vec<TargetRow>>> {
    let mut q = Sql::new("SELECT t0_0.res_type, t0_0.res_id FROM resources t0_0 WHERE ");
    chain_target_conditions(&mut q, p, 0, 0, true, req.linked_within.as_ref())?;
    q.push(" LIMIT ")
        .bind(Bind::BigInt(PER_TARGET_AT_MOST as i64 + 1));
    let targets = q.load::<TargetRow>(tx.conn)?;
    Ok((targets.len() <= PER_TARGET_AT_MOST).then_some(targets))
}
