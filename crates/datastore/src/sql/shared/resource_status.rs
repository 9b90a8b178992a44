//! Status of cert-manager resources (see [`ResourceStatusStore`]).

use async_trait::async_trait;

use super::{DbRow, SqlStore, col};
use crate::config_model::{ConfigKey, check_body, check_key};
use crate::error::{Error, Result};
use crate::store::{ResourceStatusStore, StoredStatus};

fn row_to_status(r: &DbRow) -> Result<StoredStatus> {
    Ok(StoredStatus {
        key: ConfigKey {
            kind: col(r, "kind")?,
            namespace: col(r, "namespace")?,
            name: col(r, "name")?,
        },
        body: col(r, "body")?,
        version: col(r, "version")?,
        lease_owner: col(r, "lease_owner")?,
        lease_until_ms: col(r, "lease_until_ms")?,
        updated_at_ms: col(r, "updated_at_ms")?,
    })
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[async_trait]
impl ResourceStatusStore for SqlStore {
    async fn get_status(&self, key: &ConfigKey) -> Result<Option<StoredStatus>> {
        check_key(key)?;
        let row = sqlx::query(
            "SELECT kind, namespace, name, body, version, lease_owner, lease_until_ms, \
             updated_at_ms FROM resource_status WHERE kind = $1 AND namespace = $2 AND name = $3",
        )
        .bind(&key.kind)
        .bind(&key.namespace)
        .bind(&key.name)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        row.as_ref().map(row_to_status).transpose()
    }

    async fn list_status(&self, kind: &str, namespace: Option<&str>) -> Result<Vec<StoredStatus>> {
        let rows = sqlx::query(
            "SELECT kind, namespace, name, body, version, lease_owner, lease_until_ms, \
             updated_at_ms FROM resource_status WHERE kind = $1 \
             AND ($2 IS NULL OR namespace = $2) ORDER BY namespace, name",
        )
        .bind(kind)
        .bind(namespace)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        rows.iter().map(row_to_status).collect()
    }

    async fn put_status(
        &self,
        key: &ConfigKey,
        body: String,
        expected_version: i64,
        now_ms: i64,
    ) -> Result<i64> {
        check_key(key)?;
        check_body(key, &body)?;
        // One statement each, so the version check and the write are atomic on both backends
        // (PostgreSQL re-evaluates the WHERE clause on the locked row).
        let done = if expected_version == 0 {
            sqlx::query(
                "INSERT INTO resource_status (kind, namespace, name, body, version, updated_at_ms) \
                 VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (kind, namespace, name) DO UPDATE \
                 SET body = excluded.body, version = 1, updated_at_ms = excluded.updated_at_ms \
                 WHERE resource_status.version = 0",
            )
            .bind(&key.kind)
            .bind(&key.namespace)
            .bind(&key.name)
            .bind(&body)
            .bind(now_ms)
            .execute(&self.pool)
            .await
        } else {
            sqlx::query(
                "UPDATE resource_status SET body = $4, version = version + 1, updated_at_ms = $5 \
                 WHERE kind = $1 AND namespace = $2 AND name = $3 AND version = $6",
            )
            .bind(&key.kind)
            .bind(&key.namespace)
            .bind(&key.name)
            .bind(&body)
            .bind(now_ms)
            .bind(expected_version)
            .execute(&self.pool)
            .await
        }
        .map_err(|e| self.err(e))?;
        if done.rows_affected() == 1 {
            return Ok(expected_version + 1);
        }
        let actual = self.get_status(key).await?.map_or(0, |s| s.version);
        Err(Error::Conflict {
            what: "resource status",
            id: key.to_string(),
            expected: to_u64(expected_version),
            actual: to_u64(actual),
        })
    }

    async fn acquire_status_lease(
        &self,
        key: &ConfigKey,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool> {
        check_key(key)?;
        if owner.trim().is_empty() {
            return Err(Error::Invalid(format!(
                "lease on {key}: the owner (a server id) is empty"
            )));
        }
        // One statement: create the row holding the lease, or take over a free, expired or own
        // lease. A row whose lease someone else holds is left alone (no row changes).
        let done = sqlx::query(
            "INSERT INTO resource_status \
             (kind, namespace, name, body, version, lease_owner, lease_until_ms, updated_at_ms) \
             VALUES ($1, $2, $3, '{}', 0, $4, $5, $6) ON CONFLICT (kind, namespace, name) DO UPDATE \
             SET lease_owner = excluded.lease_owner, lease_until_ms = excluded.lease_until_ms \
             WHERE resource_status.lease_owner = '' OR resource_status.lease_owner = $4 \
             OR resource_status.lease_until_ms <= $6",
        )
        .bind(&key.kind)
        .bind(&key.namespace)
        .bind(&key.name)
        .bind(owner)
        .bind(until_ms)
        .bind(now_ms)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_status_lease(&self, key: &ConfigKey, owner: &str) -> Result<()> {
        check_key(key)?;
        sqlx::query(
            "UPDATE resource_status SET lease_owner = '', lease_until_ms = 0 \
             WHERE kind = $1 AND namespace = $2 AND name = $3 AND lease_owner = $4",
        )
        .bind(&key.kind)
        .bind(&key.namespace)
        .bind(&key.name)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn delete_status(&self, key: &ConfigKey) -> Result<bool> {
        check_key(key)?;
        let done = sqlx::query(
            "DELETE FROM resource_status WHERE kind = $1 AND namespace = $2 AND name = $3",
        )
        .bind(&key.kind)
        .bind(&key.namespace)
        .bind(&key.name)
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(done.rows_affected() > 0)
    }
}
