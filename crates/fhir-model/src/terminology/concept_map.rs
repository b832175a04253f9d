//! ConceptMaps (conceptmap.html), in the form `$translate` needs: groups of a source
//! and a target system, their elements' codes with targets and equivalences, and what
//! to do with unmapped codes. Every element is optional here, so that a package's
//! ConceptMap that leaves one out still loads.

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConceptMapDef {
    pub url: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub source_uri: Option<String>,
    #[serde(default)]
    pub source_canonical: Option<String>,
    #[serde(default)]
    pub target_uri: Option<String>,
    #[serde(default)]
    pub target_canonical: Option<String>,
    #[serde(default)]
    pub group: Vec<ConceptMapGroup>,
}

impl ConceptMapDef {
    /// The source value set (`sourceUri` or `sourceCanonical`).
    pub fn source(&self) -> Option<&str> {
        self.source_canonical
            .as_deref()
            .or(self.source_uri.as_deref())
    }

    /// The target value set (`targetUri` or `targetCanonical`).
    pub fn target(&self) -> Option<&str> {
        self.target_canonical
            .as_deref()
            .or(self.target_uri.as_deref())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ConceptMapGroup {
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub element: Vec<MapElement>,
    #[serde(default)]
    pub unmapped: Option<Unmapped>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MapElement {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub display: Option<String>,
    #[serde(default)]
    pub target: Vec<MapTarget>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct MapTarget {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub display: Option<String>,
    /// R4 `ConceptMapEquivalence` (`equivalent` when left out).
    #[serde(default)]
    pub equivalence: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
    /// Conditions for the mapping to hold: other elements and their values.
    #[serde(default, rename = "dependsOn")]
    pub depends_on: Vec<OtherElement>,
    /// Other elements the mapping also produces, with their values.
    #[serde(default)]
    pub product: Vec<OtherElement>,
}

/// `target.dependsOn` and `target.product`: an element (`property`) and its value,
/// a code of `system` when one is named.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct OtherElement {
    #[serde(default)]
    pub property: String,
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub display: Option<String>,
}

/// `group.unmapped`: `provided` (the same code), `fixed` (`code`), `other-map` (`url`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Unmapped {
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub display: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
}
