//! TLS with rustls: the server certificate and key (PEM), TLS 1.2 and 1.3 only, and
//! optional mutual TLS where partner organisations present client certificates signed
//! by a configured CA. A client certificate is optional on the connection (clients may
//! use bearer tokens instead); when one is presented it must verify, and its subject
//! names the registered client (see `auth::clients`). Outgoing connections to
//! partners' subscription endpoints use [`client_config`]: extra trusted CAs and a
//! client certificate of this server's own.

use std::any::Any;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use actix_web::dev::Extensions;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_err(path: &Path, message: impl ToString) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let f = File::open(path).map_err(|e| file_err(path, e))?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(f))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(path, e))?;
    if certs.is_empty() {
        return Err(file_err(path, "no PEM certificate found"));
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let f = File::open(path).map_err(|e| file_err(path, e))?;
    rustls_pemfile::private_key(&mut BufReader::new(f))
        .map_err(|e| file_err(path, e))?
        .ok_or_else(|| file_err(path, "no PEM private key found"))
}

/// The subject of the verified client certificate of a TLS connection.
#[derive(Debug, Clone)]
pub struct PeerSubject(pub String);

/// The rustls configuration of the listener.
pub fn server_config(
    cert: &Path,
    key_path: &Path,
    client_ca: Option<&Path>,
) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca)? {
                roots.add(c).map_err(|e| file_err(ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder
        .with_single_cert(certs(cert)?, key(key_path)?)
        .map_err(|e| TlsError::Config(e.to_string()))
}

/// The rustls configuration of outgoing connections to partners (subscription
/// endpoints): the public web PKI roots plus the certificates of `extra_ca` (a PEM
/// bundle: a partner's private CA), and with `identity` (certificate chain and key,
/// PEM) a client certificate for partners that require mutual TLS.
pub fn client_config(
    extra_ca: Option<&Path>,
    identity: Option<(&Path, &Path)>,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = extra_ca {
        for c in certs(ca)? {
            roots.add(c).map_err(|e| file_err(ca, e))?;
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots);
    match identity {
        Some((cert, key_path)) => builder
            .with_client_auth_cert(certs(cert)?, key(key_path)?)
            .map_err(|e| TlsError::Config(e.to_string())),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// Connection hook: keeps a handle on the socket ([`crate::http::peer`]) and the
/// subject of a verified client certificate.
pub fn on_connect(conn: &dyn Any, ext: &mut Extensions) {
    if let Some(peer) = crate::http::peer::Peer::of(conn) {
        ext.insert(peer);
    }
    type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
    let Some(tls) = conn.downcast_ref::<Tls>() else {
        return;
    };
    let (_, session) = tls.get_ref();
    let Some(cert) = session.peer_certificates().and_then(|c| c.first()) else {
        return;
    };
    if let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) {
        ext.insert(PeerSubject(parsed.subject().to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/security")
            .join(name)
    }

    #[test]
    fn partner_tls_takes_extra_cas_and_a_client_identity() {
        let ca = fixture("ca.pem");
        let (cert, key) = (fixture("client.pem"), fixture("client.key"));
        assert!(client_config(Some(&ca), Some((&cert, &key))).is_ok());
        let missing = fixture("nothing.pem");
        let e = client_config(Some(&missing), None).unwrap_err().to_string();
        assert!(e.contains("nothing.pem"), "{e}");
        let e = client_config(None, Some((&cert, &ca)))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ca.pem") && e.contains("no PEM private key"),
            "{e}"
        );
    }
}
