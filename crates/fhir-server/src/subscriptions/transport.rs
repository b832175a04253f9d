//! The HTTP client that carries rest-hook notifications: hyper's HTTP/1.1 client
//! (connections kept open per partner; rustls for `https`, with the configured CA and
//! client certificate) on one thread that runs its own tokio runtime. A round's
//! requests go out side by side, at most [`PER_HOST`] at once to one partner, and the
//! caller is woken once, when the last of them has its outcome.
//!
//! Why not ureq, which the server uses for its other outgoing calls: it writes a
//! request's head and its body with two writes, checks a pooled connection with three
//! more system calls, and holds a thread per request in flight. With a delivery per
//! write, those calls and the hand-offs between threads were most of the sending
//! CPU. hyper writes a small request with one write, and one thread waits on every
//! connection at once.

use std::collections::HashMap;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;

/// Requests in flight at once to one partner (scheme, host and port).
pub const PER_HOST: usize = 8;
/// The most bytes of a partner's answer read (the rest is not: the connection closes).
const ANSWER_MAX: usize = 1 << 20;
const USER_AGENT: &str = concat!("fhir-server/", env!("CARGO_PKG_VERSION"));

/// One request to send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// `POST` or `PUT`.
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// For the whole exchange: connecting, sending, and the answer.
    pub timeout: Duration,
    /// Resolve the host first and refuse loopback, private and link-local addresses
    /// ([`super::endpoint::check`]).
    pub public_only: bool,
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Requests and where their outcomes go.
struct Round {
    requests: Vec<Outgoing>,
    reply: mpsc::Sender<Vec<Result<(), String>>>,
}

/// The sending thread's inbox.
pub struct Transport {
    rounds: tokio::sync::mpsc::UnboundedSender<Round>,
}

impl Transport {
    /// Starts the sending thread, with `tls` for `https` partners.
    pub fn start(tls: rustls::ClientConfig) -> std::io::Result<Transport> {
        let (rounds, mut inbox) = tokio::sync::mpsc::unbounded_channel::<Round>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("subscription-send".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let client = client(tls);
                    while let Some(round) = inbox.recv().await {
                        let outcomes = send_round(&client, round.requests).await;
                        let _ = round.reply.send(outcomes);
                    }
                })
            })?;
        Ok(Transport { rounds })
    }

    /// Sends the requests side by side; their outcomes, in order.
    pub fn send_all(&self, requests: Vec<Outgoing>) -> Vec<Result<(), String>> {
        let n = requests.len();
        let stopped = || vec![Err("the delivery thread stopped".to_string()); n];
        if n == 0 {
            return Vec::new();
        }
        let (reply, outcomes) = mpsc::channel();
        if self.rounds.send(Round { requests, reply }).is_err() {
            return stopped();
        }
        outcomes.recv().unwrap_or_else(|_| stopped())
    }
}

fn client(tls: rustls::ClientConfig) -> HttpClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(PER_HOST)
        .pool_idle_timeout(Duration::from_secs(60))
        .build(https)
}

/// Sends a round's requests side by side, at most [`PER_HOST`] at once per partner.
async fn send_round(client: &HttpClient, requests: Vec<Outgoing>) -> Vec<Result<(), String>> {
    let mut limits: HashMap<String, Arc<Semaphore>> = HashMap::new();
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let limit = limits
                .entry(partner(&request.url))
                .or_insert_with(|| Arc::new(Semaphore::new(PER_HOST)))
                .clone();
            let client = client.clone();
            tokio::spawn(async move {
                let _turn = limit.acquire_owned().await;
                send(&client, request).await
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(
            task.await
                .unwrap_or_else(|e| Err(format!("the delivery failed: {e}"))),
        );
    }
    outcomes
}

/// Scheme, host and port of a URL (the whole URL if it has no host).
fn partner(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    url[..url.len() - rest.len() + end].to_string()
}

/// One exchange: a 2xx answer, or why not.
async fn send(client: &HttpClient, request: Outgoing) -> Result<(), String> {
    let timeout = request.timeout;
    let exchange = async move {
        if request.public_only {
            let url = request.url.clone();
            tokio::task::spawn_blocking(move || super::endpoint::check(&url, false, true))
                .await
                .map_err(|e| e.to_string())??;
        }
        let response = client
            .request(build(request)?)
            .await
            .map_err(|e| chain(&e))?;
        let status = response.status();
        drain(response.into_body()).await?;
        Ok(status)
    };
    match tokio::time::timeout(timeout, exchange).await {
        Err(_) => Err(format!("no answer within {} s", timeout.as_secs_f64())),
        Ok(Err(e)) => Err(e),
        Ok(Ok(status)) if status.is_success() => Ok(()),
        Ok(Ok(status)) => Err(format!("HTTP {}", status.as_u16())),
    }
}

/// The hyper request.
fn build(request: Outgoing) -> Result<hyper::Request<Full<Bytes>>, String> {
    // The endpoint was parsed as a URL when the subscription was written; the url
    // crate writes it in the form an HTTP request line takes (percent-encoded).
    let uri: hyper::Uri = match request.url.parse() {
        Ok(uri) => uri,
        Err(_) => url::Url::parse(&request.url)
            .map_err(|e| format!("'{}' is not a URL ({e})", request.url))?
            .as_str()
            .parse()
            .map_err(|e| format!("'{}' is not a URL ({e})", request.url))?,
    };
    let unmade = |e: &dyn std::fmt::Display| format!("the request could not be made: {e}");
    let mut made = hyper::Request::builder()
        .method(request.method)
        .uri(uri)
        .header(hyper::header::USER_AGENT, USER_AGENT)
        .body(Full::new(request.body))
        .map_err(|e| unmade(&e))?;
    // A header named again replaces the earlier one (a `channel.header` line may set
    // the Content-Type, say).
    for (k, v) in &request.headers {
        let name = hyper::header::HeaderName::from_bytes(k.as_bytes()).map_err(|e| unmade(&e))?;
        let value = hyper::header::HeaderValue::from_str(v).map_err(|e| unmade(&e))?;
        made.headers_mut().insert(name, value);
    }
    Ok(made)
}

/// Reads the answer to its end (up to [`ANSWER_MAX`]), so that its connection can
/// carry the next request; its content is not used.
async fn drain(mut body: Incoming) -> Result<(), String> {
    let mut left = ANSWER_MAX;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| chain(&e))?;
        if let Some(data) = frame.data_ref() {
            if data.len() > left {
                return Ok(()); // dropped unread: the connection is not used again
            }
            left -= data.len();
        }
    }
    Ok(())
}

