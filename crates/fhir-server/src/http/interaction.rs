//! What interaction a request is, from its method and path alone: the RESTful API's
//! interaction codes (`http://hl7.org/fhir/restful-interaction`), which the audit
//! trail records as BALP subtypes and `/metrics` uses as labels.

/// One request's interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// The restful-interaction code (`read`, `search-type`, `operation`, …).
    pub subtype: &'static str,
    /// The BALP action: `C`, `R`, `U`, `D` or `E` (execute).
    pub action: &'static str,
    /// For an operation this server defines, its name (`$export`); `None` otherwise.
    pub operation: Option<&'static str>,
}

/// The operations this server answers: a label takes only these names, so that
/// requests for made-up operations cannot grow the number of label values.
const OPERATIONS: &[&str] = &[
    "$document",
    "$events",
    "$everything",
    "$expand",
    "$export",
    "$export-file",
    "$export-status",
    "$expunge",
    "$get-ws-binding-token",
    "$import",
    "$import-errors",
    "$import-status",
    "$lookup",
    "$meta",
    "$meta-add",
    "$meta-delete",
    "$status",
    "$subsumes",
    "$translate",
    "$validate",
    "$validate-code",
];

const fn kind(subtype: &'static str, action: &'static str) -> Kind {
    Kind {
        subtype,
        action,
        operation: None,
    }
}

/// The interaction of a request to the FHIR API (`/fhir/…`).
pub fn classify(method: &str, path: &str) -> Kind {
    let segs: Vec<&str> = path
        .trim_start_matches("/fhir")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(op) = segs.iter().find(|s| s.starts_with('$')) {
        return Kind {
            operation: OPERATIONS.iter().find(|o| *o == op).copied(),
            ..kind("operation", "E")
        };
    }
    match (method, segs.as_slice()) {
        ("GET" | "HEAD", ["metadata"]) => kind("capabilities", "R"),
        ("GET" | "HEAD", []) => kind("search-system", "E"),
        ("GET" | "HEAD", ["_history"]) => kind("history-system", "R"),
        ("GET" | "HEAD", [_]) => kind("search-type", "E"),
        ("GET" | "HEAD", [_, "_history"]) => kind("history-type", "R"),
        ("GET" | "HEAD", [_, _]) => kind("read", "R"),
        ("GET" | "HEAD", [_, _, "_history"]) => kind("history-instance", "R"),
        ("GET" | "HEAD", [_, _, "_history", _]) => kind("vread", "R"),
        ("GET" | "HEAD", [_, _, _]) => kind("search-type", "E"),
        ("POST", []) => kind("batch", "E"),
        ("POST", ["auth", "token"]) => kind("login", "E"),
        ("POST", [.., "_search"]) => kind("search-type", "E"),
        ("POST", [_]) => kind("create", "C"),
        ("PUT", _) => kind("update", "U"),
        ("PATCH", _) => kind("patch", "U"),
        ("DELETE", _) => kind("delete", "D"),
        _ => kind("operation", "E"),
    }
}

/// A short, bounded name for any request to this server: the interaction (or the
/// operation's name) under `/fhir`, else what the path is for.
pub fn label(method: &str, path: &str) -> &'static str {
    // A tenant's URL (`/fhir/acme/Patient/1`) is its interaction without the tenant.
    let untenanted = url_tenant(path).map(|(_, p)| p);
    let path = untenanted.as_deref().unwrap_or(path).trim_end_matches('/');
    match path {
        "" | "/console.js" | "/console.css" => "console",
        "/health" | "/ready" => "health",
        "/auth/token" => "token",
        "/metrics" => "metrics",
        "/.well-known/smart-configuration" | "/fhir/.well-known/smart-configuration" => "discovery",
        "/fhir/ws" => "websocket",
        p if p == "/fhir" || p.starts_with("/fhir/") => {
            let k = classify(method, p);
            k.operation.unwrap_or(k.subtype)
        }
        _ => "other",
    }
}

/// Paths of the console's files (public: they hold no data).
pub fn is_console(path: &str) -> bool {
    matches!(
        path,
        "" | "/" | "/console.js" | "/console.css" | "/console/config.json"
    )
}

/// The tenant named by `path` (`/fhir/{tenant}/…`) and the path without it; `None`
/// when the segment after `/fhir` cannot name a tenant (the default tenant's URLs).
pub fn url_tenant(path: &str) -> Option<(&str, String)> {
    let rest = path.strip_prefix("/fhir/")?;
    let (segment, tail) = rest.split_once('/').map_or((rest, ""), |(s, t)| (s, t));
    if segment != fhir_store::tenants::DEFAULT && fhir_store::tenants::check_name(segment).is_err()
    {
        return None;
    }
    let stripped = if tail.is_empty() {
        "/fhir".to_string()
    } else {
        format!("/fhir/{tail}")
    };
    Some((segment, stripped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interactions_by_method_and_path() {
        let cases = [
            ("GET", "/fhir/Patient/1", "read"),
            ("GET", "/fhir/acme/Patient/1", "read"),
            ("GET", "/fhir/acme/metadata", "capabilities"),
            ("GET", "/fhir/Patient/1/_history/2", "vread"),
            ("GET", "/fhir/Patient", "search-type"),
            ("POST", "/fhir/Patient/_search", "search-type"),
            ("GET", "/fhir", "search-system"),
            ("POST", "/fhir", "batch"),
            ("POST", "/fhir/Patient", "create"),
            ("PUT", "/fhir/Patient/1", "update"),
            ("DELETE", "/fhir/Patient", "delete"),
            ("GET", "/fhir/metadata", "capabilities"),
            ("GET", "/fhir/Patient/1/$everything", "$everything"),
            ("GET", "/fhir/$export-status/abc", "$export-status"),
            ("POST", "/fhir/Patient/$made-up", "operation"),
            ("GET", "/health", "health"),
            ("GET", "/metrics", "metrics"),
            ("GET", "/favicon.ico", "other"),
        ];
        for (method, path, want) in cases {
            assert_eq!(label(method, path), want, "{method} {path}");
        }
        assert_eq!(classify("GET", "/fhir/$export").subtype, "operation");
    }
}
