//! Response headers that keep browsers from misusing answers: no sniffing, no framing,
//! no referrers, nothing cached by shared caches, and HSTS over HTTPS.

use actix_web::middleware::DefaultHeaders;

pub fn headers(https: bool) -> DefaultHeaders {
    let h = DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add((
            "Content-Security-Policy",
            "default-src 'none'; frame-ancestors 'none'",
        ))
        .add(("Referrer-Policy", "no-referrer"));
    if https {
        h.add(("Strict-Transport-Security", "max-age=31536000"))
    } else {
        h
    }
}
