//! The typed AST of a search: what [`crate::parse`] produces and a query compiler
//! (SQL or otherwise) consumes. Every clause carries the parameter code and type, every
//! chain link its source and target resource types, and every value is fully parsed
//! (prefixes split off, escapes removed, date and number ranges computed).

use fhir_model::SearchParamType;

use crate::date::{DatePrecision, DateRange};
use crate::error::Issue;
use crate::number::NumberRange;

/// A parsed search.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchQuery {
    /// One type for a type-level search; for a system-level search, the types named by
    /// `_type` (empty: all types).
    pub resource_types: Vec<String>,
    /// The criteria, all of which must match (AND).
    pub clauses: Vec<Clause>,
    /// Parameters shaping the result (`_count`, `_sort`, `_include`…).
    pub result: ResultParams,
    /// Parameters ignored under lenient handling, to report as warnings.
    pub ignored: Vec<Issue>,
}

/// One criterion (one query parameter).
#[derive(Debug, Clone, PartialEq)]
pub enum Clause {
    /// A search parameter, directly on the resource or through a chain.
    Param(ParamClause),
    /// A reverse chain `_has:Type:reference:…`.
    Has(HasClause),
    /// `_list=[id]`: the resources the entries of that List refer to.
    List(ListClause),
    /// `_text` or `_content`: full-text search.
    Text(TextClause),
    /// `_filter`: tests combined with `and`, `or` and `not`.
    Filter(FilterClause),
    /// Location `near`: within a distance of a point.
    Near(NearClause),
}

/// `near=[latitude]|[longitude]|[distance]|[units]` on Location.
#[derive(Debug, Clone, PartialEq)]
pub struct NearClause {
    /// The query parameter name as written.
    pub name: String,
    pub latitude: f64,
    pub longitude: f64,
    /// The radius, in kilometres.
    pub distance_km: f64,
}

/// `_filter` (search_filter.html).
#[derive(Debug, Clone, PartialEq)]
pub struct FilterClause {
    /// The query parameter name as written.
    pub name: String,
    pub expr: crate::filter::FilterExpr,
}

/// `_text` (the narrative) or `_content` (all the text), search.html#text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextClause {
    /// The query parameter name as written.
    pub name: String,
    /// `_content` rather than `_text`.
    pub content: bool,
    /// The query, as [`crate::fulltext::text_query`] writes it.
    pub query: String,
}

/// `_list=[id]` (search.html#list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListClause {
    /// The query parameter name as written.
    pub name: String,
    /// The id of the List resource.
    pub list_id: String,
}

impl Clause {
    /// The query parameter name as written (for error reporting).
    pub fn name(&self) -> &str {
        match self {
            Clause::Param(p) => &p.name,
            Clause::Has(h) => &h.name,
            Clause::List(l) => &l.name,
            Clause::Text(t) => &t.name,
            Clause::Filter(f) => &f.name,
            Clause::Near(n) => &n.name,
        }
    }
}

/// A parameter with its modifier, optional forward chain, and OR-ed values.
///
/// `subject:Patient.organization.name:exact=Acme` is two chain links (`subject` from
/// the searched type to `Patient`, `organization` from `Patient` to `Organization`) and
/// the parameter `name` (string, `:exact`) on `Organization`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamClause {
    /// The query parameter name as written, modifiers and chain included.
    pub name: String,
    /// Reference parameters to follow first (empty: the parameter is on the resource).
    pub chain: Vec<ChainLink>,
    /// The parameter the values are compared with, on the chain's last target types
    /// (or on the searched types).
    pub param: ParamRef,
    /// The modifier, if any.
    pub modifier: Option<Modifier>,
    /// The values, any of which may match (OR). Never empty.
    pub values: Vec<SearchValue>,
}

/// A search parameter as referred to by the AST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamRef {
    /// The parameter code (what index rows carry).
    pub code: String,
    /// The parameter type.
    pub kind: SearchParamType,
    /// The resource types the parameter is taken on (the searched types, or the
    /// previous link's targets); empty for a system search over all types.
    pub resource_types: Vec<String>,
}

/// One step of a forward chain: follow reference parameter `code` from resources of
/// `source_types` to resources of `target_types`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    /// The reference parameter code.
    pub code: String,
    /// The types the reference parameter is taken on (empty: all types).
    pub source_types: Vec<String>,
    /// The types followed: the `:Type` modifier's, or the parameter's targets that
    /// define the next parameter. Never empty.
    pub target_types: Vec<String>,
}

