//! Batches: each entry on its own — a search on a read connection, a write in its own
//! database transaction — and the planned-entries runner both kinds share.

use super::*;

/// Runs one planned batch entry: a search on a read connection, anything else in its
/// own database transaction.
pub(super) async fn batch_entry(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    p: Planned,
    base: &str,
    ret: Return,
    patching: &Patching,
) -> Result<BundleEntry, EntryError> {
    let i = p.index;
    let patching = patching.clone();
    if let Some(search) = p.search {
        return batch_search(state, *search, base)
            .await
            .map_err(|e| entry_err(i, e));
    }
    let with = RunWith {
        ret,
        patching,
        idem: None,
    };
    match run_planned(state, req, vec![p], base, with, i).await {
        Ok(Ok(mut entries)) => entries
            .pop()
            .ok_or_else(|| entry_err(i, ApiError::Internal("no answer".into()))),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(entry_err(i, e)),
    }
}

/// How planned entries run: the shape of their answers, the checks of patches, and the
/// idempotency key of the request (transactions only).
pub(super) struct RunWith {
    pub(super) ret: Return,
    pub(super) patching: Patching,
    pub(super) idem: Option<Idempotent>,
}

/// Runs planned entries in one database transaction, on behalf of `req`: their answers,
/// or the entry that failed (everything rolled back). A failure of the database itself
/// is reported at `index`. With an idempotency key, the key and the response are
/// recorded in the same transaction.
pub(super) async fn run_planned(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    plans: Vec<Planned>,
    base: &str,
    with: RunWith,
    index: usize,
) -> Result<Result<Vec<BundleEntry>, EntryError>, ApiError> {
    let data = state.clone();
    let base = base.to_string();
    let RunWith {
        ret,
        patching,
        idem,
    } = with;
    state
        .writing(req, move |store| {
            let mut failed = None;
            let r = store.transaction(|ops| {
                let entries =
                    run_transaction(ops, &data, &base, plans, ret, &patching).map_err(|e| {
                        failed = Some(e);
                        StoreError::BadRequest {
                            message: "a Bundle entry failed".into(),
                            expression: None,
                        }
                    })?;
                if let Some(i) = &idem {
                    let response = transaction_response(entries.clone()).to_value();
                    let text = fhir_model::json::to_string(&response);
                    ops.record_idempotency(&i.key, &i.fingerprint, &text)?;
                }
                Ok(entries)
            });
            Ok(match (r, failed) {
                (Ok(entries), _) => Ok(entries),
                (Err(_), Some(f)) => Err(f),
                (Err(e), None) => Err(entry_err(index, ApiError::from(e))),
            })
        })
        .await
}

pub(super) async fn batch_search(
    state: &web::Data<AppState>,
    search: Prepared,
    base: &str,
) -> Result<BundleEntry, ApiError> {
    state.sync_audit(search.reads_audit_events()).await?;
    let data = state.clone();
    let (search, page) = state
        .budgeted(move || {
            let mut page = data.store.search(&search.request)?;
            restrict_included(&data, &search, &mut page)?;
            Ok::<_, StoreError>((search, page))
        })
        .await?;
    Ok(search_entry(searchset(state, base, &search, &page)?))
}

pub(super) async fn batch(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    entries: Vec<Value>,
    verdicts: &[Option<ApiError>],
    base: &str,
    ret: Return,
) -> Bundle {
    let mut patching: Option<Patching> = None;
    let mut out = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let planned = plan(state, req, base, i, entry).and_then(|p| match invalid(verdicts, i) {
            Some(e) => Err(e),
            None => Ok(p),
        });
        let answer = match planned {
            Err(e) => Err(entry_err(i, e)),
            Ok(p) => {
                let ready = match &patching {
                    Some(x) => Ok(x.clone()),
                    None => Patching::of(state, req, p.method == Method::Patch).await,
                };
                match ready {
                    Err(e) => Err(entry_err(i, e)),
                    Ok(x) => {
                        let answer = batch_entry(state, req, p, base, ret, &x).await;
                        patching = x.validator.is_some().then_some(x);
                        answer
                    }
                }
            }
        };
        out.push(match answer {
            Ok(entry) => entry,
            Err(err) => {
                let (status, oo) = failure_outcome(
                    &EntryError {
                        index: i,
                        error: err.error,
                    },
                    "batch",
                );
                BundleEntry {
                    response: Some(EntryResponse {
                        status: status_line(status.as_u16()),
                        outcome: Some(oo.to_value()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            }
        });
    }
    let mut bundle = Bundle::new(BundleType::BatchResponse);
    bundle.entry = out;
    bundle.timestamp = Some(fhir_instant(fhir_store::time::now_millis()));
    bundle
}
