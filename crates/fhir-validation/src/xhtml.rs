//! Narrative XHTML (`txt-1`), the part that matters for safety: no active content.
//! The div may only hold basic formatting; scripts, forms, frames, embedded objects,
//! event handler attributes and `javascript:` URLs are refused. (A full check of the
//! allowed elements and attributes would need an XHTML parser.)

const FORBIDDEN_ELEMENTS: &[&str] = &[
    "script", "form", "iframe", "frame", "frameset", "object", "embed", "applet", "base", "link",
    "meta", "style", "input", "button", "select", "textarea",
];

/// What makes a narrative div unsafe, if anything.
pub fn active_content(div: &str) -> Option<String> {
    let lower = div.to_ascii_lowercase();
    for name in FORBIDDEN_ELEMENTS {
        let open = format!("<{name}");
        let found = lower.match_indices(&open).any(|(i, _)| {
            lower[i + open.len()..]
                .starts_with(|c: char| c == '>' || c == '/' || c.is_ascii_whitespace())
        });
        if found {
            return Some(format!(
                "the element <{name}> is not allowed in a narrative"
            ));
        }
    }
    if lower.contains("javascript:") {
        return Some("'javascript:' URLs are not allowed in a narrative".into());
    }
    event_attribute(&lower).map(|a| format!("the attribute '{a}' is not allowed in a narrative"))
}

/// An `on…=` attribute inside a tag.
fn event_attribute(lower: &str) -> Option<String> {
    let mut in_tag = false;
    let bytes = lower.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'<' => in_tag = true,
            b'>' => in_tag = false,
            b'o' if in_tag && i > 0 && bytes[i - 1].is_ascii_whitespace() => {
                let rest = &lower[i..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .collect();
                let after = rest[name.len()..].trim_start();
                if name.len() > 2 && name.starts_with("on") && after.starts_with('=') {
                    return Some(name);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::active_content;

    #[test]
    fn finds_active_content() {
        let ok = r#"<div xmlns="http://www.w3.org/1999/xhtml"><p title="on=x" class="c">a <b>b</b> <a href="http://x">l</a></p><scripture/></div>"#;
        assert_eq!(active_content(ok), None);
        assert!(active_content("<div><script>x</script></div>").is_some());
        assert!(active_content("<div><p onclick = \"x()\">a</p></div>").is_some());
        assert!(active_content("<div><a href=\"JavaScript:x()\">a</a></div>").is_some());
    }
}
