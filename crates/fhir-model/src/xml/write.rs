//! Writing a resource's JSON as FHIR XML, elements in the order of the definitions.
//!
//! Written by hand over a `String` rather than with quick-xml's writer: the work is
//! choosing names, order and attributes from the definitions; what is left to write is
//! tags and escaped attribute values (newlines escaped too, which XML would otherwise
//! turn into spaces), and the narrative copied as it is.

use serde_json::{Map, Value};

use super::{XmlWriteError, FHIR_NS};
use crate::definitions::{ChildStep, Definitions, ElementCursor};

/// The resource `resource` (JSON) as an XML document; `pretty` indents it.
pub fn to_xml(defs: &Definitions, resource: &Value, pretty: bool) -> Result<String, XmlWriteError> {
    let mut w = Writer {
        defs,
        out: String::with_capacity(1024),
        pretty,
        depth: 0,
        path: String::new(),
    };
    w.out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    w.resource(resource, true)?;
    if pretty {
        w.out.push('\n');
    }
    Ok(w.out)
}

struct Writer<'d> {
    defs: &'d Definitions,
    out: String,
    pretty: bool,
    depth: usize,
    /// The element path being written (`Bundle.entry[3].resource`), for errors: one
    /// buffer, extended and cut back as the writer goes down and up.
    path: String,
}

fn fail(path: &str, message: impl Into<String>) -> XmlWriteError {
    XmlWriteError {
        path: path.to_string(),
        message: message.into(),
    }
}

