//! Client keys published at a URL (`jwks_url` of a registered client), as SMART's
//! asymmetric client authentication prefers: fetched when an assertion needs them and
//! kept no longer than the response's `Cache-Control: max-age` allows (never more than
//! an hour; without a max-age, five minutes). An assertion whose `kid` the cached set
//! lacks fetches the set again (the client rotated its keys), at most once a minute.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;

const DEFAULT_TTL: Duration = Duration::from_secs(300);
const MAX_TTL: Duration = Duration::from_secs(3600);
const REFETCH_AFTER: Duration = Duration::from_secs(60);
const TIMEOUT: Duration = Duration::from_secs(10);

/// Fetched key sets by URL.
#[derive(Debug, Default)]
pub struct JwksCache {
    sets: Mutex<HashMap<String, Cached>>,
}

#[derive(Debug, Clone)]
struct Cached {
    set: JwkSet,
    fetched: Instant,
    ttl: Duration,
}

impl JwksCache {
    /// The key set at `url` holding `kid` when it does (blocking: may fetch).
    pub fn keys(&self, url: &str, kid: &str) -> Result<JwkSet, String> {
        let cached = self
            .sets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(url)
            .cloned();
        if let Some(c) = cached {
            let fresh = c.fetched.elapsed() < c.ttl;
            let has_kid = c
                .set
                .keys
                .iter()
                .any(|k| k.common.key_id.as_deref() == Some(kid));
            if fresh && (has_kid || c.fetched.elapsed() < REFETCH_AFTER) {
                return Ok(c.set);
            }
        }
        let (set, ttl) = fetch(url)?;
        self.sets.lock().unwrap_or_else(|p| p.into_inner()).insert(
            url.to_string(),
            Cached {
                set: set.clone(),
                fetched: Instant::now(),
                ttl,
            },
        );
        Ok(set)
    }
}

fn fetch(url: &str) -> Result<(JwkSet, Duration), String> {
    let r = ureq::get(url)
        .timeout(TIMEOUT)
        .call()
        .map_err(|e| format!("the client's JWKS at {url} cannot be fetched: {e}"))?;
    let ttl = r
        .header("Cache-Control")
        .map(max_age)
        .unwrap_or(Some(DEFAULT_TTL));
    let text = r
        .into_string()
        .map_err(|e| format!("the client's JWKS at {url} cannot be read: {e}"))?;
    let set: JwkSet =
        serde_json::from_str(&text).map_err(|e| format!("{url} does not hold a JWK Set: {e}"))?;
    Ok((set, ttl.unwrap_or(Duration::ZERO).min(MAX_TTL)))
}

/// How long a response may be kept: `max-age`, nothing for `no-store`/`no-cache`,
/// the default otherwise.
fn max_age(cache_control: &str) -> Option<Duration> {
    let mut age = Some(DEFAULT_TTL);
    for d in cache_control.split(',').map(str::trim) {
        let d = d.to_ascii_lowercase();
        if d == "no-store" || d == "no-cache" {
            return None;
        }
        if let Some(n) = d.strip_prefix("max-age=") {
            age = n.parse().ok().map(Duration::from_secs);
        }
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_decides_how_long() {
        assert_eq!(max_age("public, max-age=60"), Some(Duration::from_secs(60)));
        assert_eq!(max_age("no-store"), None);
        assert_eq!(max_age("public"), Some(DEFAULT_TTL));
    }
}
