//! The walk over a resource: one pass against the base definition of its type (and of
//! every data type inside it), then one pass per profile. Contained resources and
//! Bundle entries are walked as resources. The rules applied to each value are in
//! `rules.rs`, the matching of JSON members to elements in `children.rs`.

use std::cell::Cell;
use std::collections::HashSet;

use fhir_model::structure::ElementDef;
use fhir_model::{Definitions, ElementIssueKind, IssueType, TypeDef};
use serde_json::Value;

use crate::issue::{Issue, Severity};
use crate::location::{Loc, Step};
use crate::validator::{ValidationOptions, Validator};

/// Deepest JSON nesting accepted (serde_json's own parser stops at 128).
const MAX_JSON_DEPTH: usize = 256;
/// Deepest nesting of definitions followed (types inside types, resources inside resources).
const MAX_WALK_DEPTH: usize = 200;

/// How deep conformance checks nest (a reference target's profile, whose references
/// have target profiles…).
const MAX_CONFORMANCE_DEPTH: usize = 3;

thread_local! {
    static CONFORMANCE_DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// One value of an element: the JSON value and/or its `_name` sibling, and its type.
#[derive(Clone, Copy)]
pub struct Val<'v> {
    pub value: Option<&'v Value>,
    pub ext: Option<&'v Value>,
    pub type_code: &'v str,
}

/// The resource being walked, for invariants (`%resource`) and references (`#id`).
#[derive(Clone, Copy)]
pub struct Scope<'v> {
    pub resource: &'v Value,
    /// The resource holding `contained` for `#id` references (the outermost one).
    pub container: &'v Value,
    /// True in a profile pass: base rules are not repeated.
    pub profile: bool,
}

/// One validation in progress.
pub struct Run<'v> {
    pub(crate) v: &'v Validator,
    pub(crate) defs: &'v Definitions,
    pub(crate) opts: &'v ValidationOptions,
    /// The top-level input (a Bundle's fullUrls resolve references).
    pub(crate) root: &'v Value,
    pub(crate) issues: Vec<Issue>,
    depth: usize,
    /// The elements whose type's definition is being walked (path, type), innermost
    /// last: where an extension found at a type's root is used.
    pub(crate) owners: Vec<(&'v str, &'v str)>,
    /// Targets of narrative links in `root` and their counts, found at the first link.
    pub(crate) link_targets: Option<std::collections::HashMap<String, usize>>,
    /// Code systems already noted as not available here.
    pub(crate) unavailable_noted: HashSet<&'v str>,
    /// The entries of `root` when it is a Bundle, indexed at the first reference.
    bundle_index: Option<crate::references::BundleIndex<'v>>,
}

impl<'v> Run<'v> {
    pub fn new(v: &'v Validator, opts: &'v ValidationOptions, root: &'v Value) -> Run<'v> {
        Run {
            v,
            defs: v.definitions(),
            opts,
            root,
            issues: Vec::new(),
            depth: 0,
            owners: Vec::new(),
            link_targets: None,
            unavailable_noted: HashSet::new(),
            bundle_index: None,
        }
    }

    /// Whether `value` (a resource inside the input) has no errors against `profile`:
    /// a separate validation, with the same input for resolving references. Nested
    /// checks (a target's own targets) stop at [`MAX_CONFORMANCE_DEPTH`], deeper ones
    /// are taken to conform.
    pub(crate) fn conforms_to(&self, value: &'v Value, profile: &str) -> bool {
        if value.get("resourceType").is_none() {
            return false;
        }
        let depth = CONFORMANCE_DEPTH.with(Cell::get);
        if depth >= MAX_CONFORMANCE_DEPTH {
            return true;
        }
        let opts = ValidationOptions {
            profiles: vec![profile.to_string()],
            ..ValidationOptions::default()
        };
        CONFORMANCE_DEPTH.with(|d| d.set(depth + 1));
        let issues = Run::new(self.v, &opts, self.root).validate_top(value);
        CONFORMANCE_DEPTH.with(|d| d.set(depth));
        !issues.iter().any(|i| i.severity.is_error())
    }

    /// The entries of the Bundle being validated, indexed once.
    pub(crate) fn bundle_index(&mut self) -> &crate::references::BundleIndex<'v> {
        let root = self.root;
        self.bundle_index
            .get_or_insert_with(|| crate::references::BundleIndex::new(root))
    }

