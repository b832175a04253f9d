//! Search (search.html): type, system and compartment level, GET and POST `_search`.
//! The query string is parsed by fhir-search into a typed AST, compiled to SQL by
//! fhir-store, and the page is answered as a `searchset` Bundle with paging links.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use fhir_model::{
    Bundle, BundleEntry, BundleType, EntrySearch, Issue, IssueType, OperationOutcome,
    SearchEntryMode,
};
use fhir_search::{
    Clause, ReferenceValue, SearchError, SearchQuery, SearchRegistry, SearchValue, SummaryMode,
    TotalMode,
};
use fhir_store::{Compartment, SearchCursor, SearchPage, SearchRequest, StoredResource, Total};

use crate::access::scopes::Interaction;
use crate::auth::{Access, Grant};
use crate::error::ApiError;
use crate::guard;
use crate::http::body::read_limited;
use crate::http::negotiate::{content_type, output};
use crate::http::prefer::{prefer, Handling};
use crate::http::respond;
use crate::state::{check_id, AppState};

const DEFAULT_COUNT: usize = 20;
const MAX_COUNT: usize = 1000;

type Result<T> = std::result::Result<T, ApiError>;

pub(crate) fn pairs_of(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub async fn type_search(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String,)>,
) -> Result<HttpResponse> {
    let (rt,) = path.into_inner();
    state.check_type(&rt)?;
    let pairs = pairs_of(req.query_string());
    run(&state, &req, Some(rt), pairs, None).await
}

/// `POST [type]/_search` with the parameters in a form body (and possibly the URL).
pub async fn type_search_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String,)>,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let (rt,) = path.into_inner();
    state.check_type(&rt)?;
    let pairs = form_pairs(&state, &req, payload).await?;
    run(&state, &req, Some(rt), pairs, None).await
}

pub async fn system_search_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    let pairs = form_pairs(&state, &req, payload).await?;
    run(&state, &req, None, pairs, None).await
}

async fn form_pairs(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Vec<(String, String)>> {
    match content_type(req).as_deref() {
        Some("application/x-www-form-urlencoded") | None => {}
        Some(other) => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "_search takes application/x-www-form-urlencoded parameters, not '{other}'"
            )))
        }
    }
    let body = read_limited(req, payload, state.max_body_bytes).await?;
    let mut pairs = pairs_of(req.query_string());
    let text =
        std::str::from_utf8(&body).map_err(|_| ApiError::bad("the form body is not UTF-8"))?;
    pairs.extend(pairs_of(text));
    Ok(pairs)
}

