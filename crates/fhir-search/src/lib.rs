//! FHIR R4 search, independent of any storage backend: this crate's one job is the
//! registry of all R4 SearchParameters with their FHIRPath expressions compiled once,
//! the parsing of search query strings into a typed AST with precise errors, and the
//! extraction of index values from a resource by evaluating each parameter's
//! expression. It has no SQL, no database and no HTTP: a store compiles the AST to its
//! queries and writes the extracted rows to its index tables.
//!
//! # API
//!
//! - [`SearchRegistry`] ([`SearchRegistry::r4`], [`SearchRegistry::new`],
//!   [`SearchRegistry::register`]): every [`SearchParam`] by resource type and code, with
//!   its compiled [`fhirpath::Expression`] and resolved composite [`Component`]s.
//! - [`parse`] / [`parse_query_string`]: query parameters → [`SearchQuery`] (clauses
//!   with typed [`SearchValue`]s, chains, `_has`, and [`ResultParams`]), or a
//!   [`SearchError`] naming the parameter.
//! - [`extract`]: a resource → [`IndexValues`] (typed rows per parameter code).
//! - [`compartment_params`]: the parameters linking a type to a compartment.
//! - [`matcher::matches`]: a query against one resource's index values, in memory.
//!
//! ```
//! use fhir_search::{parse, SearchRegistry, Clause, SearchValue};
//! let reg = SearchRegistry::r4();
//! let pairs = vec![("birthdate".to_string(), "ge2010-01".to_string())];
//! let q = parse(reg, Some("Patient"), &pairs, true).unwrap();
//! let Clause::Param(c) = &q.clauses[0] else { panic!() };
//! assert!(matches!(c.values[0], SearchValue::Date { .. }));
//!
//! let patient = serde_json::json!({"resourceType": "Patient", "birthDate": "2010-03-04"});
//! let rows = fhir_search::extract(reg, "Patient", &patient);
//! assert_eq!(rows.dates[0].param, "birthdate");
//! ```
//!
//! Units and conventions: dates are half-open `[start, end)` ranges of epoch
//! milliseconds (UTC) ([`date`]); numbers are exact decimals with the half-open implicit
//! range of their precision ([`number`]); strings are matched on [`normalize`]d text.
//! See `docs/search.md`.

pub mod compartment;
pub mod date;
pub mod error;
pub mod escape;
pub mod filter;
pub mod fulltext;
pub mod index;
pub mod matcher;
mod near;
pub mod normalize;
pub mod number;
mod parse;
pub mod query;
pub mod registry;
mod result_params;
mod value;

pub use compartment::{compartment_params, compartment_types};
pub use date::{DatePrecision, DateRange};
pub use error::{Issue, RegistryError, SearchError};
pub use fhir_model::SearchParamType;
pub use index::{
    extract, extract_only, extract_param, CompositeRow, DateRow, ExtractError, IndexValue,
    IndexValues, NumberRow, QuantityRow, ReferenceRow, StringRow, TokenRow, UriRow, MAX_INDEX_TEXT,
};
pub use normalize::normalize;
pub use number::{Decimal, NumberRange};
pub use parse::{parse, parse_query_string};
pub use query::{
    ChainLink, Clause, ComponentValue, ContainedMode, ContainedType, FilterClause, HasClause,
    Include, ListClause, Modifier, NearClause, ParamClause, ParamRef, Prefix, QuantityValue,
    ReferenceValue, ResultParams, SearchQuery, SearchValue, SortKey, StringValue, SummaryMode,
    TextClause, TokenSystem, TokenValue, TotalMode,
};
pub use registry::{Component, SearchParam, SearchRegistry};