/// A reverse chain: resources of the searched type referred to by a `source_type`
/// resource, through its reference parameter `reference_param`, that matches `inner`.
/// `_has:Observation:patient:code=1234-5` on Patient; nested `_has` nest `inner`.
#[derive(Debug, Clone, PartialEq)]
pub struct HasClause {
    /// The query parameter name as written.
    pub name: String,
    /// The referring resource type (`Observation`).
    pub source_type: String,
    /// The reference parameter on `source_type` (`patient`).
    pub reference_param: String,
    /// The criterion on the referring resources.
    pub inner: Box<Clause>,
}

/// A search modifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modifier {
    /// `:missing` (values are [`SearchValue::Missing`]).
    Missing,
    /// `:exact` (string): whole string, case and accents significant.
    Exact,
    /// `:contains` (string): anywhere in the string, case/accent-insensitive.
    Contains,
    /// The whole string, case/accent-insensitive (`_filter`'s `eq`; not a URL modifier).
    Equals,
    /// The end of the string, case/accent-insensitive (`_filter`'s `ew`; not a URL
    /// modifier).
    EndsWith,
    /// `:text` (token): the display/text (values are [`SearchValue::String`]).
    Text,
    /// `:not` (token): no value matches.
    Not,
    /// `:above` (token, uri, reference).
    Above,
    /// `:below` (token, uri, reference).
    Below,
    /// `:in` (token): in the value set (values are [`SearchValue::ValueSet`]).
    In,
    /// `:not-in` (token) (values are [`SearchValue::ValueSet`]).
    NotIn,
    /// `:of-type` (token on Identifier; values are [`SearchValue::OfType`]).
    OfType,
    /// `:identifier` (reference; values are [`ReferenceValue::Identifier`]).
    Identifier,
    /// `:[Type]` (reference): the target type.
    Type(String),
}

impl Modifier {
    /// The modifier as written after the `:`.
    pub fn as_str(&self) -> &str {
        match self {
            Modifier::Missing => "missing",
            Modifier::Exact => "exact",
            Modifier::Contains => "contains",
            Modifier::Equals => "equals",
            Modifier::EndsWith => "ends-with",
            Modifier::Text => "text",
            Modifier::Not => "not",
            Modifier::Above => "above",
            Modifier::Below => "below",
            Modifier::In => "in",
            Modifier::NotIn => "not-in",
            Modifier::OfType => "of-type",
            Modifier::Identifier => "identifier",
            Modifier::Type(t) => t,
        }
    }
}

/// A comparison prefix (number, date, quantity). The default is [`Prefix::Eq`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Prefix {
    #[default]
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    /// Starts after.
    Sa,
    /// Ends before.
    Eb,
    /// Approximately.
    Ap,
}

impl Prefix {
    /// Splits a leading prefix off a number/date/quantity value.
    pub fn split(value: &str) -> (Prefix, &str) {
        let p = match value.get(..2) {
            Some("eq") => Prefix::Eq,
            Some("ne") => Prefix::Ne,
            Some("gt") => Prefix::Gt,
            Some("lt") => Prefix::Lt,
            Some("ge") => Prefix::Ge,
            Some("le") => Prefix::Le,
            Some("sa") => Prefix::Sa,
            Some("eb") => Prefix::Eb,
            Some("ap") => Prefix::Ap,
            _ => return (Prefix::Eq, value),
        };
        (p, &value[2..])
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Prefix::Eq => "eq",
            Prefix::Ne => "ne",
            Prefix::Gt => "gt",
            Prefix::Lt => "lt",
            Prefix::Ge => "ge",
            Prefix::Le => "le",
            Prefix::Sa => "sa",
            Prefix::Eb => "eb",
            Prefix::Ap => "ap",
        }
    }
}

