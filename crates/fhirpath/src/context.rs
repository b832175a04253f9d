//! The evaluation context: definitions, environment variables, and the hooks the caller
//! provides for `resolve()`, `memberOf()`, `conformsTo()` and `trace()`.

use std::collections::HashMap;

use fhir_model::Definitions;
use serde_json::Value;

use crate::datetime::DateTime;
use crate::item::{Collection, Item};

/// Finds the resource a reference points to, when it is neither a contained resource
/// (`#id`) nor an entry of the Bundle being evaluated (those are resolved internally).
pub trait Resolver: Send + Sync {
    /// `reference` is the literal reference (`Patient/123`, an absolute URL, `urn:uuid:…`).
    fn resolve(&self, reference: &str) -> Option<&Value>;
}

/// Terminology for `memberOf()`; without one, value sets are expanded from the
/// definitions (those that can be expanded locally).
pub trait TerminologyProvider: Send + Sync {
    /// Whether `system|code` (system may be unknown) is in the value set.
    fn member_of(&self, value_set: &str, system: Option<&str>, code: &str) -> Result<bool, String>;
}

/// Validation against a profile for `conformsTo()`; without one, only the base
/// StructureDefinitions of the definitions are checked (by type).
pub trait ProfileValidator: Send + Sync {
    fn conforms_to(&self, resource: &Value, profile_url: &str) -> Result<bool, String>;
}

/// Receives the values passed through `trace(name)`.
pub trait Tracer: Send + Sync {
    fn trace(&self, name: &str, items: &[Item<'_>]);
}

/// Everything an evaluation needs besides the expression and the input.
///
/// ```
/// let ctx = fhirpath::EvalContext::new();
/// let patient = serde_json::json!({"resourceType": "Patient", "active": true});
/// let e = fhirpath::compile("Patient.active").unwrap();
/// assert_eq!(e.evaluate(&ctx, &patient).unwrap().to_json(), serde_json::json!([true]));
/// ```
pub struct EvalContext<'a> {
    pub(crate) defs: &'a Definitions,
    pub(crate) variables: HashMap<String, Collection<'a>>,
    pub(crate) resource: Option<&'a Value>,
    pub(crate) root_resource: Option<&'a Value>,
    pub(crate) resolver: Option<&'a dyn Resolver>,
    pub(crate) terminology: Option<&'a dyn TerminologyProvider>,
    pub(crate) profiles: Option<&'a dyn ProfileValidator>,
    pub(crate) tracer: Option<&'a dyn Tracer>,
    pub(crate) strict: bool,
    pub(crate) lenient_choice: bool,
    pub(crate) empty_tests_false: bool,
    pub(crate) now: Option<DateTime>,
}

impl Default for EvalContext<'static> {
    fn default() -> Self {
        EvalContext::new()
    }
}

impl EvalContext<'static> {
    /// A context over the R4 core definitions.
    pub fn new() -> EvalContext<'static> {
        EvalContext::with_definitions(Definitions::r4())
    }
}

impl<'a> EvalContext<'a> {
    pub fn with_definitions(defs: &'a Definitions) -> EvalContext<'a> {
        EvalContext {
            defs,
            variables: HashMap::new(),
            resource: None,
            root_resource: None,
            resolver: None,
            terminology: None,
            profiles: None,
            tracer: None,
            strict: false,
            lenient_choice: false,
            empty_tests_false: false,
            now: None,
        }
    }

    pub fn definitions(&self) -> &'a Definitions {
        self.defs
    }

    /// Defines `%name` (without the `%`).
    pub fn set_variable(&mut self, name: impl Into<String>, value: Collection<'a>) -> &mut Self {
        self.variables.insert(name.into(), value);
        self
    }

    /// Defines `%name` as a JSON value (a resource is typed by its `resourceType`).
    pub fn set_json_variable(&mut self, name: impl Into<String>, value: &'a Value) -> &mut Self {
        let c = Collection::from_json(self.defs, value);
        self.set_variable(name, c)
    }

    /// Defines `%name` as a string.
    pub fn set_string_variable(
        &mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> &mut Self {
        let c = Collection::one(Item::String(value.into().into()));
        self.set_variable(name, c)
    }

    /// `%resource` (default: the input, when it is a resource).
    pub fn set_resource(&mut self, resource: &'a Value) -> &mut Self {
        self.resource = Some(resource);
        self
    }

    /// `%rootResource` (default: `%resource`), e.g. the Bundle holding the resource.
    pub fn set_root_resource(&mut self, resource: &'a Value) -> &mut Self {
        self.root_resource = Some(resource);
        self
    }

    pub fn set_resolver(&mut self, resolver: &'a dyn Resolver) -> &mut Self {
        self.resolver = Some(resolver);
        self
    }

    pub fn set_terminology(&mut self, terminology: &'a dyn TerminologyProvider) -> &mut Self {
        self.terminology = Some(terminology);
        self
    }

    pub fn set_profile_validator(&mut self, validator: &'a dyn ProfileValidator) -> &mut Self {
        self.profiles = Some(validator);
        self
    }

    pub fn set_tracer(&mut self, tracer: &'a dyn Tracer) -> &mut Self {
        self.tracer = Some(tracer);
        self
    }

    /// Strict mode: before evaluation the expression is checked against the input's
    /// type (unknown elements, impossible casts, a type name that is not the context's,
    /// ordered functions on unordered results), and `iif()` requires a Boolean criterion.
    pub fn set_strict(&mut self, strict: bool) -> &mut Self {
        self.strict = strict;
        self
    }

    /// Accept choice elements named with their type suffix (`Observation.valueQuantity`)
    /// and ignore unknown element names instead of raising a semantic error.
    pub fn set_lenient(&mut self, lenient: bool) -> &mut Self {
        self.lenient_choice = lenient;
        self
    }

    /// Type tests (`is`) and string tests (`startsWith()`, `endsWith()`, `contains()`,
    /// `matches()`) of an empty input are `false` instead of empty. This is how the HL7
    /// Java validator's engine evaluates them, and invariants written against it rely
    /// on it: `reference.startsWith('#').not() or …` (ref-1) holds for a Reference
    /// without `reference`, `probability is decimal implies …` (ras-2) for a prediction
    /// without a probability. The default follows the FHIRPath specification.
    pub fn set_empty_tests_false(&mut self, on: bool) -> &mut Self {
        self.empty_tests_false = on;
        self
    }

    /// Fixes the value of `now()`, `today()` and `timeOfDay()` (default: the clock).
    pub fn set_now(&mut self, now: &str) -> &mut Self {
        self.now = DateTime::parse(now);
        self
    }
}
