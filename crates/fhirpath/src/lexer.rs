//! The tokenizer: FHIRPath text to tokens with byte offsets.

use crate::error::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A plain identifier (keywords such as `and`, `is`, `true` included).
    Ident(String),
    /// A `` `delimited` `` identifier: never a keyword.
    QuotedIdent(String),
    Str(String),
    /// Number text as written (`12`, `1.50`).
    Number(String),
    /// `@2015-02-04T14:34` without the `@`.
    DateTime(String),
    /// `@T14:34` without the `@T`.
    Time(String),
    /// `$this`, `$index`, `$total` (name without `$`).
    Special(String),
    /// `%name`, `` %`name` ``, `%'name'` (name without `%`).
    Env(String),
    Sym(&'static str),
    Eof,
}

#[derive(Debug, Clone)]
pub struct Token {
    pub tok: Tok,
    pub start: usize,
}

const SYMBOLS: &[&str] = &[
    "<=", ">=", "!=", "!~", ".", ",", "(", ")", "[", "]", "{", "}", "+", "-", "*", "/", "&", "|",
    "=", "~", "<", ">",
];

pub fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let start = i;
            i += 2;
            loop {
                if i + 1 >= b.len() {
                    return Err(ParseError::at(src, start, "unterminated comment"));
                }
                if b[i] == b'*' && b[i + 1] == b'/' {
                    i += 2;
                    break;
                }
                i += 1;
            }
            continue;
        }
        let start = i;
        let tok = if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            Tok::Ident(src[start..i].to_string())
        } else if c.is_ascii_digit() {
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            Tok::Number(src[start..i].to_string())
        } else if c == b'\'' || c == b'`' {
            let (s, next) = read_quoted(src, i, c)?;
            i = next;
            if c == b'\'' {
                Tok::Str(s)
            } else {
                Tok::QuotedIdent(s)
            }
        } else if c == b'@' {
            let (t, next) = read_datetime(src, i)?;
            i = next;
            t
        } else if c == b'$' {
            i += 1;
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let name = &src[s..i];
            if !matches!(name, "this" | "index" | "total") {
                return Err(ParseError::at(
                    src,
                    start,
                    format!("unknown special variable '${name}'"),
                ));
            }
            Tok::Special(name.to_string())
        } else if c == b'%' {
            i += 1;
            match b.get(i) {
                Some(&q) if q == b'`' || q == b'\'' => {
                    let (s, next) = read_quoted(src, i, q)?;
                    i = next;
                    Tok::Env(s)
                }
                Some(&d) if d.is_ascii_alphabetic() || d == b'_' => {
                    let s = i;
                    while i < b.len()
                        && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'-')
                    {
                        i += 1;
                    }
                    Tok::Env(src[s..i].to_string())
                }
                _ => {
                    return Err(ParseError::at(
                        src,
                        start,
                        "expected a variable name after '%'",
                    ))
                }
            }
        } else {
            let rest = &src[i..];
            match SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
                Some(s) => {
                    i += s.len();
                    Tok::Sym(s)
                }
                None => {
                    let ch = rest.chars().next().unwrap_or('?');
                    return Err(ParseError::at(
                        src,
                        start,
                        format!("unexpected character '{ch}'"),
                    ));
                }
            }
        };
        out.push(Token { tok, start });
    }
    out.push(Token {
        tok: Tok::Eof,
        start: src.len(),
    });
    Ok(out)
}

/// Reads a `'…'` or `` `…` `` literal starting at `start`; returns the unescaped text and
/// the offset after the closing quote.
fn read_quoted(src: &str, start: usize, quote: u8) -> Result<(String, usize), ParseError> {
    let mut s = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((off, ch)) = chars.next() {
        let at = start + 1 + off;
        if ch as u32 == quote as u32 {
            return Ok((s, at + 1));
        }
        if ch != '\\' {
            s.push(ch);
            continue;
        }
        let Some((_, e)) = chars.next() else { break };
        match e {
            '\'' | '"' | '`' | '\\' | '/' => s.push(e),
            'f' => s.push('\u{c}'),
            'n' => s.push('\n'),
            'r' => s.push('\r'),
            't' => s.push('\t'),
            'u' => {
                let mut code = 0u32;
                for _ in 0..4 {
                    let d = chars.next().and_then(|(_, h)| h.to_digit(16));
                    match d {
                        Some(d) => code = code * 16 + d,
                        None => return Err(ParseError::at(src, at, "invalid \\u escape")),
                    }
                }
                match char::from_u32(code) {
                    Some(c) => s.push(c),
                    None => return Err(ParseError::at(src, at, "invalid \\u escape")),
                }
            }
            _ => return Err(ParseError::at(src, at, format!("invalid escape '\\{e}'"))),
        }
    }
    let what = if quote == b'\'' {
        "string"
    } else {
        "identifier"
    };
    Err(ParseError::at(src, start, format!("unterminated {what}")))
}

fn digits(b: &[u8], i: &mut usize, n: usize) -> bool {
    if *i + n <= b.len() && b[*i..*i + n].iter().all(u8::is_ascii_digit) {
        *i += n;
        true
    } else {
        false
    }
}

/// Reads the time part `hh(:mm(:ss(.fff)?)?)?`.
fn read_time(b: &[u8], i: &mut usize) -> bool {
    if !digits(b, i, 2) {
        return false;
    }
    if b.get(*i) == Some(&b':') && {
        let mut j = *i + 1;
        digits(b, &mut j, 2)
    } {
        *i += 3;
        if b.get(*i) == Some(&b':') && {
            let mut j = *i + 1;
            digits(b, &mut j, 2)
        } {
            *i += 3;
            if b.get(*i) == Some(&b'.') && b.get(*i + 1).is_some_and(u8::is_ascii_digit) {
                *i += 1;
                while *i < b.len() && b[*i].is_ascii_digit() {
                    *i += 1;
                }
            }
        }
    }
    true
}

fn read_tz(b: &[u8], i: &mut usize) {
    match b.get(*i) {
        Some(b'Z') => *i += 1,
        Some(b'+') | Some(b'-') => {
            let mut j = *i + 1;
            if digits(b, &mut j, 2) && b.get(j) == Some(&b':') {
                j += 1;
                if digits(b, &mut j, 2) {
                    *i = j;
                }
            }
        }
        _ => {}
    }
}

fn read_datetime(src: &str, start: usize) -> Result<(Tok, usize), ParseError> {
    let b = src.as_bytes();
    let mut i = start + 1;
    if b.get(i) == Some(&b'T') {
        i += 1;
        if !read_time(b, &mut i) {
            return Err(ParseError::at(src, start, "invalid time literal"));
        }
        if matches!(b.get(i), Some(b'Z') | Some(b'+') | Some(b'-'))
            && (b.get(i) == Some(&b'Z') || b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            return Err(ParseError::at(
                src,
                i,
                "a time literal cannot have a time zone",
            ));
        }
        return Ok((Tok::Time(src[start + 2..i].to_string()), i));
    }
    if !digits(b, &mut i, 4) {
        return Err(ParseError::at(src, start, "invalid date/time literal"));
    }
    if b.get(i) == Some(&b'-') && {
        let mut j = i + 1;
        digits(b, &mut j, 2)
    } {
        i += 3;
        if b.get(i) == Some(&b'-') && {
            let mut j = i + 1;
            digits(b, &mut j, 2)
        } {
            i += 3;
        }
    }
    if b.get(i) == Some(&b'T') {
        i += 1;
        if read_time(b, &mut i) {
            read_tz(b, &mut i);
        }
    }
    Ok((Tok::DateTime(src[start + 1..i].to_string()), i))
}
