//! Per-client request rate limits: a token bucket per authenticated client (or per
//! network address for unauthenticated callers), refilled at the configured rate with
//! a burst of one second's worth. Spent: 429 with `Retry-After`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};

use crate::error::ApiError;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Shared by all workers; `rate` 0 turns limiting off.
#[derive(Clone)]
pub struct RateLimiter {
    rate: f64,
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
}

impl RateLimiter {
    pub fn new(per_second: u32) -> RateLimiter {
        RateLimiter {
            rate: per_second as f64,
            buckets: Arc::default(),
        }
    }

    /// Takes one token for `key`; the seconds to wait when none is left. No limit
    /// at rate 0.
    pub(crate) fn take(&self, key: &str) -> Result<(), u64> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            // Forget idle callers rather than grow without bound.
            buckets.retain(|_, b| now.duration_since(b.at).as_secs() < 60);
        }
        let b = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: self.rate,
            at: now,
        });
        let elapsed = now.duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

/// Middleware (inside authentication, so the client is known).
pub async fn limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let limiter = req.app_data::<web::Data<RateLimiter>>().cloned();
    let Some(limiter) = limiter.filter(|l| l.rate > 0.0) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let key = match super::caller(req.request()) {
        Some(a) => format!("client:{}", a.client_id),
        None => format!(
            "addr:{}",
            req.peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default()
        ),
    };
    match limiter.take(&key) {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(secs) => {
            let resp = ApiError::TooManyRequests(secs).error_response();
            Ok(req.into_response(resp).map_into_right_body())
        }
    }
}
