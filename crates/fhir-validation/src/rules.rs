//! The rules checked on one value of an element: fixed and pattern values, bindings,
//! codes of known code systems, references, extension shape (ext-1), integer ranges,
//! and the element's invariants.

use fhir_model::structure::{Binding, BindingStrength, ConstraintSeverity, ElementDef};
use fhir_model::{ElementCursor, IssueType, TypeDef};
use fhirpath::{EvalContext, Node};
use serde_json::Value;

use crate::invariants::{Invariants, Outcome};
use crate::issue::{Issue, Severity};
use crate::location::{Loc, Step};
use crate::references;
use crate::terminology::{self, BindingResult};
use crate::values;
use crate::walk::{is_resource_type, Run, Scope, Val};

const TXT_1: &str = "Constraint failed: txt-1: 'The narrative SHALL contain only the basic html formatting elements and attributes described in chapters 7-11 (except section 4 of chapter 9) and 15 of the HTML 4.0 standard, <a> elements (either name or href), images and internally contained style attributes'";

impl<'v> Run<'v> {
    /// Fixed and pattern values, bindings, codes, references, integer ranges.
    pub(crate) fn value_rules(
        &mut self,
        scope: Scope<'v>,
        e: &'v ElementDef,
        type_code: &'v str,
        value: &'v Value,
        at: &Loc<'_>,
    ) {
        if let Some((_, fixed)) = &e.fixed {
            if !values::matches_fixed(value, fixed) {
                let m = format!(
                    "Value is '{}' but is fixed to '{}'",
                    values::shown(value),
                    values::shown(fixed)
                );
                self.push(Issue::error(IssueType::Value, at.to_string(), m));
            }
        }
        if let Some((_, pattern)) = &e.pattern {
            if !values::matches_pattern(value, pattern) {
                let m = format!(
                    "The value does not match the required pattern {}",
                    values::shown(pattern)
                );
                self.push(Issue::error(IssueType::Value, at.to_string(), m));
            }
        }
        self.limits(e, type_code, value, at);
        if let Some(binding) = &e.binding {
            self.binding(binding, type_code, value, at);
        }
        match (type_code, scope.profile) {
            ("Reference", _) => references::check(self, scope, e, value, at),
            (_, true) => {}
            ("Coding", false) => self.coding(value, at),
            ("Quantity" | "Age" | "Count" | "Distance" | "Duration", false) => {
                self.quantity_unit(value, at)
            }
            ("Extension", false) => self.extension_shape(value, at),
            ("Attachment", false) => self.attachment_size(value, at),
            ("Narrative", false) => self.narrative(value, at),
            ("canonical", false) => self.canonical_target(e, value, at),
            ("markdown", false) => self.markdown(value, at),
            ("string", false) => self.string_content(value, at),
            (_, false) => {
                if let Some(m) = values::integer_range(type_code, value) {
                    self.push(Issue::error(IssueType::Value, at.to_string(), m));
                }
            }
        }
    }

    fn binding(&mut self, binding: &'v Binding, type_code: &str, value: &Value, at: &Loc<'_>) {
        let severity = match binding.strength {
            BindingStrength::Required => Severity::Error,
            BindingStrength::Extensible | BindingStrength::Preferred => Severity::Warning,
            BindingStrength::Example => return,
        };
        let stored = self.opts.terminology.as_deref();
        let r = terminology::check_binding(
            self.defs,
            &self.v.expansions,
            stored,
            binding,
            type_code,
            value,
        );
        match r {
            BindingResult::Ok => {}
            BindingResult::NotInValueSet(m) => self.push(Issue::new(
                severity,
                IssueType::CodeInvalid,
                at.to_string(),
                m,
            )),
            BindingResult::CannotCheck(m) => {
                if binding.strength != BindingStrength::Preferred {
                    self.push(Issue::warning(IssueType::NotSupported, at.to_string(), m))
                }
            }
        }
    }

    /// `Attachment.size` is the number of bytes in `data` when both are given.
    fn attachment_size(&mut self, value: &Value, at: &Loc<'_>) {
        let data = value.get("data").and_then(Value::as_str);
        let size = value.get("size").and_then(Value::as_u64);
        let (Some(data), Some(size)) = (data, size) else {
            return;
        };
        let actual = values::base64_len(data);
        if actual != size {
            let m = format!(
                "Stated Attachment Size {size} does not match actual attachment size {actual}"
            );
            self.push(Issue::error(IssueType::Value, at.to_string(), m));
        }
    }

    /// txt-1: only the elements, attributes and entities FHIR's XHTML allows; each
    /// offence is reported as well, as the Java validator does. (txt-2, some content, is
    /// not judged: the Java validator evaluates its `htmlChecks()` as txt-1's.)
    fn narrative(&mut self, value: &Value, at: &Loc<'_>) {
        let Some(div) = value.get("div").and_then(Value::as_str) else {
            return;
        };
        let here = at.then(Step::Name("div")).to_string();
        let problems = crate::xhtml::problems(div);
        if !problems.is_empty() {
            self.push(Issue::error(IssueType::Invariant, here.clone(), TXT_1));
        }
        for p in problems {
            self.push(Issue::error(IssueType::Invalid, here.clone(), p));
        }
        self.narrative_links(div, at);
    }

    /// Markdown with what looks like an embedded HTML tag (FHIR-38714): presentation
    /// layers escape it, so it is probably not what the author meant. A warning; an
    /// error with [`crate::ValidationOptions::no_html_in_markdown`].
    fn markdown(&mut self, value: &Value, at: &Loc<'_>) {
        let Some(text) = value.as_str() else { return };
        let Some(tag) = values::html_tag_in_markdown(text) else {
            return;
        };
        let m = format!(
            "The markdown contains content that appears to be an embedded HTML tag starting at '{tag}'. This will (or SHOULD) be escaped by the presentation layer. The content should be checked to confirm that this is the desired behaviour"
        );
        let severity = if self.opts.no_html_in_markdown {
            Severity::Error
        } else {
            Severity::Warning
        };
        self.push(Issue::new(severity, IssueType::Value, at.to_string(), m));
    }

