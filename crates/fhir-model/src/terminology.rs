//! ValueSets and CodeSystems, kept in the compact form needed to expand the value sets
//! that can be expanded locally (whole systems, enumerated codes, `is-a` filters).

use std::collections::HashMap;

use serde::Deserialize;

/// A concept of a CodeSystem, with its nested concepts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Concept {
    pub code: String,
    #[serde(default)]
    pub display: Option<String>,
    #[serde(default, rename = "concept")]
    pub children: Vec<Concept>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CodeSystemDef {
    pub url: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// `complete`, `fragment`, `not-present`, `example`, `supplement`.
    pub content: String,
    #[serde(default)]
    pub case_sensitive: Option<bool>,
    #[serde(default, rename = "concept")]
    pub concepts: Vec<Concept>,
}

impl CodeSystemDef {
    /// Finds a concept anywhere in the hierarchy.
    pub fn find(&self, code: &str) -> Option<&Concept> {
        fn walk<'a>(cs: &'a [Concept], code: &str) -> Option<&'a Concept> {
            cs.iter().find_map(|c| {
                if c.code == code {
                    Some(c)
                } else {
                    walk(&c.children, code)
                }
            })
        }
        walk(&self.concepts, code)
    }

    /// Every code with its display, depth first.
    pub fn all_codes(&self) -> Vec<(&str, Option<&str>)> {
        fn walk<'a>(cs: &'a [Concept], out: &mut Vec<(&'a str, Option<&'a str>)>) {
            for c in cs {
                out.push((&c.code, c.display.as_deref()));
                walk(&c.children, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.concepts, &mut out);
        out
    }

    /// The concept itself and the concepts it is nested in, up to the root.
    pub fn ancestors_and_self(&self, code: &str) -> Vec<&str> {
        fn walk<'a>(cs: &'a [Concept], code: &str, path: &mut Vec<&'a str>) -> bool {
            for c in cs {
                path.push(&c.code);
                if c.code == code || walk(&c.children, code, path) {
                    return true;
                }
                path.pop();
            }
            false
        }
        let mut path = Vec::new();
        walk(&self.concepts, code, &mut path);
        path.reverse();
        path
    }

    /// The concept itself and all its descendants (`is-a`).
    pub fn descendants_and_self(&self, code: &str) -> Vec<(&str, Option<&str>)> {
        let mut out = Vec::new();
        if let Some(c) = self.find(code) {
            fn walk<'a>(c: &'a Concept, out: &mut Vec<(&'a str, Option<&'a str>)>) {
                out.push((&c.code, c.display.as_deref()));
                for k in &c.children {
                    walk(k, out);
                }
            }
            walk(c, &mut out);
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ValueSetFilter {
    pub property: String,
    pub op: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConceptReference {
    pub code: String,
    #[serde(default)]
    pub display: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueSetInclude {
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub concept: Vec<ConceptReference>,
    #[serde(default)]
    pub filter: Vec<ValueSetFilter>,
    #[serde(default)]
    pub value_set: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ValueSetCompose {
    #[serde(default)]
    pub include: Vec<ValueSetInclude>,
    #[serde(default)]
    pub exclude: Vec<ValueSetInclude>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExpansionContains {
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub display: Option<String>,
    #[serde(default)]
    pub contains: Vec<ExpansionContains>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ValueSetExpansion {
    #[serde(default)]
    pub contains: Vec<ExpansionContains>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ValueSetDef {
    pub url: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub compose: Option<ValueSetCompose>,
    #[serde(default)]
    pub expansion: Option<ValueSetExpansion>,
}

/// A code of an expanded value set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExpandedCode {
    pub system: String,
    pub code: String,
    pub display: Option<String>,
}

/// Why a value set could not be expanded here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpansionError {
    #[error("value set {0} is not known")]
    UnknownValueSet(String),
    #[error("code system {0} is not available locally")]
    UnknownCodeSystem(String),
    #[error("value set filter {0} is not supported locally")]
    UnsupportedFilter(String),
}

/// ValueSets and CodeSystems by canonical URL.
#[derive(Debug, Default, Clone)]
pub struct Terminology {
    pub value_sets: HashMap<String, ValueSetDef>,
    pub code_systems: HashMap<String, CodeSystemDef>,
}

/// Strips a `|version` suffix from a canonical reference.
pub fn canonical_url(url: &str) -> &str {
    url.split('|').next().unwrap_or(url)
}

impl Terminology {
    pub fn value_set(&self, url: &str) -> Option<&ValueSetDef> {
        self.value_sets.get(canonical_url(url))
    }

    pub fn code_system(&self, url: &str) -> Option<&CodeSystemDef> {
        self.code_systems.get(canonical_url(url))
    }

    /// Expands a value set from its compose (or its shipped expansion).
    pub fn expand(&self, url: &str) -> Result<Vec<ExpandedCode>, ExpansionError> {
        self.expand_depth(url, 0)
    }

    fn expand_depth(&self, url: &str, depth: usize) -> Result<Vec<ExpandedCode>, ExpansionError> {
        let vs = self
            .value_set(url)
            .filter(|_| depth < 8)
            .ok_or_else(|| ExpansionError::UnknownValueSet(url.to_string()))?;
        if let Some(exp) = &vs.expansion {
            let mut out = Vec::new();
            flatten_expansion(&exp.contains, &mut out);
            return Ok(out);
        }
        let Some(compose) = &vs.compose else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for inc in &compose.include {
            out.extend(self.expand_include(inc, depth)?);
        }
        for exc in &compose.exclude {
            let gone = self.expand_include(exc, depth)?;
            out.retain(|c| !gone.contains(c));
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|c| seen.insert((c.system.clone(), c.code.clone())));
        Ok(out)
    }

    fn expand_include(
        &self,
        inc: &ValueSetInclude,
        depth: usize,
    ) -> Result<Vec<ExpandedCode>, ExpansionError> {
        let mut codes: Option<Vec<ExpandedCode>> = None;
        if let Some(system) = &inc.system {
            codes = Some(self.expand_system_part(system, inc)?);
        }
        for vs in &inc.value_set {
            let other = self.expand_depth(vs, depth + 1)?;
            codes = Some(match codes {
                None => other,
                Some(mine) => mine.into_iter().filter(|c| other.contains(c)).collect(),
            });
        }
        Ok(codes.unwrap_or_default())
    }

    fn expand_system_part(
        &self,
        system: &str,
        inc: &ValueSetInclude,
    ) -> Result<Vec<ExpandedCode>, ExpansionError> {
        let make = |code: &str, display: Option<&str>| ExpandedCode {
            system: system.to_string(),
            code: code.to_string(),
            display: display.map(str::to_string),
        };
        if !inc.concept.is_empty() {
            return Ok(inc
                .concept
                .iter()
                .map(|c| make(&c.code, c.display.as_deref()))
                .collect());
        }
        let cs = self
            .code_system(system)
            .filter(|cs| cs.content == "complete" || !cs.concepts.is_empty())
            .ok_or_else(|| ExpansionError::UnknownCodeSystem(system.to_string()))?;
        let mut codes: Vec<ExpandedCode> = cs
            .all_codes()
            .into_iter()
            .map(|(c, d)| make(c, d))
            .collect();
        for f in &inc.filter {
            let keep: Vec<(&str, Option<&str>)> = match (f.property.as_str(), f.op.as_str()) {
                ("concept", "is-a") => cs.descendants_and_self(&f.value),
                ("concept", "descendent-of") => {
                    let mut d = cs.descendants_and_self(&f.value);
                    d.retain(|(c, _)| *c != f.value);
                    d
                }
                ("concept", "=") => cs
                    .find(&f.value)
                    .map(|c| (c.code.as_str(), None))
                    .into_iter()
                    .collect(),
                _ => {
                    return Err(ExpansionError::UnsupportedFilter(format!(
                        "{} {} {}",
                        f.property, f.op, f.value
                    )))
                }
            };
            codes.retain(|c| keep.iter().any(|(k, _)| *k == c.code));
        }
        Ok(codes)
    }
}

fn flatten_expansion(contains: &[ExpansionContains], out: &mut Vec<ExpandedCode>) {
    for c in contains {
        if let (Some(system), Some(code)) = (&c.system, &c.code) {
            out.push(ExpandedCode {
                system: system.clone(),
                code: code.clone(),
                display: c.display.clone(),
            });
        }
        flatten_expansion(&c.contains, out);
    }
}
