//! Stored code systems kept as rows (fhir-store `concepts`) as the terminology
//! operations read them. A request names the codes it is about (its [`Focus`]); such a
//! code system is gathered as its header with only those concepts — and, for lookups
//! and checks, their ancestors up to the roots, their children and the parent links
//! between them — so `$lookup`, `$validate-code`, `$subsumes` and validation answer as
//! over the whole system. `$expand` of a value set that includes whole such systems or
//! branches of them asks the store for the total and the page ([`page`]), then gathers
//! the page's concepts; one that lists its codes has those read; search takes the codes
//! the same way ([`hierarchy`] for `:below` and `:above`).

use std::collections::{HashMap, HashSet};

use fhir_model::terminology::rows::filter_words;
use fhir_model::terminology::{canonical_url, ExpandedCode, Terminology, ValueSetCompose};
use fhir_store::concepts::{Below, ConceptFilter, RowConcept, RowLink, RowSystem};
use fhir_store::{Store, StoreError};
use fhir_terminology::{Params, TxError};
use serde_json::{json, Value};

/// Most concepts one request reads of a system kept as rows.
const MAX_CONCEPTS: usize = 2_000;

/// Most levels of ancestors read.
const MAX_DEPTH: usize = 64;

/// Most words of a `filter` the database matches (each is a condition of its own).
const MAX_FILTER_WORDS: usize = 64;

/// The codes a request is about, and which code systems are read from rows for it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Focus {
    pub codes: Vec<String>,
    /// Read their ancestors and children too (not for an expansion's page).
    pub around: bool,
    /// Code systems of fewer concepts are read whole (`--terminology-rows-from`).
    pub rows_from: u64,
}

impl Focus {
    /// The codes an operation's parameters name (`code`, `codeA`, `codeB`, and those of
    /// `coding`, `codingA`, `codingB`, `codeableConcept`), with what lies around them.
    pub(crate) fn of(p: &Params, rows_from: u64) -> Focus {
        let mut codes: Vec<String> = ["code", "codeA", "codeB"]
            .iter()
            .flat_map(|n| p.texts(n))
            .map(str::to_string)
            .collect();
        for name in ["coding", "codingA", "codingB"] {
            if let Some(c) = p.json(name).and_then(|c| c["code"].as_str()) {
                codes.push(c.to_string());
            }
        }
        if let Some(Value::Array(codings)) = p.json("codeableConcept").map(|c| &c["coding"]) {
            codes.extend(
                codings
                    .iter()
                    .filter_map(|c| c["code"].as_str())
                    .map(str::to_string),
            );
        }
        codes.truncate(MAX_CONCEPTS);
        Focus {
            codes,
            around: true,
            rows_from,
        }
    }

    /// Adds the codes a value set's filters name (`is-a` and the like need them and
    /// their ancestors).
    pub(crate) fn add_filter_values(&mut self, value_set: &Value) {
        if !self.around {
            return;
        }
        let compose = &value_set["compose"];
        for part in ["include", "exclude"] {
            for inc in compose[part].as_array().into_iter().flatten() {
                for f in inc["filter"].as_array().into_iter().flatten() {
                    if let Some(v) = f["value"].as_str() {
                        if self.codes.len() < MAX_CONCEPTS {
                            self.codes.push(v.to_string());
                        }
                    }
                }
            }
        }
    }
}

/// The code system `reference` (`url` or `url|version`) names — the one with that
/// version, else the one written last — when it is kept as rows and has at least
/// `from` concepts.
pub(super) fn row_system(
    store: &Store,
    reference: &str,
    from: u64,
) -> Result<Option<RowSystem>, StoreError> {
    let (url, version) = match reference.split_once('|') {
        Some((u, v)) => (u, Some(v)),
        None => (reference, None),
    };
    let system = store.row_system(url, version)?;
    Ok(system.filter(|s| s.concepts.max(0) as u64 >= from))
}

