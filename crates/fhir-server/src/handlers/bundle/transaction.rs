//! Transactions: identities of the entries (full URLs, conditional references, in
//! dependency order), then every entry in one database transaction.

use super::*;

pub(super) async fn transaction(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    entries: Vec<Value>,
    verdicts: &[Option<ApiError>],
    base: &str,
    ret: Return,
    idem: Option<Idempotent>,
) -> Result<Bundle, ApiError> {
    let mut plans = Vec::with_capacity(entries.len());
    let mut full_urls = HashSet::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let p = plan(state, req, base, i, entry)
            .map_err(|e| fail(EntryError { index: i, error: e }, "transaction"))?;
        if let Some(e) = invalid(verdicts, i) {
            return Err(fail(entry_err(i, e), "transaction"));
        }
        if let Some(f) = &p.full_url {
            if !full_urls.insert(f.clone()) {
                let at = format!("Bundle.entry[{i}].fullUrl");
                return Err(fail(
                    entry_err(
                        i,
                        ApiError::bad_at(format!("fullUrl '{f}' appears twice"), at),
                    ),
                    "transaction",
                ));
            }
        }
        plans.push(p);
    }
    let audit_events = plans
        .iter()
        .any(|p| p.search.as_ref().is_some_and(|s| s.reads_audit_events()));
    state.sync_audit(audit_events).await?;
    let patching =
        Patching::of(state, req, plans.iter().any(|p| p.method == Method::Patch)).await?;
    let n = plans.len();
    let with = RunWith {
        ret,
        patching,
        idem,
    };
    let result = run_planned(state, req, plans, base, with, n).await?;
    let entries = result.map_err(|e| fail(e, "transaction"))?;
    Ok(transaction_response(entries))
}

pub(super) fn transaction_response(entries: Vec<BundleEntry>) -> Bundle {
    let mut bundle = Bundle::new(BundleType::TransactionResponse);
    bundle.entry = entries;
    bundle.timestamp = Some(fhir_instant(fhir_store::time::now_millis()));
    bundle
}

pub(super) fn fail(err: EntryError, kind: &str) -> ApiError {
    // Failures of the server rather than of an entry keep their own answer (503 with
    // Retry-After, 507).
    if matches!(
        err.error,
        ApiError::Unavailable(_) | ApiError::Timeout | ApiError::StorageFull(_)
    ) {
        return err.error;
    }
    let (status, oo) = failure_outcome(&err, kind);
    ApiError::Invalid(oo, status)
}

/// What step 1 of a transaction learns about the entries' targets.
#[derive(Default)]
pub(super) struct Identities {
    /// fullUrl → `Type/id`.
    map: HashMap<String, String>,
    /// Entries (POST with `ifNoneExist`) that found their resource: index → id.
    existing: HashMap<usize, String>,
    /// `Type/id` → the entry writing it.
    targets: HashMap<String, usize>,
    /// `Type?query` of conditional entries → `Type/id`, for conditional references.
    in_bundle: HashMap<String, String>,
}

/// The fullUrls of entries that an entry's conditions name (`subject=urn:uuid:…`).
pub(super) fn named_entries(p: &Planned, full_urls: &HashSet<String>) -> Vec<String> {
    [&p.raw_conditions, &p.raw_if_none_exist]
        .into_iter()
        .flatten()
        .flat_map(|q| pairs_of(q))
        .flat_map(|(_, v)| v.split(',').map(str::to_string).collect::<Vec<_>>())
        .filter(|v| full_urls.contains(v))
        .collect()
}

/// A query with values that are entries' fullUrls replaced by their `Type/id`.
pub(super) fn substitute(query: &str, map: &HashMap<String, String>) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs_of(query) {
        let v: Vec<&str> = v
            .split(',')
            .map(|part| map.get(part).map_or(part, String::as_str))
            .collect();
        out.append_pair(&k, &v.join(","));
    }
    out.finish()
}

/// A condition in one spelling (decoded and encoded again), to compare conditions.
pub(super) fn condition_key(rt: &str, query: &str) -> String {
    format!("{rt}?{}", substitute(query, &HashMap::new()))
}

pub(super) fn circular(plans: &[Planned], pending: &[usize]) -> EntryError {
    let indexes: Vec<String> = pending
        .iter()
        .map(|&k| plans[k].index.to_string())
        .collect();
    let first = plans[pending[0]].index;
    entry_err(
        first,
        ApiError::bad_at(
            format!(
                "circular conditional references: the conditions of entries {} name each other by fullUrl",
                indexes.join(", ")
            ),
            format!("Bundle.entry[{first}].request"),
        ),
    )
}

