//! Reading FHIR XML into the lossless JSON, with quick-xml's namespace-aware pull
//! parser over the document in memory: no tree of the whole document is built, only
//! the JSON it becomes.

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use serde_json::{Map, Number, Value};

use super::write::holds_resource;
use super::{XmlError, FHIR_NS, MAX_DEPTH, XHTML_NS};
use crate::definitions::{ChildStep, Definitions, ElementCursor};

/// Reads an XML document holding one resource into its JSON. Elements out of the
/// definitions' order are taken as they come (as HAPI's parser does: senders get it
/// wrong, and the JSON has one order anyway); [`from_xml_in_order`] refuses them.
pub fn from_xml(defs: &Definitions, bytes: &[u8]) -> Result<Value, XmlError> {
    read(defs, bytes, false)
}

/// [`from_xml`], refusing elements out of the order of the definitions (xml.html:
/// "elements SHALL appear in the order defined").
pub fn from_xml_in_order(defs: &Definitions, bytes: &[u8]) -> Result<Value, XmlError> {
    read(defs, bytes, true)
}

fn read(defs: &Definitions, bytes: &[u8], in_order: bool) -> Result<Value, XmlError> {
    let mut ns = NsReader::from_reader(bytes);
    ns.config_mut().check_comments = true;
    let mut r = Reader {
        defs,
        input: bytes,
        ns,
        at: 0,
        depth: 0,
        in_order,
    };
    r.document()
}

/// The namespace of an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    Fhir,
    Xhtml,
    Other,
}

struct Reader<'d, 'i> {
    defs: &'d Definitions,
    input: &'i [u8],
    ns: NsReader<&'i [u8]>,
    /// Byte offset of the element being read, for errors.
    at: usize,
    depth: usize,
    /// Refuse elements out of the definitions' order.
    in_order: bool,
}

/// The members of one JSON object being read, in the order they first appear.
#[derive(Default)]
struct Members(Vec<(String, bool, Slot)>);

enum Slot {
    Values(Vec<Value>),
    /// Primitives: value and `_` member (id, extensions) of each element.
    Primitives(Vec<(Option<Value>, Option<Value>)>),
}

