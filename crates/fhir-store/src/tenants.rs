//! Tenants (partner organisations sharing one server): their registry, kept in the
//! default tenant's database, and where each tenant's own database is.
//!
//! A tenant's records live in a database of their own holding every table of the
//! default one: a schema `tenant_<name>` of the same PostgreSQL database (connections
//! set `search_path` to it), or a SQLite file beside the default one
//! (`fhir.db` → `fhir.db.tenants/<name>.db`). Every row of a tenant — versions, index
//! entries, jobs, audit trail, subscriptions' outbox — thus carries its tenant by
//! where it is, every index key is led by it, ids are unique per tenant, and no query
//! of one tenant's store can reach another's rows, whatever its criteria, includes or
//! chains. The default tenant is the database named by the URL itself, so an install
//! without tenants is unchanged.

use diesel::sql_types::{BigInt, Bool, Text};
use diesel::QueryableByName;

use crate::backend::BackendKind;
use crate::sql::{Bind, Sql};
use crate::{Store, StoreError, StoreResult};

/// The tenant whose database is the one the URL names.
pub const DEFAULT: &str = "default";

/// SQL prefixing PostgreSQL advisory-lock keys with the tenant's schema, so tenants do
/// not wait for each other; nothing in the default schema (`public`), whose keys stay
/// those of a single install (nodes of the version before tenants share its locks).
pub(crate) const LOCK_PREFIX: &str =
    "(CASE WHEN current_schema() = 'public' THEN '' ELSE current_schema() || ':' END)";

/// Names that would be read as something else in a URL (`/fhir/metadata`, `/fhir/ws`).
const RESERVED: &[&str] = &[DEFAULT, "metadata", "ws", "console", "auth"];

/// A registered tenant.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Tenant {
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Bool)]
    pub active: bool,
    #[diesel(sql_type = BigInt)]
    pub created_ms: i64,
}

/// Why `name` cannot name a tenant: 1–40 of `a-z 0-9 -`, starting with a letter, not
/// ending with `-`, and not a reserved word. Lower case keeps a tenant apart from a
/// resource type in a URL (`/fhir/acme/Patient`), and the alphabet maps one to one
/// onto a PostgreSQL schema name and a file name.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = (1..=40).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(format!(
            "'{name}' is not a tenant name: 1 to 40 of a-z, 0-9 and '-', starting with a letter and not ending with '-'"
        ));
    }
    if RESERVED.contains(&name) {
        return Err(format!("'{name}' is reserved and cannot name a tenant"));
    }
    Ok(())
}

fn checked(name: &str) -> StoreResult<()> {
    check_name(name).map_err(|message| StoreError::BadRequest {
        message,
        expression: None,
    })
}

/// The PostgreSQL schema of tenant `name` (a checked name).
fn schema(name: &str) -> String {
    format!("tenant_{}", name.replace('-', "_"))
}

/// The database URL of tenant `name` beside the default tenant's `base`.
pub fn database_url(base: &str, name: &str) -> StoreResult<String> {
    checked(name)?;
    if let Some(path) = base.strip_prefix("sqlite://") {
        if path == ":memory:" {
            return Ok(base.to_string());
        }
        return Ok(format!("sqlite://{path}.tenants/{name}.db"));
    }
    if base.starts_with("postgres://") || base.starts_with("postgresql://") {
        let glue = if base.contains('?') { '&' } else { '?' };
        return Ok(format!(
            "{base}{glue}options=-csearch_path%3D{}",
            schema(name)
        ));
    }
    Err(StoreError::UnsupportedUrl(base.to_string()))
}

impl Store {
    /// Every registered tenant, by name.
    pub fn tenants(&self) -> StoreResult<Vec<Tenant>> {
        self.db.read(|tx| {
            Sql::new("SELECT name, active, created_ms FROM tenants ORDER BY name").load(tx.conn)
        })
    }

    /// Tenant `name`, if registered.
    pub fn tenant(&self, name: &str) -> StoreResult<Option<Tenant>> {
        self.db.read(|tx| {
            let mut q = Sql::new("SELECT name, active, created_ms FROM tenants WHERE name = ");
            q.bind(Bind::Text(name.into()));
            Ok(q.load(tx.conn)?.pop())
        })
    }

    /// Registers tenant `name` (active) and, on PostgreSQL, creates its schema; the
    /// tenant's tables are made when its store is first opened. `false`: it existed.
    pub fn add_tenant(&self, name: &str) -> StoreResult<bool> {
        checked(name)?;
        let postgres = self.kind() == BackendKind::Postgres;
        self.db.write_unfenced(|tx| {
            if postgres {
                // The name is checked: only a-z, 0-9 and '_' reach the statement.
                Sql::new(&format!("CREATE SCHEMA IF NOT EXISTS {}", schema(name)))
                    .execute(tx.conn)?;
            }
            let mut q = Sql::new("INSERT INTO tenants (name, active, created_ms) VALUES (");
            q.bind(Bind::Text(name.into()))
                .push(", ")
                .bind(Bind::Bool(true))
                .push(", ")
                .bind(Bind::BigInt(crate::time::now_millis()))
                .push(") ON CONFLICT (name) DO NOTHING");
            Ok(q.execute(tx.conn)? == 1)
        })
    }

    /// Enables or disables tenant `name` (its data stays); `false`: no such tenant.
    pub fn set_tenant_active(&self, name: &str, active: bool) -> StoreResult<bool> {
        self.db.write_unfenced(|tx| {
            let mut q = Sql::new("UPDATE tenants SET active = ");
            q.bind(Bind::Bool(active))
                .push(" WHERE name = ")
                .bind(Bind::Text(name.into()));
            Ok(q.execute(tx.conn)? == 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["acme", "st-mary-2", "a"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "", "Acme", "1st", "a_b", "a-", "x.y", "default", "metadata", "ws",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name(&"a".repeat(41)).is_err());
    }

    #[test]
    fn urls() {
        assert_eq!(
            database_url("sqlite://./data/fhir.db", "acme").unwrap(),
            "sqlite://./data/fhir.db.tenants/acme.db"
        );
        assert_eq!(
            database_url("postgres://u@h/db", "st-mary").unwrap(),
            "postgres://u@h/db?options=-csearch_path%3Dtenant_st_mary"
        );
        assert_eq!(
            database_url("postgres://u@h/db?sslmode=require", "a").unwrap(),
            "postgres://u@h/db?sslmode=require&options=-csearch_path%3Dtenant_a"
        );
        assert!(database_url("postgres://u@h/db", "../x").is_err());
    }
}
