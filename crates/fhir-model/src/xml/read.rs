//! Reading FHIR XML into the lossless JSON, with quick-xml's pull parser over the
//! document in memory: no tree of the whole document is built, only the JSON it
//! becomes.

use quick_xml::events::{BytesStart, Event};
use serde_json::{Map, Number, Value};

use super::write::{holds_resource, is_primitive};
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
    let mut xml = quick_xml::Reader::from_reader(bytes);
    xml.config_mut().check_comments = true;
    let mut r = Reader {
        defs,
        input: bytes,
        xml,
        scopes: Scopes::default(),
        at: 0,
        depth: 0,
        in_order,
        path: String::new(),
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
    xml: quick_xml::Reader<&'i [u8]>,
    scopes: Scopes,
    /// Byte offset of the element being read, for errors.
    at: usize,
    depth: usize,
    /// Refuse elements out of the definitions' order.
    in_order: bool,
    /// The element path being read (`Bundle.entry.resource`), for errors: one buffer,
    /// extended and cut back as the reader goes down and up.
    path: String,
}

/// The members of one JSON object being read, in the order they first appear.
#[derive(Default)]
struct Members(Vec<(String, bool, Slot)>);

enum Slot {
    /// One element so far (most elements: no vector for them).
    One(Value),
    Values(Vec<Value>),
    /// One primitive so far: its value and `_` member.
    Primitive(Option<Value>, Option<Value>),
    /// Primitives: value and `_` member (id, extensions) of each element.
    Primitives(Vec<(Option<Value>, Option<Value>)>),
}