/// `system` as a CodeSystem holding the concepts `focus` reaches; `None` when its
/// header cannot be read (the resource is then read whole).
pub(super) fn partial_code_system(
    store: &Store,
    system: &RowSystem,
    focus: &Focus,
) -> Result<Option<Value>, StoreError> {
    let Ok(mut header) = serde_json::from_str::<Value>(&system.header) else {
        return Ok(None);
    };
    let mut concepts = neighbourhood(store, system.rid, focus)?;
    if concepts.is_empty() {
        // A fragment without concepts is a code system nothing can be checked
        // against: keep one concept, so that it is the system it is.
        let first = store.concept_page(system.rid, &ConceptFilter::default(), 0, 1)?;
        concepts.extend(first.iter().map(|c| with_parents(c, &[])));
    }
    header["concept"] = Value::Array(concepts);
    Ok(Some(header))
}

/// The concepts `focus` names, with (when it asks) their ancestors and children, each
/// with `parent` properties for the links among them.
fn neighbourhood(store: &Store, rid: i64, focus: &Focus) -> Result<Vec<Value>, StoreError> {
    let named = store.concepts_by_code(rid, &focus.codes)?;
    let mut concepts: Vec<RowConcept> = named;
    let mut links: Vec<RowLink> = Vec::new();
    if focus.around {
        let asked: Vec<String> = concepts.iter().map(|c| c.code.clone()).collect();
        links = ancestry(store, rid, &asked, MAX_CONCEPTS)?;
        let down = store.concept_links(rid, &asked, false)?;
        links.extend(down.into_iter().take(MAX_CONCEPTS));
        let asked: HashSet<&String> = asked.iter().collect();
        let mut more: Vec<String> = links
            .iter()
            .flat_map(|l| [&l.code, &l.parent])
            .filter(|c| !asked.contains(c))
            .cloned()
            .collect();
        more.sort();
        more.dedup();
        let wanted: HashSet<&String> = more.iter().collect();
        let found = store.concepts_by_code(rid, &more)?;
        concepts.extend(found.into_iter().filter(|c| wanted.contains(&c.code)));
    }
    let mut codes = HashSet::new();
    concepts.retain(|c| codes.insert(c.code.clone()));
    // Each concept's parents among the concepts read.
    let mut parents: HashMap<&str, Vec<&str>> = HashMap::new();
    for l in links.iter().filter(|l| codes.contains(&l.parent)) {
        parents.entry(&l.code).or_default().push(&l.parent);
    }
    Ok(concepts
        .iter()
        .map(|c| with_parents(c, parents.get(c.code.as_str()).map_or(&[], Vec::as_slice)))
        .collect())
}

/// A concept's JSON with a `parent` property for each of `parents`.
fn with_parents(c: &RowConcept, parents: &[&str]) -> Value {
    let mut v: Value = serde_json::from_str(&c.concept).unwrap_or_else(|_| json!({}));
    v["code"] = json!(c.code);
    let mut parents = parents.to_vec();
    parents.sort_unstable();
    parents.dedup();
    if !parents.is_empty() {
        let mut props = v["property"].as_array().cloned().unwrap_or_default();
        props.extend(
            parents
                .iter()
                .map(|p| json!({"code": "parent", "valueCode": p})),
        );
        v["property"] = Value::Array(props);
    }
    v
}

/// What the store chose for an expansion: `codes` of `total`.
pub(crate) struct Page {
    pub total: usize,
    pub codes: Vec<ExpandedCode>,
}

/// How an expansion over code systems kept as rows is made.
pub(crate) enum Expansion {
    /// The store chose the page.
    Page(Page),
    /// The value set lists its codes of those systems: they are read (around nothing)
    /// and the value set expanded in memory.
    Listed(Vec<String>),
}