/// One value of a clause, typed by the parameter's type and modifier.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchValue {
    /// `:missing=true|false`.
    Missing(bool),
    /// A number parameter value.
    Number { prefix: Prefix, number: NumberRange },
    /// A date parameter value (range in epoch ms, half-open; see [`crate::date`]).
    Date {
        prefix: Prefix,
        range: DateRange,
        precision: DatePrecision,
        /// The value as written (without prefix).
        text: String,
    },
    /// A string value (string parameters, and token `:text`).
    String(StringValue),
    /// A token value.
    Token(TokenValue),
    /// A token `:in`/`:not-in` value set, with its local expansion when available.
    ValueSet {
        url: String,
        /// `(system, code)` pairs, when the definitions expand the value set locally.
        expansion: Option<Vec<(String, String)>>,
    },
    /// A token `:of-type` value: identifier type `system|code` and identifier value.
    OfType {
        type_system: String,
        type_code: String,
        value: String,
    },
    /// A reference value.
    Reference(ReferenceValue),
    /// A quantity value `[prefix]number|system|code`.
    Quantity(QuantityValue),
    /// A uri value (exact, or hierarchical with `:above`/`:below`).
    Uri(String),
    /// A composite value, one part per component, in the parameter's component order.
    Composite(Vec<ComponentValue>),
}

/// A string to match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringValue {
    /// The value as given (escapes removed) — for `:exact`.
    pub raw: String,
    /// Normalised with [`crate::normalize`] — for the default starts-with and
    /// `:contains`; index rows carry the same normalisation.
    pub normalized: String,
}

/// Which system a token value constrains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSystem {
    /// `code`: any system (or none).
    Any,
    /// `|code`: no system.
    None,
    /// `system|code` or `system|`.
    Is(String),
}

/// A token: `code`, `system|code`, `|code` or `system|`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenValue {
    pub system: TokenSystem,
    /// `None` for `system|` (any code in that system).
    pub code: Option<String>,
}

/// A reference value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceValue {
    /// A local reference `Type/id`, `Type/id/_history/vid`, or a bare `id` (type from
    /// the `:Type` modifier or the parameter's only target, else `None`).
    Local {
        resource_type: Option<String>,
        id: String,
        version: Option<String>,
    },
    /// An absolute URL (or `urn:`); when it ends in `Type/id(/_history/vid)` those parts
    /// are given too, so a compiler may match it against local references.
    Url {
        url: String,
        resource_type: Option<String>,
        id: Option<String>,
        version: Option<String>,
    },
    /// `:identifier`: the `Reference.identifier` to match.
    Identifier(TokenValue),
}

/// A quantity: number with implicit range, and optional system and code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantityValue {
    pub prefix: Prefix,
    pub number: NumberRange,
    /// `None`: any system (`5.4` or `5.4||mg`).
    pub system: Option<String>,
    /// The unit code (or unit text when no system is given); `None`: any unit.
    pub code: Option<String>,
}

/// One component of a composite value.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentValue {
    /// The component parameter code.
    pub code: String,
    /// Its type.
    pub kind: SearchParamType,
    /// The value (never `Composite`/`Missing`).
    pub value: SearchValue,
}

/// Parameters that shape the result rather than select resources.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResultParams {
    /// `_count`: page size (0 is allowed: count only).
    pub count: Option<u32>,
    /// `_offset` (not in R4; common server extension for paging).
    pub offset: Option<u32>,
    /// `_sort`, in priority order.
    pub sort: Vec<SortKey>,
    /// `_include`, in query order.
    pub include: Vec<Include>,
    /// `_revinclude`, in query order.
    pub revinclude: Vec<Include>,
    /// `_total`.
    pub total: Option<TotalMode>,
    /// `_summary`.
    pub summary: Option<SummaryMode>,
    /// `_elements` (element names, without resource type prefix as given).
    pub elements: Vec<String>,
    /// `_contained`.
    pub contained: Option<ContainedMode>,
    /// `_containedType`.
    pub contained_type: Option<ContainedType>,
}

/// One `_sort` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    /// The parameter code.
    pub code: String,
    /// Its type (how to order: dates by range start, strings by normalised text…).
    pub kind: SearchParamType,
    /// `-code`.
    pub descending: bool,
}

/// One `_include` or `_revinclude`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    /// The resource type holding the reference (`Observation` in
    /// `Observation:subject`); `*` for `_include=*`.
    pub source_type: String,
    /// The reference parameter; `None` for `*` (all reference parameters).
    pub param: Option<String>,
    /// The target type restriction (`Observation:subject:Patient`).
    pub target_type: Option<String>,
    /// `:iterate` (or the R3 `:recurse`).
    pub iterate: bool,
}

/// `_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotalMode {
    None,
    Estimate,
    Accurate,
}

/// `_summary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryMode {
    True,
    Text,
    Data,
    Count,
    False,
}

/// `_contained`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainedMode {
    True,
    False,
    Both,
}

/// `_containedType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainedType {
    Container,
    Contained,
}