    pub(crate) fn push(&mut self, issue: Issue) {
        self.issues.push(issue);
    }

    /// Validates the input: structure first, then the rules of its definitions.
    pub fn validate_top(mut self, resource: &'v Value) -> Vec<Issue> {
        if json_depth(resource) > MAX_JSON_DEPTH {
            let m = format!("the JSON nests deeper than {MAX_JSON_DEPTH} levels");
            self.push(Issue::new(Severity::Fatal, IssueType::TooCostly, "$", m));
            return self.issues;
        }
        let Some(rt) = self.structure(resource) else {
            return self.issues;
        };
        let scope = Scope {
            resource,
            container: resource,
            profile: false,
        };
        let at = Loc::root(rt);
        self.resource(scope, rt, &at);
        for url in &self.opts.profiles {
            self.profile(scope, url, rt, &at, None);
        }
        self.issues
    }

    /// The model's structure check (unknown elements, primitive formats, arrays);
    /// the resource type when the walk can go on.
    fn structure(&mut self, resource: &'v Value) -> Option<&'v str> {
        for i in self.defs.structure_issues(resource) {
            let (severity, code, message) = match &i.kind {
                ElementIssueKind::UnknownResourceType | ElementIssueKind::NotAnObject
                    if !i.path.contains('.') || i.path == "resourceType" =>
                {
                    (Severity::Fatal, IssueType::Structure, i.to_string())
                }
                ElementIssueKind::Unknown => (
                    Severity::Error,
                    IssueType::Structure,
                    format!("Unrecognized property '{}'", last_step(&i.path)),
                ),
                ElementIssueKind::InvalidValue(_) => {
                    (Severity::Error, IssueType::Value, i.to_string())
                }
                _ => (Severity::Error, IssueType::Structure, i.to_string()),
            };
            self.push(Issue::new(severity, code, i.path.clone(), message));
        }
        if self.issues.iter().any(|i| i.severity == Severity::Fatal) {
            return None;
        }
        let rt = resource.get("resourceType").and_then(Value::as_str)?;
        self.defs.is_resource_type(rt).then_some(rt)
    }

    /// A resource (top-level, contained or in a Bundle): its base definition, then the
    /// profiles of its `meta.profile` and the global profiles for its type.
    fn resource(&mut self, scope: Scope<'v>, rt: &'v str, at: &Loc<'_>) {
        let Some(base) = self.defs.type_def(rt) else {
            return;
        };
        // Contained resources too: their ids are ids (`Resource.id`), as the HL7 validator checks.
        if let Some(id) = scope.resource.get("id").and_then(Value::as_str) {
            self.resource_id(id, at);
        }
        let val = Val {
            value: Some(scope.resource),
            ext: None,
            type_code: rt,
        };
        self.element(scope, base, 0, val, at);
        if !self.opts.skip_contained {
            self.contained_referenced(scope.resource, at);
        }
        self.duplicate_element_ids(scope.resource, at);
        match rt {
            "Bundle" => self.bundle_rules(scope.resource, at),
            "QuestionnaireResponse" => self.questionnaire_response(scope.resource, at),
            "StructureDefinition" => self.structure_definition_rules(scope.resource, at),
            "SearchParameter" => self.search_parameter_rules(scope.resource, at),
            "MeasureReport" => self.measure_report(scope.resource, at),
            "CapabilityStatement" => self.capability_statement_rules(scope.resource, at),
            "OperationDefinition" => self.operation_definition_rules(scope.resource, at),
            _ => {}
        }
        let metas = scope
            .resource
            .get("meta")
            .and_then(|m| m.get("profile"))
            .and_then(Value::as_array);
        for (i, url) in metas.into_iter().flatten().enumerate() {
            if let Some(url) = url.as_str() {
                self.profile(scope, url, rt, at, Some(i));
            }
        }
        let v = self.v;
        for url in v.global_profiles(rt) {
            self.profile(scope, url, rt, at, None);
        }
    }

    /// dom-3: every contained resource is referenced from the rest of the resource
    /// (or something refers to the container with `#`).
    fn contained_referenced(&mut self, resource: &Value, at: &Loc<'_>) {
        let Some(contained) = resource.get("contained").and_then(Value::as_array) else {
            return;
        };
        let mut local = HashSet::new();
        local_references(resource, &mut local);
        for (i, c) in contained.iter().enumerate() {
            let Some(id) = c.get("id").and_then(Value::as_str) else {
                continue;
            };
            if !local.contains(id) && !local.contains("") {
                let m = format!(
                    "Constraint failed: dom-3: 'If the resource is contained in another resource, it SHALL be referred to from elsewhere in the resource or SHALL refer to the containing resource' (contained[{i}] with id '{id}' is not referenced)"
                );
                self.push(Issue::error(IssueType::Invariant, at.to_string(), m));
            }
        }
    }

    fn resource_id(&mut self, id: &str, at: &Loc<'_>) {
        let ok = self
            .defs
            .primitive_regex("id")
            .is_none_or(|re| re.is_match(id));
        if !ok {
            let shown: String = id.chars().take(80).collect();
            let m = format!("Invalid Resource id '{shown}': 1 to 64 letters, digits, '-' and '.'");
            let here = at.then(Step::Name("id"));
            self.push(Issue::error(IssueType::Value, here.to_string(), m));
        }
    }

    /// A profile pass. `meta_index`: asked for by `meta.profile[i]` (unknown: warning);
    /// otherwise by the caller (unknown: error).
    fn profile(
        &mut self,
        scope: Scope<'v>,
        url: &str,
        rt: &'v str,
        at: &Loc<'_>,
        meta_index: Option<usize>,
    ) {
        let base_url = format!("http://hl7.org/fhir/StructureDefinition/{rt}");
        if fhir_model::terminology::canonical_url(url) == base_url {
            return;
        }
        let Some(sd) = self.defs.structure(url).filter(|s| !s.elements.is_empty()) else {
            return self.unknown_profile(url, at, meta_index);
        };
        if sd.type_name != rt && sd.type_name != "Resource" && sd.type_name != "DomainResource" {
            let m = format!(
                "Profile '{url}' is for {} resources, not {rt}",
                sd.type_name
            );
            self.push(Issue::error(IssueType::Structure, at.to_string(), m));
            return;
        }
        let scope = Scope {
            profile: true,
            ..scope
        };
        let val = Val {
            value: Some(scope.resource),
            ext: None,
            type_code: rt,
        };
        self.element(scope, sd, 0, val, at);
    }

    fn unknown_profile(&mut self, url: &str, at: &Loc<'_>, meta_index: Option<usize>) {
        match meta_index {
            Some(i) => {
                let m =
                    format!("Profile reference '{url}' has not been checked because it is unknown");
                let here = format!("{at}.meta.profile[{i}]");
                self.push(Issue::warning(IssueType::NotFound, here, m));
            }
            None => {
                let m = format!("Profile '{url}' not found");
                self.push(Issue::error(IssueType::NotFound, at.to_string(), m));
            }
        }
    }

    /// Every rule of element `idx` of `sd` for one value, then its children.
    pub(crate) fn element(
        &mut self,
        scope: Scope<'v>,
        sd: &'v TypeDef,
        idx: usize,
        val: Val<'v>,
        at: &Loc<'_>,
    ) {
        let Some(e) = sd.elements.get(idx) else {
            return;
        };
        if self.depth >= MAX_WALK_DEPTH {
            return;
        }
        self.depth += 1;
        if let Some(value) = val.value {
            self.value_rules(scope, e, val.type_code, value, at);
        }
        self.invariants(scope, sd, idx, val, at);
        self.descend(scope, sd, idx, val, at);
        self.depth -= 1;
    }

    /// The children of a value: inline ones, through a content reference, or those of
    /// its type (a profile of it when the element names one).
    fn descend(
        &mut self,
        scope: Scope<'v>,
        sd: &'v TypeDef,
        idx: usize,
        val: Val<'v>,
        at: &Loc<'_>,
    ) {
        let e = &sd.elements[idx];
        let inline = self
            .v
            .tree(sd)
            .and_then(|t| t.children.get(idx))
            .is_some_and(|c| !c.is_empty());
        if idx > 0 && !inline && is_resource_type(self.defs, val.type_code) {
            return self.nested(scope, e, val.value, at);
        }
        if inline || idx == 0 {
            // A resource whose content a profile spells out inline (`Patient.contained.name`).
            let scope = match val.value {
                Some(v) if idx > 0 && is_resource_type(self.defs, val.type_code) => Scope {
                    resource: v,
                    ..scope
                },
                _ => scope,
            };
            let obj = val.value.and_then(Value::as_object);
            if let Some(obj) = obj.or_else(|| val.ext.and_then(Value::as_object)) {
                self.children(scope, sd, idx, obj, at);
            }
            return;
        }
        if let Some(r) = e.content_reference {
            // In a profile, the reference names the base element: the base pass checks it.
            if scope.profile {
                return;
            }
            if let Some(obj) = val.value.and_then(Value::as_object) {
                self.children(scope, sd, r, obj, at);
            }
            return;
        }
        if let Some(target) = self.type_definition(scope, e, val, at) {
            self.owners.push((&e.path, val.type_code));
            self.element(scope, target, 0, val, at);
            self.owners.pop();
            return;
        }
        if !scope.profile {
            self.owners.push((&e.path, val.type_code));
            self.primitive_extensions(scope, val, at);
            self.owners.pop();
        }
    }

    /// The `id` and extensions of a primitive (`_birthDate`), as an `Element`.
    fn primitive_extensions(&mut self, scope: Scope<'v>, val: Val<'v>, at: &Loc<'_>) {
        let Some(ext) = val.ext.and_then(Value::as_object) else {
            return;
        };
        if let Some(el) = self.defs.type_def("Element") {
            self.children(scope, el, 0, ext, at);
        }
    }

    /// Where a value of a non-inline element continues: a profile named by the
    /// element's type, the extension's definition (by `url`), or the base type (base
    /// pass only).
    fn type_definition(
        &mut self,
        scope: Scope<'v>,
        e: &'v ElementDef,
        val: Val<'v>,
        at: &Loc<'_>,
    ) -> Option<&'v TypeDef> {
        let code = val.type_code;
        if self.defs.is_primitive(code) {
            return None;
        }
        let typed_profile = e
            .types
            .iter()
            .filter(|t| t.code == code)
            .flat_map(|t| t.profiles.iter())
            .find_map(|p| self.defs.structure(p).filter(|s| !s.elements.is_empty()));
        if typed_profile.is_some() || scope.profile {
            return typed_profile;
        }
        if code == "Extension" {
            let url = val.value.and_then(|v| v.get("url")).and_then(Value::as_str);
            if let Some(url) = url {
                if let Some(sd) = self.defs.structure(url).filter(|s| !s.elements.is_empty()) {
                    self.extension_context(url, e, at);
                    return Some(sd);
                }
                // Relative URLs name the parts of a complex extension.
                if url.contains(':') {
                    self.unknown_extension(url, at);
                }
            }
        }
        self.defs.type_def(code)
    }

