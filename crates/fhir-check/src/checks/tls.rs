//! TLS of an `https://` base: the protocol negotiated (TLS 1.2 or 1.3) and the
//! server certificate (trusted by the public web PKI, or `--ca-file`; expiring within
//! 30 days is a warning).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use super::Ctx;
use crate::report::Outcome;

/// Days before expiry that earn a warning.
const WARN_DAYS: i64 = 30;

pub(super) fn check(ctx: &mut Ctx) {
    let Ok(url) = url::Url::parse(&ctx.client.options.base) else {
        return;
    };
    if url.scheme() != "https" {
        for id in ["tls.protocol", "tls.certificate"] {
            ctx.record(
                id,
                Outcome::NotClaimed,
                "the base URL is http://, not https://",
                None,
            );
        }
        return;
    }
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    match handshake(&host, port, ctx.client.tls.clone()) {
        Ok((protocol, days)) => {
            ctx.pass("tls.protocol", protocol);
            let detail = format!("trusted; expires in {days} days");
            let outcome = if days < WARN_DAYS {
                Outcome::Warn
            } else {
                Outcome::Pass
            };
            ctx.record("tls.certificate", outcome, detail, None);
        }
        Err(e) => {
            ctx.record(
                "tls.protocol",
                Outcome::Fail,
                format!("no TLS session with {host}:{port}: {e}"),
                None,
            );
            ctx.record("tls.certificate", Outcome::Fail, e, None);
        }
    }
}

/// Connects, and reports the protocol and the days the certificate has left.
fn handshake(
    host: &str,
    port: u16,
    config: Arc<rustls::ClientConfig>,
) -> Result<(String, i64), String> {
    // `[::1]` in a URL is the address `::1`.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let name =
        rustls::pki_types::ServerName::try_from(bare.to_string()).map_err(|e| e.to_string())?;
    let mut conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let timeout = std::time::Duration::from_secs(10);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(bare, port))
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("the host has no address")?;
    let mut sock = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(timeout)).ok();
    sock.set_write_timeout(Some(timeout)).ok();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    // A request completes the handshake (and checks the certificate).
    tls.write_all(
        format!("HEAD / HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 16];
    let _ = tls.read(&mut buf);
    let protocol = format!(
        "{:?}",
        conn.protocol_version().ok_or("no protocol negotiated")?
    );
    let cert = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no certificate")?;
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| e.to_string())?;
    let left =
        parsed.validity().not_after.timestamp() - time::OffsetDateTime::now_utc().unix_timestamp();
    Ok((protocol, left / 86_400))
}
