//! Narrative XHTML as txt-1 and the HL7 Java validator judge it: only the elements and
//! attributes of basic HTML formatting that FHIR allows (narrative.html: chapters 7-11
//! and 15 of HTML 4.0, `<a>`, images, style attributes), no entities beyond XML's own
//! and character references, and no active content (`javascript:` URLs). The lists are
//! those the Java validator checks, so that a narrative it accepts is accepted here.

use quick_xml::events::{BytesStart, Event};

/// Elements a narrative may hold.
const ELEMENTS: &[&str] = &[
    "p",
    "br",
    "div",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "a",
    "span",
    "b",
    "em",
    "i",
    "strong",
    "small",
    "big",
    "tt",
    "dfn",
    "q",
    "var",
    "abbr",
    "acronym",
    "cite",
    "blockquote",
    "hr",
    "address",
    "bdo",
    "kbd",
    "sub",
    "sup",
    "ul",
    "ol",
    "li",
    "dl",
    "dt",
    "dd",
    "pre",
    "table",
    "caption",
    "colgroup",
    "col",
    "thead",
    "tr",
    "tfoot",
    "tbody",
    "th",
    "td",
    "code",
    "samp",
    "img",
    "map",
    "area",
];

/// Attributes any element may have.
const ATTRIBUTES: &[&str] = &[
    "title",
    "style",
    "class",
    "id",
    "lang",
    "xml:lang",
    "dir",
    "accesskey",
    "tabindex",
    // tables
    "span",
    "width",
    "align",
    "valign",
    "char",
    "charoff",
    "abbr",
    "axis",
    "headers",
    "scope",
    "rowspan",
    "colspan",
];

/// Attributes of one element (`element.attribute`).
const ELEMENT_ATTRIBUTES: &[&str] = &[
    "a.href",
    "a.name",
    "img.src",
    "img.border",
    "div.xmlns",
    "blockquote.cite",
    "q.cite",
    "a.title",
    "a.type",
    "a.rel",
    "a.rev",
    "a.hreflang",
    "a.charset",
    "a.coords",
    "a.shape",
    "img.alt",
    "img.align",
    "img.height",
    "img.width",
    "img.usemap",
    "img.ismap",
    "img.longdesc",
    "table.summary",
    "table.width",
    "table.border",
    "table.frame",
    "table.rules",
    "table.cellspacing",
    "table.cellpadding",
    "pre.space",
    "td.nowrap",
];

/// What the narrative `div` holds that it may not, one message each (empty: nothing).
pub fn problems(div: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut r = quick_xml::Reader::from_str(div);
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => element(&e, &mut out),
            Ok(Event::GeneralRef(g)) => {
                let name = String::from_utf8_lossy(&g).into_owned();
                let predefined = matches!(name.as_str(), "lt" | "gt" | "amp" | "quot" | "apos");
                if !predefined && !name.starts_with('#') {
                    out.push(format!("Invalid entity in the XHTML ('&{name};')"));
                }
            }
            Ok(Event::Eof) => return out,
            Err(e) => {
                out.push(format!("The XHTML is not well-formed: {e}"));
                return out;
            }
            _ => {}
        }
    }
}

fn element(e: &BytesStart<'_>, out: &mut Vec<String>) {
    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
    if !ELEMENTS.contains(&name.as_str()) {
        out.push(format!("Invalid element name in the XHTML ('{name}')"));
    }
    for a in e.attributes().with_checks(false).flatten() {
        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        let qualified = format!("{name}.{key}");
        let allowed = key.starts_with("xmlns")
            || ATTRIBUTES.contains(&key.as_str())
            || ELEMENT_ATTRIBUTES.contains(&qualified.as_str());
        if !allowed {
            out.push(format!(
                "Invalid attribute name in the XHTML ('{key}' on '{name}')"
            ));
        }
        let value = String::from_utf8_lossy(&a.value).to_ascii_lowercase();
        if value.trim_start().starts_with("javascript:") {
            out.push(format!(
                "'javascript:' URLs are not allowed in a narrative ('{key}' on '{name}')"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::problems;

    #[test]
    fn finds_what_a_narrative_may_not_hold() {
        let ok = r#"<div xmlns="http://www.w3.org/1999/xhtml"><p title="on=x" class="c">a &amp; <b>b</b> <a href="http://x">l</a> &#169;</p><table border="1"><tr><td colspan="2">x</td></tr></table></div>"#;
        assert!(problems(ok).is_empty(), "{:?}", problems(ok));
        assert_eq!(
            problems("<div><script>x</script></div>"),
            ["Invalid element name in the XHTML ('script')"]
        );
        let onclick = problems("<div><p onclick=\"x()\">a</p></div>");
        assert_eq!(
            onclick,
            ["Invalid attribute name in the XHTML ('onclick' on 'p')"]
        );
        assert_eq!(
            problems("<div><a href=\"JavaScript:x()\">a</a></div>").len(),
            1
        );
        assert_eq!(
            problems("<div>&reg;</div>"),
            ["Invalid entity in the XHTML ('&reg;')"]
        );
        assert_eq!(problems("<div><p>x</div>").len(), 1, "not well-formed");
    }
}
