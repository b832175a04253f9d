//! Writing versions: the one path every create, update, patch and delete goes through.

use diesel::sql_types::{BigInt, Bool};
use diesel::QueryableByName;
use serde_json::{Map, Value};

use crate::backend::Tx;
use crate::error::{StoreError, StoreResult};
use crate::model::{IndexRows, StoredResource};
use crate::sql::{Bind, Sql};
use crate::time::{fhir_instant, now_millis};

/// The current state of a logical resource, locked for this transaction.
#[derive(Debug, Clone, QueryableByName)]
pub(crate) struct Current {
    #[diesel(sql_type = BigInt)]
    pub rid: i64,
    /// 0 when the resource did not exist before this transaction.
    #[diesel(sql_type = BigInt)]
    pub version: i64,
    #[diesel(sql_type = Bool)]
    pub deleted: bool,
}

impl Current {
    pub fn exists(&self) -> bool {
        self.version > 0 && !self.deleted
    }
}

/// Claims the row of `type/id` (creating a placeholder if new) and locks it until the
/// transaction ends, so that concurrent writers of one resource take turns.
pub(crate) fn lock_current(tx: &mut Tx<'_>, res_type: &str, id: &str) -> StoreResult<Current> {
    let mut claim = Sql::new(
        "INSERT INTO resources (res_type, res_id, version, seq, last_updated, deleted) VALUES (",
    );
    claim
        .bind(Bind::Text(res_type.into()))
        .push(", ")
        .bind(Bind::Text(id.into()))
        .push(", 0, 0, 0, ")
        .bind(Bind::Bool(false))
        .push(") ON CONFLICT (res_type, res_id) DO NOTHING");
    claim.execute(tx.conn)?;
    let mut select = Sql::new("SELECT rid, version, deleted FROM resources WHERE res_type = ");
    select
        .bind(Bind::Text(res_type.into()))
        .push(" AND res_id = ")
        .bind(Bind::Text(id.into()));
    select.push(tx.for_update());
    select
        .load::<Current>(tx.conn)?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Corrupt(format!("{res_type}/{id} vanished while locked")))
}

/// Sets `id`, `meta.versionId` and `meta.lastUpdated`, placing `id` and `meta` right
/// after `resourceType` and keeping every other member where it was.
pub(crate) fn stamp(resource: Value, id: &str, version: i64, last_updated: i64) -> Value {
    let Value::Object(old) = resource else {
        return resource;
    };
    let mut out = Map::with_capacity(old.len() + 2);
    let mut rest = old;
    if let Some(rt) = rest.shift_remove("resourceType") {
        out.insert("resourceType".into(), rt);
    }
    rest.shift_remove("id");
    out.insert("id".into(), Value::String(id.into()));
    let mut meta = match rest.shift_remove("meta") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    meta.insert("versionId".into(), Value::String(version.to_string()));
    meta.insert(
        "lastUpdated".into(),
        Value::String(fhir_instant(last_updated)),
    );
    out.insert("meta".into(), Value::Object(meta));
    out.extend(rest);
    Value::Object(out)
}

/// Writes the next version of a locked resource (`resource: None` writes a deletion)
/// and replaces its index rows.
pub(crate) fn write_version(
    tx: &mut Tx<'_>,
    res_type: &str,
    id: &str,
    current: &Current,
    resource: Option<Value>,
    method: &str,
    index: &dyn Fn(&Value) -> IndexRows,
) -> StoreResult<StoredResource> {
    let version = current.version + 1;
    let last_updated = now_millis();
    let deleted = resource.is_none();
    let (content, rows) = match resource {
        Some(r) => {
            let r = stamp(r, id, version, last_updated);
            let rows = index(&r);
            (fhir_model::json::to_string(&r), rows)
        }
        None => (String::new(), IndexRows::default()),
    };
    let mut insert = Sql::new(
        "INSERT INTO resource_versions (res_type, res_id, version, last_updated, deleted, method, content) VALUES (",
    );
    insert
        .bind(Bind::Text(res_type.into()))
        .push(", ")
        .bind(Bind::Text(id.into()))
        .push(", ")
        .bind(Bind::BigInt(version))
        .push(", ")
        .bind(Bind::BigInt(last_updated))
        .push(", ")
        .bind(Bind::Bool(deleted))
        .push(", ")
        .bind(Bind::Text(method.into()))
        .push(", ")
        .bind(Bind::Text(content.clone()))
        .push(") RETURNING seq AS n");
    let seq = insert
        .load::<crate::sql::CountRow>(tx.conn)?
        .into_iter()
        .next()
        .map(|r| r.n)
        .ok_or_else(|| StoreError::Corrupt("insert returned no seq".into()))?;
    let mut update = Sql::new("UPDATE resources SET version = ");
    update
        .bind(Bind::BigInt(version))
        .push(", seq = ")
        .bind(Bind::BigInt(seq))
        .push(", last_updated = ")
        .bind(Bind::BigInt(last_updated))
        .push(", deleted = ")
        .bind(Bind::Bool(deleted))
        .push(" WHERE rid = ")
        .bind(Bind::BigInt(current.rid));
    update.execute(tx.conn)?;
    replace_index(tx, current.rid, res_type, &rows)?;
    Ok(StoredResource {
        seq,
        res_type: res_type.into(),
        res_id: id.into(),
        version,
        last_updated,
        deleted,
        method: method.into(),
        content,
    })
}

fn replace_index(tx: &mut Tx<'_>, rid: i64, res_type: &str, rows: &IndexRows) -> StoreResult<()> {
    let mut delete = Sql::new("DELETE FROM idx_token WHERE rid = ");
    delete.bind(Bind::BigInt(rid));
    delete.execute(tx.conn)?;
    for chunk in rows.tokens.chunks(200) {
        let mut insert =
            Sql::new("INSERT INTO idx_token (rid, res_type, param, system, code) VALUES ");
        for (i, t) in chunk.iter().enumerate() {
            if i > 0 {
                insert.push(", ");
            }
            insert
                .push("(")
                .bind(Bind::BigInt(rid))
                .push(", ")
                .bind(Bind::Text(res_type.into()))
                .push(", ")
                .bind(Bind::Text(t.param.clone()))
                .push(", ")
                .bind(Bind::OptText(t.system.clone()))
                .push(", ")
                .bind(Bind::OptText(t.code.clone()))
                .push(")");
        }
        insert.execute(tx.conn)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_puts_id_and_meta_first_and_keeps_the_rest() {
        let r = fhir_model::json::parse(
            br#"{"resourceType":"Patient","active":true,"meta":{"tag":[{"code":"a"}],"versionId":"9"},"id":"old","x":1.50}"#,
        )
        .unwrap();
        let out = fhir_model::json::to_string(&stamp(r, "p1", 2, 0));
        assert_eq!(
            out,
            r#"{"resourceType":"Patient","id":"p1","meta":{"tag":[{"code":"a"}],"versionId":"2","lastUpdated":"1970-01-01T00:00:00.000Z"},"active":true,"x":1.50}"#
        );
    }
}