    fn unknown_extension(&mut self, url: &str, at: &Loc<'_>) {
        let example = self.opts.allow_example_extensions && is_example_url(url);
        // HL7's own extensions (the extensions pack, cross-version extensions) are
        // known to the Java validator, which loads their packages itself: one that is
        // not loaded here is not checked, but is no fault of the resource.
        let hl7 = is_hl7_extension(url);
        let severity = if self.opts.unknown_extensions_are_errors && !example && !hl7 {
            Severity::Error
        } else {
            Severity::Warning
        };
        let m = if hl7 {
            format!("The extension {url} is not loaded here, so its content was not checked")
        } else {
            format!("The extension {url} is unknown, so its content was not checked")
        };
        self.push(Issue::new(
            severity,
            IssueType::Extension,
            at.to_string(),
            m,
        ));
        // Where examples are not allowed, an example URL is one more fault, as the
        // Java validator reports it (with the severity of unknown extensions).
        if !self.opts.allow_example_extensions && is_example_url(url) {
            let m = format!("Example URLs are not allowed in this context ({url})");
            let here = at.then(Step::Name("url")).to_string();
            self.push(Issue::new(severity, IssueType::Invalid, here, m));
        }
    }

    /// A resource inside a resource (`contained`, `Bundle.entry.resource`,
    /// `Parameters.parameter.resource`): walked as a resource in the base pass; in a
    /// profile pass, checked against the profiles its element's type names.
    fn nested(
        &mut self,
        scope: Scope<'v>,
        e: &'v ElementDef,
        value: Option<&'v Value>,
        at: &Loc<'_>,
    ) {
        let Some(v) = value else { return };
        let Some(rt) = v.get("resourceType").and_then(Value::as_str) else {
            return;
        };
        if !self.defs.is_resource_type(rt) {
            return;
        }
        let contained = e.path.ends_with(".contained");
        if contained && self.opts.skip_contained {
            return;
        }
        let inner = Scope {
            resource: v,
            container: if contained { scope.container } else { v },
            profile: scope.profile,
        };
        if !scope.profile {
            return self.resource(inner, rt, at);
        }
        for t in &e.types {
            for p in &t.profiles {
                if self.defs.structure(p).is_some_and(|s| s.type_name == rt) {
                    self.profile(inner, p, rt, at, None);
                }
            }
        }
    }
}

