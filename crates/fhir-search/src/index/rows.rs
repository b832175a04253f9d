//! The rows extraction produces, one type per index table, and the cut that keeps
//! their texts within [`MAX_INDEX_TEXT`].

use fhirpath::Decimal;

use crate::number::NumberRange;

/// The longest text (in bytes) an index row holds: longer values are cut (at a
/// character boundary). Index keys must stay small — PostgreSQL refuses B-tree keys over
/// ~2.7 KB, and long keys slow every insert that sorts near them. Search values longer
/// than this are refused (see `docs/security.md`), so a cut value is never compared
/// with a longer one.
pub const MAX_INDEX_TEXT: usize = 1000;

/// `s` cut to at most [`MAX_INDEX_TEXT`] bytes, at a character boundary.
fn cap(s: &mut String) {
    if s.len() > MAX_INDEX_TEXT {
        let mut end = MAX_INDEX_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

fn cap_opt(s: &mut Option<String>) {
    if let Some(s) = s {
        cap(s);
    }
}

impl IndexValue {
    /// Cuts every text of the row to [`MAX_INDEX_TEXT`].
    pub(super) fn capped(mut self) -> IndexValue {
        match &mut self {
            IndexValue::String(r) => {
                cap(&mut r.value);
                cap(&mut r.normalized);
            }
            IndexValue::Token(r) => {
                for f in [&mut r.system, &mut r.code, &mut r.text] {
                    cap_opt(f);
                }
                cap_opt(&mut r.type_system);
                cap_opt(&mut r.type_code);
            }
            IndexValue::Quantity(r) => {
                cap_opt(&mut r.system);
                cap_opt(&mut r.code);
                cap_opt(&mut r.unit);
            }
            IndexValue::Reference(r) => {
                for f in [&mut r.reference, &mut r.id, &mut r.version, &mut r.url] {
                    cap_opt(f);
                }
                cap_opt(&mut r.identifier_system);
                cap_opt(&mut r.identifier_value);
            }
            IndexValue::Uri(r) => cap(&mut r.uri),
            IndexValue::Date(_) | IndexValue::Number(_) => {}
        }
        self
    }
}

/// Every index row of one resource.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexValues {
    pub strings: Vec<StringRow>,
    pub tokens: Vec<TokenRow>,
    pub dates: Vec<DateRow>,
    pub numbers: Vec<NumberRow>,
    pub quantities: Vec<QuantityRow>,
    pub references: Vec<ReferenceRow>,
    pub uris: Vec<UriRow>,
    pub composites: Vec<CompositeRow>,
    /// Parameters whose evaluation failed; they were skipped.
    pub errors: Vec<ExtractError>,
    /// The texts `_text` and `_content` search (set by the caller that stores them:
    /// [`crate::fulltext::full_text`]).
    pub text: Option<crate::fulltext::FullText>,
    /// A large CodeSystem's concepts as rows (set by the caller that stores them:
    /// [`fhir_model::terminology::rows::concept_rows`]).
    pub concepts: Option<Box<fhir_model::terminology::rows::ConceptRows>>,
}

impl IndexValues {
    /// The number of rows (errors excluded).
    pub fn len(&self) -> usize {
        self.strings.len()
            + self.tokens.len()
            + self.dates.len()
            + self.numbers.len()
            + self.quantities.len()
            + self.references.len()
            + self.uris.len()
            + self.composites.len()
    }

    /// Whether there is no row at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows (and errors) of the parameters `codes` only, as
    /// [`crate::extract_only`] would give them (in another order).
    pub fn only(&self, codes: &std::collections::HashSet<String>) -> IndexValues {
        fn keep<T: Clone>(
            rows: &[T],
            codes: &std::collections::HashSet<String>,
            param: impl Fn(&T) -> &str,
        ) -> Vec<T> {
            rows.iter()
                .filter(|r| codes.contains(param(r)))
                .cloned()
                .collect()
        }
        IndexValues {
            strings: keep(&self.strings, codes, |r| &r.param),
            tokens: keep(&self.tokens, codes, |r| &r.param),
            dates: keep(&self.dates, codes, |r| &r.param),
            numbers: keep(&self.numbers, codes, |r| &r.param),
            quantities: keep(&self.quantities, codes, |r| &r.param),
            references: keep(&self.references, codes, |r| &r.param),
            uris: keep(&self.uris, codes, |r| &r.param),
            composites: keep(&self.composites, codes, |r| &r.param),
            errors: keep(&self.errors, codes, |r| &r.param),
            text: None,
            concepts: None,
        }
    }

    pub(super) fn push(&mut self, v: IndexValue) {
        match v.capped() {
            IndexValue::String(r) => self.strings.push(r),
            IndexValue::Token(r) => self.tokens.push(r),
            IndexValue::Date(r) => self.dates.push(r),
            IndexValue::Number(r) => self.numbers.push(r),
            IndexValue::Quantity(r) => self.quantities.push(r),
            IndexValue::Reference(r) => self.references.push(r),
            IndexValue::Uri(r) => self.uris.push(r),
        }
    }
}

/// A parameter whose expression failed to evaluate on the resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractError {
    pub param: String,
    pub message: String,
}

