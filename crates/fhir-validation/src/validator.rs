//! The [`Validator`]: the definitions (R4 core plus any loaded packages and
//! conformance resources), the element trees built from them, and the caches shared by
//! all validations (compiled invariants, value set expansions).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use fhir_model::package::PackageFile;
use fhir_model::{Definitions, Package, PackageManifest, TypeDef};
use serde_json::Value;

use crate::context::{self, Context, Contexts};
use crate::fasthash::FastMap;
use crate::issue::ValidationReport;
use crate::snapshot;
use crate::terminology::ExpansionCache;
use crate::tree::{ExpressionCache, Tree};
use crate::walk::Run;
use crate::ValidationError;

const WANTED: &[&str] = &[
    "StructureDefinition",
    "ValueSet",
    "CodeSystem",
    "ImplementationGuide",
    "Questionnaire",
    "Measure",
];

/// What to validate against besides the resource's own type and `meta.profile`.
#[derive(Debug, Clone, Default)]
pub struct ValidationOptions {
    /// Canonical URLs of profiles the resource must conform to; an unknown one is an
    /// error ("profile not found").
    pub profiles: Vec<String>,
    /// Report extensions whose definition is unknown as errors (the HL7 Java
    /// validator's default) instead of warnings.
    pub unknown_extensions_are_errors: bool,
    /// Report a wrong display for a code of a code system known here in full as an
    /// error (the HL7 Java validator's default) instead of a warning.
    pub display_issues_are_errors: bool,
    /// Extensions with example URLs (`http://example.org/…`, `acme.com`) whose
    /// definition is unknown stay warnings even when `unknown_extensions_are_errors` is
    /// set (the HL7 validator's "allow examples", on by default there).
    pub allow_example_extensions: bool,
    /// Markdown that contains what looks like an HTML tag is an error instead of a
    /// warning (the HL7 validator's "no HTML in markdown").
    pub no_html_in_markdown: bool,
    /// Leave contained resources unchecked (the HL7 validator's contained-resource
    /// policy `IGNORE`): neither their content nor whether each is referenced (dom-3,
    /// which the Java validator checks as it walks them).
    pub skip_contained: bool,
    /// Strings that look like they hold HTML tags are errors instead of information
    /// (the HL7 validator's security checks).
    pub security_checks: bool,
    /// Code systems and value sets beyond the packages (a server's stored ones).
    pub terminology: Option<std::sync::Arc<dyn crate::terminology::TerminologySource>>,
}

enum Defs {
    Core(&'static Definitions),
    Owned(Box<Definitions>),
}

/// Validates resources against the R4 definitions and loaded profiles. `Send + Sync`:
/// share one in an `Arc` between threads.
pub struct Validator {
    defs: Defs,
    /// Element trees by the address of their (shared, never moved) TypeDef.
    trees: FastMap<usize, Arc<Tree>>,
    expressions: ExpressionCache,
    core_constraint_keys: HashSet<String>,
    /// StructureDefinitions loaded beyond core, as JSON (bases for snapshot generation).
    pub(crate) raw_structures: HashMap<String, Value>,
    /// Profiles every resource of a type must meet (`ImplementationGuide.global`).
    globals: HashMap<String, Vec<String>>,
    /// Questionnaires and Measures by canonical URL (QuestionnaireResponses and
    /// MeasureReports are checked against them).
    instances: HashMap<String, Arc<Value>>,
    pub(crate) expansions: ExpansionCache,
    /// Contexts of the extensions loaded beyond core (core: `context::core_contexts`).
    contexts: Arc<Contexts>,
}

impl Clone for Validator {
    /// A copy with the same definitions (core tables shared) and fresh caches.
    fn clone(&self) -> Validator {
        let defs = match &self.defs {
            Defs::Core(d) => Defs::Core(d),
            Defs::Owned(d) => Defs::Owned(d.clone()),
        };
        Validator {
            defs,
            trees: self.trees.clone(),
            core_constraint_keys: self.core_constraint_keys.clone(),
            raw_structures: self.raw_structures.clone(),
            globals: self.globals.clone(),
            instances: self.instances.clone(),
            expressions: self.expressions.clone(),
            expansions: ExpansionCache::default(),
            contexts: self.contexts.clone(),
        }
    }
}

impl Validator {
    /// A validator over the R4 core definitions (built once per process).
    pub fn r4() -> Validator {
        let defs = Definitions::r4();
        let mut v = Validator {
            defs: Defs::Core(defs),
            trees: FastMap::default(),
            expressions: ExpressionCache::new(),
            core_constraint_keys: HashSet::new(),
            raw_structures: HashMap::new(),
            globals: HashMap::new(),
            instances: HashMap::new(),
            expansions: ExpansionCache::default(),
            contexts: Arc::default(),
        };
        context::core_contexts();
        v.core_constraint_keys = defs
            .structures()
            .flat_map(|t| t.elements.iter())
            .flat_map(|e| e.constraints.iter().map(|c| c.key.clone()))
            .collect();
        v.rebuild();
        v
    }

