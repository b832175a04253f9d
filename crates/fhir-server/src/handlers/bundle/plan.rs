//! Planning a Bundle's entries before anything is written: validation of the
//! resources, the entry URLs, conditions, patches, and the scope checks of each entry.

use super::*;

/// Validates the resources that POST and PUT entries write (all at once, off the
/// executor): for each entry, the 422 it fails with, if any.
pub(super) async fn validate_entries(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    entries: &mut [Value],
) -> Result<Vec<Option<ApiError>>, ApiError> {
    let strictness = crate::handlers::validate::strictness(state, req);
    let writes = |e: &Value| {
        matches!(
            e.get("request")
                .and_then(|r| r.get("method"))
                .and_then(Value::as_str),
            Some("POST" | "PUT")
        )
    };
    // Moved out for the validating thread and put back after.
    let resources = entries
        .iter_mut()
        .map(|e| {
            let checked = strictness != crate::validation::Strictness::Lenient && writes(e);
            e.as_object_mut()
                .filter(|_| checked)
                .and_then(|o| o.shift_remove("resource"))
        })
        .collect();
    let (resources, reports) = crate::handlers::validate::check_many(state, resources).await?;
    for (e, r) in entries.iter_mut().zip(resources) {
        if let (Some(o), Some(r)) = (e.as_object_mut(), r) {
            o.insert("resource".into(), r);
        }
    }
    Ok(reports
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.filter(|r| crate::validation::rejects(r, strictness))
                .map(|r| {
                    relocate(
                        ApiError::Invalid(
                            r.to_operation_outcome(),
                            StatusCode::UNPROCESSABLE_ENTITY,
                        ),
                        &format!("Bundle.entry[{i}].resource"),
                    )
                })
        })
        .collect())
}

/// The validation failure of entry `i`, if any (taken: each is answered once).
pub(super) fn invalid(verdicts: &[Option<ApiError>], i: usize) -> Option<ApiError> {
    match verdicts.get(i) {
        Some(Some(ApiError::Invalid(oo, status))) => Some(ApiError::Invalid(oo.clone(), *status)),
        _ => None,
    }
}

pub(super) fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The parts of an entry's `request.url`.
pub(super) struct EntryUrl {
    resource_type: String,
    id: Option<String>,
    version: Option<i64>,
    query: Option<String>,
}

/// `Patient`, `Patient/1`, `Patient/1/_history/2`, `Patient?x=y`, possibly absolute.
pub(super) fn parse_url(
    state: &AppState,
    base: &str,
    url: &str,
    at: &str,
) -> Result<EntryUrl, ApiError> {
    let rel = url
        .strip_prefix(base)
        .map(|r| r.trim_start_matches('/'))
        .unwrap_or(url);
    let (path, query) = match rel.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (rel, None),
    };
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let bad = || {
        ApiError::bad_at(
            format!("request.url '{url}' is not a resource URL this server handles"),
            at,
        )
    };
    let (rt, id, version) = match parts.as_slice() {
        [t] => (*t, None, None),
        [t, id] => (*t, Some(*id), None),
        [t, id, "_history", v] => (*t, Some(*id), Some(v.parse::<i64>().map_err(|_| bad())?)),
        _ => return Err(bad()),
    };
    if !state.defs.is_resource_type(rt) {
        return Err(ApiError::bad_at(
            format!("request.url names an unknown resource type '{rt}'"),
            at,
        ));
    }
    if id.is_some_and(|i| !valid_id(i)) {
        return Err(ApiError::bad_at(
            format!("request.url '{url}' has an invalid id"),
            at,
        ));
    }
    Ok(EntryUrl {
        resource_type: rt.to_string(),
        id: id.map(str::to_string),
        version,
        query,
    })
}

pub(super) fn conditions(rt: &str, query: &str, at: &str) -> Result<Vec<Clause>, ApiError> {
    let parsed = fhir_search::parse_query_string(SearchRegistry::r4(), Some(rt), query, true)
        .map_err(|e| ApiError::bad_at(e.to_string(), at))?;
    if parsed.clauses.is_empty() {
        return Err(ApiError::bad_at(
            "a conditional request needs search parameters",
            at,
        ));
    }
    Ok(parsed.clauses)
}