/// One value of a string parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringRow {
    pub param: String,
    /// The text as in the resource (for `:exact`).
    pub value: String,
    /// [`normalize`]d (for the default starts-with and `:contains`).
    pub normalized: String,
}

/// One value of a token parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub param: String,
    pub system: Option<String>,
    pub code: Option<String>,
    /// Normalised `Coding.display` / `CodeableConcept.text` / `Identifier.type.text`
    /// (for `:text`).
    pub text: Option<String>,
    /// For an Identifier with a type: one of its `type.coding`s (for `:of-type`).
    pub type_system: Option<String>,
    pub type_code: Option<String>,
}

/// One value of a date parameter: `[start, end)` in epoch ms (open ends are
/// [`DateRange::MIN`]/[`DateRange::MAX`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateRow {
    pub param: String,
    pub start: i64,
    pub end: i64,
}

/// One value of a number parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberRow {
    pub param: String,
    pub number: NumberRange,
}

/// One value of a quantity parameter. A Quantity has `value` and its implicit range
/// `[low, high)`; a Range has only `low`/`high` (inclusive, `None` when open); a
/// comparator (`<5`) opens the range on one side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantityRow {
    pub param: String,
    pub value: Option<Decimal>,
    pub low: Option<Decimal>,
    pub high: Option<Decimal>,
    pub system: Option<String>,
    pub code: Option<String>,
    pub unit: Option<String>,
}

/// One value of a reference parameter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReferenceRow {
    pub param: String,
    /// `Reference.reference` (or the canonical/uri) as written.
    pub reference: Option<String>,
    /// The target type: from `Type/id`, an absolute URL ending in `Type/id`,
    /// `Reference.type`, or the parameter's only target.
    pub target_type: Option<String>,
    pub id: Option<String>,
    pub version: Option<String>,
    /// The absolute URL, `urn:` or canonical (without `|version`), when not relative.
    pub url: Option<String>,
    /// A reference to a contained resource (`#id`; `id` holds the part after `#`).
    pub contained: bool,
    /// `Reference.identifier` (for `:identifier`).
    pub identifier_system: Option<String>,
    pub identifier_value: Option<String>,
}

/// One value of a uri parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriRow {
    pub param: String,
    pub uri: String,
}

/// One combination of component values of a composite parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct CompositeRow {
    pub param: String,
    /// One value per component, in the parameter's component order; each row's
    /// `param` is the component's code.
    pub components: Vec<IndexValue>,
}

/// A row of any non-composite type.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexValue {
    String(StringRow),
    Token(TokenRow),
    Date(DateRow),
    Number(NumberRow),
    Quantity(QuantityRow),
    Reference(ReferenceRow),
    Uri(UriRow),
}