    /// R4 core plus the package `.tgz` at `path` (npm layout, `package/*.json`).
    pub fn with_package(path: impl AsRef<Path>) -> Result<Validator, ValidationError> {
        let mut v = Validator::r4();
        v.add_package_file(path)?;
        Ok(v)
    }

    pub fn definitions(&self) -> &Definitions {
        match &self.defs {
            Defs::Core(d) => d,
            Defs::Owned(d) => d,
        }
    }

    /// Loads the StructureDefinitions, ValueSets and CodeSystems of a package file.
    pub fn add_package_file(
        &mut self,
        path: impl AsRef<Path>,
    ) -> Result<PackageManifest, ValidationError> {
        let path = path.as_ref();
        let bytes =
            std::fs::read(path).map_err(|e| ValidationError::Io(path.display().to_string(), e))?;
        self.add_package_bytes(&bytes)
    }

    /// Loads a package from the bytes of its `.tgz`.
    pub fn add_package_bytes(&mut self, tgz: &[u8]) -> Result<PackageManifest, ValidationError> {
        let package = Package::read_tgz(tgz, WANTED)?;
        let manifest = package.manifest.clone();
        self.add_files(package.manifest, package.files)?;
        Ok(manifest)
    }

    /// Loads conformance resources given as JSON (a StructureDefinition, ValueSet or
    /// CodeSystem each, or a Bundle of them).
    pub fn add_resources(&mut self, resources: &[Value]) -> Result<(), ValidationError> {
        let mut files = Vec::new();
        for (i, r) in resources.iter().enumerate() {
            collect_conformance(r, i, &mut files);
        }
        let manifest = PackageManifest {
            name: "local".into(),
            version: "0.0.0".into(),
            canonical: None,
            dependencies: HashMap::new(),
        };
        self.add_files(manifest, files)
    }

    fn add_files(
        &mut self,
        manifest: PackageManifest,
        files: Vec<PackageFile>,
    ) -> Result<(), ValidationError> {
        for f in &files {
            match f.resource_type.as_str() {
                "ImplementationGuide" => self.add_globals(&f.bytes),
                "Questionnaire" | "Measure" => self.add_instance(&f.bytes),
                _ => {}
            }
        }
        let mut contexts = (*self.contexts).clone();
        context::add_contexts(&files, &mut contexts);
        self.contexts = Arc::new(contexts);
        let files = snapshot::complete(self, files);
        let defs = self.owned_definitions()?;
        defs.add_package(Package { manifest, files })?;
        self.rebuild();
        self.expansions.clear();
        Ok(())
    }

    fn add_globals(&mut self, ig: &[u8]) {
        let Ok(ig) = serde_json::from_slice::<Value>(ig) else {
            return;
        };
        for g in ig["global"].as_array().into_iter().flatten() {
            if let (Some(t), Some(p)) = (g["type"].as_str(), g["profile"].as_str()) {
                self.globals
                    .entry(t.to_string())
                    .or_default()
                    .push(p.to_string());
            }
        }
    }

    /// Keeps a Questionnaire or Measure, which instances are checked against.
    fn add_instance(&mut self, bytes: &[u8]) {
        let Ok(q) = serde_json::from_slice::<Value>(bytes) else {
            return;
        };
        if let Some(url) = q["url"].as_str() {
            self.instances.insert(url.to_string(), Arc::new(q));
        }
    }

