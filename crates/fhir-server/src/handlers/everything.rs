//! Patient `$everything` (patient-operation-everything.html of FHIR R4):
//! `GET Patient/[id]/$everything` and `GET Patient/$everything` answer a `searchset`
//! Bundle of the Patient compartment (the patient included) with `_since`, `_type` and
//! `_count` paging (`next` links keyed on `rid`), plus, on each page, the resources the
//! page's resources refer to that are outside the compartment (Practitioner,
//! Organization, Location, Medication…). `start`/`end` are not supported yet: they are
//! reported in an OperationOutcome entry and ignored.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use fhir_model::{
    Bundle, BundleEntry, BundleType, EntrySearch, Issue, IssueType, OperationOutcome,
    SearchEntryMode,
};
use fhir_store::ExportQuery;

use crate::error::ApiError;
use crate::export::plan::patient_compartment;
use crate::http::negotiate::output;
use crate::http::respond;
use crate::state::{check_id, AppState};

use super::search::entry;

type Result<T> = std::result::Result<T, ApiError>;

const DEFAULT_COUNT: usize = 100;
const MAX_COUNT: usize = 1000;

/// The parameters of one `$everything` page.
struct Params {
    since: Option<i64>,
    types: Vec<String>,
    count: usize,
    after: i64,
    /// Parameters for the paging links (all but `_page`).
    pairs: Vec<(String, String)>,
    ignored: Vec<String>,
}

pub async fn instance(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String,)>,
) -> Result<HttpResponse> {
    let (id,) = path.into_inner();
    check_id(&id)?;
    // Refused before the Patient is looked up: a 404 or 410 would tell a client
    // confined to another patient whether this one exists.
    confine(&state, &req, Some(id.clone()), &mut Vec::new())?;
    let pid = id.clone();
    let patient = state.blocking(move |s| s.read("Patient", &pid)).await?;
    match patient {
        None => Err(ApiError::NotFound(format!("Patient/{id} is not known"))),
        Some(p) if p.deleted => Err(ApiError::Gone(format!("Patient/{id} was deleted"))),
        Some(_) => everything(&state, &req, Some(id)).await,
    }
}

pub async fn type_level(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse> {
    everything(&state, &req, None).await
}

fn parse(state: &AppState, req: &HttpRequest) -> Result<Params> {
    let mut p = Params {
        since: None,
        types: Vec::new(),
        count: DEFAULT_COUNT,
        after: 0,
        pairs: Vec::new(),
        ignored: Vec::new(),
    };
    for (k, v) in form_urlencoded::parse(req.query_string().as_bytes()) {
        let bad = |what: &str| ApiError::bad_at(format!("{k} '{v}' is not {what}"), k.clone());
        match k.as_ref() {
            "_since" => {
                let ms = fhir_store::time::parse_fhir_instant(&v);
                p.since = Some(ms.ok_or_else(|| bad("an instant"))?);
            }
            "_type" => {
                for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    if !state.defs.is_resource_type(t) {
                        return Err(ApiError::bad_at(
                            format!("_type names '{t}', which is not a resource type"),
                            "_type",
                        ));
                    }
                    p.types.push(t.to_string());
                }
            }
            "_count" => {
                let n: usize = v.parse().map_err(|_| bad("a number"))?;
                p.count = n.clamp(1, MAX_COUNT);
            }
            "_page" => {
                let rid = v.strip_prefix('a').and_then(|n| n.parse().ok());
                p.after = rid.ok_or_else(|| bad("a page of this operation"))?;
                continue;
            }
            "start" | "end" => p.ignored.push(k.to_string()),
            _ => {}
        }
        p.pairs.push((k.into_owned(), v.into_owned()));
    }
    Ok(p)
}