/// An error with its causes ("client error (Connect): tcp connect error: Connection
/// refused"): hyper's own message alone says little.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partners_are_told_apart_by_scheme_host_and_port() {
        assert_eq!(
            partner("http://a.example:8080/hook/x"),
            "http://a.example:8080"
        );
        assert_eq!(partner("https://a.example?x=1"), "https://a.example");
        assert_eq!(partner("https://a.example"), "https://a.example");
        assert_ne!(partner("http://a.example/"), partner("https://a.example/"));
    }

    #[test]
    fn a_refused_connection_says_why() {
        // A port nothing listens on (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let tls = crate::tls::client_config(None, None).unwrap();
        let transport = Transport::start(tls).unwrap();
        let request = Outgoing {
            method: "POST",
            url: format!("http://127.0.0.1:{port}/hook"),
            headers: vec![("Authorization".into(), "Bearer x".into())],
            body: Bytes::from_static(b"{}"),
            timeout: Duration::from_secs(5),
            public_only: false,
        };
        let bad_header = Outgoing {
            headers: vec![("bad header".into(), "x".into())],
            ..request.clone()
        };
        let twice = Outgoing {
            headers: vec![("A".into(), "1".into()), ("a".into(), "2".into())],
            ..request.clone()
        };
        let made = build(twice).unwrap();
        let values: Vec<_> = made.headers().get_all("a").iter().collect();
        assert_eq!(values, ["2"], "the later replaces the earlier");
        let outcomes = transport.send_all(vec![request, bad_header]);
        let refused = outcomes[0].as_ref().unwrap_err();
        assert!(refused.to_lowercase().contains("refused"), "{refused}");
        let bad = outcomes[1].as_ref().unwrap_err();
        assert!(bad.contains("could not be made"), "{bad}");
        assert!(transport.send_all(Vec::new()).is_empty());
    }

    #[test]
    fn a_partner_that_never_answers_times_out_and_others_still_get_theirs() {
        // Accepts connections, reads nothing, answers nothing.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let _keep = std::thread::spawn(move || {
            let held: Vec<_> = silent.incoming().take(2).collect();
            std::thread::sleep(Duration::from_secs(10));
            drop(held);
        });
        // Answers 204 to one request, then 503 to the next.
        let answering = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let other = answering.local_addr().unwrap().port();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for status in ["204 No Content", "503 Service Unavailable"] {
                let (mut c, _) = answering.accept().unwrap();
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf);
                let answer =
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                c.write_all(answer.as_bytes()).unwrap();
            }
        });
        let tls = crate::tls::client_config(None, None).unwrap();
        let transport = Transport::start(tls).unwrap();
        let to = |port: u16, timeout: u64| Outgoing {
            method: "PUT",
            url: format!("http://127.0.0.1:{port}/hook/Observation/1"),
            headers: Vec::new(),
            body: Bytes::from_static(b"{}"),
            timeout: Duration::from_secs(timeout),
            public_only: false,
        };
        let started = std::time::Instant::now();
        let outcomes = transport.send_all(vec![to(port, 1), to(other, 5)]);
        assert!(started.elapsed() < Duration::from_secs(5));
        let silent = outcomes[0].as_ref().unwrap_err();
        assert!(silent.contains("no answer within 1 s"), "{silent}");
        assert_eq!(outcomes[1], Ok(()));
        let outcomes = transport.send_all(vec![to(other, 5)]);
        assert_eq!(outcomes, [Err("HTTP 503".to_string())]);
    }
}
