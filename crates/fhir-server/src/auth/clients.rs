//! Registered clients: the JSON file named by `--auth-clients`, managed with
//! `fhir-server clients add|list|remove`.
//!
//! ```json
//! {"clients": [{"client_id": "lab-partner", "scope": "system/Observation.cruds",
//!   "jwks": {"keys": [...]}, "certificate_subject": "CN=lab.example.org,O=Lab"}]}
//! ```

use std::path::{Path, PathBuf};

use jsonwebtoken::jwk::JwkSet;
use serde::{Deserialize, Serialize};

/// One registered client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Client {
    pub client_id: String,
    /// The most this client may be granted (space-separated SMART scopes).
    pub scope: String,
    /// Public keys for `private_key_jwt` client assertions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<JwkSet>,
    /// Or a file holding them (read at start-up, relative to the clients file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<PathBuf>,
    /// Or the URL where the client publishes them (fetched when needed, cached as its
    /// `Cache-Control` allows; an assertion's `jku` header must name it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// The subject of this client's TLS certificate (`CN=…,O=…`), for mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_subject: Option<String>,
    /// The tenant this client belongs to (`--tenancy url|claim`): its tokens carry it
    /// in their `tenant` claim and reach that tenant only. None: the default tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ClientsFile {
    #[serde(default)]
    pub clients: Vec<Client>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientsError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("client '{0}' is registered already")]
    Duplicate(String),
    #[error("no client '{0}' is registered")]
    Unknown(String),
}

fn file_err(path: &Path, message: impl ToString) -> ClientsError {
    ClientsError::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

impl ClientsFile {
    /// Reads the file (missing: no clients), resolving `jwks_file`s.
    pub fn load(path: &Path) -> Result<ClientsFile, ClientsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(file_err(path, e)),
        };
        let mut file: ClientsFile = serde_json::from_str(&text).map_err(|e| file_err(path, e))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        for c in &mut file.clients {
            if let (None, Some(f)) = (&c.jwks, &c.jwks_file) {
                let p = dir.join(f);
                let text = std::fs::read_to_string(&p).map_err(|e| file_err(&p, e))?;
                c.jwks = Some(serde_json::from_str(&text).map_err(|e| file_err(&p, e))?);
            }
        }
        Ok(file)
    }

    pub fn save(&self, path: &Path) -> Result<(), ClientsError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| file_err(path, e))?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).map_err(|e| file_err(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| file_err(path, e))
    }

    pub fn get(&self, client_id: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }

    pub fn add(&mut self, client: Client) -> Result<(), ClientsError> {
        if self.get(&client.client_id).is_some() {
            return Err(ClientsError::Duplicate(client.client_id));
        }
        self.clients.push(client);
        Ok(())
    }

    pub fn remove(&mut self, client_id: &str) -> Result<(), ClientsError> {
        let before = self.clients.len();
        self.clients.retain(|c| c.client_id != client_id);
        if self.clients.len() == before {
            return Err(ClientsError::Unknown(client_id.to_string()));
        }
        Ok(())
    }

    /// The client whose certificate subject is `subject` (mutual TLS).
    pub fn by_certificate(&self, subject: &str) -> Option<&Client> {
        let want = normalize_dn(subject);
        self.clients.iter().find(|c| {
            c.certificate_subject
                .as_deref()
                .is_some_and(|s| normalize_dn(s) == want)
        })
    }
}

/// `CN=a, O=b` and `CN=a,O=b` name the same subject.
fn normalize_dn(dn: &str) -> String {
    dn.split(',')
        .map(|p| p.trim())
        .collect::<Vec<_>>()
        .join(",")
}
