//! Every error the HTTP layer can answer with, and the one place where errors become
//! HTTP statuses and OperationOutcomes. The errors of the store and of the access
//! decision become an [`ApiError`] here; those of the bulk jobs beside their types
//! (`export`, `bulk_import`), which this module stays below.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use fhir_model::{Issue, IssueType, OperationOutcome};
use fhir_store::StoreError;

/// Why a request was refused (401, 403): the access decision's words, kept on the
/// response for its audit event (`crate::recorder`).
#[derive(Debug, Clone)]
pub struct Refusal(pub String);

/// The FHIR JSON media type, as every response says it.
pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// An error answered to the client as an OperationOutcome.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Input that is wrong: message and, where known, the FHIRPath of the element.
    #[error("{message}")]
    BadRequest {
        message: String,
        expression: Option<String>,
        code: IssueType,
    },
    /// Several problems found in one resource.
    #[error("the resource has {} problem(s)", .0.issue.len())]
    Invalid(OperationOutcome, StatusCode),
    #[error("{0}")]
    NotFound(String),
    /// A code system, value set or concept map (or code) the terminology operations do
    /// not know: 404, its issue coded `not-found` in HL7's `tx-issue-type`.
    #[error("{0}")]
    TerminologyNotFound(String),
    /// No valid credentials: 401 with a `WWW-Authenticate` challenge carrying the
    /// RFC 6750 error code (`invalid_token`, `invalid_request`; none when the request
    /// had no credentials at all).
    #[error("{0}")]
    Unauthorized(String, Option<&'static str>),
    /// Valid credentials that do not allow this request.
    #[error("{0}")]
    Forbidden(String),
    /// The client's request rate limit is spent; retry after the given seconds.
    #[error("too many requests: retry after {0} s")]
    TooManyRequests(u64),
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// The request target's length and the limit.
    #[error("the URL is {0} bytes long, over the limit of {1} bytes: send long searches as POST [type]/_search with a form body")]
    UriTooLong(usize, usize),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    Unprocessable(String, Option<String>),
    #[error("{0}")]
    NotImplemented(String),
    /// A Bulk Data export or import job that failed: the status URL answers 500 with
    /// the reason.
    #[error("{0}")]
    JobFailed(String),
    #[error("the database is not available; retry shortly")]
    Unavailable(String),
    /// Concurrent writes collided (deadlock): 503, retry.
    #[error("the change collided with concurrent changes of the same records; nothing was written, retry it")]
    Contention(String),
    /// The database has no room for the write: 507, logged.
    #[error("the server has no storage space left for this change; nothing was written")]
    StorageFull(String),
    /// The request's time budget ran out (or its client left) before it finished.
    #[error("the request did not finish within the server's time limit; nothing was changed")]
    Timeout,
    /// Unexpected failures: logged in full, answered without internals.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn bad(message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            expression: None,
            code: IssueType::Invalid,
        }
    }
    pub fn bad_at(message: impl Into<String>, expression: impl Into<String>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            expression: Some(expression.into()),
            code: IssueType::Invalid,
        }
    }
    pub fn structure(message: impl Into<String>, expression: Option<String>) -> Self {
        ApiError::BadRequest {
            message: message.into(),
            expression,
            code: IssueType::Structure,
        }
    }

    pub fn outcome(&self) -> OperationOutcome {
        let issue = |code: IssueType, text: String, at: Option<&String>| {
            let i = Issue::error(code, text);
            match at {
                Some(e) => i.at(e.clone()),
                None => i,
            }
        };
        match self {
            ApiError::BadRequest {
                message,
                expression,
                code,
            } => OperationOutcome::of(issue(*code, message.clone(), expression.as_ref())),
            ApiError::Invalid(oo, _) => oo.clone(),
            ApiError::NotFound(m) => {
                OperationOutcome::of(issue(IssueType::NotFound, m.clone(), None))
            }
            ApiError::TerminologyNotFound(m) => {
                let mut i = issue(IssueType::NotFound, m.clone(), None);
                if let Some(d) = i.details.as_mut() {
                    d.coding.push(fhir_model::datatypes::Coding {
                        system: Some("http://hl7.org/fhir/tools/CodeSystem/tx-issue-type".into()),
                        code: Some("not-found".into()),
                        ..Default::default()
                    });
                }
                OperationOutcome::of(i)
            }
            ApiError::Unauthorized(m, _) => {
                OperationOutcome::of(issue(IssueType::Login, m.clone(), None))
            }
            ApiError::Forbidden(m) => {
                OperationOutcome::of(issue(IssueType::Forbidden, m.clone(), None))
            }
            ApiError::TooManyRequests(_) => {
                OperationOutcome::of(issue(IssueType::Throttled, self.to_string(), None))
            }
            ApiError::Gone(m) => OperationOutcome::of(issue(IssueType::Deleted, m.clone(), None)),
            ApiError::MethodNotAllowed(m)
            | ApiError::NotImplemented(m)
            | ApiError::NotAcceptable(m) => {
                OperationOutcome::of(issue(IssueType::NotSupported, m.clone(), None))
            }
            ApiError::UnsupportedMediaType(m) => {
                OperationOutcome::of(issue(IssueType::NotSupported, m.clone(), None))
            }
            ApiError::PayloadTooLarge(_) | ApiError::UriTooLong(..) => {
                OperationOutcome::of(issue(IssueType::TooCostly, self.to_string(), None))
            }
            ApiError::Conflict(m) => {
                OperationOutcome::of(issue(IssueType::Conflict, m.clone(), None))
            }
            ApiError::PreconditionFailed(m) => {
                OperationOutcome::of(issue(IssueType::Conflict, m.clone(), None))
            }
            ApiError::Unprocessable(m, at) => {
                OperationOutcome::of(issue(IssueType::Processing, m.clone(), at.as_ref()))
            }
            ApiError::Unavailable(_) => {
                OperationOutcome::of(issue(IssueType::Transient, self.to_string(), None))
            }
            ApiError::Contention(_) => {
                OperationOutcome::of(issue(IssueType::LockError, self.to_string(), None))
            }
            ApiError::Timeout => {
                OperationOutcome::of(issue(IssueType::TooCostly, self.to_string(), None))
            }
            ApiError::StorageFull(_) => {
                OperationOutcome::of(issue(IssueType::Exception, self.to_string(), None))
            }
            ApiError::JobFailed(m) => {
                OperationOutcome::of(issue(IssueType::Exception, m.clone(), None))
            }
            ApiError::Internal(_) => OperationOutcome::of(issue(
                IssueType::Exception,
                "the server failed to process the request; it has been logged".into(),
                None,
            )),
        }
    }
}

