//! Full text for `_text` (the narrative) and `_content` (all the text of a resource):
//! what is indexed ([`full_text`]) and the query a search value becomes
//! ([`text_query`]). Both are normalised here as string search is (lower case, Latin
//! accents folded), so the databases' engines (SQLite FTS5 with the Porter stemmer,
//! PostgreSQL `english` text search) see the same words on both backends.

use serde_json::Value;

use crate::normalize::normalize;

/// The most characters kept of each text (PostgreSQL's `tsvector` holds up to 1 MB).
const MAX_CHARS: usize = 200_000;

/// The texts of one resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FullText {
    /// The narrative (`text.div`) without its markup.
    pub narrative: String,
    /// Every string of the resource (contained resources included, base64 data left
    /// out), with the narrative as text.
    pub content: String,
}

/// The full text of `resource`.
pub fn full_text(resource: &Value) -> FullText {
    let narrative = resource
        .pointer("/text/div")
        .and_then(Value::as_str)
        .map(strip_markup)
        .unwrap_or_default();
    let mut raw = String::new();
    strings(resource, &mut raw);
    raw.push(' ');
    raw.push_str(&narrative);
    FullText {
        narrative: capped(normalize(&narrative)),
        content: capped(normalize(&raw)),
    }
}

fn capped(mut s: String) -> String {
    if s.len() > MAX_CHARS {
        let mut end = MAX_CHARS;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Appends the string values of `v`, skipping the narrative's markup (added as text)
/// and base64 `data`.
fn strings(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push(' ');
        }
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => {
            for (k, x) in o {
                if k == "div" || (k == "data" && x.is_string()) {
                    continue;
                }
                strings(x, out);
            }
        }
        _ => {}
    }
}

/// XHTML as text: tags become spaces, the common entities their characters.
fn strip_markup(div: &str) -> String {
    let mut out = String::with_capacity(div.len());
    let mut in_tag = false;
    for c in div.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// A `_text`/`_content` value as a query both engines read the same way: words (all
/// must occur), `"quoted phrases"`, and `OR` between alternatives; commas separate
/// alternatives too (FHIR's OR). Words are normalised like the indexed text; the
/// words `and`/`or` themselves are not searched for. `None` when nothing is left.
pub fn text_query(value: &str) -> Option<String> {
    let mut alternatives: Vec<String> = Vec::new();
    for alternative in split_outside_quotes(value, ',') {
        let mut parts: Vec<String> = Vec::new();
        for token in tokens(&alternative) {
            match token {
                Token::Or => {
                    if parts.last().is_some_and(|p| p != "OR") {
                        parts.push("OR".into());
                    }
                }
                Token::Words(words, phrase) => {
                    let words: Vec<String> = words_of(&words);
                    if words.is_empty() {
                        continue;
                    }
                    if phrase || words.len() > 1 {
                        parts.push(format!("\"{}\"", words.join(" ")));
                    } else {
                        parts.push(words[0].clone());
                    }
                }
            }
        }
        while parts.last().is_some_and(|p| p == "OR") {
            parts.pop();
        }
        if parts.first().is_some_and(|p| p == "OR") {
            parts.remove(0);
        }
        if !parts.is_empty() {
            alternatives.push(parts.join(" "));
        }
    }
    (!alternatives.is_empty()).then(|| alternatives.join(" OR "))
}

enum Token {
    Or,
    /// Text and whether it was quoted.
    Words(String, bool),
}

fn tokens(s: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
        rest = &rest[start..];
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            out.push(Token::Words(quoted[..end].to_string(), true));
            rest = quoted.get(end + 1..).unwrap_or("");
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let word = &rest[..end];
        out.push(if word == "OR" {
            Token::Or
        } else {
            Token::Words(word.to_string(), false)
        });
        rest = &rest[end..];
    }
    out
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c == sep && !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// The normalised alphanumeric words of `s` (`and`/`or` left out).
fn words_of(s: &str) -> Vec<String> {
    normalize(s)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && *w != "and" && *w != "or")
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn narrative_and_content() {
        let r = json!({"resourceType": "Patient", "text": {"status": "generated",
            "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Zoë <b>Smith</b> &amp; co</p></div>"},
            "name": [{"family": "Ångström"}], "photo": [{"data": "QUJD"}]});
        let t = full_text(&r);
        assert_eq!(t.narrative, "zoe smith & co");
        assert!(t.content.contains("angstrom") && t.content.contains("zoe smith"));
        assert!(!t.content.contains("quj"), "base64 data is left out");
        assert!(!t.content.contains("xhtml"), "markup is left out");
    }

    #[test]
    fn queries_read_the_same_in_both_engines() {
        assert_eq!(text_query("Heart Attack").as_deref(), Some("heart attack"));
        assert_eq!(
            text_query("\"heart attack\" OR stroke").as_deref(),
            Some("\"heart attack\" OR stroke")
        );
        assert_eq!(text_query("fever,cough").as_deref(), Some("fever OR cough"));
        assert_eq!(
            text_query("café-au-lait").as_deref(),
            Some("\"cafe au lait\"")
        );
        assert_eq!(text_query("OR fever OR").as_deref(), Some("fever"));
        assert_eq!(text_query("and or ,").as_deref(), None);
    }
}
