//! Content negotiation (http.html#mime-type): `Accept`, `_format`, and XML when the
//! statement lists it.

use super::capability::formats;
use super::Ctx;
use crate::report::Outcome;

/// Check id, path, request headers, the content type expected.
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);

pub(super) fn check(ctx: &mut Ctx) {
    let cases: [Case; 3] = [
        (
            "format.accept-json",
            "/metadata",
            &[("Accept", "application/fhir+json")],
            "application/fhir+json",
        ),
        (
            "format.param-json",
            "/metadata?_format=json",
            &[("Accept", "*/*")],
            "application/fhir+json",
        ),
        (
            "format.accept-xml",
            "/metadata",
            &[("Accept", "application/fhir+xml")],
            "application/fhir+xml",
        ),
    ];
    let xml = formats(&ctx.capability).iter().any(|f| f.contains("xml"));
    for (id, path, headers, want) in cases {
        if want.ends_with("xml") && !xml {
            ctx.record(id, Outcome::NotClaimed, "format does not list XML", None);
            continue;
        }
        let r = match ctx.client.get(path, headers) {
            Ok(r) => r,
            Err(e) => {
                ctx.unanswered(id, &e);
                continue;
            }
        };
        let ct = r.header("Content-Type").unwrap_or_default().to_string();
        let body_ok = if want.ends_with("xml") {
            r.body.trim_start().starts_with('<')
        } else {
            r.json().is_some()
        };
        if r.status == 200 && ct.starts_with(want) && body_ok {
            ctx.pass(id, format!("Content-Type {ct}"));
        } else {
            ctx.fail(
                id,
                format!(
                    "status {}, Content-Type {ct:?}: expected 200 and {want}",
                    r.status
                ),
                &r,
            );
        }
    }
}
