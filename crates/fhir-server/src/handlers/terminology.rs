//! The terminology operations over HTTP (fhir-terminology does the work):
//! `CodeSystem/$lookup`, `CodeSystem/$validate-code`, `CodeSystem/$subsumes`,
//! `ValueSet/$validate-code`, `ValueSet/$expand` and `ConceptMap/$translate`, at the
//! type level and — for all but `$lookup` — the instance level (the stored resource's
//! `url`), with parameters from the query string or a POSTed Parameters resource. They
//! answer from the code systems, value sets and concept maps of the definitions
//! packages and, for a resource no package defines, from those written through the API
//! (found by `url`); search's `:in`/`:not-in` use the same
//! ([`expand_stored_value_sets`]).

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use fhir_model::terminology::Terminology;
use fhir_terminology::gather::{needs_gathering, Kind};
use fhir_terminology::{Params, Stamp};

use crate::access::scopes::Interaction;
use crate::error::ApiError;
use crate::guard;
use crate::http::negotiate::output;
use crate::http::respond;
use crate::state::{check_id, AppState};
use crate::stored_terminology::{Expansion, Focus, Gathered};

type Result<T> = std::result::Result<T, ApiError>;

mod search;

pub(crate) use search::expand_stored_value_sets;

async fn params(state: &AppState, req: &HttpRequest, payload: web::Payload) -> Result<Params> {
    Ok(Params(
        crate::http::params::operation_params(state.max_body_bytes, req, payload).await?,
    ))
}

/// The canonical URL of a stored CodeSystem, ValueSet or ConceptMap (instance-level
/// calls).
async fn stored_url(state: &AppState, res_type: &'static str, id: &str) -> Result<String> {
    check_id(id)?;
    let sid = id.to_string();
    let stored = state
        .blocking(move |s| s.read(res_type, &sid))
        .await?
        .filter(|s| !s.deleted)
        .ok_or_else(|| ApiError::NotFound(format!("{res_type}/{id} is not known")))?;
    let value = fhir_model::json::parse(stored.content.as_bytes())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    match (value["url"].as_str(), value["version"].as_str()) {
        // This resource, not another version of its URL.
        (Some(url), Some(version)) => Ok(format!("{url}|{version}")),
        (Some(url), None) => Ok(url.to_string()),
        (None, _) => Err(ApiError::Unprocessable(
            format!("{res_type}/{id} has no url: terminology operations find code systems, value sets and concept maps by their canonical URL"),
            Some(format!("{res_type}.url")),
        )),
    }
}

/// The canonical URL a request is about: the instance's, else the `url` (or, for code
/// system operations, the `system`, or the system of the coding given).
/// With a version (`valueSetVersion`, `version`, `conceptMapVersion`, a coding's
/// `version`), the URL is `url|version`: that version is used.
fn named_url(op: Op, p: &Params, instance: Option<&str>) -> Option<String> {
    let versioned = |url: &str, version: Option<&str>| match version {
        Some(v) if !url.contains('|') && !v.is_empty() => format!("{url}|{v}"),
        _ => url.to_string(),
    };
    if let Some(url) = instance {
        return Some(url.to_string());
    }
    if let Some(url) = p.text("url") {
        let version = match op.kind() {
            Kind::ValueSet => p.text("valueSetVersion"),
            Kind::CodeSystem => p.text("version"),
            Kind::ConceptMap => p.text("conceptMapVersion"),
        };
        return Some(versioned(url, version));
    }
    if !matches!(op, Op::Lookup | Op::ValidateCodeSystem | Op::Subsumes) {
        return None;
    }
    if let Some(system) = p.text("system") {
        return Some(versioned(system, p.text("version")));
    }
    ["coding", "codingA", "codingB"]
        .iter()
        .find_map(|n| p.json(n))
        .or_else(|| p.json("codeableConcept").map(|cc| &cc["coding"][0]))
        .and_then(|c| {
            let system = c["system"].as_str()?;
            Some(versioned(system, c["version"].as_str()))
        })
}

/// Which operation, on which type.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Lookup,
    ValidateCodeSystem,
    Subsumes,
    ValidateValueSet,
    Expand,
    Translate,
}

impl Op {
    fn kind(self) -> Kind {
        match self {
            Op::Lookup | Op::ValidateCodeSystem | Op::Subsumes => Kind::CodeSystem,
            Op::ValidateValueSet | Op::Expand => Kind::ValueSet,
            Op::Translate => Kind::ConceptMap,
        }
    }

