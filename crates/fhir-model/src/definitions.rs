//! The registry: every table built from one or more packages, with the look-ups the
//! rest of the server uses (types by name, profiles by URL, search parameters by
//! resource type and code, compartments, terminology).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use crate::package::{Package, PackageManifest};
use crate::search_param::{CompartmentDef, SearchParamDef};
use crate::structure::{ElementDef, RawStructureDefinition, TypeDef, TypeKind};
use crate::terminology::{canonical_url, CodeSystemDef, Terminology, ValueSetDef};
use crate::ModelError;

/// The official R4 core package, embedded so the binary needs no files beside it.
pub static R4_CORE_PACKAGE: &[u8] = include_bytes!("../../../schemas/hl7.fhir.r4.core-4.0.1.tgz");

const WANTED: &[&str] = &[
    "StructureDefinition",
    "SearchParameter",
    "CompartmentDefinition",
    "ValueSet",
    "CodeSystem",
    "ConceptMap",
];

/// All definitions the server knows, built once at start-up.
#[derive(Debug, Default, Clone)]
pub struct Definitions {
    packages: Vec<PackageManifest>,
    /// Base types and resources by type name (specializations only).
    types: crate::FastMap<String, Arc<TypeDef>>,
    /// Every StructureDefinition (profiles too) by canonical URL.
    structures: HashMap<String, Arc<TypeDef>>,
    resource_types: Vec<String>,
    search_params: Vec<SearchParamDef>,
    /// Resource type (or `Resource`/`DomainResource`) → code → index in `search_params`.
    params_by_base: HashMap<String, HashMap<String, usize>>,
    params_by_url: HashMap<String, usize>,
    compartments: HashMap<String, CompartmentDef>,
    terminology: Terminology,
    /// Primitive type → anchored regex of its values.
    primitive_regexes: HashMap<String, regex::Regex>,
}

/// A position in a type's element table.
#[derive(Debug, Clone, Copy)]
pub struct ElementCursor<'a> {
    pub type_def: &'a TypeDef,
    pub index: usize,
}

impl<'a> ElementCursor<'a> {
    pub fn element(&self) -> &'a ElementDef {
        &self.type_def.elements[self.index]
    }
}

/// The result of following one JSON property from an element.
#[derive(Debug, Clone, Copy)]
pub struct ChildStep<'a> {
    /// The child element (its definition: cardinality, binding, constraints…).
    pub at: ElementCursor<'a>,
    /// The type the property selects: the choice type for `valueQuantity`, the single
    /// type otherwise; `None` for elements with several types reached without a suffix.
    pub type_code: Option<&'a str>,
}

impl<'a> ChildStep<'a> {
    pub fn element(&self) -> &'a ElementDef {
        self.at.element()
    }
}