pub async fn system_search(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse> {
    let pairs = pairs_of(req.query_string());
    run(&state, &req, None, pairs, None).await
}

/// `GET [Compartment]/[id]/[type]`, e.g. `Patient/123/Observation` (`*` for all types).
pub async fn compartment_search(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse> {
    let (ctype, cid, rt) = path.into_inner();
    check_id(&cid)?;
    let registry = SearchRegistry::r4();
    let Some(def) = state.defs.compartment(&ctype) else {
        return Err(ApiError::NotFound(format!(
            "no compartment is defined for '{ctype}'"
        )));
    };
    let types: Vec<String> = if rt == "*" {
        fhir_search::compartment_types(registry, &ctype)
            .into_iter()
            .map(str::to_string)
            .collect()
    } else {
        state.check_type(&rt)?;
        if def.params_for(&rt).is_empty() {
            return Err(ApiError::NotFound(format!(
                "{rt} resources are not part of the {ctype} compartment"
            )));
        }
        vec![rt.clone()]
    };
    let params = types
        .iter()
        .map(|t| (t.clone(), def.params_for(t).to_vec()))
        .collect();
    let compartment = Compartment {
        resource_type: ctype,
        id: cid,
        params,
    };
    let mut pairs = pairs_of(req.query_string());
    if rt == "*" {
        pairs.retain(|(k, _)| k != "_type");
        pairs.push(("_type".into(), types.join(",")));
    }
    let rt = (rt != "*").then_some(rt);
    run(&state, &req, rt, pairs, Some(compartment)).await
}

fn search_error(e: SearchError) -> ApiError {
    match e {
        SearchError::UnknownResourceType(t) => {
            ApiError::NotFound(format!("unknown resource type '{t}'"))
        }
        other => match other.param().map(str::to_string) {
            Some(p) => ApiError::bad_at(other.to_string(), p),
            None => ApiError::bad(other.to_string()),
        },
    }
}

/// Our paging parameter: `a<rid>`/`b<rid>` (after/before, unsorted) or `o<offset>`.
fn take_cursor(pairs: &mut Vec<(String, String)>) -> Result<Option<SearchCursor>> {
    let Some(pos) = pairs.iter().position(|(k, _)| k == "_page") else {
        return Ok(None);
    };
    let (_, v) = pairs.remove(pos);
    SearchCursor::parse(&v)
        .map(Some)
        .ok_or_else(|| ApiError::bad_at(format!("_page '{v}' is not valid"), "_page"))
}

/// References given as absolute URLs of this server are local references.
fn localize(clause: &mut Clause, base: &str) {
    match clause {
        Clause::Has(h) => localize(&mut h.inner, base),
        Clause::List(_) | Clause::Text(_) | Clause::Near(_) => {}
        Clause::Filter(f) => f
            .expr
            .clauses_mut()
            .into_iter()
            .for_each(|c| localize(c, base)),
        Clause::Param(p) => {
            for v in &mut p.values {
                let SearchValue::Reference(ReferenceValue::Url { url, .. }) = v else {
                    continue;
                };
                let Some(rest) = url.strip_prefix(base).and_then(|r| r.strip_prefix('/')) else {
                    continue;
                };
                let mut parts = rest.split('/');
                if let (Some(t), Some(id), None) = (parts.next(), parts.next(), parts.next()) {
                    *v = SearchValue::Reference(ReferenceValue::Local {
                        resource_type: Some(t.to_string()),
                        id: id.to_string(),
                        version: None,
                    });
                }
            }
        }
    }
}

/// A search ready to run: parsed, confined to the caller's scopes, with what its
/// searchset Bundle needs (shared by the search endpoints and Bundle GET entries).
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub request: SearchRequest,
    /// The parameters as given (for the paging links), without `_page`.
    pairs: Vec<(String, String)>,
    access: Option<std::sync::Arc<Access>>,
    /// The search's path for its links, e.g. `/Observation`.
    path: String,
}

impl Prepared {
    /// Whether the search may return AuditEvents (the audit log is projected first).
    pub(crate) fn reads_audit_events(&self) -> bool {
        let types = &self.request.query.resource_types;
        types.is_empty()
            || types.iter().any(|t| t == "AuditEvent")
            || self
                .pairs
                .iter()
                .any(|(k, v)| k.contains("AuditEvent") || v.contains("AuditEvent"))
    }
}

/// Parses and confines a search of `resource_type` (all types when `None`).
pub(crate) fn prepare(
    state: &AppState,
    req: &HttpRequest,
    resource_type: Option<String>,
    mut pairs: Vec<(String, String)>,
    mut compartment: Option<Compartment>,
    path: String,
) -> Result<Prepared> {
    let strict = prefer(req).handling == Some(Handling::Strict);
    let cursor = take_cursor(&mut pairs)?;
    let registry = SearchRegistry::r4();
    let access = guard::access(req);
    let mut confined = pairs.clone();
    if let Some(a) = &access {
        confine(
            state,
            a,
            resource_type.as_deref(),
            &mut confined,
            &mut compartment,
        )?;
    }
    let mut query = fhir_search::parse(registry, resource_type.as_deref(), &confined, strict)
        .map_err(search_error)?;
    if !state.full_text {
        if let Some(c) = query.clauses.iter().find(|c| matches!(c, Clause::Text(_))) {
            return Err(ApiError::bad_at(
                format!(
                    "{}: full-text search is off on this server (--full-text off)",
                    c.name()
                ),
                c.name(),
            ));
        }
    }
    let linked_within = match &access {
        Some(a) => crate::auth::links::linked_scope(state.defs, a, &query)?,
        None => None,
    };
    let base = state.base(req);
    for c in &mut query.clauses {
        localize(c, &base);
    }
    let summary_count = query.result.summary == Some(SummaryMode::Count);
    let count = if summary_count {
        0
    } else {
        query
            .result
            .count
            .map_or(DEFAULT_COUNT, |c| c as usize)
            .min(MAX_COUNT)
    };
    let total = match query.result.total {
        _ if summary_count => Total::Accurate,
        Some(TotalMode::Accurate) => Total::Accurate,
        Some(TotalMode::None) => Total::None,
        Some(TotalMode::Estimate) | None => Total::Bounded(state.total_threshold),
    };
    Ok(Prepared {
        request: SearchRequest {
            query,
            count,
            cursor,
            total,
            sort_walk_above: state.sort_walk_above,
            sort_range_at_most: state.sort_range_at_most,
            compartment,
            linked_within,
        },
        pairs,
        access,
        path,
    })
}

/// Leaves out the included resources the caller may not read (blocking).
pub(crate) fn restrict_included(
    state: &AppState,
    prepared: &Prepared,
    page: &mut SearchPage,
) -> fhir_store::StoreResult<()> {
    if let Some(a) = &prepared.access {
        let included = std::mem::take(&mut page.included);
        page.included = readable(state, a, included)?;
    }
    Ok(())
}

/// The searchset Bundle of a page.
pub(crate) fn searchset(
    state: &AppState,
    base: &str,
    prepared: &Prepared,
    page: &SearchPage,
) -> Result<Bundle> {
    let r = &prepared.request;
    build_bundle(
        state,
        base,
        &prepared.path,
        &prepared.pairs,
        &r.query,
        r.cursor.clone(),
        page,
    )
}

async fn run(
    state: &AppState,
    req: &HttpRequest,
    resource_type: Option<String>,
    pairs: Vec<(String, String)>,
    compartment: Option<Compartment>,
) -> Result<HttpResponse> {
    let out = output(req)?;
    // Paging links are GETs, also for searches that came as POST `_search`.
    let path = req.path().strip_prefix("/fhir").unwrap_or(req.path());
    let path = path.strip_suffix("/_search").unwrap_or(path).to_string();
    let prepared = prepare(state, req, resource_type, pairs, compartment, path)?;
    state.sync_audit(prepared.reads_audit_events()).await?;
    let mut request = prepared.request.clone();
    super::terminology::expand_stored_value_sets(state, &mut request.query).await?;
    let mut page = state.searching(move |s| s.search(&request)).await?;
    if let (Some(_), Some(data)) = (
        &prepared.access,
        req.app_data::<web::Data<AppState>>().cloned(),
    ) {
        let p = prepared.clone();
        page = web::block(move || restrict_included(&data, &p, &mut page).map(|()| page))
            .await?
            .map_err(ApiError::from)?;
    }
    let base = state.base(req);
    if subset_of(&prepared.request.query).is_some() {
        let bundle = searchset(state, &base, &prepared, &page)?;
        return Ok(respond::json(StatusCode::OK, &bundle.to_value(), out));
    }
    let r = &prepared.request;
    let (bundle, stored) = frame(
        &base,
        &prepared.path,
        &prepared.pairs,
        &r.query,
        r.cursor.clone(),
        &page,
    );
    Ok(respond::bundle_as_stored(
        StatusCode::OK,
        bundle,
        &stored,
        out,
    ))
}

/// Confines a search to what the caller's scopes allow: unrestricted search of every
/// type for system-level searches; otherwise the patient's compartment and the
/// scopes' search constraints are added to the query.
fn confine(
    state: &AppState,
    access: &Access,
    resource_type: Option<&str>,
    pairs: &mut Vec<(String, String)>,
    compartment: &mut Option<Compartment>,
) -> Result<()> {
    let Some(rt) = resource_type else {
        let listed: Vec<String> = pairs
            .iter()
            .filter(|(k, _)| k == "_type")
            .flat_map(|(_, v)| v.split(',').map(|t| t.trim().to_string()))
            .filter(|t| !t.is_empty())
            .collect();
        let types = if listed.is_empty() {
            state.defs.resource_types().to_vec()
        } else {
            listed
        };
        for t in &types {
            if access.grant(Interaction::Search, t) != Some(Grant::All) {
                return Err(ApiError::Forbidden(format!(
                    "searching across types needs unrestricted search scopes for every type searched ({t} is not covered); search one type at a time"
                )));
            }
        }
        return Ok(());
    };
    let grant = access.grant(Interaction::Search, rt).ok_or_else(|| {
        ApiError::Forbidden(format!(
            "the granted scopes do not allow search (s) of {rt} resources"
        ))
    })?;
    if rt == "Binary" && grant != Grant::All {
        // Its access follows each Binary's securityContext, which a search cannot
        // confine to.
        return Err(ApiError::Forbidden(
            "under a confined grant, Binary resources are read one at a time (each with the access of its securityContext), not searched".into(),
        ));
    }
    let limits = guard::search_limits(&grant, rt)?;
    pairs.extend(limits.extra);
    let Some(patient) = limits.patient else {
        return Ok(());
    };
    if rt == "Patient" {
        pairs.push(("_id".into(), patient));
        return Ok(());
    }
    let params = state
        .defs
        .compartment("Patient")
        .map(|d| d.params_for(rt).to_vec())
        .unwrap_or_default();
    if params.is_empty() {
        return Ok(()); // not patient data (Practitioner, Medication…): readable
    }
    match compartment {
        Some(c) if c.resource_type == "Patient" && c.id == patient => Ok(()),
        Some(_) => Err(ApiError::Forbidden(format!(
            "a token for Patient/{patient} may only search that patient's compartment"
        ))),
        None => {
            *compartment = Some(Compartment {
                resource_type: "Patient".into(),
                id: patient,
                params: vec![(rt.to_string(), params)],
            });
            Ok(())
        }
    }
}

/// The included resources the caller may read; the rest are left out silently.
fn readable(
    state: &AppState,
    access: &Access,
    included: Vec<StoredResource>,
) -> fhir_store::StoreResult<Vec<StoredResource>> {
    let mut out = Vec::with_capacity(included.len());
    for r in included {
        let Some(grant) = access.grant(Interaction::Read, &r.res_type) else {
            continue;
        };
        if grant == Grant::All {
            out.push(r);
            continue;
        }
        let Ok(value) = fhir_model::json::parse(r.content.as_bytes()) else {
            continue;
        };
        // A Binary is read with the access of its securityContext, which a confined
        // grant is not checked against here: left out.
        if r.res_type == "Binary" && value.get("securityContext").is_some() {
            continue;
        }
        let (t, i) = (r.res_type.clone(), r.res_id.clone());
        if guard::allows_stored(
            state,
            &state.store,
            &grant,
            Interaction::Read,
            &t,
            &i,
            &value,
        )? {
            out.push(r);
        }
    }
    Ok(out)
}

fn link(base: &str, path: &str, pairs: &[(String, String)], page: Option<String>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    if let Some(p) = page {
        q.append_pair("_page", &p);
    }
    let q = q.finish();
    if q.is_empty() {
        format!("{base}{path}")
    } else {
        format!("{base}{path}?{q}")
    }
}

fn subset_of(query: &SearchQuery) -> Option<fhir_model::Subset> {
    use fhir_model::{Subset, Summary};
    match query.result.summary {
        Some(SummaryMode::True) => Some(Subset::Summary(Summary::True)),
        Some(SummaryMode::Text) => Some(Subset::Summary(Summary::Text)),
        Some(SummaryMode::Data) => Some(Subset::Summary(Summary::Data)),
        _ if !query.result.elements.is_empty() => {
            Some(Subset::Elements(query.result.elements.clone()))
        }
        _ => None,
    }
}

/// A searchset entry for a stored resource, without the resource (see
/// [`respond::bundle_as_stored`]).
pub(crate) fn entry(base: &str, stored: &StoredResource, mode: SearchEntryMode) -> BundleEntry {
    BundleEntry {
        full_url: Some(format!("{base}/{}/{}", stored.res_type, stored.res_id)),
        search: Some(EntrySearch {
            mode: Some(mode),
            score: None,
        }),
        ..Default::default()
    }
}

#[allow(clippy::too_many_arguments)]
fn build_bundle(
    state: &AppState,
    base: &str,
    path: &str,
    pairs: &[(String, String)],
    query: &SearchQuery,
    cursor: Option<SearchCursor>,
    page: &SearchPage,
) -> Result<Bundle> {
    let (mut bundle, stored) = frame(base, path, pairs, query, cursor, page);
    let subset = subset_of(query);
    for (e, stored) in bundle.entry.iter_mut().zip(stored) {
        if let Some(stored) = stored {
            let mut resource = fhir_model::json::parse(stored.content.as_bytes())
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            if let Some(s) = &subset {
                resource = state.defs.subset(&resource, s);
            }
            e.resource = Some(resource);
        }
    }
    Ok(bundle)
}

/// The searchset's links, total and entries, each entry of a stored resource without
/// its resource, which is beside it: that entry's stored version (`None`: the
/// OperationOutcome entry, which has its resource).
fn frame<'p>(
    base: &str,
    path: &str,
    pairs: &[(String, String)],
    query: &SearchQuery,
    cursor: Option<SearchCursor>,
    page: &'p SearchPage,
) -> (Bundle, Vec<Option<&'p StoredResource>>) {
    // Links state the search performed: ignored parameters are left out.
    let used: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| !query.ignored.iter().any(|i| &i.param == k))
        .cloned()
        .collect();
    let pairs = used.as_slice();
    let self_page = cursor.map(|c| c.token());
    let later_page = self_page.is_some();
    let mut bundle =
        Bundle::new(BundleType::Searchset).link("self", link(base, path, pairs, self_page));
    if later_page {
        // Back to the start of the same search (http.html#paging).
        bundle = bundle.link("first", link(base, path, pairs, None));
    }
    if let Some(t) = page.total {
        bundle = bundle.total(t as u64);
    }
    if let Some(next) = &page.next {
        bundle = bundle.link("next", link(base, path, pairs, Some(next.token())));
    }
    if let Some(previous) = &page.previous {
        bundle = bundle.link("previous", link(base, path, pairs, Some(previous.token())));
    }
    let mut stored = Vec::with_capacity(page.matches.len() + page.included.len() + 1);
    let found = page.matches.iter().map(|m| (m, SearchEntryMode::Match));
    let included = page.included.iter().map(|i| (i, SearchEntryMode::Include));
    for (m, mode) in found.chain(included) {
        bundle.entry.push(entry(base, m, mode));
        stored.push(Some(m));
    }
    if !query.ignored.is_empty() || page.includes_incomplete {
        let mut oo = OperationOutcome::new();
        if page.includes_incomplete {
            oo = oo.with(Issue::warning(
                IssueType::Incomplete,
                "_include/_revinclude :iterate stopped after 20 rounds; more resources could be included",
            ));
        }
        for i in &query.ignored {
            oo = oo.with(
                Issue::warning(
                    IssueType::NotSupported,
                    format!("{}: {} (ignored)", i.param, i.message),
                )
                .at(i.param.clone()),
            );
        }
        bundle.entry.push(BundleEntry {
            resource: Some(oo.to_value()),
            search: Some(EntrySearch {
                mode: Some(SearchEntryMode::Outcome),
                score: None,
            }),
            ..Default::default()
        });
        stored.push(None);
    }
    bundle.timestamp = Some(fhir_store::time::fhir_instant(
        fhir_store::time::now_millis(),
    ));
    (bundle, stored)
}