    fn res_type(self) -> &'static str {
        self.kind().res_type()
    }
}

/// The packages' terminology, or — when the request names a resource no package
/// defines — what the stored resources it reaches make ([`crate::stored_terminology`]).
async fn terminology(
    state: &AppState,
    op: Op,
    url: Option<String>,
    given: &Arc<Vec<serde_json::Value>>,
) -> Result<Option<Arc<Terminology>>> {
    Ok(terminology_about(state, op, url, given, None)
        .await?
        .map(|g| g.t))
}

/// [`terminology`] for a request about `focus` (the codes it names): code systems
/// kept as rows are read around them (`partly` says which).
async fn terminology_about(
    state: &AppState,
    op: Op,
    url: Option<String>,
    given: &Arc<Vec<serde_json::Value>>,
    focus: Option<Focus>,
) -> Result<Option<Gathered>> {
    let core = state.defs.terminology();
    let Some(url) = url else { return Ok(None) };
    let kind = op.kind();
    if !given.is_empty() {
        let given = given.clone();
        let gathered = state
            .blocking(move |s| {
                crate::stored_terminology::gathered_given(s, core, kind, &url, &given, focus)
            })
            .await?;
        return Ok(Some(gathered?));
    }
    let packaged = !needs_gathering(core, op.kind(), &url);
    // A package's resource is gathered only to apply stored supplements to the code
    // systems it reaches (a concept map reaches none).
    if packaged && (op.kind() == Kind::ConceptMap || !supplements_stored(state).await?) {
        return Ok(None);
    }
    let cache = state.terminology.clone();
    let gathered = state
        .blocking(move |s| match focus {
            Some(focus) => {
                crate::stored_terminology::gathered_about(s, &cache, core, kind, &url, focus)
            }
            None => Ok(
                crate::stored_terminology::gathered(s, &cache, core, kind, &url)?.map(|t| {
                    Gathered {
                        t,
                        partly: Vec::new(),
                    }
                }),
            ),
        })
        .await?;
    match gathered {
        Ok(g) => Ok(Some(g)),
        // The package's own copy answers when gathering it with supplements fails.
        Err(_) if packaged => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The most supplements one value set may need.
const MAX_SUPPLEMENTS: usize = 8;

/// The supplements a value set needs (`valueset-supplement`) are all here — given with
/// the request, in a package, or stored — or the request is refused (422), naming the
/// missing ones as HL7's terminology servers do.
async fn supplements_found(
    state: &AppState,
    required: &[String],
    given: &Arc<Vec<serde_json::Value>>,
) -> Result<()> {
    let mut wanted: Vec<&String> = Vec::new();
    for url in required {
        if !wanted.contains(&url) {
            wanted.push(url);
        }
    }
    if wanted.len() > MAX_SUPPLEMENTS {
        return Err(ApiError::BadRequest {
            message: format!(
                "the value set needs {} supplements: at most {MAX_SUPPLEMENTS} are looked up",
                wanted.len()
            ),
            expression: None,
            code: fhir_model::IssueType::TooCostly,
        });
    }
    let core = state.defs.terminology();
    let mut missing = Vec::new();
    for url in wanted {
        let plain = fhir_model::terminology::canonical_url(url);
        let given_here = given
            .iter()
            .any(|r| r["resourceType"] == "CodeSystem" && r["url"] == plain);
        if given_here || core.code_system(plain).is_some() {
            continue;
        }
        let found = match terminology(state, Op::Lookup, Some(url.clone()), given).await {
            Ok(Some(t)) => t.code_system(plain).is_some(),
            Ok(None) => false,
            // Unknown or unreadable: missing.
            Err(ApiError::TerminologyNotFound(_) | ApiError::Unprocessable(..)) => false,
            Err(e) => return Err(e),
        };
        if !found {
            missing.push(url.as_str());
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let text = format!("Required supplements not found: [{}]", missing.join(", "));
    let outcome = fhir_model::OperationOutcome::of(fhir_model::Issue::error(
        fhir_model::IssueType::BusinessRule,
        text,
    ));
    Err(ApiError::Invalid(outcome, StatusCode::UNPROCESSABLE_ENTITY))
}

/// The most code systems outside the value set one `$validate-code` looks up for its
/// codings (the others are answered as not known).
const MAX_CODING_SYSTEMS: usize = 8;

/// The code systems the codings name that the value set's terminology does not reach
/// (a code outside the value set is then checked against its own code system:
/// unknown there, or only not in the value set); `None` when it reaches them all.
async fn coding_systems(
    state: &AppState,
    t: &Terminology,
    p: &Params,
    given: &Arc<Vec<serde_json::Value>>,
) -> Result<Option<Terminology>> {
    let missing: Vec<String> = fhir_terminology::coding_systems(p)
        .into_iter()
        .filter(|s| t.code_system(s).is_none())
        .take(MAX_CODING_SYSTEMS)
        .collect();
    let mut extra: Option<Terminology> = None;
    let core = state.defs.terminology();
    for system in missing {
        let named = Some(system.clone());
        let focus = Some(Focus::of(p, state.terminology_rows_from));
        let found = match terminology_about(state, Op::ValidateCodeSystem, named, given, focus)
            .await
            .map(|g| g.map(|g| g.t))
        {
            Ok(found) => found,
            // Unknown or unreadable: the answer says the code system is not known.
            Err(
                ApiError::TerminologyNotFound(_)
                | ApiError::Unprocessable(..)
                | ApiError::BadRequest { .. },
            ) => continue,
            Err(e) => return Err(e),
        };
        let cs = match &found {
            Some(found) => found.code_system(&system),
            None => core.code_system(&system),
        };
        let Some(cs) = cs else { continue };
        let e = extra.get_or_insert_with(Terminology::default);
        e.code_systems.insert(cs.url.clone(), cs.clone());
    }
    Ok(extra)
}

/// A value set given in the request (`valueSet`) is used as if it were known by its
/// `url` (one is made up, `urn:uuid:…`, when it has none).
fn inline_value_set(p: &mut Params, given: &mut Vec<serde_json::Value>) {
    let Some(mut vs) = p.json("valueSet").cloned() else {
        return;
    };
    if vs["resourceType"] != "ValueSet" {
        return;
    }
    let url = match vs["url"].as_str() {
        Some(u) => u.to_string(),
        None => {
            let u = format!("urn:uuid:{}", uuid::Uuid::new_v4());
            vs["url"] = serde_json::Value::String(u.clone());
            u
        }
    };
    if p.text("url").is_none() {
        p.0.push(("url".into(), serde_json::Value::String(url)));
    }
    given.push(vs);
}

/// The code systems, value sets and concept maps a request gives for its own use
/// (`tx-resource`, as HL7's terminology servers and their test runner pass them).
fn given_resources(p: &Params) -> Vec<serde_json::Value> {
    p.0.iter()
        .filter(|(n, v)| n == "tx-resource" && v.is_object())
        .map(|(_, v)| v.clone())
        .filter(|r| {
            matches!(
                r["resourceType"].as_str(),
                Some("CodeSystem" | "ValueSet" | "ConceptMap")
            )
        })
        .collect()
}

/// The language an `Accept-Language` header prefers (the highest `q`, the first of
/// equal ones; `*` says nothing): the displays' language when `displayLanguage` is not
/// given (the terminology ecosystem's language rules).
fn accepted_language(req: &HttpRequest) -> Option<String> {
    let header = req
        .headers()
        .get(actix_web::http::header::ACCEPT_LANGUAGE)?
        .to_str()
        .ok()?;
    let mut best: Option<(f32, &str)> = None;
    for item in header.split(',') {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or("").trim();
        // RFC 9110: a weight is 0 to 1; one that is not a number counts as 0.
        let q = match parts.find_map(|p| p.trim().strip_prefix("q=")) {
            None => 1.0,
            Some(q) => q.trim().parse::<f32>().unwrap_or(0.0).clamp(0.0, 1.0),
        };
        if tag.is_empty() || tag == "*" || q <= 0.0 {
            continue;
        }
        if best.is_none_or(|(b, _)| q > b) {
            best = Some((q, tag));
        }
    }
    best.map(|(_, tag)| tag.to_string())
}

/// Whether supplements are stored: known in memory while no terminology is written
/// (on a node alone with its database), else asked of the database.
async fn supplements_stored(state: &AppState) -> Result<bool> {
    // Read before the database is asked: a write meanwhile changes it.
    let generation = state.store.terminology_generation();
    if let Some(answer) = state.terminology.supplemented(generation) {
        return Ok(answer);
    }
    let answer = state
        .blocking(crate::stored_terminology::supplements_stored)
        .await?;
    state.terminology.keep_supplemented(generation, answer);
    Ok(answer)
}

/// The packages' and the stored concept maps a `$translate` without `url` chooses from
/// by `source` and `target`.
async fn maps_between(state: &AppState, p: &Params) -> Result<Arc<Terminology>> {
    let core = state.defs.terminology();
    let cache = state.terminology.clone();
    let (source, target) = (
        p.text("source").map(str::to_string),
        p.text("target").map(str::to_string),
    );
    let found = state
        .blocking(move |s| {
            crate::stored_terminology::maps_between(
                s,
                &cache,
                core,
                source.as_deref(),
                target.as_deref(),
            )
        })
        .await?;
    Ok(found?)
}

async fn run(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
    op: Op,
    id: Option<String>,
) -> Result<HttpResponse> {
    let out = output(req)?;
    guard::grant(req, Interaction::Read, op.res_type())?;
    // A value set's operations read the code systems it draws on (stored ones too,
    // through a value set given in the request).
    if op.kind() == Kind::ValueSet {
        guard::grant(req, Interaction::Read, "CodeSystem")?;
    }
    let mut p = params(state, req, payload).await?;
    if p.text("displayLanguage").is_none() {
        if let Some(language) = accepted_language(req) {
            p.0.push((
                "displayLanguage".into(),
                serde_json::Value::String(language),
            ));
        }
    }
    let instance = match id {
        Some(id) => Some(stored_url(state, op.res_type(), &id).await?),
        None => None,
    };
    let mut given = given_resources(&p);
    if matches!(op, Op::Expand | Op::ValidateValueSet) && instance.is_none() {
        inline_value_set(&mut p, &mut given);
    }
    let given = Arc::new(given);
    let focus = match op {
        Op::Translate => None,
        Op::Expand => Some(Focus {
            rows_from: state.terminology_rows_from,
            ..Focus::default()
        }),
        _ => Some(Focus::of(&p, state.terminology_rows_from)),
    };
    let gathered = match (op, named_url(op, &p, instance.as_deref())) {
        (Op::Translate, None) => Some(maps_between(state, &p).await?),
        (_, url) => match terminology_about(state, op, url, &given, focus).await? {
            Some(g) if op == Op::Expand && !g.partly.is_empty() => {
                let answer = expand_rows(state, &p, instance.as_deref(), &given, g).await?;
                return Ok(answered(&answer, out));
            }
            g => g.map(|g| g.t),
        },
    };
    let core = state.defs.terminology();
    if matches!(op, Op::Expand | Op::ValidateValueSet) {
        let t = gathered.as_deref().unwrap_or(core);
        let vs = named_url(op, &p, instance.as_deref()).and_then(|u| t.value_set(&u).cloned());
        if let Some(vs) = vs {
            supplements_found(state, &vs.required_supplements, &given).await?;
        }
    }
    let extra = match op {
        Op::ValidateValueSet => {
            let t = gathered.as_deref().unwrap_or(core);
            coding_systems(state, t, &p, &given).await?
        }
        _ => None,
    };
    // An expansion (of up to 500,000 codes, a text filter over them) runs on a
    // blocking thread, not on the HTTP worker; the other operations look codes up and
    // cost less than the move to another thread.
    // A value set given with the request is expanded afresh each time (not kept).
    let heavy =
        matches!(op, Op::Expand) || (matches!(op, Op::ValidateValueSet) && !given.is_empty());
    let answer = if heavy {
        web::block(move || {
            let t = gathered.as_deref().unwrap_or(core);
            operation(op, t, &p, instance.as_deref(), extra.as_ref())
        })
        .await??
    } else {
        let t = gathered.as_deref().unwrap_or(core);
        operation(op, t, &p, instance.as_deref(), extra.as_ref())?
    };
    Ok(answered(&answer, out))
}

/// The answer of an operation.
fn answered(answer: &serde_json::Value, out: crate::http::negotiate::Output) -> HttpResponse {
    let mut resp = respond::json(StatusCode::OK, answer, out);
    // Displays follow the Accept-Language header when no displayLanguage is given.
    resp.headers_mut().append(
        actix_web::http::header::VARY,
        actix_web::http::header::HeaderValue::from_static("Accept-Language"),
    );
    resp
}

/// `$expand` of a value set drawing on code systems kept as rows (`g` read them
/// partly): the store chooses the page, whose concepts are then gathered; a value set
/// that lists its codes of them has those read; one the store cannot page (other
/// filters, exclusions, hierarchies) is expanded in memory from the whole systems.
async fn expand_rows(
    state: &AppState,
    p: &Params,
    instance: Option<&str>,
    given: &Arc<Vec<serde_json::Value>>,
    g: Gathered,
) -> Result<serde_json::Value> {
    let url = fhir_terminology::expand::expanded_url(p, instance)?.to_string();
    if let Some(vs) = g.t.value_set(&url) {
        supplements_found(state, &vs.required_supplements, given).await?;
    }
    let (params, at) = (p.clone(), url.clone());
    let chosen = state
        .blocking(move |s| crate::stored_terminology::row_page(s, &g.t, &g.partly, &params, &at))
        .await?;
    // The page the store chose, or the codes to read (else: the whole systems).
    let (page, codes) = match chosen.transpose()? {
        Some(Expansion::Page(page)) => {
            let codes = page.codes.iter().map(|c| c.code.clone()).collect();
            (Some(page), Some(codes))
        }
        Some(Expansion::Listed(codes)) => (None, Some(codes)),
        None => (None, None),
    };
    let t = match codes {
        Some(codes) => {
            let focus = Focus {
                codes,
                around: false,
                rows_from: state.terminology_rows_from,
            };
            terminology_about(state, Op::Expand, Some(url), given, Some(focus))
                .await?
                .map(|g| g.t)
        }
        None => terminology(state, Op::Expand, Some(url), given).await?,
    };
    let core = state.defs.terminology();
    let (p, instance, stamp) = (p.clone(), instance.map(str::to_string), stamp());
    Ok(web::block(move || {
        let t = t.as_deref().unwrap_or(core);
        let instance = instance.as_deref();
        match page {
            Some(page) => fhir_terminology::expand::expand_page(
                t,
                &p,
                instance,
                stamp,
                page.total,
                &page.codes,
            ),
            None => fhir_terminology::expand(t, &p, instance, stamp),
        }
    })
    .await??)
}

/// A stamp for an expansion made now.
fn stamp() -> Stamp {
    Stamp {
        identifier: format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        timestamp: fhir_store::time::fhir_instant(fhir_store::time::now_millis()),
    }
}

/// The answer of `op` on terminology `t` (`url`: the resource of an instance-level
/// call; `extra`: code systems the codings name beyond the value set's).
fn operation(
    op: Op,
    t: &Terminology,
    p: &Params,
    url: Option<&str>,
    extra: Option<&Terminology>,
) -> std::result::Result<serde_json::Value, fhir_terminology::TxError> {
    match op {
        Op::Lookup => fhir_terminology::lookup(t, p),
        Op::ValidateCodeSystem => fhir_terminology::validate::code_system(t, p, url),
        Op::Subsumes => fhir_terminology::subsumes(t, p, url),
        Op::ValidateValueSet => fhir_terminology::validate::value_set_with(t, p, url, extra),
        Op::Translate => fhir_terminology::translate(t, p, url),
        Op::Expand => fhir_terminology::expand(t, p, url, stamp()),
    }
}

macro_rules! operation {
    ($type_level:ident, $instance:ident, $op:expr) => {
        pub async fn $type_level(
            state: web::Data<AppState>,
            req: HttpRequest,
            payload: web::Payload,
        ) -> Result<HttpResponse> {
            run(&state, &req, payload, $op, None).await
        }

        pub async fn $instance(
            state: web::Data<AppState>,
            req: HttpRequest,
            path: web::Path<(String,)>,
            payload: web::Payload,
        ) -> Result<HttpResponse> {
            run(&state, &req, payload, $op, Some(path.into_inner().0)).await
        }
    };
}

operation!(
    validate_code_system,
    validate_code_system_instance,
    Op::ValidateCodeSystem
);
operation!(subsumes, subsumes_instance, Op::Subsumes);
operation!(
    validate_value_set,
    validate_value_set_instance,
    Op::ValidateValueSet
);
operation!(expand, expand_instance, Op::Expand);
operation!(translate, translate_instance, Op::Translate);

/// `CodeSystem/$lookup` (type level only, as its OperationDefinition says).
pub async fn lookup(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse> {
    run(&state, &req, payload, Op::Lookup, None).await
}