/// Step 1 for one entry: resolves what it writes (a new id, the match of its
/// `ifNoneExist`, the target of a conditional PUT), after putting the `Type/id` of
/// entries its conditions name into them.
pub(super) fn identify(
    ops: &mut TxOps<'_, '_>,
    p: &mut Planned,
    names_entries: bool,
    ids: &mut Identities,
) -> Result<(), EntryError> {
    let e = store_err(p.index);
    let rt = p.resource_type.clone();
    let req_at = format!("Bundle.entry[{}].request", p.index);
    if names_entries {
        let reparse = |raw: &Option<String>, at: &str| {
            raw.as_deref()
                .map(|q| conditions(&rt, &substitute(q, &ids.map), at))
                .transpose()
                .map_err(|x| entry_err(p.index, x))
        };
        let if_none_exist = reparse(&p.raw_if_none_exist, &format!("{req_at}.ifNoneExist"))?;
        let conds = reparse(&p.raw_conditions, &format!("{req_at}.url"))?;
        p.if_none_exist = if_none_exist.or(p.if_none_exist.take());
        p.conditions = conds.or(p.conditions.take());
    }
    match p.method {
        Method::Post => {
            let found = match &p.if_none_exist {
                Some(c) => ops.single_match(&rt, c).map_err(&e)?,
                None => None,
            };
            let id = match found {
                Some(f) => {
                    ids.existing.insert(p.index, f.clone());
                    f
                }
                None => fhir_store::new_id(),
            };
            if let Some(q) = &p.raw_if_none_exist {
                ids.in_bundle
                    .insert(condition_key(&rt, q), format!("{rt}/{id}"));
            }
            p.id = Some(id);
        }
        Method::Put if p.id.is_none() => {
            let c = p.conditions.clone().unwrap_or_default();
            let body_id = p
                .resource
                .as_ref()
                .and_then(|r| str_at(r, "id"))
                .map(str::to_string);
            let id = ops
                .conditional_update_target(&rt, &c, body_id.as_deref())
                .map_err(&e)?;
            if let Some(q) = &p.raw_conditions {
                ids.in_bundle
                    .insert(condition_key(&rt, q), format!("{rt}/{id}"));
            }
            p.id = Some(id);
        }
        _ => {}
    }
    if let (Some(full), Some(id)) = (&p.full_url, &p.id) {
        ids.map.insert(full.clone(), format!("{rt}/{id}"));
    }
    let writes = matches!(
        p.method,
        Method::Post | Method::Put | Method::Patch | Method::Delete
    );
    if let (true, Some(id), false) = (writes, &p.id, ids.existing.contains_key(&p.index)) {
        if let Some(first) = ids.targets.insert(format!("{rt}/{id}"), p.index) {
            let msg = format!("entries {first} and {} both write {rt}/{id}", p.index);
            return Err(entry_err(p.index, ApiError::bad(msg)));
        }
    }
    Ok(())
}

/// Takes, before anything else, the locks of every type whose conditions this bundle
/// evaluates (conditional creates, updates, patches, deletes and references): taken
/// one by one as entries come, two bundles could each hold one the other waits for.
/// Returns the conditional references of the entries' resources, each with the first
/// entry that holds it.
fn lock_conditional_types(
    ops: &mut TxOps<'_, '_>,
    plans: &[Planned],
    defs: &fhir_model::Definitions,
) -> Result<HashMap<String, usize>, EntryError> {
    let mut refs = HashMap::new();
    for p in plans {
        if let Some(r) = &p.resource {
            conditional_refs(r, p.index, &mut refs);
        }
    }
    let conditional = plans
        .iter()
        .filter(|p| p.raw_conditions.is_some() || p.raw_if_none_exist.is_some())
        .map(|p| p.resource_type.as_str());
    let referenced = refs
        .keys()
        .filter_map(|r| r.split_once('?').map(|(t, _)| t))
        .filter(|t| defs.is_resource_type(t));
    ops.lock_types(conditional.chain(referenced))
        .map_err(store_err(0))?;
    Ok(refs)
}

