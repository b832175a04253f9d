//! The registry of search parameters: every SearchParameter of the definitions, per
//! resource type and code, with its FHIRPath expression compiled once and composite
//! components resolved.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use fhir_model::{Definitions, SearchParamDef, SearchParamType};
use fhirpath::Expression;

use crate::error::RegistryError;

/// One search parameter, ready to parse values for and to extract index values with.
#[derive(Debug)]
pub struct SearchParam {
    /// The SearchParameter as published.
    pub def: SearchParamDef,
    /// Its compiled expression; `None` for parameters without one (`_text`, `_content`,
    /// `_query`, `_has`, `_list`…), which are never extracted.
    pub expression: Option<Expression>,
    /// For composites: the components, in order (empty otherwise).
    pub components: Vec<Component>,
}

/// One component of a composite parameter.
#[derive(Debug)]
pub struct Component {
    /// The component's own parameter code (`code`, `value-quantity`).
    pub code: String,
    /// The component's type (never composite).
    pub kind: SearchParamType,
    /// The component's expression, relative to each node of the composite's expression.
    pub expression: Expression,
}

impl SearchParam {
    /// The parameter code (`birthdate`, `_lastUpdated`).
    pub fn code(&self) -> &str {
        &self.def.code
    }

    /// The parameter type.
    pub fn kind(&self) -> SearchParamType {
        self.def.kind
    }

    /// The canonical URL.
    pub fn url(&self) -> &str {
        &self.def.url
    }

    /// The resource types a reference parameter may point to.
    pub fn targets(&self) -> &[String] {
        &self.def.target
    }
}

/// All search parameters, by resource type and code.
#[derive(Debug)]
pub struct SearchRegistry {
    defs: &'static Definitions,
    by_url: HashMap<String, Arc<SearchParam>>,
    /// Base (resource type, `Resource` or `DomainResource`) → code → parameter.
    by_base: HashMap<String, HashMap<String, Arc<SearchParam>>>,
}

impl SearchRegistry {
    /// The registry of the R4 core definitions, built on first use (~1,400 expressions).
    pub fn r4() -> &'static SearchRegistry {
        static R4: OnceLock<SearchRegistry> = OnceLock::new();
        R4.get_or_init(|| SearchRegistry::new(Definitions::r4()))
    }

    /// Builds the registry from every SearchParameter in `defs`. A parameter whose
    /// expression does not compile (none in R4) is kept without expression.
    pub fn new(defs: &'static Definitions) -> SearchRegistry {
        let mut reg = SearchRegistry {
            defs,
            by_url: HashMap::new(),
            by_base: HashMap::new(),
        };
        // Plain parameters first, so that composites find their components.
        let (composites, plain): (Vec<_>, Vec<_>) = defs
            .search_params()
            .iter()
            .partition(|sp| sp.kind == SearchParamType::Composite);
        for sp in plain.into_iter().chain(composites) {
            let expression = sp
                .expression
                .as_deref()
                .and_then(|e| fhirpath::compile(e).ok());
            let components = reg.components(sp).unwrap_or_default();
            reg.insert(SearchParam {
                def: sp.clone(),
                expression,
                components,
            });
        }
        reg
    }

    /// Registers (or replaces, by URL) a SearchParameter, e.g. a custom one read from
    /// the store; resources must then be re-indexed to be found by it.
    pub fn register(&mut self, def: SearchParamDef) -> Result<&SearchParam, RegistryError> {
        if def.code.is_empty() || def.base.is_empty() {
            return Err(RegistryError::Invalid {
                url: def.url.clone(),
                message: "a search parameter needs a code and at least one base".into(),
            });
        }
        let expression = match &def.expression {
            Some(e) => Some(
                fhirpath::compile(e).map_err(|err| RegistryError::Expression {
                    url: def.url.clone(),
                    expression: e.clone(),
                    message: err.to_string(),
                })?,
            ),
            None => None,
        };
        let components = self.components(&def)?;
        let url = def.url.clone();
        // Remove the entries of a parameter with the same URL it replaces.
        if let Some(old) = self.by_url.remove(&url) {
            for base in &old.def.base {
                if let Some(m) = self.by_base.get_mut(base) {
                    if m.get(&old.def.code).is_some_and(|p| p.def.url == url) {
                        m.remove(&old.def.code);
                    }
                }
            }
        }
        self.insert(SearchParam {
            def,
            expression,
            components,
        });
        self.by_url
            .get(&url)
            .map(|p| &**p)
            .ok_or(RegistryError::Invalid {
                url,
                message: "not registered".into(),
            })
    }

    fn insert(&mut self, param: SearchParam) {
        let param = Arc::new(param);
        for base in &param.def.base {
            self.by_base
                .entry(base.clone())
                .or_default()
                .insert(param.def.code.clone(), param.clone());
        }
        self.by_url.insert(param.def.url.clone(), param);
    }

    fn components(&self, def: &SearchParamDef) -> Result<Vec<Component>, RegistryError> {
        def.component
            .iter()
            .map(|c| {
                let target = self.by_url.get(&c.definition).ok_or_else(|| {
                    RegistryError::UnknownComponent {
                        url: def.url.clone(),
                        component: c.definition.clone(),
                    }
                })?;
                let expression =
                    fhirpath::compile(&c.expression).map_err(|e| RegistryError::Expression {
                        url: def.url.clone(),
                        expression: c.expression.clone(),
                        message: e.to_string(),
                    })?;
                Ok(Component {
                    code: target.def.code.clone(),
                    kind: target.def.kind,
                    expression,
                })
            })
            .collect()
    }

    /// The definitions the registry was built from.
    pub fn definitions(&self) -> &'static Definitions {
        self.defs
    }

    /// The parameter `code` for `resource_type`, including those defined on `Resource`
    /// and `DomainResource`. `resource_type` may be `Resource` itself (system search).
    pub fn param(&self, resource_type: &str, code: &str) -> Option<&SearchParam> {
        bases(resource_type)
            .find_map(|b| self.by_base.get(b)?.get(code))
            .map(|p| &**p)
    }

    /// A parameter by canonical URL.
    pub fn param_by_url(&self, url: &str) -> Option<&SearchParam> {
        self.by_url.get(url).map(|p| &**p)
    }

    /// Every parameter applying to `resource_type`, sorted by code.
    pub fn params_for(&self, resource_type: &str) -> Vec<&SearchParam> {
        let mut out: Vec<&SearchParam> = Vec::new();
        // The more specific bases' maps: a code they define hides the same code of a
        // more general base.
        let mut before: Vec<&HashMap<String, Arc<SearchParam>>> = Vec::new();
        for base in bases(resource_type) {
            let Some(m) = self.by_base.get(base) else {
                continue;
            };
            let hidden = |code: &String| before.iter().any(|b| b.contains_key(code));
            out.extend(m.iter().filter(|(c, _)| !hidden(c)).map(|(_, p)| &**p));
            before.push(m);
        }
        out.sort_unstable_by(|a, b| a.def.code.cmp(&b.def.code));
        out
    }

    /// Whether `name` is a concrete resource type.
    pub fn is_resource_type(&self, name: &str) -> bool {
        self.defs.is_resource_type(name)
    }
}