impl<'i> Reader<'_, 'i> {
    fn error(&self, message: impl Into<String>) -> XmlError {
        let before = &self.input[..self.at.min(self.input.len())];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let column = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
        XmlError {
            line,
            column,
            path: (!self.path.is_empty()).then(|| self.path.clone()),
            message: message.into(),
        }
    }

    /// The next event and, for an element, its namespace.
    fn next(&mut self) -> Result<(Ns, Event<'i>), XmlError> {
        self.at = self.xml.buffer_position() as usize;
        let ev = match self.xml.read_event() {
            Ok(ev) => ev,
            Err(e) => {
                self.at = self.xml.error_position() as usize;
                return Err(self.error(format!("malformed XML: {e}")));
            }
        };
        let ns = match &ev {
            Event::Start(e) => self.scopes.open(e, false),
            Event::Empty(e) => self.scopes.open(e, true),
            Event::End(_) => {
                self.scopes.close();
                Ns::Other
            }
            Event::DocType(_) => {
                return Err(
                    self.error("a document type declaration (DTD) is not allowed in FHIR XML")
                )
            }
            _ => Ns::Other,
        };
        Ok((ns, ev))
    }

    /// The next child element of the element being read (its namespace, start tag and
    /// whether it is empty), passing over comments and blank text; `None` at the end
    /// tag. Other text is refused with `text_error`.
    fn next_child(
        &mut self,
        text_error: &str,
    ) -> Result<Option<(Ns, BytesStart<'i>, bool)>, XmlError> {
        loop {
            let (ns, ev) = self.next()?;
            return match ev {
                Event::End(_) => Ok(None),
                Event::Comment(_) | Event::PI(_) => continue,
                Event::Text(t) if is_blank(&t) => continue,
                Event::Start(e) => Ok(Some((ns, e, false))),
                Event::Empty(e) => Ok(Some((ns, e, true))),
                Event::Eof => Err(self.error("the document ends inside an element")),
                _ => Err(self.error(text_error)),
            };
        }
    }

    fn document(&mut self) -> Result<Value, XmlError> {
        let resource = loop {
            let (ns, ev) = self.next()?;
            match ev {
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
                Event::Text(t) if is_blank(&t) => {}
                Event::Start(e) | Event::Empty(e) if ns != Ns::Fhir => {
                    let name = local(&e);
                    self.path = name.clone();
                    return Err(self.error(format!(
                        "the root element '{name}' is not in the FHIR namespace ({FHIR_NS})"
                    )));
                }
                Event::Start(e) => break self.resource(&e, false)?,
                Event::Empty(e) => break self.resource(&e, true)?,
                Event::Eof => return Err(self.error("the document has no element")),
                _ => return Err(self.error("text before the root element")),
            }
        };
        loop {
            let (_, ev) = self.next()?;
            match ev {
                Event::Eof => return Ok(resource),
                Event::Comment(_) | Event::PI(_) => {}
                Event::Text(t) if is_blank(&t) => {}
                _ => return Err(self.error("content after the root element")),
            }
        }
    }

    /// A resource whose element `e` was just read (the type's name).
    fn resource(&mut self, e: &BytesStart<'_>, empty: bool) -> Result<Value, XmlError> {
        let rt = local(e);
        if self.path.is_empty() {
            self.path.push_str(&rt);
        }
        let at = self
            .defs
            .root(&rt)
            .filter(|_| self.defs.is_resource_type(&rt))
            .ok_or_else(|| self.error(format!("'{rt}' is not a resource type")))?;
        self.attributes(e, &[])?;
        let mut obj = Map::new();
        obj.insert("resourceType".into(), Value::String(rt));
        if !empty {
            self.children(at, &mut obj)?;
        }
        Ok(Value::Object(obj))
    }

    /// The attributes of `e` that are `wanted` (others are refused; namespace
    /// declarations and attributes of other namespaces, such as `xsi:schemaLocation`,
    /// are passed over).
    /// The values of the `wanted` attributes (at most two), by position in `wanted`.
    fn attributes(
        &self,
        e: &BytesStart<'_>,
        wanted: &[&str],
    ) -> Result<[Option<String>; 2], XmlError> {
        let mut out = [None, None];
        for a in e.attributes() {
            let a = a.map_err(|err| self.error(format!("malformed attribute: {err}")))?;
            let key = a.key.as_ref();
            // Namespace declarations (read by `Scopes`) and other namespaces' attributes.
            if key == b"xmlns" || key.contains(&b':') {
                continue;
            }
            let Some(slot) = wanted.iter().position(|w| w.as_bytes() == key) else {
                let key = String::from_utf8_lossy(key);
                return Err(self.error(format!("unknown attribute '{key}'")));
            };
            let value = a.unescape_value().map_err(|err| {
                let key = String::from_utf8_lossy(a.key.as_ref());
                self.error(format!("attribute '{key}': {err}"))
            })?;
            out[slot] = Some(value.into_owned());
        }
        Ok(out)
    }

    /// The child elements of the element at `at`, into `obj`, up to its end tag.
    fn children(
        &mut self,
        at: ElementCursor<'_>,
        obj: &mut Map<String, Value>,
    ) -> Result<(), XmlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!("elements nest deeper than {MAX_DEPTH}")));
        }
        let mut members = Members::default();
        let mut last = 0;
        let text = "text between elements (FHIR XML has values in attributes)";
        while let Some((ns, e, empty)) = self.next_child(text)? {
            self.element(at, ns, &e, empty, &mut members, &mut last)?;
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
        last: &mut usize,
    ) -> Result<(), XmlError> {
        let name = std::str::from_utf8(e.local_name().into_inner())
            .map_err(|_| self.error("an element name is not UTF-8"))?;
        let len = self.path.len();
        self.path.push('.');
        self.path.push_str(name);
        let step = self
            .defs
            .child(at, name)
            .ok_or_else(|| self.error(format!("unknown element '{name}'")))?;
        if self.in_order && step.at.index < *last {
            return Err(self.error("out of order: elements follow the order of the definitions"));
        }
        *last = step.at.index;
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
            return Err(self.error(format!("'{name}' is not in the namespace {want}")));
        }
        let many = step.element().max.is_many();
        let start = self.at;
        let slot = if code == Some("xhtml") {
            Slot::One(self.xhtml(e, empty, start)?)
        } else if code.is_some_and(|c| is_primitive(self.defs, c)) {
            let (v, ext) = self.primitive(step, e, empty)?;
            Slot::Primitive(v, ext)
        } else if holds_resource(code) {
            Slot::One(self.nested(empty)?)
        } else {
            Slot::One(self.complex(step, e, empty)?)
        };
        self.add(members, name, many, slot)?;
        self.path.truncate(len);
        Ok(())
    }

    fn add(
        &self,
        members: &mut Members,
        name: &str,
        many: bool,
        slot: Slot,
    ) -> Result<(), XmlError> {
        // Repeats come one after another: the last member is the likely one.
        let found = match members.0.last() {
            Some((n, _, _)) if n == name => members.0.last_mut(),
            _ => members.0.iter_mut().find(|(n, _, _)| n == name),
        };
        let Some((_, _, existing)) = found else {
            members.0.push((name.to_string(), many, slot));
            return Ok(());
        };
        if !many {
            return Err(self.error(format!("'{name}' may occur only once")));
        }
        let taken = std::mem::replace(existing, Slot::Values(Vec::new()));
        *existing = match (taken, slot) {
            (Slot::One(a), Slot::One(b)) => Slot::Values(vec![a, b]),
            (Slot::Values(mut a), Slot::One(b)) => {
                a.push(b);
                Slot::Values(a)
            }
            (Slot::Primitive(v, e), Slot::Primitive(v2, e2)) => {
                Slot::Primitives(vec![(v, e), (v2, e2)])
            }
            (Slot::Primitives(mut a), Slot::Primitive(v, e)) => {
                a.push((v, e));
                Slot::Primitives(a)
            }
            _ => return Err(self.error(format!("'{name}' mixes kinds of values"))),
        };
        Ok(())
    }

    /// The narrative's `div`, as written.
    fn xhtml(&mut self, e: &BytesStart<'i>, empty: bool, start: usize) -> Result<Value, XmlError> {
        if !empty {
            if let Err(err) = self.xml.read_to_end(e.name()) {
                return Err(self.error(format!("malformed XHTML: {err}")));
            }
            self.scopes.close();
        }
        let end = self.xml.buffer_position() as usize;
        let raw = std::str::from_utf8(&self.input[start..end])
            .map_err(|_| self.error("the narrative is not UTF-8"))?;
        // In the XHTML namespace under FHIR elements, the div declares it itself: as
        // written, it is the JSON's text.
        Ok(Value::String(raw.to_string()))
    }

    /// A primitive: its value (a JSON number or boolean where the type is one) and
    /// its `_` member (id, extensions).
    fn primitive(
        &mut self,
        step: ChildStep<'_>,
        e: &BytesStart<'i>,
        empty: bool,
    ) -> Result<(Option<Value>, Option<Value>), XmlError> {
        let code = step.type_code.unwrap_or("string");
        let mut value = None;
        let mut ext = Map::new();
        let [v, id] = self.attributes(e, &["value", "id"])?;
        if let Some(id) = id {
            ext.insert("id".into(), Value::String(id));
        }
        if let Some(v) = v {
            value = Some(self.typed(code, v)?);
        }
        if !empty {
            let at = self
                .defs
                .root(code)
                .ok_or_else(|| self.error(format!("unknown type '{code}'")))?;
            let mut children = Map::new();
            self.children(at, &mut children)?;
            if let Some(k) = children.keys().find(|k| *k != "extension") {
                return Err(self.error(format!("a primitive has no element '{k}'")));
            }
            ext.extend(children);
        }
        if value.is_none() && ext.is_empty() {
            return Err(self.error("an element with no value and no extension"));
        }
        Ok((value, (!ext.is_empty()).then_some(Value::Object(ext))))
    }

    fn typed(&self, code: &str, text: String) -> Result<Value, XmlError> {
        // Most primitives are strings: tell by the first letter before comparing names.
        let numeric = matches!(code.as_bytes().first(), Some(b'i' | b'p' | b'u' | b'd'))
            && matches!(
                code,
                "integer" | "positiveInt" | "unsignedInt" | "decimal" | "integer64"
            );
        if numeric {
            return text
                .parse::<Number>()
                .map(Value::Number)
                .map_err(|_| self.error(format!("'{text}' is not a valid {code}")));
        }
        if code == "boolean" {
            return match text.as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(self.error(format!("'{text}' is not a boolean"))),
            };
        }
        Ok(Value::String(text))
    }

    /// A nested resource: the one element inside its container.
    fn nested(&mut self, empty: bool) -> Result<Value, XmlError> {
        if empty {
            return Err(self.error("the element holds no resource"));
        }
        let mut resource = None;
        while let Some((ns, e, is_empty)) = self.next_child("text where a resource was expected")? {
            if resource.is_some() || ns != Ns::Fhir {
                return Err(self.error("the element holds more than one FHIR resource"));
            }
            self.depth += 1;
            resource = Some(self.resource(&e, is_empty)?);
            self.depth -= 1;
        }
        resource.ok_or_else(|| self.error("the element holds no resource"))
    }

    /// A complex element: `id` (and an extension's `url`) from attributes, the rest
    /// from child elements.
    fn complex(
        &mut self,
        step: ChildStep<'_>,
        e: &BytesStart<'i>,
        empty: bool,
    ) -> Result<Value, XmlError> {
        let wanted: &[&str] = if step.type_code == Some("Extension") {
            &["id", "url"]
        } else {
            &["id"]
        };
        let mut obj = Map::new();
        for (k, v) in wanted.iter().zip(self.attributes(e, wanted)?) {
            if let Some(v) = v {
                obj.insert((*k).to_string(), Value::String(v));
            }
        }
        if !empty {
            let at = self
                .defs
                .descend(step)
                .ok_or_else(|| self.error("the element's type is unknown"))?;
            self.children(at, &mut obj)?;
        }
        Ok(Value::Object(obj))
    }
}

