//! The terminology operations over HTTP (fhir-terminology does the work):
//! `CodeSystem/$lookup`, `CodeSystem/$validate-code`, `CodeSystem/$subsumes`,
//! `ValueSet/$validate-code`, `ValueSet/$expand` and `ConceptMap/$translate`, at the
//! type level and — for all but `$lookup` — the instance level (the stored resource's
//! `url`), with parameters
//! from the query string or a POSTed Parameters resource. They answer from the code
//! systems, value sets and concept maps of the definitions packages; those written
//! through the API are not yet part of the terminology (issue #17).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use fhir_terminology::{Params, Stamp};

use crate::auth::guard;
use crate::auth::scopes::Interaction;
use crate::error::ApiError;
use crate::http::negotiate::output;
use crate::http::respond;
use crate::state::{check_id, AppState};

type Result<T> = std::result::Result<T, ApiError>;

async fn params(state: &AppState, req: &HttpRequest, payload: web::Payload) -> Result<Params> {
    Ok(Params(
        crate::http::params::operation_params(state, req, payload).await?,
    ))
}

/// The canonical URL of a stored CodeSystem or ValueSet (instance-level calls).
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
    let url = value["url"].as_str().unwrap_or("").to_string();
    let t = state.defs.terminology();
    let known = match res_type {
        "CodeSystem" => t.code_system(&url).is_some(),
        "ConceptMap" => t.concept_map(&url).is_some(),
        _ => t.value_set(&url).is_some(),
    };
    if !known {
        return Err(ApiError::Unprocessable(
            format!("{res_type}/{id} ({url}) is stored, but code systems and value sets written through the API are not yet part of this server's terminology: only those of its definitions packages are"),
            None,
        ));
    }
    Ok(url)
}

/// Which operation, on which type.
#[derive(Clone, Copy)]
enum Op {
    Lookup,
    ValidateCodeSystem,
    Subsumes,
    ValidateValueSet,
    Expand,
    Translate,
}

impl Op {
    fn res_type(self) -> &'static str {
        match self {
            Op::Lookup | Op::ValidateCodeSystem | Op::Subsumes => "CodeSystem",
            Op::ValidateValueSet | Op::Expand => "ValueSet",
            Op::Translate => "ConceptMap",
        }
    }
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
    let p = params(state, req, payload).await?;
    let instance = match id {
        Some(id) => Some(stored_url(state, op.res_type(), &id).await?),
        None => None,
    };
    let t = state.defs.terminology();
    let url = instance.as_deref();
    let answer = match op {
        Op::Lookup => fhir_terminology::lookup(t, &p)?,
        Op::ValidateCodeSystem => fhir_terminology::validate::code_system(t, &p, url)?,
        Op::Subsumes => fhir_terminology::subsumes(t, &p, url)?,
        Op::ValidateValueSet => fhir_terminology::validate::value_set(t, &p, url)?,
        Op::Translate => fhir_terminology::translate(t, &p, url)?,
        Op::Expand => {
            let stamp = Stamp {
                identifier: format!("urn:uuid:{}", uuid::Uuid::new_v4()),
                timestamp: fhir_store::time::fhir_instant(fhir_store::time::now_millis()),
            };
            fhir_terminology::expand(t, &p, url, stamp)?
        }
    };
    Ok(respond::json(StatusCode::OK, &answer, out))
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