/// The bases whose parameters apply to a resource type, most specific first.
fn bases(resource_type: &str) -> impl Iterator<Item = &str> {
    let domain = !matches!(
        resource_type,
        "Bundle" | "Binary" | "Parameters" | "Resource"
    );
    [
        Some(resource_type),
        domain.then_some("DomainResource"),
        (resource_type != "Resource").then_some("Resource"),
    ]
    .into_iter()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r4_registry_resolves_params_and_components() {
        let reg = SearchRegistry::r4();
        let birthdate = reg.param("Patient", "birthdate").unwrap();
        assert_eq!(birthdate.kind(), SearchParamType::Date);
        assert!(birthdate.expression.is_some());
        let id = reg.param("Patient", "_id").unwrap();
        assert_eq!(id.kind(), SearchParamType::Token);
        assert!(reg.param("Resource", "_lastUpdated").is_some());
        assert!(reg.param("Bundle", "_text").is_none());
        assert!(reg.param("Patient", "_text").is_some());
        let combo = reg
            .param("Observation", "combo-code-value-quantity")
            .unwrap();
        assert_eq!(combo.components.len(), 2);
        assert_eq!(combo.components[0].code, "combo-code");
        assert_eq!(combo.components[1].kind, SearchParamType::Quantity);
        // Every expression of the R4 definitions compiled, every composite resolved.
        for sp in reg.definitions().search_params() {
            let p = reg.param_by_url(&sp.url).unwrap();
            assert_eq!(
                p.expression.is_some(),
                sp.expression.is_some(),
                "{}",
                sp.url
            );
            assert_eq!(p.components.len(), sp.component.len(), "{}", sp.url);
        }
        let subject = reg.param("Observation", "subject").unwrap();
        assert!(subject.targets().iter().any(|t| t == "Patient"));
        // Not the package's example SearchParameter (Condition.subject → Organization).
        let condition = reg.param("Condition", "subject").unwrap();
        assert_eq!(condition.targets(), ["Group", "Patient"]);
        assert!(reg.params_for("Observation").len() > 40);
    }

    #[test]
    fn params_for_lists_each_code_once_as_param_resolves_it() {
        let reg = SearchRegistry::r4();
        for t in reg.definitions().resource_types() {
            let params = reg.params_for(t);
            let codes: Vec<&str> = params.iter().map(|p| p.code()).collect();
            let mut sorted = codes.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(codes, sorted, "{t}: sorted, each code once");
            for p in &params {
                let resolved = reg.param(t, p.code()).unwrap();
                assert!(std::ptr::eq(*p, resolved), "{t}.{}", p.code());
            }
            assert!(
                codes.contains(&"_id") && codes.contains(&"_lastUpdated"),
                "{t}"
            );
        }
    }

    #[test]
    fn registers_custom_params() {
        let mut reg = SearchRegistry::new(Definitions::r4());
        let def: SearchParamDef = serde_json::from_value(serde_json::json!({
            "url": "http://example.org/SearchParameter/patient-nickname",
            "code": "nickname",
            "base": ["Patient"],
            "type": "string",
            "expression": "Patient.name.where(use = 'nickname').given"
        }))
        .unwrap();
        assert_eq!(reg.register(def.clone()).unwrap().code(), "nickname");
        assert!(reg.param("Patient", "nickname").is_some());
        let mut bad = def;
        bad.url = "http://example.org/bad".into();
        bad.expression = Some("Patient.name.(".into());
        assert!(matches!(
            reg.register(bad),
            Err(RegistryError::Expression { .. })
        ));
    }
}