/// How the expansion of value set `url` in `t` is made when it draws on code systems
/// kept as rows (`rows`: their plain URLs and rids): paged by the store when it
/// includes only whole such systems, or one `is-a`/`descendent-of` branch of each,
/// with nothing excluded and no hierarchy asked for; from the listed codes when it
/// lists its codes of them; `None` otherwise (it is expanded from whole systems).
pub(crate) fn page(
    store: &Store,
    t: &Terminology,
    rows: &[(String, i64)],
    p: &Params,
    url: &str,
) -> Result<Option<Result<Expansion, TxError>>, StoreError> {
    let Some(vs) = t.value_set(url).filter(|vs| vs.expansion.is_none()) else {
        return Ok(None);
    };
    let Some(compose) = vs.compose.as_ref() else {
        return Ok(None);
    };
    // Concepts are read without their hierarchy properties (the links hold them).
    if p.texts("property")
        .iter()
        .any(|p| matches!(*p, "parent" | "child"))
    {
        return Ok(None);
    }
    if let Some(codes) = listed(compose, rows) {
        return Ok(Some(Ok(Expansion::Listed(codes))));
    }
    let Some(parts) = plan(compose, rows, p) else {
        return Ok(None);
    };
    let active_only = match p.boolean("activeOnly") {
        Ok(a) => a.unwrap_or(false) || compose.inactive == Some(false),
        Err(e) => return Ok(Some(Err(e))),
    };
    let text = fhir_terminology::expand::filter_text(p).map(str::to_string);
    let words = text.as_deref().map_or(0, |t| filter_words(t).len());
    if words > MAX_FILTER_WORDS {
        return Ok(Some(Err(TxError::Invalid {
            message: format!("filter has more than {MAX_FILTER_WORDS} words"),
            param: "filter".into(),
        })));
    }
    let filters: Vec<ConceptFilter> = parts
        .iter()
        .map(|part| ConceptFilter {
            text: text.clone(),
            active_only,
            below: part.below.clone(),
        })
        .collect();
    if let ([part], [filter]) = (&parts[..], &filters[..]) {
        if *filter != ConceptFilter::default() {
            return one_part(store, part, filter, p);
        }
    }
    let mut counts = Vec::new();
    for (part, filter) in parts.iter().zip(&filters) {
        counts.push(store.concept_count(part.rid, filter)?);
    }
    let total: usize = counts.iter().sum();
    let window = match fhir_terminology::expand::window(p, total) {
        Ok(w) => w,
        Err(e) => return Ok(Some(Err(e))),
    };
    let mut codes = Vec::new();
    let mut before = 0;
    for ((part, filter), n) in parts.iter().zip(&filters).zip(counts) {
        let (from, to) = (window.start.max(before), window.end.min(before + n));
        if from < to {
            let rows = store.concept_page(part.rid, filter, from - before, to - from)?;
            codes.extend(rows.into_iter().map(|c| ExpandedCode {
                system: part.system.clone(),
                code: c.code,
                display: c.display,
            }));
        }
        before += n;
    }
    Ok(Some(Ok(Expansion::Page(Page { total, codes }))))
}

/// The page of one include that `filter` narrows, read and counted by one statement
/// (`count` rows, or one more than an unpaged expansion may have).
fn one_part(
    store: &Store,
    part: &Part,
    filter: &ConceptFilter,
    p: &Params,
) -> Result<Option<Result<Expansion, TxError>>, StoreError> {
    let paging = p.count("offset").and_then(|o| Ok((o, p.count("count")?)));
    let (offset, count) = match paging {
        Ok(paging) => paging,
        Err(e) => return Ok(Some(Err(e))),
    };
    let limit = count.unwrap_or(fhir_terminology::expand::MAX_UNPAGED + 1);
    let (rows, total) = store.concept_page_counted(part.rid, filter, offset.unwrap_or(0), limit)?;
    let total = match total {
        Some(total) => total,
        None => store.concept_count(part.rid, filter)?,
    };
    if let Err(e) = fhir_terminology::expand::window(p, total) {
        return Ok(Some(Err(e)));
    }
    let codes = rows
        .into_iter()
        .map(|c| ExpandedCode {
            system: part.system.clone(),
            code: c.code,
            display: c.display,
        })
        .collect();
    Ok(Some(Ok(Expansion::Page(Page { total, codes }))))
}

/// One include the store pages: a whole system, or a branch of it.
struct Part {
    system: String,
    rid: i64,
    below: Option<Below>,
}

