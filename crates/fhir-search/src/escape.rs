//! Search value escaping: `\,` `\|` `\$` and `\\` stand for the literal characters;
//! unescaped `,` separates OR values, `$` composite components, `|` token/quantity parts.

/// Splits `s` at every `sep` not preceded by an escaping backslash. The parts keep
/// their escapes (unescape them with [`unescape`] once fully split).
pub fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Splits at the first unescaped `sep`.
pub fn split_once_unescaped(s: &str, sep: char) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            return Some((&s[..i], &s[i + c.len_utf8()..]));
        }
    }
    None
}

/// Removes the escaping backslashes: `\,` → `,`, `\|` → `|`, `\$` → `$`, `\\` → `\`.
/// A backslash before any other character (or at the end) is kept as it is.
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.peek() {
                Some(&n @ (',' | '|' | '$' | '\\')) => {
                    out.push(n);
                    chars.next();
                }
                _ => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_unescapes() {
        assert_eq!(split_unescaped(r"a,b\,c,d", ','), vec!["a", r"b\,c", "d"]);
        assert_eq!(split_unescaped(r"a\\,b", ','), vec![r"a\\", "b"]);
        assert_eq!(split_unescaped("", ','), vec![""]);
        assert_eq!(unescape(r"b\,c\|d\$e\\f\x"), r"b,c|d$e\f\x");
        assert_eq!(unescape("trailing\\"), "trailing\\");
        assert_eq!(split_once_unescaped(r"s\|x|c", '|'), Some((r"s\|x", "c")));
        assert_eq!(split_once_unescaped("abc", '|'), None);
    }
}