    /// A loaded resource of type `rt` by canonical URL (`|version` ignored).
    fn instance(&self, rt: &str, url: &str) -> Option<&Value> {
        let url = fhir_model::terminology::canonical_url(url);
        let found = self.instances.get(url).map(|q| &**q);
        found.filter(|r| r["resourceType"] == rt)
    }

    /// A loaded Questionnaire by canonical URL (`|version` ignored).
    pub(crate) fn questionnaire(&self, url: &str) -> Option<&Value> {
        self.instance("Questionnaire", url)
    }

    /// A loaded Measure by canonical URL (`|version` ignored).
    pub(crate) fn measure(&self, url: &str) -> Option<&Value> {
        self.instance("Measure", url)
    }

    /// The contexts of an extension (loaded ones first, then core).
    pub(crate) fn extension_contexts(&self, url: &str) -> Option<&[Context]> {
        let url = fhir_model::terminology::canonical_url(url);
        self.contexts
            .get(url)
            .or_else(|| context::core_contexts().get(url))
            .map(Vec::as_slice)
    }

    /// The global profiles of the loaded implementation guides for a resource type.
    pub(crate) fn global_profiles(&self, resource_type: &str) -> &[String] {
        self.globals.get(resource_type).map_or(&[], Vec::as_slice)
    }

    fn owned_definitions(&mut self) -> Result<&mut Definitions, ValidationError> {
        if let Defs::Core(_) = self.defs {
            // The core tables are shared (`Arc`); only the maps are copied.
            self.defs = Defs::Owned(Box::new(Definitions::r4().clone()));
        }
        match &mut self.defs {
            Defs::Owned(d) => Ok(d),
            Defs::Core(_) => Err(ValidationError::Internal("definitions not owned")),
        }
    }

    /// Builds the trees of the definitions that have none yet. The core definitions
    /// live as long as the process, so their addresses are stable keys; trees of other
    /// definitions are rebuilt (a replaced definition's address may be reused).
    fn rebuild(&mut self) {
        let core: std::collections::HashSet<usize> = Definitions::r4()
            .structures()
            .map(|t| t as *const TypeDef as usize)
            .collect();
        self.trees.retain(|k, _| core.contains(k));
        let defs: &Definitions = match &self.defs {
            Defs::Core(d) => d,
            Defs::Owned(d) => d,
        };
        for t in defs.structures() {
            let key = t as *const TypeDef as usize;
            if !self.trees.contains_key(&key) {
                let tree = Tree::build(t, &mut self.expressions);
                self.trees.insert(key, Arc::new(tree));
            }
        }
    }

    pub(crate) fn tree(&self, def: &TypeDef) -> Option<&Tree> {
        self.trees
            .get(&(def as *const TypeDef as usize))
            .map(|t| &**t)
    }

    /// True for invariant keys defined by the core specification (checked by the base
    /// pass; a profile pass only evaluates the profile's own).
    pub(crate) fn is_core_constraint(&self, key: &str) -> bool {
        self.core_constraint_keys.contains(key)
    }

    /// Validates one resource (a Bundle: every entry; contained resources too) against
    /// its type, its `meta.profile`s and `options.profiles`.
    pub fn validate(&self, resource: &Value, options: &ValidationOptions) -> ValidationReport {
        let issues = Run::new(self, options, resource).validate_top(resource);
        ValidationReport::from_issues(issues)
    }
}

/// Conformance resources of a JSON value (a Bundle's entries are looked into).
fn collect_conformance(r: &Value, i: usize, out: &mut Vec<PackageFile>) {
    let rt = r.get("resourceType").and_then(Value::as_str).unwrap_or("");
    if rt == "Bundle" {
        let entries = r.get("entry").and_then(Value::as_array);
        for (j, e) in entries.into_iter().flatten().enumerate() {
            if let Some(res) = e.get("resource") {
                collect_conformance(res, i * 10_000 + j, out);
            }
        }
    } else if WANTED.contains(&rt) {
        out.push(PackageFile {
            name: format!("resource-{i}.json"),
            resource_type: rt.to_string(),
            bytes: serde_json::to_vec(r).unwrap_or_default(),
        });
    }
}