pub(crate) fn is_resource_type(defs: &Definitions, code: &str) -> bool {
    code == "Resource"
        || code == "DomainResource"
        || (code.starts_with(|c: char| c.is_ascii_uppercase()) && defs.is_resource_type(code))
}

/// An extension URL in HL7's namespace for extension definitions
/// (`http://hl7.org/fhir/StructureDefinition/…`, and the cross-version
/// `http://hl7.org/fhir/5.0/StructureDefinition/extension-…`).
fn is_hl7_extension(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://hl7.org/fhir/") else {
        return false;
    };
    let rest = match rest.split_once('/') {
        Some((version, r)) if version.starts_with(|c: char| c.is_ascii_digit()) => r,
        _ => rest,
    };
    rest.starts_with("StructureDefinition/")
}

/// Example URLs whose definitions are not expected to exist: hosts `example.org` and
/// `acme.com` (the two the HL7 validator allows as examples).
fn is_example_url(url: &str) -> bool {
    let host = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    ["example.org", "acme.com"]
        .iter()
        .any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

fn last_step(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// Every `#id` string of a resource (references, canonicals, uris), without the `#`.
fn local_references<'a>(v: &'a Value, out: &mut HashSet<&'a str>) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) => {
                if let Some(id) = s.strip_prefix('#') {
                    out.insert(id);
                }
            }
            Value::Array(a) => stack.extend(a.iter()),
            Value::Object(o) => stack.extend(o.values()),
            _ => {}
        }
    }
}

/// The nesting depth of a JSON value, without recursion.
fn json_depth(v: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 1usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        if d > MAX_JSON_DEPTH {
            return d;
        }
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|x| (x, d + 1))),
            Value::Object(o) => stack.extend(o.values().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    max
}
