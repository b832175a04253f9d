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
    };
    w.out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    w.resource(resource, "", true)?;
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
}

fn fail(path: &str, message: impl Into<String>) -> XmlWriteError {
    XmlWriteError {
        path: path.to_string(),
        message: message.into(),
    }
}

/// A type whose values are resources (nested in an element named for their type).
pub(super) fn holds_resource(defs: &Definitions, code: Option<&str>) -> bool {
    code.is_some_and(|c| c == "Resource" || c == "DomainResource" || defs.is_resource_type(c))
}

impl Writer<'_> {
    fn newline(&mut self) {
        if self.pretty {
            self.out.push('\n');
            for _ in 0..self.depth {
                self.out.push_str("  ");
            }
        }
    }

    fn resource(&mut self, v: &Value, path: &str, root: bool) -> Result<(), XmlWriteError> {
        let obj = v
            .as_object()
            .ok_or_else(|| fail(path, "a resource is not a JSON object"))?;
        let rt = obj
            .get("resourceType")
            .and_then(Value::as_str)
            .ok_or_else(|| fail(path, "resourceType is missing"))?;
        let at = self
            .defs
            .root(rt)
            .filter(|_| self.defs.is_resource_type(rt))
            .ok_or_else(|| fail(path, format!("'{rt}' is not a resource type")))?;
        let path = if path.is_empty() { rt } else { path };
        let members = self.members(obj, at, path, &["resourceType"])?;
        self.newline();
        self.out.push('<');
        self.out.push_str(rt);
        if root {
            self.out.push_str(&format!(" xmlns=\"{FHIR_NS}\""));
        }
        self.children(obj, at, path, &members, rt)
    }

    /// The names of the members of `obj` written as child elements, in the order of
    /// the definitions (a `_name` goes with `name`), leaving out `skip`.
    fn members<'v>(
        &self,
        obj: &'v Map<String, Value>,
        at: ElementCursor<'_>,
        path: &str,
        skip: &[&str],
    ) -> Result<Vec<&'v str>, XmlWriteError> {
        let mut keyed = Vec::with_capacity(obj.len());
        for k in obj.keys() {
            if skip.contains(&k.as_str()) {
                continue;
            }
            let base = k.strip_prefix('_').unwrap_or(k);
            if base.len() != k.len() && obj.contains_key(base) {
                continue;
            }
            let step = self
                .defs
                .child(at, base)
                .ok_or_else(|| fail(&format!("{path}.{base}"), "unknown element"))?;
            keyed.push((step.at.index, base));
        }
        keyed.sort_by_key(|(i, _)| *i);
        Ok(keyed.into_iter().map(|(_, k)| k).collect())
    }

    /// Closes the start tag already written, writes `members` and the end tag `name`.
    fn children(
        &mut self,
        obj: &Map<String, Value>,
        at: ElementCursor<'_>,
        path: &str,
        members: &[&str],
        name: &str,
    ) -> Result<(), XmlWriteError> {
        if members.is_empty() {
            self.out.push_str("/>");
            return Ok(());
        }
        self.out.push('>');
        self.depth += 1;
        for m in members {
            self.member(obj, at, m, path)?;
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
        at: ElementCursor<'_>,
        name: &str,
        path: &str,
    ) -> Result<(), XmlWriteError> {
        let step = self
            .defs
            .child(at, name)
            .ok_or_else(|| fail(path, format!("unknown element '{name}'")))?;
        let value = obj.get(name);
        let ext = obj.get(&format!("_{name}"));
        let path = format!("{path}.{name}");
        if !matches!(value, Some(Value::Array(_))) && !matches!(ext, Some(Value::Array(_))) {
            return self.element(step, name, value, ext, &path);
        }
        let items = |v: Option<&Value>| match v {
            Some(Value::Array(a)) => a.clone(),
            Some(Value::Null) | None => Vec::new(),
            Some(other) => vec![other.clone()],
        };
        let (values, exts) = (items(value), items(ext));
        for i in 0..values.len().max(exts.len()) {
            let v = values.get(i).filter(|v| !v.is_null());
            let e = exts.get(i).filter(|e| !e.is_null());
            self.element(step, name, v, e, &format!("{path}[{i}]"))?;
        }
        Ok(())
    }

    fn element(
        &mut self,
        step: ChildStep<'_>,
        name: &str,
        v: Option<&Value>,
        ext: Option<&Value>,
        path: &str,
    ) -> Result<(), XmlWriteError> {
        let code = step.type_code;
        if code == Some("xhtml") {
            let div = v
                .and_then(Value::as_str)
                .ok_or_else(|| fail(path, "the narrative is not a string"))?;
            self.newline();
            self.out.push_str(div);
            return Ok(());
        }
        let primitive = code.is_some_and(|c| self.defs.is_primitive(c));
        if primitive || !v.is_some_and(Value::is_object) {
            return self.primitive(step, name, v, ext, path);
        }
        let v = v.unwrap_or(&Value::Null);
        if holds_resource(self.defs, code) {
            self.newline();
            self.out.push_str(&format!("<{name}>"));
            self.depth += 1;
            self.resource(v, path, false)?;
            self.depth -= 1;
            self.newline();
            self.out.push_str(&format!("</{name}>"));
            return Ok(());
        }
        let obj = v.as_object().ok_or_else(|| fail(path, "not an object"))?;
        let next = self
            .defs
            .descend(step)
            .ok_or_else(|| fail(path, "the element's type is unknown"))?;
        let attrs: &[&str] = if code == Some("Extension") {
            &["id", "url"]
        } else {
            &["id"]
        };
        let members = self.members(obj, next, path, attrs)?;
        self.newline();
        self.out.push('<');
        self.out.push_str(name);
        for a in attrs {
            if let Some(text) = obj.get(*a).and_then(Value::as_str) {
                self.attribute(a, text);
            }
        }
        self.children(obj, next, path, &members, name)
    }

    /// A primitive: its value and id as attributes, its extensions as children.
    fn primitive(
        &mut self,
        step: ChildStep<'_>,
        name: &str,
        v: Option<&Value>,
        ext: Option<&Value>,
        path: &str,
    ) -> Result<(), XmlWriteError> {
        let text = match v {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            Some(_) => return Err(fail(path, "a primitive value is an object or an array")),
        };
        let ext = match ext {
            None | Some(Value::Null) => None,
            Some(Value::Object(o)) => Some(o),
            Some(_) => return Err(fail(path, "the _ member of a primitive is not an object")),
        };
        self.newline();
        self.out.push('<');
        self.out.push_str(name);
        if let Some(id) = ext.and_then(|e| e.get("id")).and_then(Value::as_str) {
            self.attribute("id", id);
        }
        if let Some(t) = &text {
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
            .ok_or_else(|| fail(path, "the element's type is unknown"))?;
        let members = self.members(ext, at, path, &["id"])?;
        if members.iter().any(|m| *m != "extension") {
            return Err(fail(
                path,
                "a primitive's _ member holds more than id and extension",
            ));
        }
        self.children(ext, at, path, &members, name)
    }

    fn attribute(&mut self, name: &str, value: &str) {
        self.out.push(' ');
        self.out.push_str(name);
        self.out.push_str("=\"");
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
        self.out.push('"');
    }
}
