//! Extension contexts (`StructureDefinition.context`): where an extension may be used.
//! An extension used on an element its definition does not list is an error.

use std::collections::HashMap;
use std::sync::OnceLock;

use fhir_model::package::PackageFile;
use fhir_model::structure::ElementDef;
use fhir_model::{IssueType, Package};
use serde_json::Value;

use crate::issue::Issue;
use crate::location::Loc;
use crate::walk::Run;

/// One `StructureDefinition.context`: (type, expression).
pub type Context = (String, String);

/// Extension URL → its contexts.
pub type Contexts = HashMap<String, Vec<Context>>;

/// The contexts of the R4 core extensions, read once per process.
pub fn core_contexts() -> &'static Contexts {
    static CORE: OnceLock<Contexts> = OnceLock::new();
    CORE.get_or_init(|| {
        let mut out = Contexts::new();
        if let Ok(p) = Package::read_tgz(
            fhir_model::definitions::R4_CORE_PACKAGE,
            &["StructureDefinition"],
        ) {
            add_contexts(&p.files, &mut out);
        }
        out
    })
}

/// Published R4 contexts that the specification itself contradicts, corrected as in
/// later versions: (extension URL, R4 context, corrected context). The R4 definitions
/// put `structuredefinition-fhir-type` on `ElementDefinition.type`, not on its `code`.
const CORRECTED: &[(&str, &str, &str)] = &[(
    "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type",
    "ElementDefinition.type.code",
    "ElementDefinition.type",
)];

/// Contexts the R4 definitions of HL7's own extensions lack but the specification's
/// own resources use, added as later versions (and the HL7 Java validator) allow them:
/// (extension URL, added context). HL7 marks normative content on all its definitions,
/// not only StructureDefinitions; the core StructureDefinitions put `regex` on the
/// types of primitive values; R5 lists operations of a resource for `expectation`.
const ADDED: &[(&str, &str)] = &[
    (
        "http://hl7.org/fhir/StructureDefinition/structuredefinition-normative-version",
        "CanonicalResource",
    ),
    (
        "http://hl7.org/fhir/StructureDefinition/structuredefinition-normative-version",
        "ElementDefinition",
    ),
    (
        "http://hl7.org/fhir/StructureDefinition/regex",
        "ElementDefinition.type",
    ),
    (
        "http://hl7.org/fhir/StructureDefinition/capabilitystatement-expectation",
        "CapabilityStatement.rest.resource.operation",
    ),
];

/// Adds the contexts of the extension definitions among `files`.
pub fn add_contexts(files: &[PackageFile], out: &mut Contexts) {
    for f in files {
        if f.resource_type != "StructureDefinition" || !contains(&f.bytes, b"\"context\"") {
            continue;
        }
        let Ok(sd) = serde_json::from_slice::<Value>(&f.bytes) else {
            continue;
        };
        if sd.get("type").and_then(Value::as_str) != Some("Extension") {
            continue;
        }
        let Some(url) = sd.get("url").and_then(Value::as_str) else {
            continue;
        };
        let contexts: Vec<Context> = sd
            .get("context")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| {
                let t = c.get("type").and_then(Value::as_str)?;
                let x = c.get("expression").and_then(Value::as_str)?;
                let x = CORRECTED
                    .iter()
                    .find(|(u, wrong, _)| *u == url && *wrong == x)
                    .map_or(x, |(_, _, right)| right);
                Some((t.to_string(), x.to_string()))
            })
            .collect();
        let mut contexts = contexts;
        let added = ADDED.iter().filter(|(u, _)| *u == url);
        contexts.extend(added.map(|(_, x)| ("element".to_string(), x.to_string())));
        if !contexts.is_empty() {
            out.insert(url.to_string(), contexts);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl<'v> Run<'v> {
    /// The extension `url` (known definition), held by the element of extension
    /// element `e`, is used where one of its contexts allows.
    pub(crate) fn extension_context(&mut self, url: &str, e: &ElementDef, at: &Loc<'_>) {
        let Some(contexts) = self.v.extension_contexts(url) else {
            return;
        };
        let owner = e
            .path
            .strip_suffix(".extension")
            .or_else(|| e.path.strip_suffix(".modifierExtension"))
            .unwrap_or(&e.path);
        let outer = self.owners.last().copied();
        // The element holding the extension: paths it is known by, and its type.
        let (paths, type_name): (Vec<&str>, &str) = if owner == "Element" {
            // A primitive's extension (`_birthDate`).
            match outer {
                Some((p, t)) => (vec![p], t),
                None => return,
            }
        } else if !owner.contains('.') {
            // The root of a data type or resource: also the element typed with it.
            (
                outer.map(|(p, _)| p).into_iter().chain([owner]).collect(),
                owner,
            )
        } else {
            (vec![owner], "BackboneElement")
        };
        let allowed = contexts.iter().any(|(kind, x)| match kind.as_str() {
            "element" => {
                let head = x.split('.').next().unwrap_or(x);
                if x == "CanonicalResource" {
                    // R5's name for the resources with a canonical URL and version.
                    return self.is_canonical(type_name);
                }
                x == "Element"
                    // A type R4 does not define (`CanonicalResource`, from later versions).
                    || self.defs.type_def(head).is_none()
                    || x.contains(['#', '/', ':'])
                    || paths.iter().any(|p| p == x)
                    || self.defs.is_subtype(type_name, x)
                    || (x == "BackboneElement" && owner.contains('.'))
            }
            "extension" => type_name == "Extension",
            // FHIRPath contexts (and kinds of other versions) are not evaluated here.
            _ => true,
        });
        if !allowed {
            let list: Vec<String> = contexts
                .iter()
                .map(|(k, x)| format!("{}:{x}", k.chars().next().unwrap_or('?')))
                .collect();
            let m = format!(
                "The extension {url} is not allowed to be used at this point (this element is [{}]; allowed = {})",
                paths.join(", "),
                list.join("; ")
            );
            self.push(Issue::error(IssueType::BusinessRule, at.to_string(), m));
        }
    }

    /// A resource type with a canonical `url` and a `version` (R5's CanonicalResource).
    fn is_canonical(&self, type_name: &str) -> bool {
        let has = |name| {
            let root = self.defs.root(type_name);
            root.is_some_and(|r| self.defs.child(r, name).is_some())
        };
        self.defs.is_resource_type(type_name) && has("url") && has("version")
    }
}