impl Definitions {
    /// The R4 core definitions from the embedded package, built on first use.
    pub fn r4() -> &'static Definitions {
        static R4: OnceLock<Definitions> = OnceLock::new();
        R4.get_or_init(|| {
            Definitions::from_packages(&[R4_CORE_PACKAGE])
                .expect("the embedded R4 core package is readable")
        })
    }

    /// Builds the tables from package `.tgz` bytes; later packages add to earlier ones.
    pub fn from_packages(tgzs: &[&[u8]]) -> Result<Definitions, ModelError> {
        let mut defs = Definitions::default();
        for tgz in tgzs {
            defs.add_package(Package::read_tgz(tgz, WANTED)?)?;
        }
        Ok(defs)
    }

    /// Adds every definition of a package.
    pub fn add_package(&mut self, package: Package) -> Result<(), ModelError> {
        let parsed = parse_files(package.files)?;
        for sd in parsed.structures {
            let sd = Arc::new(sd);
            let base_type = sd.is_specialization() && sd.kind != TypeKind::Logical;
            if base_type
                && sd
                    .url
                    .starts_with("http://hl7.org/fhir/StructureDefinition/")
            {
                if sd.kind == TypeKind::Resource && !sd.is_abstract {
                    self.resource_types.push(sd.type_name.clone());
                }
                self.types.insert(sd.type_name.clone(), sd.clone());
            }
            self.structures.insert(sd.url.clone(), sd);
        }
        self.resource_types.sort();
        self.resource_types.dedup();
        for (name, t) in &self.types {
            if let Some(re) = &t.value_regex {
                // The published regexes are trusted input; one that does not compile is skipped.
                if let Ok(r) = regex::Regex::new(&format!("^(?:{})$", java_classes(re))) {
                    self.primitive_regexes.insert(name.clone(), r);
                }
            }
        }
        for sp in parsed.search_params {
            self.add_search_param(sp);
        }
        for cd in parsed.compartments {
            self.compartments.insert(cd.code.clone(), cd);
        }
        for vs in parsed.value_sets {
            self.terminology.value_sets.insert(vs.url.clone(), vs);
        }
        for cs in parsed.code_systems {
            self.terminology.code_systems.insert(cs.url.clone(), cs);
        }
        for cm in parsed.concept_maps {
            self.terminology.concept_maps.insert(cm.url.clone(), cm);
        }
        self.terminology.forget_expansions();
        self.packages.push(package.manifest);
        Ok(())
    }

    /// Registers a search parameter (replacing one with the same URL).
    pub fn add_search_param(&mut self, sp: SearchParamDef) {
        let idx = match self.params_by_url.get(&sp.url) {
            Some(&i) => {
                self.search_params[i] = sp;
                i
            }
            None => {
                self.search_params.push(sp);
                self.search_params.len() - 1
            }
        };
        let sp = &self.search_params[idx];
        self.params_by_url.insert(sp.url.clone(), idx);
        for base in &sp.base {
            self.params_by_base
                .entry(base.clone())
                .or_default()
                .insert(sp.code.clone(), idx);
        }
    }

    pub fn packages(&self) -> &[PackageManifest] {
        &self.packages
    }

    /// The concrete resource types, sorted (145 for R4 core).
    pub fn resource_types(&self) -> &[String] {
        &self.resource_types
    }

    pub fn is_resource_type(&self, name: &str) -> bool {
        self.resource_types
            .binary_search_by(|t| t.as_str().cmp(name))
            .is_ok()
    }

    /// A base type or resource by name (`Patient`, `HumanName`, `string`).
    pub fn type_def(&self, name: &str) -> Option<&TypeDef> {
        self.types.get(name).map(|t| &**t)
    }

    /// Any StructureDefinition (profile or base) by canonical URL (`|version` ignored).
    pub fn structure(&self, url: &str) -> Option<&TypeDef> {
        self.structures.get(canonical_url(url)).map(|t| &**t)
    }

    pub fn structures(&self) -> impl Iterator<Item = &TypeDef> {
        self.structures.values().map(|t| &**t)
    }

    /// The regex values of a primitive type must match (`date`, `id`, `decimal`…).
    pub fn primitive_regex(&self, type_code: &str) -> Option<&regex::Regex> {
        self.primitive_regexes.get(type_code)
    }

    pub fn is_primitive(&self, type_code: &str) -> bool {
        self.types
            .get(type_code)
            .is_some_and(|t| t.kind == TypeKind::PrimitiveType)
    }

    /// True if `type_name` is `ancestor` or derives from it (`Age` → `Quantity`).
    pub fn is_subtype(&self, type_name: &str, ancestor: &str) -> bool {
        let mut current = Some(type_name);
        for _ in 0..16 {
            let Some(name) = current else { return false };
            if name == ancestor {
                return true;
            }
            current = self
                .types
                .get(name)
                .and_then(|t| t.base_definition.as_deref())
                .and_then(|b| b.rsplit('/').next());
        }
        false
    }

    /// The root element of a type.
    pub fn root(&self, type_name: &str) -> Option<ElementCursor<'_>> {
        let type_def = self.type_def(type_name)?;
        (!type_def.elements.is_empty()).then_some(ElementCursor { type_def, index: 0 })
    }

    /// Follows JSON property `key` (no leading `_`) from element `at`.
    pub fn child<'a>(&'a self, at: ElementCursor<'a>, key: &str) -> Option<ChildStep<'a>> {
        let owner = self.children_owner(at)?;
        let c = owner.type_def.child(owner.index, key)?;
        let at = ElementCursor {
            type_def: owner.type_def,
            index: c.element,
        };
        let element = at.element();
        let type_code = match c.choice {
            Some(t) => element.types.get(t).map(|t| t.code.as_str()),
            None if element.types.len() == 1 => Some(element.types[0].code.as_str()),
            None => None,
        };
        Some(ChildStep { at, type_code })
    }

    /// Where the children of `at` are defined: inline (backbone elements), through a
    /// `contentReference`, or in the element's type.
    fn children_owner<'a>(&'a self, at: ElementCursor<'a>) -> Option<ElementCursor<'a>> {
        if at.index == 0 || at.type_def.has_inline_children(at.index) {
            return Some(at);
        }
        let element = at.element();
        if let Some(r) = element.content_reference {
            return Some(ElementCursor {
                type_def: at.type_def,
                index: r,
            });
        }
        match element.types.as_slice() {
            [t] => self.root(&t.code),
            _ => None,
        }
    }

    /// The element a typed value continues from: for a child step with a known type,
    /// the place where that type's own children are found.
    pub fn descend<'a>(&'a self, step: ChildStep<'a>) -> Option<ElementCursor<'a>> {
        let at = step.at;
        if at.type_def.has_inline_children(at.index) {
            return Some(at);
        }
        if let Some(r) = at.element().content_reference {
            return Some(ElementCursor {
                type_def: at.type_def,
                index: r,
            });
        }
        self.root(step.type_code?)
    }

    /// All search parameters.
    pub fn search_params(&self) -> &[SearchParamDef] {
        &self.search_params
    }

    pub fn search_param_by_url(&self, url: &str) -> Option<&SearchParamDef> {
        self.params_by_url
            .get(canonical_url(url))
            .map(|&i| &self.search_params[i])
    }

    /// The search parameter `code` for `resource_type`, including those defined on
    /// `Resource` and `DomainResource`.
    pub fn search_param(&self, resource_type: &str, code: &str) -> Option<&SearchParamDef> {
        self.param_bases(resource_type)
            .find_map(|b| self.params_by_base.get(b)?.get(code))
            .map(|&i| &self.search_params[i])
    }

    /// Every search parameter that applies to `resource_type`.
    pub fn search_params_for(&self, resource_type: &str) -> Vec<&SearchParamDef> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for base in self.param_bases(resource_type) {
            if let Some(m) = self.params_by_base.get(base) {
                for (code, &i) in m {
                    if seen.insert(code.clone()) {
                        out.push(&self.search_params[i]);
                    }
                }
            }
        }
        out.sort_by(|a, b| a.code.cmp(&b.code));
        out
    }

    fn param_bases<'a>(&self, resource_type: &'a str) -> impl Iterator<Item = &'a str> {
        let domain = resource_type != "Bundle"
            && resource_type != "Binary"
            && resource_type != "Parameters"
            && resource_type != "Resource";
        [
            Some(resource_type),
            domain.then_some("DomainResource"),
            Some("Resource"),
        ]
        .into_iter()
        .flatten()
    }

    /// A CompartmentDefinition by its code (`Patient`, `Encounter`…).
    pub fn compartment(&self, code: &str) -> Option<&CompartmentDef> {
        self.compartments.get(code)
    }

    pub fn compartments(&self) -> impl Iterator<Item = &CompartmentDef> {
        self.compartments.values()
    }

    pub fn terminology(&self) -> &Terminology {
        &self.terminology
    }

    pub fn value_set(&self, url: &str) -> Option<&ValueSetDef> {
        self.terminology.value_set(url)
    }

    pub fn code_system(&self, url: &str) -> Option<&CodeSystemDef> {
        self.terminology.code_system(url)
    }
}