fn plan(compose: &ValueSetCompose, rows: &[(String, i64)], p: &Params) -> Option<Vec<Part>> {
    if p.boolean("excludeNested").ok()? == Some(false) || !compose.exclude.is_empty() {
        return None;
    }
    let mut parts: Vec<Part> = Vec::new();
    for inc in &compose.include {
        if !(inc.concept.is_empty() && inc.value_set.is_empty()) || inc.filter.len() > 1 {
            return None;
        }
        let below = match inc.filter.first() {
            None => None,
            Some(f) if matches!(f.property.as_str(), "concept" | "code") => Some(Below {
                code: f.value.clone(),
                include_self: match f.op.as_str() {
                    "is-a" => true,
                    "descendent-of" => false,
                    _ => return None,
                },
            }),
            Some(_) => return None,
        };
        let system = canonical_url(inc.system.as_deref()?).to_string();
        let rid = rows.iter().find(|(u, _)| *u == system)?.1;
        if parts.iter().any(|part| part.system == system) {
            return None;
        }
        parts.push(Part { system, rid, below });
    }
    (!parts.is_empty()).then_some(parts)
}

/// The codes a value set lists of the systems kept as rows, when that is all it takes
/// of them (and they are at most [`MAX_CONCEPTS`]).
fn listed(compose: &ValueSetCompose, rows: &[(String, i64)]) -> Option<Vec<String>> {
    let mut codes = Vec::new();
    for inc in compose.include.iter().chain(&compose.exclude) {
        if !inc.value_set.is_empty() {
            // An imported value set may take more of the system than its listed codes.
            return None;
        }
        let Some(system) = inc.system.as_deref().map(canonical_url) else {
            continue;
        };
        if !rows.iter().any(|(u, _)| u == system) {
            continue;
        }
        if inc.concept.is_empty() || !inc.filter.is_empty() {
            return None;
        }
        codes.extend(inc.concept.iter().map(|c| c.code.clone()));
    }
    (!codes.is_empty() && codes.len() <= MAX_CONCEPTS).then_some(codes)
}

/// For search: the codes at or below (`below`) or at or above `code` in the code
/// system kept as rows that `system` names — `None` when it is not kept as rows
/// (`Some(None)` when it has no such code). Below, one more than the search takes at
/// most, so that the caller can tell there were too many.
pub(crate) fn hierarchy(
    store: &Store,
    system: &str,
    code: &str,
    below: bool,
    rows_from: u64,
) -> Result<Option<Option<Vec<String>>>, StoreError> {
    let Some(found) = row_system(store, system, rows_from)? else {
        return Ok(None);
    };
    let named = store.concepts_by_code(found.rid, &[code.to_string()])?;
    if !named.iter().any(|c| c.code == code) {
        return Ok(Some(None));
    }
    if below {
        let filter = ConceptFilter {
            below: Some(Below {
                code: code.to_string(),
                include_self: true,
            }),
            ..ConceptFilter::default()
        };
        let page = store.concept_page(found.rid, &filter, 0, MAX_BELOW + 1)?;
        return Ok(Some(Some(page.into_iter().map(|c| c.code).collect())));
    }
    let start = [code.to_string()];
    let mut codes = start.to_vec();
    let mut seen: HashSet<String> = codes.iter().cloned().collect();
    let links = ancestry(store, found.rid, &start, usize::MAX)?;
    codes.extend(
        links
            .into_iter()
            .map(|l| l.parent)
            .filter(|p| seen.insert(p.clone())),
    );
    Ok(Some(Some(codes)))
}

/// The links from `codes` up to the roots ([`MAX_DEPTH`] levels at most), walked until
/// `most` codes are met.
fn ancestry(
    store: &Store,
    rid: i64,
    codes: &[String],
    most: usize,
) -> Result<Vec<RowLink>, StoreError> {
    let mut links = Vec::new();
    let mut seen: HashSet<String> = codes.iter().cloned().collect();
    let mut frontier = codes.to_vec();
    for _ in 0..MAX_DEPTH {
        if frontier.is_empty() || seen.len() >= most {
            break;
        }
        let up = store.concept_links(rid, &frontier, true)?;
        frontier = up
            .iter()
            .filter(|l| seen.insert(l.parent.clone()))
            .map(|l| l.parent.clone())
            .collect();
        links.extend(up);
    }
    Ok(links)
}

/// Most codes below a code that a search takes (one more is read to tell).
const MAX_BELOW: usize = 500_000;
