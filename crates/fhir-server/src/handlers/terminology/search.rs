//! Search's terminology: the `:in`/`:not-in` value sets no package defines, expanded
//! from the stored ones (with what they reach), and `:below`/`:above` over the
//! hierarchy of a stored code system — from its concept rows when it is kept as rows
//! (`--terminology-rows-from`), else read whole through the terminology cache.

use std::sync::Arc;

use fhir_model::terminology::Terminology;
use fhir_terminology::{Params, TxError};

use super::{terminology, terminology_about, Op, Result};
use crate::error::ApiError;
use crate::state::AppState;
use crate::stored_terminology::{Expansion, Focus};

/// What a search needs expanded that no package could: a stored value set (`:in`,
/// `:not-in`), or the codes below or above `system|code` in a stored code system
/// (`:below`, `:above`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Wanted {
    ValueSet(String),
    Below(String),
    Above(String),
}

impl Wanted {
    fn of(modifier: Option<&fhir_search::Modifier>, url: &str) -> Wanted {
        use fhir_search::Modifier;
        match modifier {
            Some(Modifier::Below) => Wanted::Below(url.to_string()),
            Some(Modifier::Above) => Wanted::Above(url.to_string()),
            _ => Wanted::ValueSet(url.to_string()),
        }
    }
}

/// What `clauses` (and their `_has`) need expanded.
fn unexpanded(clauses: &[fhir_search::Clause], out: &mut Vec<Wanted>) {
    use fhir_search::{Clause, SearchValue};
    for c in clauses {
        match c {
            Clause::Param(p) => out.extend(p.values.iter().filter_map(|v| match v {
                SearchValue::ValueSet {
                    url,
                    expansion: None,
                } => Some(Wanted::of(p.modifier.as_ref(), url)),
                _ => None,
            })),
            Clause::Has(h) => unexpanded(std::slice::from_ref(&*h.inner), out),
            _ => {}
        }
    }
}

/// Gives what `clauses` want as `wanted` its expansion `codes`.
fn fill(clauses: &mut [fhir_search::Clause], wanted: &Wanted, codes: &[(String, String)]) {
    use fhir_search::{Clause, SearchValue};
    for c in clauses {
        match c {
            Clause::Param(p) => {
                let modifier = p.modifier.clone();
                for v in &mut p.values {
                    if let SearchValue::ValueSet {
                        url,
                        expansion: e @ None,
                    } = v
                    {
                        if Wanted::of(modifier.as_ref(), url) == *wanted {
                            *e = Some(codes.to_vec());
                        }
                    }
                }
            }
            Clause::Has(h) => fill(std::slice::from_mut(&mut *h.inner), wanted, codes),
            _ => {}
        }
    }
}

/// Search uses the same terminology as the operations: the `:in`/`:not-in` value sets
/// no package defines are expanded from the stored ones (with what they reach), and
/// `:below`/`:above` follow the hierarchy of a stored code system. What cannot be is
/// left for the store to refuse, naming it.
pub(crate) async fn expand_stored_value_sets(
    state: &AppState,
    query: &mut fhir_search::SearchQuery,
) -> Result<()> {
    let mut wanted = Vec::new();
    unexpanded(&query.clauses, &mut wanted);
    wanted.sort();
    wanted.dedup();
    for w in wanted {
        let codes = match &w {
            Wanted::ValueSet(url) => stored_expansion(state, url).await?,
            Wanted::Below(raw) => stored_hierarchy(state, raw, true).await?,
            Wanted::Above(raw) => stored_hierarchy(state, raw, false).await?,
        };
        if let Some(codes) = codes {
            fill(&mut query.clauses, &w, &codes);
        }
    }
    Ok(())
}

/// Whether `e` says the terminology cannot be used (left for the store to refuse).
fn unusable(e: &ApiError) -> bool {
    matches!(
        e,
        ApiError::BadRequest { .. }
            | ApiError::Unprocessable(..)
            | ApiError::NotFound(_)
            | ApiError::TerminologyNotFound(_)
    )
}

