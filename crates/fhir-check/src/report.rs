//! The report: one entry per check (pass, fail, warn, not claimed, skipped) with the
//! exchange that decided a failure, as text, JSON or a self-contained HTML page.

use serde::Serialize;

use crate::client::Exchange;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Pass,
    Fail,
    /// Works, but not as well as it should (a certificate about to expire).
    Warn,
    /// The CapabilityStatement does not claim it.
    NotClaimed,
    /// Claimed, but could not be tried (no data to try it on, read-only run, budget).
    Skipped,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Warn => "warn",
            Outcome::NotClaimed => "not claimed",
            Outcome::Skipped => "skipped",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What it checks, e.g. `Patient.read`, `errors.not-found`.
    pub id: String,
    pub outcome: Outcome,
    /// What was found (for a failure: what was expected and what came).
    pub detail: String,
    /// The exchange that decided a failure or a warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange: Option<Exchange>,
}

/// Every check of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub base: String,
    pub software: Option<String>,
    pub requests: usize,
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether the server does everything it claims (no check failed).
    pub fn conforms(&self) -> bool {
        self.checks.iter().all(|c| c.outcome != Outcome::Fail)
    }

    fn count(&self, outcome: Outcome) -> usize {
        self.checks.iter().filter(|c| c.outcome == outcome).count()
    }

    fn summary(&self) -> String {
        format!(
            "{} passed, {} failed, {} warnings, {} not claimed, {} skipped ({} requests)",
            self.count(Outcome::Pass),
            self.count(Outcome::Fail),
            self.count(Outcome::Warn),
            self.count(Outcome::NotClaimed),
            self.count(Outcome::Skipped),
            self.requests
        )
    }

    /// Plain text: a line per check, and the exchange under each failure.
    pub fn text(&self) -> String {
        let mut out = format!("FHIR conformance check of {}\n", self.base);
        if let Some(s) = &self.software {
            out.push_str(&format!("software: {s}\n"));
        }
        for c in &self.checks {
            out.push_str(&format!(
                "{:<12} {:<40} {}\n",
                c.outcome.word(),
                c.id,
                c.detail
            ));
            if let (Some(x), Outcome::Fail | Outcome::Warn) = (&c.exchange, c.outcome) {
                out.push_str(&indent(&exchange_text(x)));
            }
        }
        out.push_str(&format!(
            "{}: {}\n",
            if self.conforms() {
                "CONFORMS"
            } else {
                "DOES NOT CONFORM"
            },
            self.summary()
        ));
        out
    }

    /// JSON (the same fields as [`Report`]).
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// A self-contained HTML page (no scripts, no external files).
    pub fn html(&self) -> String {
        let mut rows = String::new();
        for c in &self.checks {
            let exchange = match (&c.exchange, c.outcome) {
                (Some(x), Outcome::Fail | Outcome::Warn) => format!(
                    "<details><summary>request and response</summary><pre>{}</pre></details>",
                    escape(&exchange_text(x))
                ),
                _ => String::new(),
            };
            rows.push_str(&format!(
                "<tr class=\"{cls}\"><td>{word}</td><td><code>{id}</code></td><td>{detail}{exchange}</td></tr>\n",
                cls = c.outcome.word().replace(' ', "-").to_lowercase(),
                word = c.outcome.word(),
                id = escape(&c.id),
                detail = escape(&c.detail),
            ));
        }
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>FHIR conformance: {base}</title>\n\
             <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td{{border:1px solid #ccc;padding:4px 8px;vertical-align:top}}\
             tr.fail td:first-child{{background:#f8d0d0}}tr.pass td:first-child{{background:#d0f0d0}}tr.warn td:first-child{{background:#f8ecc0}}pre{{white-space:pre-wrap}}</style>\n\
             </head><body><h1>FHIR conformance check</h1><p>Server: <code>{base}</code>{software}</p>\n\
             <p><strong>{verdict}</strong>: {summary}</p>\n<table><thead><tr><th>outcome</th><th>check</th><th>detail</th></tr></thead><tbody>\n{rows}</tbody></table></body></html>\n",
            base = escape(&self.base),
            software = self
                .software
                .as_ref()
                .map(|s| format!(" ({})", escape(s)))
                .unwrap_or_default(),
            verdict = if self.conforms() { "Conforms" } else { "Does not conform" },
            summary = escape(&self.summary()),
        )
    }
}

fn exchange_text(x: &Exchange) -> String {
    let mut s = format!("{} {}\n", x.method, x.url);
    for (k, v) in &x.request_headers {
        s.push_str(&format!("{k}: {v}\n"));
    }
    if let Some(b) = &x.request_body {
        s.push_str(&format!("\n{b}\n"));
    }
    s.push_str(&format!("\n=> {}\n", x.status));
    for (k, v) in &x.response_headers {
        s.push_str(&format!("{k}: {v}\n"));
    }
    s.push_str(&format!("\n{}\n", x.response_body));
    s
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    | {l}\n")).collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_what_the_server_sent() {
        let report = Report {
            base: "http://x/fhir".into(),
            software: None,
            requests: 1,
            checks: vec![Check {
                id: "Patient.read".into(),
                outcome: Outcome::Fail,
                detail: "<script>alert(1)</script>".into(),
                exchange: None,
            }],
        };
        let html = report.html();
        assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"));
        assert!(!report.conforms() && report.text().contains("DOES NOT CONFORM"));
    }
}
