//! Idempotency keys: a write request that carries one is carried out once. Its key,
//! a fingerprint of the request and the response are recorded in the same database
//! transaction as its writes (so a crash cannot separate them); a request with a known
//! key replays the recorded response instead of writing again.

use diesel::sql_types::Text;
use diesel::QueryableByName;

use crate::backend::Tx;
use crate::error::{StoreError, StoreResult};
use crate::sql::{Bind, Sql};

/// A request already carried out under a key.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Recorded {
    /// The fingerprint of the request that used the key (a hash of its body).
    #[diesel(sql_type = Text)]
    pub fingerprint: String,
    /// The response it was answered with.
    #[diesel(sql_type = Text)]
    pub response: String,
}

pub(crate) fn lookup(tx: &mut Tx<'_>, key: &str) -> StoreResult<Option<Recorded>> {
    let mut q = Sql::new("SELECT fingerprint, response FROM idempotency_keys WHERE idem_key = ");
    q.bind(Bind::Text(key.to_string()));
    Ok(q.load::<Recorded>(tx.conn)?.into_iter().next())
}

/// Records a key inside the writing transaction. A key recorded meanwhile by a
/// concurrent request with the same key is a conflict (that request wins).
pub(crate) fn record(
    tx: &mut Tx<'_>,
    key: &str,
    fingerprint: &str,
    response: &str,
) -> StoreResult<()> {
    let mut q = Sql::new(
        "INSERT INTO idempotency_keys (idem_key, fingerprint, created_ms, response) VALUES (",
    );
    q.bind(Bind::Text(key.to_string()))
        .push(", ")
        .bind(Bind::Text(fingerprint.to_string()))
        .push(", ")
        .bind(Bind::BigInt(crate::time::now_millis()))
        .push(", ")
        .bind(Bind::Text(response.to_string()))
        .push(") ON CONFLICT (idem_key) DO NOTHING");
    if q.execute(tx.conn)? == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict(
            "another request with the same Idempotency-Key was processed meanwhile".into(),
        ))
    }
}