/// The stored terminology `op` needs for `url`; `None` where there is none to use.
async fn usable(state: &AppState, op: Op, url: &str) -> Result<Option<Arc<Terminology>>> {
    match terminology(state, op, Some(url.to_string()), &Arc::default()).await {
        Ok(t) => Ok(t),
        Err(e) if unusable(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The codes of value set `url` in `t`, if it can be expanded.
fn expanded(t: &Terminology, url: &str) -> Option<Vec<(String, String)>> {
    t.expand_shared(url).ok().map(|codes| {
        codes
            .iter()
            .map(|c| (c.system.clone(), c.code.clone()))
            .collect()
    })
}

/// The codes of the stored value set `url`, if it can be expanded: from the rows of the
/// code systems kept as rows it draws on (at most [`MAX_SEARCH_CODES`]), else from
/// the whole systems.
async fn stored_expansion(state: &AppState, url: &str) -> Result<Option<Vec<(String, String)>>> {
    let rows_from = state.terminology_rows_from;
    let focus = Focus {
        rows_from,
        ..Focus::default()
    };
    let named = Some(url.to_string());
    let g = match terminology_about(state, Op::Expand, named, &Arc::default(), Some(focus)).await {
        Ok(Some(g)) => g,
        Ok(None) => return Ok(None),
        Err(e) if unusable(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    if g.partly.is_empty() {
        return Ok(expanded(&g.t, url));
    }
    let count = serde_json::Value::String(MAX_SEARCH_CODES.to_string());
    let params = Params(vec![("count".to_string(), count)]);
    let at = url.to_string();
    let chosen = state
        .blocking(move |s| crate::stored_terminology::row_page(s, &g.t, &g.partly, &params, &at))
        .await?;
    match chosen.transpose()? {
        Some(Expansion::Page(page)) if page.total > page.codes.len() => Err(too_many(url)),
        Some(Expansion::Page(page)) => Ok(Some(
            page.codes.into_iter().map(|c| (c.system, c.code)).collect(),
        )),
        Some(Expansion::Listed(codes)) => {
            let focus = Focus {
                codes,
                around: false,
                rows_from,
            };
            let named = Some(url.to_string());
            match terminology_about(state, Op::Expand, named, &Arc::default(), Some(focus)).await {
                Ok(t) => Ok(t.and_then(|g| expanded(&g.t, url))),
                Err(e) if unusable(&e) => Ok(None),
                Err(e) => Err(e),
            }
        }
        None => Ok(usable(state, Op::Expand, url)
            .await?
            .and_then(|t| expanded(&t, url))),
    }
}

/// Most codes a search takes from code systems kept as rows.
const MAX_SEARCH_CODES: usize = 500_000;

fn too_many(what: &str) -> ApiError {
    TxError::TooCostly {
        message: format!("{what} has more than {MAX_SEARCH_CODES} codes: too many for a search"),
        param: "url".into(),
    }
    .into()
}

/// `system|code` and the codes below it (or above it) in the stored code system.
async fn stored_hierarchy(
    state: &AppState,
    raw: &str,
    below: bool,
) -> Result<Option<Vec<(String, String)>>> {
    let Some((system, code)) = raw.split_once('|') else {
        return Ok(None);
    };
    let (at, of, from) = (
        system.to_string(),
        code.to_string(),
        state.terminology_rows_from,
    );
    let rows = state
        .blocking(move |s| crate::stored_terminology::hierarchy(s, &at, &of, below, from))
        .await?;
    let codes: Vec<String> = match rows {
        Some(Some(codes)) if codes.len() > MAX_SEARCH_CODES => return Err(too_many(raw)),
        Some(found) => match found {
            Some(codes) => codes,
            None => return Ok(None),
        },
        None => {
            let Some(t) = usable(state, Op::Lookup, system).await? else {
                return Ok(None);
            };
            let Some(cs) = t.code_system(system).filter(|cs| cs.find(code).is_some()) else {
                return Ok(None);
            };
            match below {
                true => cs
                    .descendants_and_self(code)
                    .into_iter()
                    .map(|(c, _)| c.to_string())
                    .collect(),
                false => cs
                    .ancestors_and_self(code)
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
            }
        }
    };
    Ok(Some(
        codes.into_iter().map(|c| (system.to_string(), c)).collect(),
    ))
}