impl Members {
    fn into_object(self, obj: &mut Map<String, Value>) {
        for (name, many, slot) in self.0 {
            let one = |mut v: Vec<Value>| if many { Value::Array(v) } else { v.remove(0) };
            match slot {
                Slot::One(v) if many => {
                    obj.insert(name, Value::Array(vec![v]));
                }
                Slot::One(v) => {
                    obj.insert(name, v);
                }
                Slot::Primitive(v, e) if !many => {
                    if let Some(e) = e {
                        if let Some(v) = v {
                            obj.insert(name.clone(), v);
                        }
                        obj.insert(format!("_{name}"), e);
                    } else if let Some(v) = v {
                        obj.insert(name, v);
                    }
                }
                Slot::Primitive(v, e) => Members::primitives(obj, name, vec![(v, e)]),
                Slot::Values(v) => {
                    obj.insert(name, one(v));
                }
                Slot::Primitives(pairs) => Members::primitives(obj, name, pairs),
            }
        }
    }

    /// A repeating primitive: its values and `_` members as arrays, `null` where one
    /// side is missing, each left out when it has nothing.
    fn primitives(
        obj: &mut Map<String, Value>,
        name: String,
        pairs: Vec<(Option<Value>, Option<Value>)>,
    ) {
        let any_value = pairs.iter().any(|(v, _)| v.is_some());
        let any_ext = pairs.iter().any(|(_, e)| e.is_some());
        let (values, exts): (Vec<Value>, Vec<Value>) = pairs
            .into_iter()
            .map(|(v, e)| (v.unwrap_or(Value::Null), e.unwrap_or(Value::Null)))
            .unzip();
        if any_value {
            obj.insert(name.clone(), Value::Array(values));
        }
        if any_ext {
            obj.insert(format!("_{name}"), Value::Array(exts));
        }
    }
}