/// The published regexes are Java regexes, where `\s`/`\S` are ASCII classes (a
/// no-break space is not whitespace there); Rust's are Unicode. Spell them out.
fn java_classes(re: &str) -> String {
    re.replace("\\S", "[^ \\t\\n\\x0B\\f\\r]")
        .replace("\\s", "[ \\t\\n\\x0B\\f\\r]")
}

#[derive(Default)]
struct Parsed {
    structures: Vec<TypeDef>,
    search_params: Vec<SearchParamDef>,
    compartments: Vec<CompartmentDef>,
    value_sets: Vec<ValueSetDef>,
    code_systems: Vec<CodeSystemDef>,
    concept_maps: Vec<crate::terminology::ConceptMapDef>,
}

/// Parses the files on all cores: the package is ~40 MB of JSON and start-up time counts.
fn parse_files(files: Vec<crate::package::PackageFile>) -> Result<Parsed, ModelError> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let mut buckets: Vec<Vec<crate::package::PackageFile>> =
        (0..workers).map(|_| Vec::new()).collect();
    let mut sizes = vec![0usize; workers];
    let mut files = files;
    files.sort_by_key(|f| std::cmp::Reverse(f.bytes.len()));
    for f in files {
        let i = (0..workers).min_by_key(|&i| sizes[i]).unwrap_or(0);
        sizes[i] += f.bytes.len();
        buckets[i].push(f);
    }
    let results: Vec<Result<Parsed, ModelError>> = std::thread::scope(|s| {
        let handles: Vec<_> = buckets
            .into_iter()
            .map(|bucket| s.spawn(move || parse_bucket(bucket)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(ModelError::WorkerPanicked)))
            .collect()
    });
    let mut all = Parsed::default();
    for r in results {
        let p = r?;
        all.structures.extend(p.structures);
        all.search_params.extend(p.search_params);
        all.compartments.extend(p.compartments);
        all.value_sets.extend(p.value_sets);
        all.code_systems.extend(p.code_systems);
        all.concept_maps.extend(p.concept_maps);
    }
    // Deterministic order whatever the thread split.
    all.structures.sort_by(|a, b| a.url.cmp(&b.url));
    all.search_params.sort_by(|a, b| a.url.cmp(&b.url));
    drop_shadowing_examples(&mut all.search_params);
    Ok(all)
}

