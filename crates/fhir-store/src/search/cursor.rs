//! Where a page starts: the `_page` cursor (a `rid`, or the sort values of the
//! boundary row) and its text form.

/// Where a page starts. Pages follow a key, not a position, so that links stay correct
/// while data changes: unsorted searches page by `rid`, sorted ones by the sort values
/// of the boundary row (then `rid`).
#[derive(Debug, Clone, PartialEq)]
pub enum SearchCursor {
    AfterRid(i64),
    BeforeRid(i64),
    AfterKey(Vec<KeyValue>),
    BeforeKey(Vec<KeyValue>),
    /// A position (links of earlier versions; still understood).
    Offset(u64),
}

/// One sort value of a boundary row.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyValue {
    Int(i64),
    Real(f64),
    Text(String),
}

impl KeyValue {
    /// `i5`, `r1.5` (shortest text that reads back exactly), `tsmith`.
    fn encode(&self) -> String {
        match self {
            KeyValue::Int(n) => format!("i{n}"),
            KeyValue::Real(x) => format!("r{x}"),
            KeyValue::Text(t) => format!("t{t}"),
        }
    }

    fn decode(s: &str) -> Option<KeyValue> {
        let (kind, rest) = s.split_at_checked(1)?;
        match kind {
            "i" => rest.parse().ok().map(KeyValue::Int),
            "r" => rest.parse().ok().map(KeyValue::Real),
            "t" => Some(KeyValue::Text(rest.to_string())),
            _ => None,
        }
    }
}

/// Key values as a JSON array of strings (numbers as text, so they read back exactly).
pub(super) fn encode_key(key: &[KeyValue]) -> String {
    let parts: Vec<String> = key.iter().map(KeyValue::encode).collect();
    serde_json::to_string(&parts).unwrap_or_default()
}

pub(super) fn decode_key(text: &str) -> Option<Vec<KeyValue>> {
    let parts: Vec<String> = serde_json::from_str(text).ok()?;
    parts.iter().map(|p| KeyValue::decode(p)).collect()
}

impl SearchCursor {
    /// The cursor as the value of a `_page` parameter.
    pub fn token(&self) -> String {
        let keys = |k: &Vec<KeyValue>| encode_key(k);
        match self {
            SearchCursor::AfterRid(n) => format!("a{n}"),
            SearchCursor::BeforeRid(n) => format!("b{n}"),
            SearchCursor::AfterKey(k) => format!("k{}", keys(k)),
            SearchCursor::BeforeKey(k) => format!("j{}", keys(k)),
            SearchCursor::Offset(n) => format!("o{n}"),
        }
    }

    /// Reads a `_page` value; `None` when it is not one of ours.
    pub fn parse(token: &str) -> Option<SearchCursor> {
        let (kind, rest) = token.split_at_checked(1)?;
        match kind {
            "a" => rest.parse().ok().map(SearchCursor::AfterRid),
            "b" => rest.parse().ok().map(SearchCursor::BeforeRid),
            "k" => decode_key(rest).map(SearchCursor::AfterKey),
            "j" => decode_key(rest).map(SearchCursor::BeforeKey),
            "o" => rest.parse().ok().map(SearchCursor::Offset),
            _ => None,
        }
    }
}
