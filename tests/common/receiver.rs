//! A real HTTP endpoint for subscription tests: it records every request it gets (method,
//! path, headers, body) and answers a chosen status, optionally failing the first ones.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP endpoint that records what it receives and answers `status`.
pub struct Receiver {
    pub url: String,
    pub got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub fn start(status: u16) -> Receiver {
        Receiver::flaky(status, 0)
    }

    /// A receiver that answers 503 to its first `failures` requests, then `status`.
    pub fn flaky(status: u16, failures: usize) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!(
            "http://127.0.0.1:{}/hook",
            listener.local_addr().unwrap().port()
        );
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let n = {
                    let mut got = sink.lock().unwrap();
                    if let Some(r) = read_request(&stream) {
                        got.push(r);
                    }
                    got.len()
                };
                let code = if n <= failures { 503 } else { status };
                let mut stream = stream;
                let reply =
                    format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        Receiver { url, got }
    }

    /// An HTTPS receiver with the test PKI's server certificate (fixtures/security,
    /// signed by its `ca.pem`), answering 200; with `mutual`, it accepts only clients
    /// presenting a certificate signed by that CA.
    pub fn tls(mutual: bool) -> Receiver {
        use super::smart::{pem_certs, pem_key};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if mutual {
            let mut roots = rustls::RootCertStore::empty();
            pem_certs("ca.pem")
                .into_iter()
                .for_each(|c| roots.add(c).unwrap());
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let config = Arc::new(
            builder
                .with_single_cert(pem_certs("server.pem"), pem_key("server.key"))
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!(
            "https://127.0.0.1:{}/hook",
            listener.local_addr().unwrap().port()
        );
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
                let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                    continue;
                };
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let Some(r) = read_from(&mut tls) else {
                    continue; // the handshake failed: nothing was received
                };
                sink.lock().unwrap().push(r);
                let reply = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                let _ = tls.write_all(reply.as_bytes());
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        });
        Receiver { url, got }
    }

    /// Waits until `n` requests arrived (or fails); returns them all.
    pub fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.got.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} notifications arrived: {got:?}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }
}

fn read_request(stream: &std::net::TcpStream) -> Option<Received> {
    read_from(stream.try_clone().ok()?)
}

fn read_from(stream: impl Read) -> Option<Received> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    Some(Received {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    })
}

/// A server that may deliver to the loopback receivers of the tests, gives up after 3
/// failed deliveries and retries after 100 ms.
pub fn subscription_server(b: super::Backend) -> super::Server {
    super::Server::start_with(
        b,
        &[
            "--subscription-allow-private-endpoints",
            "--subscription-attempts",
            "3",
            "--subscription-retry-ms",
            "100",
        ],
    )
}