    /// A string that looks like it holds HTML tags, a risk where it is shown without
    /// escaping: information, or an error with `security_checks`, as the Java validator
    /// reports it.
    fn string_content(&mut self, value: &Value, at: &Loc<'_>) {
        let Some(text) = value.as_str() else { return };
        if !text.contains('<') || values::html_tag_in_markdown(text).is_none() {
            return;
        }
        let (severity, m) = if self.opts.security_checks {
            (Severity::Error, "The string value contains text that looks like embedded HTML tags, which are not allowed for security reasons in this context")
        } else {
            (Severity::Information, "The string value contains text that looks like embedded HTML tags. If this content is rendered to HTML without appropriate post-processing, it may be a security risk")
        };
        self.push(Issue::new(
            severity,
            IssueType::Invalid,
            at.to_string(),
            m.to_string(),
        ));
    }

    /// A canonical that names a loaded resource of a type its `targetProfile`s exclude.
    fn canonical_target(&mut self, e: &ElementDef, value: &Value, at: &Loc<'_>) {
        let Some(url) = value.as_str() else { return };
        let targets: Vec<&str> = e
            .types
            .iter()
            .flat_map(|t| t.target_profiles.iter())
            .map(|p| p.rsplit('/').next().unwrap_or(p))
            .collect();
        if targets.is_empty() || targets.contains(&"Resource") {
            return;
        }
        let found = if self.defs.structure(url).is_some() {
            "StructureDefinition"
        } else if self.defs.value_set(url).is_some() {
            "ValueSet"
        } else if self.defs.code_system(url).is_some() {
            "CodeSystem"
        } else if self.v.questionnaire(url).is_some() {
            "Questionnaire"
        } else {
            return;
        };
        if !targets.contains(&found) {
            let m = format!(
                "Canonical URL '{url}' refers to a resource that has the wrong type. Found {found} expecting one of [{}]",
                targets.join(", ")
            );
            self.push(Issue::error(IssueType::Invalid, at.to_string(), m));
        }
    }

    /// ext-1: an extension has a value or nested extensions, not both.
    fn extension_shape(&mut self, value: &Value, at: &Loc<'_>) {
        let Some(obj) = value.as_object() else { return };
        let has_value = obj
            .keys()
            .map(|k| k.trim_start_matches('_'))
            .any(|k| k.len() > 5 && k.starts_with("value"));
        let nested = obj.get("extension").is_some();
        if has_value == nested {
            let m = "Constraint failed: ext-1: 'Must have either extensions or value[x], not both'";
            self.push(Issue::error(IssueType::Invariant, at.to_string(), m));
        }
    }

    /// The element's invariants (a profile pass skips the core specification's).
    pub(crate) fn invariants(
        &mut self,
        scope: Scope<'v>,
        sd: &'v TypeDef,
        idx: usize,
        val: Val<'v>,
        at: &Loc<'_>,
    ) {
        let Some(compiled) = self.v.tree(sd).and_then(|t| t.invariants.get(idx)) else {
            return;
        };
        let Some(value) = val.value.filter(|_| !compiled.is_empty()) else {
            return;
        };
        let e = &sd.elements[idx];
        let node = self.node(sd, idx, value, val.type_code);
        let mut ctx = EvalContext::with_definitions(self.defs);
        ctx.set_empty_tests_false(true);
        ctx.set_resource(scope.resource);
        ctx.set_root_resource(scope.container);
        for (k, expr) in compiled {
            let c = &e.constraints[*k];
            if scope.profile && self.v.is_core_constraint(&c.key) {
                continue;
            }
            if let Outcome::Fails = Invariants::evaluate(&ctx, expr, node) {
                let severity = match c.severity {
                    ConstraintSeverity::Error => Severity::Error,
                    ConstraintSeverity::Warning => Severity::Warning,
                };
                let m = format!("Constraint failed: {}: '{}'", c.key, c.human);
                self.push(Issue::new(
                    severity,
                    IssueType::Invariant,
                    at.to_string(),
                    m,
                ));
            }
        }
    }

    /// The FHIRPath node for a value: typed, with its children found through the base
    /// definition (profiles list only what they constrain).
    fn node(&self, sd: &'v TypeDef, idx: usize, value: &'v Value, type_code: &'v str) -> Node<'v> {
        if is_resource_type(self.defs, type_code) {
            let rt = value.get("resourceType").and_then(Value::as_str);
            return Node::typed(self.defs, value, rt.unwrap_or(type_code), None);
        }
        let inline = idx > 0
            && self
                .v
                .tree(sd)
                .is_some_and(|t| t.children.get(idx).is_some_and(|c| !c.is_empty()));
        let cursor = if !inline {
            None
        } else if sd.is_specialization() {
            Some(ElementCursor {
                type_def: sd,
                index: idx,
            })
        } else {
            let path = &sd.elements[idx].path;
            let root = path.split('.').next().unwrap_or("");
            self.defs.type_def(root).and_then(|t| {
                t.element_index(path)
                    .map(|index| ElementCursor { type_def: t, index })
            })
        };
        let mut node = Node::typed(self.defs, value, type_code, cursor);
        if cursor.is_some() {
            // A backbone element: its children come from the cursor; the static check
            // would look them up in `BackboneElement` and fail.
            node.type_name = None;
        }
        node
    }
}
