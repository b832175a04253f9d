//! Where notifications may go. A subscription names a URL the server will call: to keep
//! it from being turned against the server's own network (SSRF), endpoints must be
//! `http(s)://` URLs whose host resolves only to public addresses — not loopback,
//! private (RFC 1918, unique-local), link-local (cloud metadata at 169.254.169.254),
//! unspecified or multicast — unless `--subscription-allow-private-endpoints` is set
//! (tests, internal networks). Checked when a subscription is written and again before
//! each delivery (a name may resolve elsewhere later).

use std::net::{IpAddr, ToSocketAddrs};

/// Why an endpoint is refused. A host name that does not resolve is refused only when
/// `must_resolve` (before a delivery); when a subscription is written, a partner's DNS
/// may be down for a moment.
pub fn check(endpoint: &str, allow_private: bool, must_resolve: bool) -> Result<url::Url, String> {
    let url = url::Url::parse(endpoint).map_err(|e| format!("'{endpoint}' is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the endpoint must be an http(s) URL, not '{}:'",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the endpoint may not carry credentials (use channel.header)".into());
    }
    let host = url.host_str().ok_or("the endpoint has no host")?;
    if allow_private {
        return Ok(url);
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<IpAddr> = match (host, port).to_socket_addrs() {
        Ok(a) => a.map(|a| a.ip()).collect(),
        Err(_) if !must_resolve => return Ok(url),
        Err(e) => {
            return Err(format!(
                "the endpoint's host '{host}' does not resolve ({e})"
            ))
        }
    };
    if addrs.is_empty() && must_resolve {
        return Err(format!("the endpoint's host '{host}' does not resolve"));
    }
    match addrs.iter().find(|a| !is_public(a)) {
        Some(a) => Err(format!(
            "the endpoint's host resolves to {a}, a loopback, private or link-local address; \
             the administrator may allow those with --subscription-allow-private-endpoints"
        )),
        None => Ok(url),
    }
}

fn is_public(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                // 100.64.0.0/10, carrier-grade NAT (shared address space).
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(&IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80) // link-local
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_refused() {
        for bad in [
            "http://127.0.0.1:8080/hook",
            "http://localhost/hook",
            "http://10.1.2.3/hook",
            "http://192.168.0.10/hook",
            "http://172.16.5.4/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/hook",
            "http://[fd00::1]/hook",
            "http://[::ffff:127.0.0.1]/hook",
            "http://0.0.0.0/hook",
            "ftp://example.org/hook",
            "https://user:pw@example.org/hook",
            "not a url",
        ] {
            assert!(check(bad, false, false).is_err(), "{bad}");
        }
        assert!(check("http://127.0.0.1:8080/hook", true, true).is_ok());
        assert!(check("https://93.184.216.34/hook", false, true).is_ok());
        assert!(check("https://unresolvable.invalid/hook", false, false).is_ok());
        assert!(check("https://unresolvable.invalid/hook", false, true).is_err());
    }
}