impl<'i> Reader<'_, 'i> {
    fn error(&self, path: Option<&str>, message: impl Into<String>) -> XmlError {
        let before = &self.input[..self.at.min(self.input.len())];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
        XmlError {
            line,
            column,
            path: path.map(str::to_string),
            message: message.into(),
        }
    }

    /// The next event and, for an element, its namespace.
    fn next(&mut self, path: Option<&str>) -> Result<(Ns, Event<'i>), XmlError> {
        self.at = self.ns.buffer_position() as usize;
        let (res, ev) = match self.ns.read_resolved_event() {
            Ok((res, ev)) => (ns_of(&res), ev),
            Err(e) => {
                self.at = self.ns.error_position() as usize;
                return Err(self.error(path, format!("malformed XML: {e}")));
            }
        };
        if let Event::DocType(_) = ev {
            return Err(self.error(
                path,
                "a document type declaration (DTD) is not allowed in FHIR XML",
            ));
        }
        Ok((res, ev))
    }

    fn document(&mut self) -> Result<Value, XmlError> {
        let resource = loop {
            let (ns, ev) = self.next(None)?;
            match ev {
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
                Event::Text(t) if is_blank(&t) => {}
                Event::Start(e) | Event::Empty(e) if ns != Ns::Fhir => {
                    let name = local(&e);
                    return Err(self.error(
                        Some(&name),
                        format!(
                            "the root element '{name}' is not in the FHIR namespace ({FHIR_NS})"
                        ),
                    ));
                }
                Event::Start(e) => break self.resource(&e, false, "")?,
                Event::Empty(e) => break self.resource(&e, true, "")?,
                Event::Eof => return Err(self.error(None, "the document has no element")),
                _ => return Err(self.error(None, "text before the root element")),
            }
        };
        loop {
            let (_, ev) = self.next(None)?;
            match ev {
                Event::Eof => return Ok(resource),
                Event::Comment(_) | Event::PI(_) => {}
                Event::Text(t) if is_blank(&t) => {}
                _ => return Err(self.error(None, "content after the root element")),
            }
        }
    }

    /// A resource whose element `e` was just read (the type's name).
    fn resource(&mut self, e: &BytesStart<'_>, empty: bool, path: &str) -> Result<Value, XmlError> {
        let rt = local(e);
        let path = if path.is_empty() {
            rt.clone()
        } else {
            path.to_string()
        };
        let at = self
            .defs
            .root(&rt)
            .filter(|_| self.defs.is_resource_type(&rt))
            .ok_or_else(|| self.error(Some(&path), format!("'{rt}' is not a resource type")))?;
        self.attributes(e, &[], &path)?;
        let mut obj = Map::new();
        obj.insert("resourceType".into(), Value::String(rt));
        if !empty {
            self.children(at, &mut obj, &path)?;
        }
        Ok(Value::Object(obj))
    }

    /// The attributes of `e` that are `wanted` (others are refused; namespace
    /// declarations and attributes of other namespaces, such as `xsi:schemaLocation`,
    /// are passed over).
    fn attributes(
        &self,
        e: &BytesStart<'_>,
        wanted: &[&str],
        path: &str,
    ) -> Result<Vec<(String, String)>, XmlError> {
        let mut out = Vec::new();
        for a in e.attributes() {
            let a =
                a.map_err(|err| self.error(Some(path), format!("malformed attribute: {err}")))?;
            let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
            if key == "xmlns" || key.contains(':') {
                continue;
            }
            if !wanted.contains(&key.as_str()) {
                return Err(self.error(Some(path), format!("unknown attribute '{key}'")));
            }
            let value = a
                .unescape_value()
                .map_err(|err| self.error(Some(path), format!("attribute '{key}': {err}")))?;
            out.push((key, value.into_owned()));
        }
        Ok(out)
    }

    /// The child elements of the element at `at`, into `obj`, up to its end tag.
    fn children(
        &mut self,
        at: ElementCursor<'_>,
        obj: &mut Map<String, Value>,
        path: &str,
    ) -> Result<(), XmlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(Some(path), format!("elements nest deeper than {MAX_DEPTH}")));
        }
        let mut members = Members::default();
        let mut last = 0;
        loop {
            let (ns, ev) = self.next(Some(path))?;
            let (e, empty) = match ev {
                Event::End(_) => break,
                Event::Comment(_) | Event::PI(_) => continue,
                Event::Text(t) if is_blank(&t) => continue,
                Event::Start(e) => (e, false),
                Event::Empty(e) => (e, true),
                Event::Eof => {
                    return Err(self.error(Some(path), "the document ends inside an element"))
                }
                _ => {
                    return Err(self.error(
                        Some(path),
                        "text between elements (FHIR XML has values in attributes)",
                    ))
                }
            };
            let index = self.element(at, ns, &e, empty, &mut members, path)?;
            if self.in_order && index < last {
                return Err(self.error(
                    Some(&format!("{path}.{}", local(&e))),
                    "out of order: elements follow the order of the definitions",
                ));
            }
            last = index;
        }
        self.depth -= 1;
        members.into_object(obj);
        Ok(())
    }

    fn element(
        &mut self,
        at: ElementCursor<'_>,
        ns: Ns,
        e: &BytesStart<'i>,
        empty: bool,
        members: &mut Members,
        path: &str,
    ) -> Result<usize, XmlError> {
        let name = local(e);
        let child_path = format!("{path}.{name}");
        let step = self
            .defs
            .child(at, &name)
            .ok_or_else(|| self.error(Some(&child_path), format!("unknown element '{name}'")))?;
        let code = step.type_code;
        let expected = if code == Some("xhtml") {
            Ns::Xhtml
        } else {
            Ns::Fhir
        };
        if ns != expected {
            let want = if expected == Ns::Xhtml {
                XHTML_NS
            } else {
                FHIR_NS
            };
            return Err(self.error(
                Some(&child_path),
                format!("'{name}' is not in the namespace {want}"),
            ));
        }
        let many = step.element().max.is_many();
        let start = self.at;
        let slot = if code == Some("xhtml") {
            Slot::Values(vec![self.xhtml(e, empty, start, &child_path)?])
        } else if code.is_some_and(|c| self.defs.is_primitive(c)) {
            Slot::Primitives(vec![self.primitive(step, e, empty, &child_path)?])
        } else if holds_resource(self.defs, code) {
            Slot::Values(vec![self.nested(empty, &child_path)?])
        } else {
            Slot::Values(vec![self.complex(step, e, empty, &child_path)?])
        };
        self.add(members, &name, many, slot, &child_path)?;
        Ok(step.at.index)
    }

    fn add(
        &self,
        members: &mut Members,
        name: &str,
        many: bool,
        slot: Slot,
        path: &str,
    ) -> Result<(), XmlError> {
        let Some((_, _, existing)) = members.0.iter_mut().find(|(n, _, _)| n == name) else {
            members.0.push((name.to_string(), many, slot));
            return Ok(());
        };
        if !many {
            return Err(self.error(Some(path), format!("'{name}' may occur only once")));
        }
        match (existing, slot) {
            (Slot::Values(a), Slot::Values(b)) => a.extend(b),
            (Slot::Primitives(a), Slot::Primitives(b)) => a.extend(b),
            _ => return Err(self.error(Some(path), format!("'{name}' mixes kinds of values"))),
        }
        Ok(())
    }

    /// The narrative's `div`, as written (with the XHTML namespace declared on it).
    fn xhtml(
        &mut self,
        e: &BytesStart<'i>,
        empty: bool,
        start: usize,
        path: &str,
    ) -> Result<Value, XmlError> {
        if !empty {
            if let Err(err) = self.ns.read_to_end(e.name()) {
                return Err(self.error(Some(path), format!("malformed XHTML: {err}")));
            }
        }
        let end = self.ns.buffer_position() as usize;
        let raw = std::str::from_utf8(&self.input[start..end])
            .map_err(|_| self.error(Some(path), "the narrative is not UTF-8"))?;
        let declared = e.attributes().flatten().any(|a| a.key.as_ref() == b"xmlns");
        if declared || !raw.starts_with("<div") {
            return Ok(Value::String(raw.to_string()));
        }
        Ok(Value::String(format!(
            "<div xmlns=\"{XHTML_NS}\"{}",
            &raw["<div".len()..]
        )))
    }

    /// A primitive: its value (a JSON number or boolean where the type is one) and
    /// its `_` member (id, extensions).
    fn primitive(
        &mut self,
        step: ChildStep<'_>,
        e: &BytesStart<'i>,
        empty: bool,
        path: &str,
    ) -> Result<(Option<Value>, Option<Value>), XmlError> {
        let code = step.type_code.unwrap_or("string");
        let mut value = None;
        let mut ext = Map::new();
        for (k, v) in self.attributes(e, &["value", "id"], path)? {
            if k == "id" {
                ext.insert("id".into(), Value::String(v));
            } else {
                value = Some(self.typed(code, v, path)?);
            }
        }
        if !empty {
            let at = self
                .defs
                .root(code)
                .ok_or_else(|| self.error(Some(path), format!("unknown type '{code}'")))?;
            let mut children = Map::new();
            self.children(at, &mut children, path)?;
            if let Some(k) = children.keys().find(|k| *k != "extension") {
                return Err(self.error(Some(path), format!("a primitive has no element '{k}'")));
            }
            ext.extend(children);
        }
        if value.is_none() && ext.is_empty() {
            return Err(self.error(Some(path), "an element with no value and no extension"));
        }
        Ok((value, (!ext.is_empty()).then_some(Value::Object(ext))))
    }

    fn typed(&self, code: &str, text: String, path: &str) -> Result<Value, XmlError> {
        match code {
            "boolean" => match text.as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(self.error(Some(path), format!("'{text}' is not a boolean"))),
            },
            "integer" | "positiveInt" | "unsignedInt" | "decimal" | "integer64" => text
                .parse::<Number>()
                .map(Value::Number)
                .map_err(|_| self.error(Some(path), format!("'{text}' is not a valid {code}"))),
            _ => Ok(Value::String(text)),
        }
    }

    /// A nested resource: the one element inside its container.
    fn nested(&mut self, empty: bool, path: &str) -> Result<Value, XmlError> {
        if empty {
            return Err(self.error(Some(path), "the element holds no resource"));
        }
        let mut resource = None;
        loop {
            let (ns, ev) = self.next(Some(path))?;
            let (e, is_empty) = match ev {
                Event::End(_) => break,
                Event::Comment(_) | Event::PI(_) => continue,
                Event::Text(t) if is_blank(&t) => continue,
                Event::Start(e) => (e, false),
                Event::Empty(e) => (e, true),
                _ => return Err(self.error(Some(path), "text where a resource was expected")),
            };
            if resource.is_some() || ns != Ns::Fhir {
                return Err(self.error(Some(path), "the element holds more than one FHIR resource"));
            }
            self.depth += 1;
            resource = Some(self.resource(&e, is_empty, path)?);
            self.depth -= 1;
        }
        resource.ok_or_else(|| self.error(Some(path), "the element holds no resource"))
    }

    /// A complex element: `id` (and an extension's `url`) from attributes, the rest
    /// from child elements.
    fn complex(
        &mut self,
        step: ChildStep<'_>,
        e: &BytesStart<'i>,
        empty: bool,
        path: &str,
    ) -> Result<Value, XmlError> {
        let wanted: &[&str] = if step.type_code == Some("Extension") {
            &["id", "url"]
        } else {
            &["id"]
        };
        let mut obj = Map::new();
        for (k, v) in self.attributes(e, wanted, path)? {
            obj.insert(k, Value::String(v));
        }
        if !empty {
            let at = self
                .defs
                .descend(step)
                .ok_or_else(|| self.error(Some(path), "the element's type is unknown"))?;
            self.children(at, &mut obj, path)?;
        }
        Ok(Value::Object(obj))
    }
}

