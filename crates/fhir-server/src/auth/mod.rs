//! Who is calling and what they may do: SMART on FHIR Backend Services tokens, bearer
//! tokens of an OpenID Connect provider, client certificates (mutual TLS), and the
//! scopes that confine every interaction.
//!
//! This module is the configuration and the token logic, with no server state; the
//! token endpoint and discovery are `handlers::smart`, and `crate::guard` (middleware)
//! turns credentials into an [`Access`] kept in the request; handlers ask
//! `guard::grant` whether an interaction on a type is allowed, and how far
//! (everything, one patient's compartment, or only resources matching search
//! constraints). With no auth configured every request is allowed (the server then
//! only listens on loopback unless told otherwise).

pub mod clients;
pub mod jwks;
pub mod links;
pub mod tokens;

use std::path::Path;

use clients::ClientsFile;
use tokens::OidcProvider;

pub use crate::access::{scopes, Access, Grant};

/// Authentication settings, built at start-up.
pub struct AuthConfig {
    pub clients: ClientsFile,
    pub oidc: Option<OidcProvider>,
    /// HMAC key of the access tokens this server issues.
    pub secret: Vec<u8>,
    /// `iss` and `aud` of this server's tokens.
    pub issuer: String,
    /// Lifetime of issued access tokens, in seconds.
    pub token_lifetime: u64,
    /// Bearer tokens already verified.
    pub cache: tokens::TokenCache,
    /// Clients' keys fetched from their JWKS URLs.
    pub jwks: jwks::JwksCache,
}

/// What `serve` needs to build an [`AuthConfig`].
pub struct AuthSettings<'a> {
    pub clients_file: Option<&'a Path>,
    pub oidc_issuer: Option<&'a str>,
    pub oidc_audience: Option<&'a str>,
    pub oidc_jwks: Option<&'a str>,
    pub token_secret: Option<&'a str>,
    /// The key all nodes share in the database, used when no `token_secret` is set.
    pub stored_secret: Option<String>,
    pub issuer: String,
    pub token_lifetime: u64,
}

impl AuthConfig {
    /// `None` when neither clients nor an OpenID Connect provider are configured.
    pub fn load(s: &AuthSettings<'_>) -> Result<Option<AuthConfig>, String> {
        if s.clients_file.is_none() && s.oidc_issuer.is_none() {
            return Ok(None);
        }
        let clients = match s.clients_file {
            Some(p) => ClientsFile::load(p).map_err(|e| e.to_string())?,
            None => ClientsFile::default(),
        };
        let oidc = match s.oidc_issuer {
            Some(issuer) => Some(load_oidc(issuer, s.oidc_audience, s.oidc_jwks)?),
            None => None,
        };
        let secret = match s.token_secret {
            Some(t) if t.len() >= 32 => t.as_bytes().to_vec(),
            Some(_) => return Err("--auth-token-secret must be at least 32 characters".into()),
            None if s.stored_secret.is_some() => {
                s.stored_secret.clone().unwrap_or_default().into_bytes()
            }
            None => {
                tracing::warn!("no --auth-token-secret: access tokens are signed with a random key and stop working when this process stops (set one shared secret for all nodes)");
                use rand::RngCore;
                let mut key = vec![0u8; 32];
                rand::thread_rng().fill_bytes(&mut key);
                key
            }
        };
        Ok(Some(AuthConfig {
            clients,
            oidc,
            secret,
            issuer: s.issuer.clone(),
            token_lifetime: s.token_lifetime,
            cache: Default::default(),
            jwks: Default::default(),
        }))
    }
}

fn load_oidc(
    issuer: &str,
    audience: Option<&str>,
    jwks: Option<&str>,
) -> Result<OidcProvider, String> {
    let audience = audience.ok_or("--oidc-audience is required with --oidc-issuer")?;
    let source =
        jwks.ok_or("--oidc-jwks (a file or an https URL) is required with --oidc-issuer")?;
    let text = if source.starts_with("https://") || source.starts_with("http://") {
        ureq::get(source)
            .timeout(std::time::Duration::from_secs(10))
            .call()
            .map_err(|e| format!("cannot fetch {source}: {e}"))?
            .into_string()
            .map_err(|e| format!("cannot read {source}: {e}"))?
    } else {
        std::fs::read_to_string(source).map_err(|e| format!("{source}: {e}"))?
    };
    let jwks = serde_json::from_str(&text).map_err(|e| format!("{source}: not a JWKS: {e}"))?;
    Ok(OidcProvider {
        issuer: issuer.to_string(),
        audience: audience.to_string(),
        jwks,
    })
}