/// With authentication on: a patient-scoped token sees its own patient only, and only
/// types it may read (in full or in that patient's compartment) are returned
/// ([`crate::access::decide_everything`]).
fn confine(
    state: &AppState,
    req: &HttpRequest,
    id: Option<String>,
    types: &mut Vec<String>,
) -> Result<Option<String>> {
    let caller = crate::guard::access(req);
    let ctx = crate::guard::context(state, caller.as_deref());
    let (id, confined) =
        crate::access::decide_everything(&ctx, id, types, state.defs.resource_types())?;
    *types = confined;
    Ok(id)
}

/// Types referenced resources may have: outside the compartment, and within `_type`.
fn include_types(state: &AppState, types: &[String]) -> Vec<String> {
    let compartment = state.defs.compartment("Patient");
    state
        .defs
        .resource_types()
        .iter()
        .filter(|t| compartment.is_some_and(|c| c.params_for(t).is_empty()))
        .filter(|t| types.is_empty() || types.contains(t))
        .cloned()
        .collect()
}

async fn everything(
    state: &AppState,
    req: &HttpRequest,
    id: Option<String>,
) -> Result<HttpResponse> {
    let out = output(req)?;
    let mut p = parse(state, req)?;
    let id = confine(state, req, id, &mut p.types)?;
    let query = ExportQuery {
        types: p.types.clone(),
        since: p.since,
        population: patient_compartment(state.defs, id.map(|i| vec![i])),
        filters: Vec::new(),
        until: None,
        at: None,
    };
    let referable = include_types(state, &p.types);
    let (count, after) = (p.count, p.after);
    let (matches, included, has_next) = state
        .searching(move |s| {
            let mut page = s.export_page(&query, after, count + 1)?;
            let has_next = page.len() > count;
            page.truncate(count);
            let rids: Vec<i64> = page.iter().map(|(rid, _)| *rid).collect();
            let included = s.referenced(&rids, &referable)?;
            Ok((page, included, has_next))
        })
        .await?;
    let base = state.base(req);
    let path = req.path().strip_prefix("/fhir").unwrap_or(req.path());
    let mut bundle = Bundle::new(BundleType::Searchset).link(
        "self",
        link(&base, path, &p.pairs, (after > 0).then_some(after)),
    );
    if let (true, Some((last, _))) = (has_next, matches.last()) {
        bundle = bundle.link("next", link(&base, path, &p.pairs, Some(*last)));
    }
    let found = matches.iter().map(|(_, m)| (m, SearchEntryMode::Match));
    let referenced = included.iter().map(|(_, i)| (i, SearchEntryMode::Include));
    let mut stored = Vec::with_capacity(matches.len() + included.len() + 1);
    for (m, mode) in found.chain(referenced) {
        bundle.entry.push(entry(&base, m, mode));
        stored.push(Some(m));
    }
    if !p.ignored.is_empty() {
        bundle.entry.push(ignored_entry(&p.ignored));
        stored.push(None);
    }
    bundle.timestamp = Some(fhir_store::time::fhir_instant(
        fhir_store::time::now_millis(),
    ));
    Ok(respond::bundle_as_stored(
        StatusCode::OK,
        bundle,
        &stored,
        out,
    ))
}

fn link(base: &str, path: &str, pairs: &[(String, String)], after: Option<i64>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    if let Some(rid) = after {
        q.append_pair("_page", &format!("a{rid}"));
    }
    match q.finish() {
        q if q.is_empty() => format!("{base}{path}"),
        q => format!("{base}{path}?{q}"),
    }
}

fn ignored_entry(params: &[String]) -> BundleEntry {
    let mut oo = OperationOutcome::new();
    for name in params {
        oo = oo.with(
            Issue::warning(
                IssueType::NotSupported,
                format!("{name}: care-date limits are not supported yet (ignored)"),
            )
            .at(name.clone()),
        );
    }
    BundleEntry {
        resource: Some(oo.to_value()),
        search: Some(EntrySearch {
            mode: Some(SearchEntryMode::Outcome),
            score: None,
        }),
        ..Default::default()
    }
}