pub(super) fn run_transaction(
    ops: &mut TxOps<'_, '_>,
    state: &AppState,
    base: &str,
    mut plans: Vec<Planned>,
    ret: Return,
    patching: &Patching,
) -> Result<Vec<BundleEntry>, EntryError> {
    let defs = state.defs;
    let refs = lock_conditional_types(ops, &plans, defs)?;
    // 1. Identities: what each entry writes, and what its fullUrl stands for. An entry
    // whose conditions name other entries by fullUrl waits until those are known.
    let mut ids = Identities::default();
    let full_urls: HashSet<String> = plans.iter().filter_map(|p| p.full_url.clone()).collect();
    let waits: Vec<Vec<String>> = plans.iter().map(|p| named_entries(p, &full_urls)).collect();
    let mut known: HashSet<String> = HashSet::new();
    let mut pending: Vec<usize> = (0..plans.len()).collect();
    while !pending.is_empty() {
        let ready: Vec<usize> = pending
            .iter()
            .copied()
            .filter(|&k| waits[k].iter().all(|u| known.contains(u)))
            .collect();
        if ready.is_empty() {
            return Err(circular(&plans, &pending));
        }
        let mut done = vec![false; plans.len()];
        for &k in &ready {
            identify(ops, &mut plans[k], !waits[k].is_empty(), &mut ids)?;
            known.extend(plans[k].full_url.clone());
            done[k] = true;
        }
        pending.retain(|&k| !done[k]);
    }
    let Identities {
        map,
        existing,
        in_bundle,
        ..
    } = ids;
    // 2. Conditional references, then rewriting of every reference.
    let mut conditional = HashMap::new();
    // In entry order, so that the first unresolvable one is the one reported.
    let mut refs: Vec<(String, usize)> = refs.into_iter().collect();
    refs.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    for (r, index) in refs {
        let at = format!("Bundle.entry[{index}].resource");
        let (rt, query) = r.split_once('?').unwrap_or((&r, ""));
        // The same condition as an entry's own (`ifNoneExist`, conditional PUT): that
        // entry, whether it creates the resource or found it.
        if let Some(target) = in_bundle.get(&condition_key(rt, query)) {
            conditional.insert(r.clone(), target.clone());
            continue;
        }
        if !defs.is_resource_type(rt) {
            return Err(entry_err(
                index,
                ApiError::bad_at(
                    format!("conditional reference '{r}' names an unknown type"),
                    at,
                ),
            ));
        }
        let clauses = conditions(rt, query, &at).map_err(|e| entry_err(index, e))?;
        match ops.single_match(rt, &clauses).map_err(store_err(index))? {
            Some(id) => {
                conditional.insert(r.clone(), format!("{rt}/{id}"));
            }
            None => {
                return Err(entry_err(
                    index,
                    ApiError::NotFound(format!("conditional reference '{r}' matches no resource")),
                ))
            }
        }
    }
    for p in &mut plans {
        if let Some(r) = &mut p.resource {
            let mut missing = Vec::new();
            rewrite(r, &map, &conditional, &mut missing);
            if let Some(m) = missing.first() {
                let at = format!("Bundle.entry[{}].resource", p.index);
                return Err(entry_err(
                    p.index,
                    ApiError::bad_at(
                        format!("reference '{m}' is not the fullUrl of any entry"),
                        at,
                    ),
                ));
            }
        }
    }
    // 3. Run in the order of the spec, answer in the order of the request.
    let mut order: Vec<usize> = (0..plans.len()).collect();
    order.sort_by_key(|&i| (plans[i].method, i));
    let mut answers: Vec<Option<BundleEntry>> = vec![None; plans.len()];
    let mut plans: Vec<Option<Planned>> = plans.into_iter().map(Some).collect();
    // Creates that found no match of an `ifNoneExist` are written together, a group
    // of rows per statement (a round trip each on PostgreSQL), in the same order.
    let mut creates: Vec<(usize, Planned)> = Vec::new();
    for i in order {
        let Some(p) = plans[i].take() else { continue };
        let found = existing.get(&p.index).cloned();
        if p.method == Method::Post && found.is_none() {
            creates.push((i, p));
            continue;
        }
        flush_creates(ops, base, &mut creates, ret, &mut answers)?;
        let full_url = p.full_url.clone();
        let entry = execute(ops, state, base, p, found, ret, patching)?;
        answers[i] = Some(located(entry, base, full_url));
    }
    flush_creates(ops, base, &mut creates, ret, &mut answers)?;
    Ok(answers.into_iter().flatten().collect())
}

/// Writes the creates gathered so far ([`execute_creates`]) and files their answers.
fn flush_creates(
    ops: &mut TxOps<'_, '_>,
    base: &str,
    creates: &mut Vec<(usize, Planned)>,
    ret: Return,
    answers: &mut [Option<BundleEntry>],
) -> Result<(), EntryError> {
    if creates.is_empty() {
        return Ok(());
    }
    let (slots, plans): (Vec<usize>, Vec<Planned>) = std::mem::take(creates).into_iter().unzip();
    let full_urls: Vec<Option<String>> = plans.iter().map(|p| p.full_url.clone()).collect();
    let entries = execute_creates(ops, plans, ret)?;
    for ((i, entry), full_url) in slots.into_iter().zip(entries).zip(full_urls) {
        answers[i] = Some(located(entry, base, full_url));
    }
    Ok(())
}

/// The answer names the resource by its URL on this server.
fn located(mut entry: BundleEntry, base: &str, full_url: Option<String>) -> BundleEntry {
    let location = entry.response.as_ref().and_then(|r| r.location.clone());
    entry.full_url = match location
        .as_deref()
        .and_then(|l| l.split("/_history/").next())
    {
        Some(path) => Some(format!("{base}/{path}")),
        None => full_url,
    };
    entry
}