/// The patch a PATCH entry carries: a FHIRPath Patch Parameters resource, or a JSON
/// Patch in a Binary (`contentType` application/json-patch+json).
pub(super) fn entry_patch(resource: &Value, at: &str) -> Result<Patch, ApiError> {
    if str_at(resource, "resourceType") == Some("Parameters") {
        return crate::handlers::patch::fhirpath_patch(resource, Some(at));
    }
    let ok_type = str_at(resource, "contentType")
        .is_some_and(|c| c.starts_with("application/json-patch+json"));
    if str_at(resource, "resourceType") != Some("Binary") || !ok_type {
        return Err(ApiError::bad_at(
            "a PATCH entry carries a FHIRPath Patch (Parameters) or a Binary with contentType application/json-patch+json",
            at,
        ));
    }
    let data = str_at(resource, "data").unwrap_or("");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| ApiError::bad_at("Binary.data is not base64", at))?;
    let doc = parse_json(&bytes)?;
    serde_json::from_value(doc)
        .map(Patch::Json)
        .map_err(|e| ApiError::bad_at(format!("not a valid JSON Patch: {e}"), at))
}

pub(super) fn plan(
    state: &AppState,
    req: &HttpRequest,
    base: &str,
    index: usize,
    mut entry: Value,
) -> Result<Planned, ApiError> {
    // The resource is moved out of the entry: a large Bundle is held once.
    let mut resource = entry
        .as_object_mut()
        .and_then(|o| o.shift_remove("resource"));
    let entry = &entry;
    let at = format!("Bundle.entry[{index}]");
    let request = entry
        .get("request")
        .ok_or_else(|| ApiError::bad_at("the entry has no request", &at))?;
    let req_at = format!("{at}.request");
    let method = match str_at(request, "method") {
        Some("GET") | Some("HEAD") => Method::Get,
        Some("POST") => Method::Post,
        Some("PUT") => Method::Put,
        Some("PATCH") => Method::Patch,
        Some("DELETE") => Method::Delete,
        other => {
            return Err(ApiError::bad_at(
                format!("request.method {other:?} is not GET, HEAD, POST, PUT, PATCH or DELETE"),
                req_at,
            ))
        }
    };
    let url = str_at(request, "url")
        .ok_or_else(|| ApiError::bad_at("the entry's request has no url", &req_at))?;
    let url_at = format!("{req_at}.url");
    let EntryUrl {
        resource_type: rt,
        id,
        version,
        query,
    } = parse_url(state, base, url, &url_at)?;
    let method = match method {
        Method::Get if id.is_none() => Method::Search,
        m => m,
    };
    let mut pre = Precondition::default();
    if let Some(m) = str_at(request, "ifMatch") {
        pre.if_match = Some(parse_etag_version(m).ok_or_else(|| {
            ApiError::bad_at(
                format!("ifMatch '{m}' is not a version ETag"),
                format!("{req_at}.ifMatch"),
            )
        })?);
    }
    pre.if_none_match_any = str_at(request, "ifNoneMatch") == Some("*");
    let modified_since = match str_at(request, "ifModifiedSince") {
        Some(t) => Some(fhir_store::time::parse_fhir_instant(t).ok_or_else(|| {
            ApiError::bad_at(
                format!("ifModifiedSince '{t}' is not an instant"),
                format!("{req_at}.ifModifiedSince"),
            )
        })?),
        None => None,
    };
    let read_if = (
        str_at(request, "ifNoneMatch").map(NoneMatch::parse),
        modified_since,
    );
    let raw_if_none_exist =
        str_at(request, "ifNoneExist").map(|q| q.split_once('?').map_or(q, |(_, q)| q).to_string());
    let if_none_exist = raw_if_none_exist
        .as_deref()
        .map(|q| conditions(&rt, q, &format!("{req_at}.ifNoneExist")))
        .transpose()?;
    let conditions = match method {
        Method::Search | Method::Get => None,
        _ => query
            .as_deref()
            .map(|q| conditions(&rt, q, &url_at))
            .transpose()?,
    };
    let res_at = format!("{at}.resource");
    let mut patch = None;
    match method {
        Method::Post | Method::Put => {
            let r = resource
                .as_mut()
                .ok_or_else(|| ApiError::bad_at("the entry has no resource", &res_at))?;
            check_resource(state, req, r, &rt).map_err(|e| relocate(e, &res_at))?;
            if rt == "Subscription" {
                crate::subscriptions::check_write(state.subscriptions.as_ref(), req, r)
                    .map_err(|e| relocate(e, &res_at))?;
            }
            if rt == "Basic" {
                crate::subscriptions::check_topic_write(state.subscriptions.as_ref(), r)
                    .map_err(|e| relocate(e, &res_at))?;
            }
            if method == Method::Put && id.is_none() && conditions.is_none() {
                return Err(ApiError::bad_at(
                    "PUT needs Type/id or a conditional Type?query url",
                    url_at,
                ));
            }
            if let (Method::Put, Some(id), Some(body_id)) = (method, &id, str_at(r, "id")) {
                if id != body_id {
                    return Err(ApiError::bad_at(
                        format!("the resource id '{body_id}' does not match request.url"),
                        format!("{res_at}.id"),
                    ));
                }
            }
        }
        Method::Patch => {
            let r = resource.as_ref().ok_or_else(|| {
                ApiError::bad_at(
                    "the PATCH entry has no resource (a Parameters or a Binary)",
                    &res_at,
                )
            })?;
            patch = Some(entry_patch(r, &res_at)?);
            if id.is_none() && conditions.is_none() {
                return Err(ApiError::bad_at(
                    "PATCH needs Type/id or Type?query",
                    url_at,
                ));
            }
        }
        Method::Delete if id.is_none() && conditions.is_none() => {
            return Err(ApiError::bad_at(
                "DELETE needs Type/id or Type?query",
                url_at,
            ))
        }
        _ => {}
    }
    let search = match method {
        // The search is confined to the caller's scopes as a search request is.
        Method::Search => Some(Box::new(
            prepare(
                state,
                req,
                Some(rt.clone()),
                pairs_of(query.as_deref().unwrap_or("")),
                None,
                format!("/{rt}"),
            )
            .map_err(|e| relocate(e, &url_at))?,
        )),
        _ => None,
    };
    let conditional = conditions.is_some() || if_none_exist.is_some();
    let raw_conditions = conditions.as_ref().and(query);
    let confine = match method {
        Method::Search => None,
        _ => authorize(state, req, method, &rt, conditional, resource.as_ref())?,
    };
    let access = (method == Method::Get && rt == "Binary" && confine.is_some())
        .then(|| guard::access(req))
        .flatten();
    Ok(Planned {
        index,
        method,
        resource_type: rt,
        id,
        version,
        conditions,
        resource: if method == Method::Patch {
            None
        } else {
            resource
        },
        patch,
        full_url: str_at(entry, "fullUrl").map(str::to_string),
        pre,
        if_none_exist,
        raw_conditions,
        raw_if_none_exist,
        confine,
        access,
        search,
        read_if,
    })
}