impl Members {
    fn into_object(self, obj: &mut Map<String, Value>) {
        for (name, many, slot) in self.0 {
            let one = |mut v: Vec<Value>| if many { Value::Array(v) } else { v.remove(0) };
            match slot {
                Slot::Values(v) => {
                    obj.insert(name, one(v));
                }
                Slot::Primitives(pairs) => {
                    let any_value = pairs.iter().any(|(v, _)| v.is_some());
                    let any_ext = pairs.iter().any(|(_, e)| e.is_some());
                    let (values, exts): (Vec<Value>, Vec<Value>) = pairs
                        .into_iter()
                        .map(|(v, e)| (v.unwrap_or(Value::Null), e.unwrap_or(Value::Null)))
                        .unzip();
                    if any_value {
                        obj.insert(name.clone(), one(values));
                    }
                    if any_ext {
                        obj.insert(format!("_{name}"), one(exts));
                    }
                }
            }
        }
    }
}

fn ns_of(res: &ResolveResult<'_>) -> Ns {
    match res {
        ResolveResult::Bound(n) if n.as_ref() == FHIR_NS.as_bytes() => Ns::Fhir,
        ResolveResult::Bound(n) if n.as_ref() == XHTML_NS.as_bytes() => Ns::Xhtml,
        _ => Ns::Other,
    }
}

fn local(e: &BytesStart<'_>) -> String {
    String::from_utf8_lossy(e.local_name().as_ref()).into_owned()
}

fn is_blank(t: &[u8]) -> bool {
    t.iter().all(u8::is_ascii_whitespace)
}