/// The items of a member that may repeat, `None` for its `null` slots.
fn items(v: Option<&Value>) -> Vec<Option<&Value>> {
    match v {
        Some(Value::Array(a)) => a.iter().map(|x| Some(x).filter(|x| !x.is_null())).collect(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![Some(other)],
    }
}

/// Text of a path segment: `.name` or `[i]`.
fn push_segment(path: &mut String, name: &str, index: Option<usize>) {
    use std::fmt::Write;
    if !name.is_empty() {
        path.push('.');
        path.push_str(name);
    }
    if let Some(i) = index {
        let _ = write!(path, "[{i}]");
    }
}

/// A primitive type. Their names begin with a lower-case letter and those of complex
/// types with a capital, so half the look-ups are spared.
pub(super) fn is_primitive(defs: &Definitions, code: &str) -> bool {
    code.starts_with(|c: char| c.is_ascii_lowercase()) && defs.is_primitive(code)
}

/// A type whose values are resources (nested in an element named for their type). In
/// R4 resources nest only through elements of type `Resource` (`contained`,
/// `Bundle.entry.resource`, `Parameters.parameter.resource`): checking the name of
/// every resource type for every element was a tenth of reading XML.
pub(super) fn holds_resource(code: Option<&str>) -> bool {
    matches!(code, Some("Resource" | "DomainResource"))
}

impl<'d> Writer<'d> {
    fn newline(&mut self) {
        if self.pretty {
            self.out.push('\n');
            for _ in 0..self.depth {
                self.out.push_str("  ");
            }
        }
    }

    fn fail(&self, message: impl Into<String>) -> XmlWriteError {
        fail(&self.path, message)
    }

    fn resource(&mut self, v: &Value, root: bool) -> Result<(), XmlWriteError> {
        let obj = v
            .as_object()
            .ok_or_else(|| self.fail("a resource is not a JSON object"))?;
        let rt = obj
            .get("resourceType")
            .and_then(Value::as_str)
            .ok_or_else(|| self.fail("resourceType is missing"))?;
        let at = self
            .defs
            .root(rt)
            .filter(|_| self.defs.is_resource_type(rt))
            .ok_or_else(|| self.fail(format!("'{rt}' is not a resource type")))?;
        if root {
            self.path.push_str(rt);
        }
        let members = self.members(obj, at, &["resourceType"]);
        self.newline();
        self.out.push('<');
        self.out.push_str(rt);
        if root {
            self.out.push_str(&format!(" xmlns=\"{FHIR_NS}\""));
        }
        self.children(obj, &members, rt)
    }

    /// The members of `obj` written as child elements with their steps, in the order
    /// of the definitions (a `_name` goes with `name`), leaving out `skip`. Members the
    /// definitions do not know have no place in XML: only a write with
    /// `handling=lenient` stores them, and the XML view leaves them out (the stored JSON
    /// keeps them).
    fn members<'v>(
        &self,
        obj: &'v Map<String, Value>,
        at: ElementCursor<'d>,
        skip: &[&str],
    ) -> Vec<(&'v str, ChildStep<'d>)> {
        let mut keyed = Vec::with_capacity(obj.len());
        for k in obj.keys() {
            if skip.contains(&k.as_str()) {
                continue;
            }
            let base = k.strip_prefix('_').unwrap_or(k);
            if base.len() != k.len() && obj.contains_key(base) {
                continue;
            }
            if let Some(step) = self.defs.child(at, base) {
                keyed.push((base, step));
            }
        }
        keyed.sort_by_key(|(_, step)| step.at.index);
        keyed
    }

    /// Closes the start tag already written, writes `members` and the end tag `name`.
    fn children(
        &mut self,
        obj: &Map<String, Value>,
        members: &[(&str, ChildStep<'_>)],
        name: &str,
    ) -> Result<(), XmlWriteError> {
        if members.is_empty() {
            self.out.push_str("/>");
            return Ok(());
        }
        self.out.push('>');
        self.depth += 1;
        let underscored = obj.keys().any(|k| k.starts_with('_'));
        for (m, step) in members {
            self.member(obj, m, *step, underscored)?;
        }
        self.depth -= 1;
        self.newline();
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        Ok(())
    }

    /// Every element of member `name` (and of `_name`): one per array item.
    fn member(
        &mut self,
        obj: &Map<String, Value>,
        name: &str,
        step: ChildStep<'_>,
        underscored: bool,
    ) -> Result<(), XmlWriteError> {
        let value = obj.get(name);
        // Most objects have no `_` member: spare building its name.
        let ext = if underscored {
            obj.get(&format!("_{name}"))
        } else {
            None
        };
        let len = self.path.len();
        if !matches!(value, Some(Value::Array(_))) && !matches!(ext, Some(Value::Array(_))) {
            push_segment(&mut self.path, name, None);
            self.element(step, name, value, ext)?;
            self.path.truncate(len);
            return Ok(());
        }
        let (values, exts) = (items(value), items(ext));
        for i in 0..values.len().max(exts.len()) {
            push_segment(&mut self.path, name, Some(i));
            let v = values.get(i).copied().flatten();
            let e = exts.get(i).copied().flatten();
            self.element(step, name, v, e)?;
            self.path.truncate(len);
        }
        Ok(())
    }

    fn element(
        &mut self,
        step: ChildStep<'_>,
        name: &str,
        v: Option<&Value>,
        ext: Option<&Value>,
    ) -> Result<(), XmlWriteError> {
        let code = step.type_code;
        if code == Some("xhtml") {
            let div = v
                .and_then(Value::as_str)
                .ok_or_else(|| self.fail("the narrative is not a string"))?;
            self.newline();
            self.out.push_str(div);
            return Ok(());
        }
        let primitive = code.is_some_and(|c| is_primitive(self.defs, c));
        let Some(Value::Object(obj)) = v.filter(|_| !primitive) else {
            return self.primitive(step, name, v, ext);
        };
        if holds_resource(code) {
            self.newline();
            self.out.push('<');
            self.out.push_str(name);
            self.out.push('>');
            self.depth += 1;
            self.resource(v.unwrap_or(&Value::Null), false)?;
            self.depth -= 1;
            self.newline();
            self.out.push_str("</");
            self.out.push_str(name);
            self.out.push('>');
            return Ok(());
        }
        let next = self
            .defs
            .descend(step)
            .ok_or_else(|| self.fail("the element's type is unknown"))?;
        let attrs: &[&str] = if code == Some("Extension") {
            &["id", "url"]
        } else {
            &["id"]
        };
        let members = self.members(obj, next, attrs);
        self.newline();
        self.out.push('<');
        self.out.push_str(name);
        for a in attrs {
            if let Some(text) = obj.get(*a).and_then(Value::as_str) {
                self.attribute(a, text);
            }
        }
        self.children(obj, &members, name)
    }

    /// A primitive: its value and id as attributes, its extensions as children.
    fn primitive(
        &mut self,
        step: ChildStep<'_>,
        name: &str,
        v: Option<&Value>,
        ext: Option<&Value>,
    ) -> Result<(), XmlWriteError> {
        let number;
        let text = match v {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(Value::Number(n)) => {
                number = n.to_string();
                Some(number.as_str())
            }
            Some(Value::Bool(true)) => Some("true"),
            Some(Value::Bool(false)) => Some("false"),
            Some(_) => return Err(self.fail("a primitive value is an object or an array")),
        };
        let ext = match ext {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(o),
            Some(_) => return Err(self.fail("the _ member of a primitive is not an object")),
        };
        self.newline();
        self.out.push('<');
        self.out.push_str(name);
        if let Some(id) = ext.and_then(|e| e.get("id")).and_then(Value::as_str) {
            self.attribute("id", id);
        }
        if let Some(t) = text {
            self.attribute("value", t);
        }
        let Some(ext) = ext else {
            self.out.push_str("/>");
            return Ok(());
        };
        let at = step
            .type_code
            .and_then(|c| self.defs.root(c))
            .or_else(|| self.defs.root("Element"))
            .ok_or_else(|| self.fail("the element's type is unknown"))?;
        // A primitive's `_` member carries its id and extensions, nothing else.
        let mut members = self.members(ext, at, &["id"]);
        members.retain(|(m, _)| *m == "extension");
        self.children(ext, &members, name)
    }

    fn attribute(&mut self, name: &str, value: &str) {
        self.out.push(' ');
        self.out.push_str(name);
        self.out.push_str("=\"");
        // Most values need no escaping: copy them whole.
        if !value.contains(['&', '<', '>', '"', '\n', '\r', '\t']) {
            self.out.push_str(value);
        } else {
            for c in value.chars() {
                match c {
                    '&' => self.out.push_str("&amp;"),
                    '<' => self.out.push_str("&lt;"),
                    '>' => self.out.push_str("&gt;"),
                    '"' => self.out.push_str("&quot;"),
                    '\n' => self.out.push_str("&#10;"),
                    '\r' => self.out.push_str("&#13;"),
                    '\t' => self.out.push_str("&#9;"),
                    c => self.out.push(c),
                }
            }
        }
        self.out.push('"');
    }
}
