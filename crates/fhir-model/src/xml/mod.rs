//! FHIR XML (xml.html of the R4 spec) as a view of the lossless JSON: [`to_xml`] writes a
//! resource's JSON as XML, [`from_xml`] reads XML into the JSON the rest of the server
//! works with. Both are driven by the definitions, which say what JSON alone cannot:
//! the order of elements, which elements repeat, which primitives are numbers or
//! booleans, and where a resource is nested.
//!
//! The mapping, both ways:
//! - the resource type is the element name, in the namespace `http://hl7.org/fhir`;
//! - a primitive is an element with a `value` attribute (its text as written: decimals
//!   keep their digits); its JSON `_name` member (id, extensions) becomes the `id`
//!   attribute and `extension` children of the same element; repeating primitives pair
//!   up with `_name` arrays, `null` where one side is missing;
//! - `Element.id` and `Extension.url` are attributes; a resource's `id` is an element;
//! - nested resources (`contained`, `Bundle.entry.resource`, `Parameters…resource`) are
//!   wrapped in an element named for the resource type;
//! - the narrative's `div` is XHTML, copied as it is written (JSON holds it as text);
//! - XML comments are dropped when reading (R4 JSON has no place for them: the
//!   `fhir_comments` of earlier versions are gone), and JSON has none to write.
//!
//! Reading refuses what FHIR XML may not contain, with the line, column and element
//! path: a DTD (so no external entities and no entity expansion), elements the
//! definitions do not know, another namespace, text between elements, and unknown
//! attributes. The whole document is read from memory, like JSON bodies, under the same
//! size limit; nesting is bounded by [`MAX_DEPTH`].

mod read;
mod write;

pub use read::{from_xml, from_xml_in_order};
pub use write::to_xml;

/// The FHIR namespace.
pub const FHIR_NS: &str = "http://hl7.org/fhir";
/// The XHTML namespace of the narrative's `div`.
pub const XHTML_NS: &str = "http://www.w3.org/1999/xhtml";

/// Deepest element nesting read (as for JSON: a document nested deeper is refused).
pub const MAX_DEPTH: usize = 128;

/// Why an XML document could not be read as a FHIR resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid FHIR XML at line {line}, column {column}{}: {message}", path_note(.path))]
pub struct XmlError {
    pub line: usize,
    pub column: usize,
    /// The element path where it happened (`Patient.name[0].given`), if known.
    pub path: Option<String>,
    pub message: String,
}

fn path_note(path: &Option<String>) -> String {
    path.as_ref().map(|p| format!(" ({p})")).unwrap_or_default()
}

/// Why a resource's JSON could not be written as XML (it does not follow the
/// definitions: such JSON is refused on the way in, so this means a stored resource
/// written before a definition changed, or a caller's mistake).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot write {path} as XML: {message}")]
pub struct XmlWriteError {
    pub path: String,
    pub message: String,
}