/// Checks an entry against the caller's scopes; the patient to confine it to, if any.
pub(super) fn authorize(
    state: &AppState,
    req: &HttpRequest,
    method: Method,
    rt: &str,
    conditional: bool,
    resource: Option<&Value>,
) -> Result<Option<String>, ApiError> {
    let interaction = match method {
        Method::Get | Method::Search => Interaction::Read,
        Method::Post => Interaction::Create,
        Method::Put | Method::Patch => Interaction::Update,
        Method::Delete => Interaction::Delete,
    };
    if method != Method::Get && (conditional || method == Method::Patch || rt == "AuditEvent") {
        guard::ensure_unrestricted(state, req, interaction, rt, "a conditional or patch entry")?;
        return Ok(None);
    }
    let grant = match (method, resource) {
        (Method::Post | Method::Put, Some(r)) => {
            let g = guard::ensure_content(state, req, interaction, rt, r)?;
            if method == Method::Put && g != Grant::All {
                // The entry may create the resource: both must be allowed.
                guard::ensure_content(state, req, Interaction::Create, rt, r)?;
            }
            g
        }
        _ => guard::grant(req, interaction, rt)?,
    };
    match grant {
        Grant::All => Ok(None),
        Grant::Patient(p) => Ok(Some(p)),
        Grant::Rules(_) => Err(ApiError::Forbidden(format!(
            "search-constrained scopes for {rt} are not supported inside Bundles; use a plain search"
        ))),
    }
}

