//! String functions, including regular expressions (`matches`, `replaceMatches`) and
//! `encode`/`decode`/`escape`/`unescape`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;

use regex::Regex;

use super::{arg_integer, arg_string, single, Args, Func};
use crate::error::{EvalError, EvalResult};
use crate::eval::{Env, Evaluator};
use crate::item::{Collection, Item};

thread_local! {
    static REGEX_CACHE: RefCell<HashMap<String, Regex>> = RefCell::new(HashMap::new());
}

/// Compiles (or reuses) a regular expression; `.` matches newlines (single-line mode).
fn regex(pattern: &str, full: bool) -> EvalResult<Regex> {
    let key = format!("{}{pattern}", if full { 'F' } else { 'P' });
    REGEX_CACHE.with(|cache| {
        if let Some(r) = cache.borrow().get(&key) {
            return Ok(r.clone());
        }
        let src = if full {
            format!("(?s)^(?:{pattern})$")
        } else {
            format!("(?s){pattern}")
        };
        let r = regex::RegexBuilder::new(&src)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| EvalError::InvalidArgument(format!("invalid regular expression: {e}")))?;
        let mut c = cache.borrow_mut();
        if c.len() > 256 {
            c.clear();
        }
        c.insert(key, r.clone());
        Ok(r)
    })
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64_encode(data: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(s: &str, alphabet: &[u8; 64]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        if c == b'=' {
            break;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        let v = alphabet.iter().position(|&a| a == c)? as u32;
        buf = buf << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits & 0xff) as u8);
        }
    }
    Some(out)
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn unescape_html(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn escape_json(s: &str) -> String {
    let quoted = serde_json::Value::String(s.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

fn unescape_json(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'u' => {
                let hex: String = chars.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            other => out.push(other),
        }
    }
    Some(out)
}

pub(super) fn call<'a>(
    ev: &mut Evaluator<'_, 'a>,
    func: Func,
    input: Collection<'a>,
    args: Args,
    env: &Env<'_, 'a>,
) -> EvalResult<Collection<'a>> {
    let Some(item) = single(&input, func)? else {
        let test = matches!(
            func,
            Func::StartsWith | Func::EndsWith | Func::Contains | Func::Matches | Func::MatchesFull
        );
        if test && ev.ctx.empty_tests_false {
            return Ok(Collection::one(Item::Boolean(false)));
        }
        return Ok(Collection::new());
    };
    let Some(s) = item.as_str() else {
        return Err(EvalError::Type(format!(
            "{}() needs a string input",
            func.name()
        )));
    };
    let s = s.to_string();
    let string = |v: String| Ok(Collection::one(Item::String(Cow::Owned(v))));
    let boolean = |v: bool| Ok(Collection::one(Item::Boolean(v)));
    let integer = |v: usize| Ok(Collection::one(Item::Integer(v as i64)));
    macro_rules! arg_str {
        ($i:expr) => {
            match arg_string(ev, args, $i, env, func)? {
                Some(v) => v,
                None => return Ok(Collection::new()),
            }
        };
    }
    match func {
        Func::IndexOf => {
            let sub = arg_str!(0);
            match s.find(&sub) {
                Some(byte) => integer(s[..byte].chars().count()),
                None => Ok(Collection::one(Item::Integer(-1))),
            }
        }
        Func::Substring => {
            let Some(start) = arg_integer(ev, args, 0, env, func)? else {
                return Ok(Collection::new());
            };
            let len = if args.len() > 1 {
                arg_integer(ev, args, 1, env, func)?
            } else {
                None
            };
            let chars: Vec<char> = s.chars().collect();
            if start < 0 || start as usize >= chars.len() {
                return Ok(Collection::new());
            }
            let start = start as usize;
            let end = match len {
                Some(l) if l <= 0 => start,
                Some(l) => start.saturating_add(l as usize).min(chars.len()),
                None => chars.len(),
            };
            string(chars[start..end].iter().collect())
        }
        Func::StartsWith => boolean(s.starts_with(&arg_str!(0))),
        Func::EndsWith => boolean(s.ends_with(&arg_str!(0))),
        Func::Contains => boolean(s.contains(&arg_str!(0))),
        Func::Upper => string(s.to_uppercase()),
        Func::Lower => string(s.to_lowercase()),
        Func::Replace => {
            let pattern = arg_str!(0);
            let with = arg_str!(1);
            string(s.replace(&pattern, &with))
        }
        Func::Matches | Func::MatchesFull => {
            let pattern = arg_str!(0);
            boolean(regex(&pattern, func == Func::MatchesFull)?.is_match(&s))
        }
        Func::ReplaceMatches => {
            let pattern = arg_str!(0);
            let with = arg_str!(1);
            if pattern.is_empty() {
                return string(s);
            }
            string(
                regex(&pattern, false)?
                    .replace_all(&s, with.as_str())
                    .into_owned(),
            )
        }
        Func::Length => integer(s.chars().count()),
        Func::ToChars => Ok(s
            .chars()
            .map(|c| Item::String(Cow::Owned(c.to_string())))
            .collect()),
        Func::Split => {
            let sep = arg_str!(0);
            if sep.is_empty() {
                return Ok(s
                    .chars()
                    .map(|c| Item::String(Cow::Owned(c.to_string())))
                    .collect());
            }
            Ok(s.split(sep.as_str())
                .map(|p| Item::String(Cow::Owned(p.to_string())))
                .collect())
        }
        Func::Trim => string(s.trim().to_string()),
        Func::Encode => match arg_str!(0).as_str() {
            "base64" => string(base64_encode(s.as_bytes(), B64)),
            "urlbase64" => string(base64_encode(s.as_bytes(), B64URL)),
            "hex" => string(s.bytes().map(|b| format!("{b:02x}")).collect()),
            other => Err(EvalError::InvalidArgument(format!(
                "unknown encoding '{other}'"
            ))),
        },
        Func::Decode => {
            let bytes = match arg_str!(0).as_str() {
                "base64" => base64_decode(&s, B64),
                "urlbase64" => base64_decode(&s, B64URL),
                "hex" => hex_decode(&s),
                other => {
                    return Err(EvalError::InvalidArgument(format!(
                        "unknown encoding '{other}'"
                    )))
                }
            };
            match bytes.and_then(|b| String::from_utf8(b).ok()) {
                Some(v) => string(v),
                None => Ok(Collection::new()),
            }
        }
        Func::Escape => match arg_str!(0).as_str() {
            "html" => string(escape_html(&s)),
            "json" => string(escape_json(&s)),
            other => Err(EvalError::InvalidArgument(format!(
                "unknown escape target '{other}'"
            ))),
        },
        Func::Unescape => match arg_str!(0).as_str() {
            "html" => string(unescape_html(&s)),
            "json" => match unescape_json(&s) {
                Some(v) => string(v),
                None => Ok(Collection::new()),
            },
            other => Err(EvalError::InvalidArgument(format!(
                "unknown escape target '{other}'"
            ))),
        },
        _ => Ok(Collection::new()),
    }
}

/// `join(separator)`: works on a collection of strings, so it is dispatched here
/// before the single-string functions.
pub(super) fn join<'a>(
    ev: &mut Evaluator<'_, 'a>,
    input: Collection<'a>,
    args: Args,
    env: &Env<'_, 'a>,
) -> EvalResult<Collection<'a>> {
    let sep = if args.is_empty() {
        String::new()
    } else {
        arg_string(ev, args, 0, env, Func::Join)?.unwrap_or_default()
    };
    let mut parts = Vec::with_capacity(input.len());
    for i in input.iter() {
        match i.as_str() {
            Some(s) => parts.push(s.to_string()),
            None => return Err(EvalError::Type("join() needs strings".into())),
        }
    }
    Ok(Collection::one(Item::String(Cow::Owned(parts.join(&sep)))))
}
