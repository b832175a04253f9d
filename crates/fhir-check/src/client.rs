//! The checker's HTTP client: every request is paced (at most `rate` a second) and
//! counted (at most `budget` in a run), so a check never floods a partner's server, and
//! every exchange is kept, so a failure can show the exact request and response.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Bytes of a body kept in a report.
const EXCERPT: usize = 4000;

/// One request and its response, as a report shows them.
#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    pub method: String,
    pub url: String,
    pub request_headers: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    /// 0 when no response came (the error is in `response_body`).
    pub status: u16,
    pub response_headers: Vec<(String, String)>,
    pub response_body: String,
}

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub body: String,
    pub exchange: Exchange,
}

impl Response {
    /// A header's value (names compared without case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// Why a request was not made or not answered.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the run's request budget ({0}) is spent")]
    Spent(usize),
    #[error("{0}")]
    Transport(String),
}

/// Settings of the client (its `Debug` leaves the token out).
#[derive(Clone)]
pub struct ClientOptions {
    /// The FHIR base URL (no trailing slash).
    pub base: String,
    /// A bearer token sent with every request.
    pub token: Option<String>,
    /// Requests per second, at most.
    pub rate: f64,
    /// Requests in the run, at most.
    pub budget: usize,
    /// Time a request may take.
    pub timeout: Duration,
    /// CA certificates (PEM) trusted besides the public web PKI.
    pub ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "(not shown)"))
            .field("rate", &self.rate)
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

/// The paced, counted client.
pub struct Client {
    agent: ureq::Agent,
    /// The TLS settings of every connection (the TLS check makes its own with them).
    pub tls: Arc<rustls::ClientConfig>,
    pub options: ClientOptions,
    sent: usize,
    last: Option<Instant>,
}

fn excerpt(s: &str) -> String {
    if s.len() <= EXCERPT {
        return s.to_string();
    }
    let mut end = EXCERPT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &s[..end], s.len())
}

/// The public web PKI, and the certificates of `ca_file`.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| format!("{}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Client {
    /// A client; fails when the CA file cannot be read.
    pub fn new(options: ClientOptions) -> Result<Client, String> {
        let tls = Arc::new(tls_config(options.ca_file.as_deref())?);
        let agent = ureq::AgentBuilder::new()
            .timeout(options.timeout)
            .redirects(0)
            .tls_config(tls.clone())
            .build();
        Ok(Client {
            agent,
            tls,
            options,
            sent: 0,
            last: None,
        })
    }

    /// Requests made so far.
    pub fn sent(&self) -> usize {
        self.sent
    }

    /// `base` + `path` (`path` may be a full URL, as a paging link is).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.options.base)
        }
    }

    /// Whether `url` has the scheme, host and port of the base URL.
    fn same_origin(&self, url: &str) -> bool {
        let origin = |u: &str| url::Url::parse(u).ok().map(|u| u.origin());
        origin(url).is_some() && origin(url) == origin(&self.options.base)
    }

    fn pace(&mut self) -> Result<(), ClientError> {
        if self.sent >= self.options.budget {
            return Err(ClientError::Spent(self.options.budget));
        }
        if let Some(last) = self.last {
            let gap = Duration::from_secs_f64(1.0 / self.options.rate.max(0.1));
            let since = last.elapsed();
            if since < gap {
                std::thread::sleep(gap - since);
            }
        }
        self.last = Some(Instant::now());
        self.sent += 1;
        Ok(())
    }

    /// `GET path` with `headers`.
    pub fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Result<Response, ClientError> {
        self.send("GET", path, headers, None)
    }

    /// Sends a request; an HTTP error status is a response like any other.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<Response, ClientError> {
        self.pace()?;
        let url = self.url(path);
        let mut request = self.agent.request(method, &url);
        let mut shown = Vec::new();
        let has_accept = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("accept"));
        let defaults: &[(&str, &str)] = if has_accept {
            &[]
        } else {
            &[("Accept", "application/fhir+json")]
        };
        for (k, v) in headers.iter().chain(defaults) {
            request = request.set(k, v);
            shown.push((k.to_string(), v.to_string()));
        }
        // The token goes to the server checked only: a link or a Content-Location it
        // returns may name another host, which must not receive it.
        if let Some(token) = self
            .options
            .token
            .as_ref()
            .filter(|_| self.same_origin(&url))
        {
            request = request.set("Authorization", &format!("Bearer {token}"));
            shown.push(("Authorization".into(), "Bearer (not shown)".into()));
        }
        let result = match body {
            Some(b) => request.send_string(b),
            None => request.call(),
        };
        let response = match result {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(ClientError::Transport(format!("{method} {url}: {e}"))),
        };
        let status = response.status();
        let headers: Vec<(String, String)> = response
            .headers_names()
            .into_iter()
            .filter_map(|n| response.header(&n).map(|v| (n.clone(), v.to_string())))
            .collect();
        let text = response.into_string().map_err(|e| {
            ClientError::Transport(format!("{method} {url}: reading the body: {e}"))
        })?;
        let exchange = Exchange {
            method: method.to_string(),
            url,
            request_headers: shown,
            request_body: body.map(excerpt),
            status,
            response_headers: headers.clone(),
            response_body: excerpt(&text),
        };
        Ok(Response {
            status,
            headers,
            body: text,
            exchange,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_stays_with_the_server_checked() {
        let client = Client::new(ClientOptions {
            base: "https://fhir.example.org:8443/fhir".into(),
            token: Some("secret".into()),
            rate: 1.0,
            budget: 1,
            timeout: Duration::from_secs(1),
            ca_file: None,
        })
        .expect("client");
        assert!(client.same_origin("https://fhir.example.org:8443/fhir/Patient?page=2"));
        assert!(!client.same_origin("https://elsewhere.example/fhir/Patient?page=2"));
        assert!(!client.same_origin("http://fhir.example.org:8443/fhir/x"));
        assert!(!format!("{:?}", client.options).contains("secret"));
    }
}