/// The core package ships example SearchParameters (experimental), one of which would
/// redefine Condition's `subject` with the wrong targets: an experimental parameter is
/// dropped where a released one has the same code on one of its bases.
fn drop_shadowing_examples(params: &mut Vec<crate::search_param::SearchParamDef>) {
    let released: std::collections::HashSet<(String, String)> = params
        .iter()
        .filter(|p| p.experimental != Some(true))
        .flat_map(|p| p.base.iter().map(move |b| (p.code.clone(), b.clone())))
        .collect();
    params.retain(|p| {
        p.experimental != Some(true)
            || !p
                .base
                .iter()
                .any(|b| released.contains(&(p.code.clone(), b.clone())))
    });
}

fn parse_bucket(files: Vec<crate::package::PackageFile>) -> Result<Parsed, ModelError> {
    let mut p = Parsed::default();
    for f in files {
        let err = |e| ModelError::Json(f.name.clone(), e);
        match f.resource_type.as_str() {
            "StructureDefinition" => {
                let raw: RawStructureDefinition = serde_json::from_slice(&f.bytes).map_err(err)?;
                p.structures.push(raw.into_type_def());
            }
            "SearchParameter" => p
                .search_params
                .push(serde_json::from_slice(&f.bytes).map_err(err)?),
            "CompartmentDefinition" => p
                .compartments
                .push(serde_json::from_slice(&f.bytes).map_err(err)?),
            "ValueSet" => p
                .value_sets
                .push(serde_json::from_slice(&f.bytes).map_err(err)?),
            "CodeSystem" => p
                .code_systems
                .push(serde_json::from_slice(&f.bytes).map_err(err)?),
            "ConceptMap" => p
                .concept_maps
                .push(serde_json::from_slice(&f.bytes).map_err(err)?),
            _ => {}
        }
    }
    Ok(p)
}