impl From<crate::access::Denial> for ApiError {
    fn from(d: crate::access::Denial) -> Self {
        match d {
            crate::access::Denial::AuditTrail => ApiError::MethodNotAllowed(d.message()),
            other => ApiError::Forbidden(other.message()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::VersionConflict { expected, current } => ApiError::PreconditionFailed(format!(
                "version conflict: If-Match names version {expected} but the current version is {current}"
            )),
            StoreError::PreconditionFailed(m) => ApiError::PreconditionFailed(m),
            StoreError::NotFound { resource_type, id } if id == "?" => {
                ApiError::NotFound(format!("no {resource_type} resource matches the condition"))
            }
            StoreError::NotFound { resource_type, id } => ApiError::NotFound(format!("{resource_type}/{id} is not known")),
            StoreError::Gone { resource_type, id, version } => {
                ApiError::Gone(format!("{resource_type}/{id} was deleted (version {version})"))
            }
            StoreError::Invalid { message, expression } => ApiError::Unprocessable(message, expression),
            StoreError::BadRequest { message, expression } => {
                ApiError::BadRequest { message, expression, code: IssueType::Invalid }
            }
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Pool(e) => ApiError::Unavailable(e.to_string()),
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            StoreError::Contention(m) => ApiError::Contention(m),
            StoreError::Timeout => ApiError::Timeout,
            StoreError::StorageFull(m) => ApiError::StorageFull(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Invalid(_, status) => *status,
            ApiError::NotFound(_) | ApiError::TerminologyNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized(..) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UriTooLong(..) => StatusCode::URI_TOO_LONG,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::Unprocessable(..) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Unavailable(_) | ApiError::Contention(_) | ApiError::Timeout => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::StorageFull(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::JobFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::Internal(detail) | ApiError::StorageFull(detail) => {
                tracing::error!(error = %detail, "request failed");
            }
            // The store logs an outage once; each request it fails is not news.
            ApiError::Unavailable(detail) => tracing::debug!(error = %detail, "request failed"),
            ApiError::Contention(detail) => {
                tracing::warn!(error = %detail, "concurrent writes collided; the client may retry")
            }
            _ => {}
        }
        let mut b = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized(m, code) => {
                // A header value is visible ASCII: anything else becomes '?'.
                let m: String = m
                    .chars()
                    .map(|c| match c {
                        '"' | '\\' => '\'',
                        ' '..='~' => c,
                        _ => '?',
                    })
                    .collect();
                let challenge = match code {
                    Some(code) => format!(
                        "Bearer realm=\"fhir\", error=\"{code}\", error_description=\"{m}\""
                    ),
                    None => "Bearer realm=\"fhir\"".to_string(),
                };
                b.insert_header(("WWW-Authenticate", challenge));
            }
            ApiError::TooManyRequests(secs) => {
                b.insert_header(("Retry-After", secs.to_string()));
            }
            ApiError::Unavailable(_) | ApiError::Contention(_) => {
                b.insert_header(("Retry-After", "1"));
            }
            _ => {}
        }
        let mut resp = b
            .content_type(FHIR_JSON)
            .body(fhir_model::json::to_string(&self.outcome().to_value()));
        if let ApiError::Unauthorized(m, _) | ApiError::Forbidden(m) = self {
            resp.extensions_mut().insert(Refusal(m.clone()));
        }
        resp
    }
}

impl From<fhir_terminology::TxError> for ApiError {
    fn from(e: fhir_terminology::TxError) -> Self {
        use fhir_terminology::TxError as T;
        match e {
            T::NotFound { message, .. } => ApiError::TerminologyNotFound(message),
            T::Invalid { message, param } => ApiError::bad_at(message, param),
            T::NotSupported { message, param } => ApiError::Unprocessable(message, Some(param)),
            T::TooCostly { message, param } => ApiError::BadRequest {
                message,
                expression: Some(param),
                code: IssueType::TooCostly,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::ResponseError;

    #[test]
    fn colliding_writes_are_503_lock_error_with_retry_after() {
        let e = ApiError::from(StoreError::Contention("deadlock detected".into()));
        assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        let r = e.error_response();
        assert_eq!(
            r.headers().get("Retry-After").and_then(|v| v.to_str().ok()),
            Some("1")
        );
        let oo = e.outcome().to_value();
        assert_eq!(oo["issue"][0]["code"], "lock-error", "{oo}");
        assert_eq!(oo["issue"][0]["severity"], "error", "{oo}");
    }
}
