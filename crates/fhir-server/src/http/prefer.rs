//! The `Prefer` header: `return=` and `handling=`.

use actix_web::HttpRequest;

/// What to return after a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Return {
    Minimal,
    #[default]
    Representation,
    OperationOutcome,
}

/// `handling=strict|lenient`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Handling {
    Strict,
    #[default]
    Lenient,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Prefer {
    pub return_: Return,
    /// `handling` as asked, `None` when not given.
    pub handling: Option<Handling>,
}

/// Reads every `Prefer` header (several may be sent, each may hold a list).
pub fn prefer(req: &HttpRequest) -> Prefer {
    let mut p = Prefer::default();
    for value in req.headers().get_all("prefer") {
        let Ok(text) = value.to_str() else { continue };
        for part in text.split([',', ';']) {
            let Some((k, v)) = part.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"');
            match (k.trim().to_ascii_lowercase().as_str(), v) {
                ("return", "minimal") => p.return_ = Return::Minimal,
                ("return", "representation") => p.return_ = Return::Representation,
                ("return", "OperationOutcome") => p.return_ = Return::OperationOutcome,
                ("handling", "strict") => p.handling = Some(Handling::Strict),
                ("handling", "lenient") => p.handling = Some(Handling::Lenient),
                _ => {}
            }
        }
    }
    p
}