/// For patient-confined entries: the existing target must be in the compartment.
pub(super) fn check_confined(
    ops: &mut TxOps<'_, '_>,
    defs: &'static fhir_model::Definitions,
    p: &Planned,
    interaction: Interaction,
) -> Result<(), EntryError> {
    let (Some(_), Some(id)) = (&p.confine, &p.id) else {
        return Ok(());
    };
    let existing = ops.read(&p.resource_type, id).map_err(store_err(p.index))?;
    match existing.filter(|e| !e.deleted) {
        Some(existing) => check_stored(ops, defs, p, interaction, &existing),
        None => Ok(()),
    }
}

/// For patient-confined entries: `stored` (the version a write would replace, or the
/// one a read returns) must be in the compartment; a Binary's securityContext too.
pub(super) fn check_stored(
    ops: &mut TxOps<'_, '_>,
    defs: &'static fhir_model::Definitions,
    p: &Planned,
    interaction: Interaction,
    stored: &fhir_store::StoredResource,
) -> Result<(), EntryError> {
    let Some(patient) = &p.confine else {
        return Ok(());
    };
    let (rt, id) = (stored.res_type.as_str(), stored.res_id.as_str());
    let value = fhir_model::json::parse(stored.content.as_bytes())
        .map_err(|e| entry_err(p.index, ApiError::Internal(e.to_string())))?;
    if !guard::patient_allows(defs, interaction, rt, &value, patient) {
        return Err(entry_err(
            p.index,
            ApiError::Forbidden(format!(
                "{rt}/{id} is outside what the granted scopes allow"
            )),
        ));
    }
    match &p.access {
        Some(access) => check_binary_context(ops, defs, p, access, &value),
        None => Ok(()),
    }
}

/// A confined read of a Binary that names a `securityContext` is allowed only if the
/// context may be read too, as for a plain read (`binary::check_context`).
fn check_binary_context(
    ops: &mut TxOps<'_, '_>,
    defs: &'static fhir_model::Definitions,
    p: &Planned,
    access: &crate::auth::Access,
    binary: &Value,
) -> Result<(), EntryError> {
    let Some(reference) = binary
        .pointer("/securityContext/reference")
        .and_then(Value::as_str)
    else {
        return Ok(());
    };
    let readable = match reference
        .split_once('/')
        .filter(|(t, _)| defs.is_resource_type(t))
    {
        Some((ct, cid)) => match access.grant(Interaction::Read, ct) {
            Some(Grant::All) => ops
                .read(ct, cid)
                .map_err(store_err(p.index))?
                .is_some_and(|c| !c.deleted),
            Some(Grant::Patient(patient)) => ops
                .read(ct, cid)
                .map_err(store_err(p.index))?
                .filter(|c| !c.deleted)
                .and_then(|c| fhir_model::json::parse(c.content.as_bytes()).ok())
                .is_some_and(|c| guard::patient_allows(defs, Interaction::Read, ct, &c, &patient)),
            _ => false,
        },
        None => false,
    };
    if readable {
        Ok(())
    } else {
        Err(entry_err(
            p.index,
            ApiError::Forbidden(format!(
                "this Binary is read with the access of its securityContext ({reference}), which this client does not have"
            )),
        ))
    }
}

/// Prefixes an error's location with the entry's resource path.
pub(super) fn relocate(e: ApiError, prefix: &str) -> ApiError {
    let moved = |x: &str| {
        format!(
            "{prefix}{}",
            x.split_once('.')
                .map_or(String::new(), |(_, r)| format!(".{r}"))
        )
    };
    match e {
        ApiError::Unprocessable(message, at) => ApiError::Unprocessable(
            message,
            Some(at.as_deref().map_or(prefix.to_string(), moved)),
        ),
        ApiError::BadRequest {
            message,
            expression,
            code,
        } => ApiError::BadRequest {
            message,
            expression: Some(expression.as_deref().map_or(prefix.to_string(), moved)),
            code,
        },
        ApiError::Invalid(mut oo, status) => {
            for i in &mut oo.issue {
                for x in &mut i.expression {
                    *x = moved(x);
                }
            }
            ApiError::Invalid(oo, status)
        }
        other => other,
    }
}
