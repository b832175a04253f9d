//! The websocket channel of the Backport IG (channels.md#websockets), without HTTP: the
//! binding tokens `$get-ws-binding-token` hands out ([`issue`], [`verify`]: a JWT
//! signed with a secret every node shares, naming the subscriptions and an expiry, so a
//! client may bind on any node) and the [`Hub`] of this node's bound connections, to
//! which the deliverer hands each notification (a connection task writes it to its
//! socket). A notification for a subscription no connection of this node is bound to
//! is left for another node; after [`UNBOUND_GRACE_MS`] it is kept unsent (clients
//! catch up with `$events`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::Sender;

/// How long a binding token is valid (seconds).
pub const TOKEN_SECONDS: i64 = 3600;
/// How long an event of a subscription bound on no connection of this node waits for
/// one (or for another node to send it) before it is kept unsent (ms).
pub const UNBOUND_GRACE_MS: i64 = 30_000;

const AUDIENCE: &str = "subscription-websocket";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    aud: String,
    /// Expiry (seconds since the epoch).
    exp: i64,
    /// The subscription ids the token binds.
    subs: Vec<String>,
}

/// A token binding `subscriptions` until `expires` (seconds since the epoch).
pub fn issue(secret: &str, subscriptions: &[String], expires: i64) -> String {
    let claims = Claims {
        aud: AUDIENCE.into(),
        exp: expires,
        subs: subscriptions.to_vec(),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap_or_default()
}

/// The subscriptions a token binds and when it expires, or why it is refused.
pub fn verify(secret: &str, token: &str) -> Result<(Vec<String>, i64), String> {
    let mut v = Validation::new(Algorithm::HS256);
    v.set_audience(&[AUDIENCE]);
    v.leeway = 0;
    jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret.as_bytes()), &v)
        .map(|d| (d.claims.subs, d.claims.exp))
        .map_err(|e| format!("the binding token is not valid: {e}"))
}

/// Notifications a connection may have waiting to be written: a client that reads
/// slower than that misses the rest (they stay for `$events`), rather than the server
/// holding an unbounded backlog for it.
pub const QUEUE: usize = 256;

/// A bound connection: where its notifications go, and until when (ms).
struct Bound {
    connection: u64,
    until: i64,
    to: Sender<String>,
}

/// This node's websocket connections, by the subscriptions they are bound to.
#[derive(Default)]
pub struct Hub {
    bound: Mutex<HashMap<String, Vec<Bound>>>,
    next: AtomicU64,
}

impl Hub {
    /// A new connection's id.
    pub fn connection(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Binds `connection` (sending to `to`) to `subscription` until `until` (ms).
    pub fn bind(&self, subscription: &str, connection: u64, until: i64, to: Sender<String>) {
        let mut bound = self.bound.lock().unwrap_or_else(|p| p.into_inner());
        let list = bound.entry(subscription.to_string()).or_default();
        list.retain(|b| b.connection != connection);
        list.push(Bound {
            connection,
            until,
            to,
        });
    }

    /// Forgets a closed connection.
    pub fn close(&self, connection: u64) {
        let mut bound = self.bound.lock().unwrap_or_else(|p| p.into_inner());
        bound.retain(|_, list| {
            list.retain(|b| b.connection != connection);
            !list.is_empty()
        });
    }

    /// Whether a live binding of `subscription` is on this node.
    pub fn is_bound(&self, subscription: &str, now: i64) -> bool {
        let bound = self.bound.lock().unwrap_or_else(|p| p.into_inner());
        bound
            .get(subscription)
            .is_some_and(|l| l.iter().any(|b| b.until > now && !b.to.is_closed()))
    }

    /// Sends `text` to every live connection bound to `subscription` whose queue has
    /// room; `Err` when none took it. Expired and closed bindings are dropped.
    pub fn send(&self, subscription: &str, text: &str, now: i64) -> Result<(), String> {
        let mut bound = self.bound.lock().unwrap_or_else(|p| p.into_inner());
        let Some(list) = bound.get_mut(subscription) else {
            return Err("no websocket client is bound to this subscription".into());
        };
        list.retain(|b| b.until > now && !b.to.is_closed());
        let sent = list
            .iter()
            .filter(|b| b.to.try_send(text.to_string()).is_ok())
            .count();
        if sent == 0 {
            return Err("no websocket client is bound to this subscription".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_bind_what_they_name_until_they_expire() {
        let now = fhir_store::time::now_millis() / 1000;
        let t = issue("s3cret", &["a".into(), "b".into()], now + 60);
        assert_eq!(verify("s3cret", &t).unwrap().0, vec!["a", "b"]);
        assert!(verify("other", &t).is_err());
        let old = issue("s3cret", &["a".into()], now - 5);
        assert!(verify("s3cret", &old).unwrap_err().contains("not valid"));
    }

    #[test]
    fn the_hub_sends_to_live_bindings_only() {
        let hub = Hub::default();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let c = hub.connection();
        hub.bind("s1", c, 1_000, tx);
        assert!(hub.is_bound("s1", 500));
        hub.send("s1", "hello", 500).unwrap();
        assert!(
            hub.send("s1", "more", 500).is_err(),
            "a full queue takes no more"
        );
        assert_eq!(rx.try_recv().unwrap(), "hello");
        assert!(hub.send("s1", "late", 2_000).is_err(), "expired");
        assert!(hub.send("s2", "x", 0).is_err());
        hub.close(c);
        assert!(!hub.is_bound("s1", 0));
    }
}