/// The namespace declarations in scope. quick-xml's `NsReader` reads every element's
/// attributes to find declarations, and this reader reads them again for their values;
/// FHIR XML declares namespaces on few elements (the root, the narrative's `div`), so
/// here only elements whose attributes mention `xmlns` are read for declarations.
struct Scopes {
    /// Finds `xmlns` in attributes (built once: values may be long, base64 for one).
    xmlns: memchr::memmem::Finder<'static>,
    /// Prefix (empty for the default namespace) and namespace, with the element level
    /// that declared them.
    bindings: Vec<(usize, Box<[u8]>, Ns)>,
    /// Open elements.
    level: usize,
}

impl Default for Scopes {
    fn default() -> Self {
        Scopes {
            xmlns: memchr::memmem::Finder::new(b"xmlns"),
            bindings: Vec::new(),
            level: 0,
        }
    }
}

impl Scopes {
    /// Enters the element `e` (and leaves it at once if it is `empty`); its namespace.
    fn open(&mut self, e: &BytesStart<'_>, empty: bool) -> Ns {
        self.level += 1;
        if self.xmlns.find(e.attributes_raw()).is_some() {
            self.declare(e);
        }
        let prefix = e.name().prefix().map_or(&b""[..], |p| p.into_inner());
        let ns = self
            .bindings
            .iter()
            .rev()
            .find(|(_, p, _)| p.len() == prefix.len() && (prefix.is_empty() || **p == *prefix))
            .map_or(Ns::Other, |(_, _, ns)| *ns);
        if empty {
            self.close();
        }
        ns
    }

    fn declare(&mut self, e: &BytesStart<'_>) {
        // Malformed attributes are reported when the element's attributes are read.
        for a in e.attributes().flatten() {
            let key = a.key.as_ref();
            let prefix = match key.strip_prefix(b"xmlns") {
                Some([]) => &b""[..],
                Some([b':', p @ ..]) => p,
                _ => continue,
            };
            let ns = match a.value.as_ref() {
                v if v == FHIR_NS.as_bytes() => Ns::Fhir,
                v if v == XHTML_NS.as_bytes() => Ns::Xhtml,
                _ => Ns::Other,
            };
            self.bindings.push((self.level, prefix.into(), ns));
        }
    }

    /// Leaves the innermost open element.
    fn close(&mut self) {
        while self.bindings.last().is_some_and(|b| b.0 == self.level) {
            self.bindings.pop();
        }
        self.level = self.level.saturating_sub(1);
    }
}

fn local(e: &BytesStart<'_>) -> String {
    String::from_utf8_lossy(e.local_name().as_ref()).into_owned()
}

fn is_blank(t: &[u8]) -> bool {
    t.iter().all(u8::is_ascii_whitespace)
}
