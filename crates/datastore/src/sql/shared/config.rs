//! Mesh configuration objects.

use async_trait::async_trait;
use sqlx::QueryBuilder;

use super::{Db, DbConn, DbRow, SqlStore, Tx, abandon, col};
use crate::config_model::{
    ApplyResult, ChangeOutcome, ConfigChange, ConfigKey, StoredConfig, check_changes, check_key,
};
use crate::error::Result;
use crate::sql::new_id;
use crate::store::ConfigStore;

const COLUMNS: &str = "kind, namespace, name, api_version, body, spec_hash, generation, uid, \
     created_at_ms, updated_at_ms, revision";

/// Creates an object or, when its API version, body or spec hash differ, rewrites them; the
/// generation grows with the spec hash. One statement, so it cannot lose an increment even
/// without the store_meta lock every write transaction holds. It returns the row when it wrote
/// one (an insert carries the uid proposed in `$7`) and nothing when the object was unchanged.
const UPSERT: &str = "INSERT INTO config_objects (kind, namespace, name, api_version, body, \
     spec_hash, generation, uid, created_at_ms, updated_at_ms, revision) \
     VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $8, $9) \
     ON CONFLICT (kind, namespace, name) DO UPDATE SET api_version = excluded.api_version, \
     body = excluded.body, spec_hash = excluded.spec_hash, \
     generation = config_objects.generation \
         + CASE WHEN config_objects.spec_hash = excluded.spec_hash THEN 0 ELSE 1 END, \
     updated_at_ms = excluded.updated_at_ms, revision = excluded.revision \
     WHERE config_objects.api_version <> excluded.api_version \
         OR config_objects.body <> excluded.body \
         OR config_objects.spec_hash <> excluded.spec_hash \
     RETURNING uid";

fn config_from_row(row: &DbRow) -> Result<StoredConfig> {
    Ok(StoredConfig {
        key: ConfigKey {
            kind: col(row, "kind")?,
            namespace: col(row, "namespace")?,
            name: col(row, "name")?,
        },
        api_version: col(row, "api_version")?,
        body: col(row, "body")?,
        spec_hash: col(row, "spec_hash")?,
        generation: col(row, "generation")?,
        uid: col(row, "uid")?,
        created_at_ms: col(row, "created_at_ms")?,
        updated_at_ms: col(row, "updated_at_ms")?,
        revision: col(row, "revision")?,
    })
}

/// Applies one change at `revision`.
async fn apply_one(
    conn: &mut DbConn,
    change: &ConfigChange,
    revision: i64,
    now_ms: i64,
) -> std::result::Result<ChangeOutcome, sqlx::Error> {
    match change {
        ConfigChange::Put {
            key,
            api_version,
            body,
            spec_hash,
        } => {
            let uid = new_id();
            let written: Option<String> = sqlx::query_scalar(UPSERT)
                .bind(&key.kind)
                .bind(&key.namespace)
                .bind(&key.name)
                .bind(api_version)
                .bind(body)
                .bind(spec_hash)
                .bind(&uid)
                .bind(now_ms)
                .bind(revision)
                .fetch_optional(&mut *conn)
                .await?;
            Ok(match written {
                None => ChangeOutcome::Unchanged,
                Some(stored) if stored == uid => ChangeOutcome::Created,
                Some(_) => ChangeOutcome::Configured,
            })
        }
        ConfigChange::Delete { key } => {
            let done = sqlx::query(
                "DELETE FROM config_objects WHERE kind = $1 AND namespace = $2 AND name = $3",
            )
            .bind(&key.kind)
            .bind(&key.namespace)
            .bind(&key.name)
            .execute(&mut *conn)
            .await?;
            Ok(if done.rows_affected() == 0 {
                ChangeOutcome::NotFound
            } else {
                ChangeOutcome::Deleted
            })
        }
    }
}

async fn read_config_revision(conn: &mut DbConn) -> std::result::Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT config_revision FROM store_meta WHERE id = 1")
        .fetch_one(&mut *conn)
        .await
}

impl SqlStore {
    /// Applies `changes` in `tx` (which took `revision`) and commits if anything changed; rolls
    /// back otherwise, so that the revision does not move.
    async fn apply_in(
        &self,
        mut tx: Tx,
        revision: i64,
        changes: Vec<ConfigChange>,
        now_ms: i64,
    ) -> Result<ApplyResult> {
        let mut outcomes = Vec::with_capacity(changes.len());
        for change in changes {
            match apply_one(&mut tx, &change, revision, now_ms).await {
                Ok(outcome) => outcomes.push((change.key().clone(), outcome)),
                Err(e) => return self.finish(tx, Err(self.err(e))).await,
            }
        }
        if !outcomes.iter().any(|(_, outcome)| outcome.changed()) {
            let current = read_config_revision(&mut tx).await.map_err(|e| self.err(e));
            abandon(tx).await;
            return Ok(ApplyResult {
                revision: current?,
                outcomes,
            });
        }
        let marked = sqlx::query("UPDATE store_meta SET config_revision = $1 WHERE id = 1")
            .bind(revision)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))
            .map(|_| ApplyResult { revision, outcomes });
        self.finish(tx, marked).await
    }
}

#[async_trait]
impl ConfigStore for SqlStore {
    async fn apply_config(&self, changes: Vec<ConfigChange>, now_ms: i64) -> Result<ApplyResult> {
        check_changes(&changes)?;
        if changes.is_empty() {
            return Ok(ApplyResult {
                revision: self.config_revision().await?,
                outcomes: Vec::new(),
            });
        }
        let (tx, revision) = self.begin().await?;
        self.apply_in(tx, revision, changes, now_ms).await
    }

    async fn get_config(&self, key: &ConfigKey) -> Result<Option<StoredConfig>> {
        check_key(key)?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM config_objects WHERE kind = $1 AND namespace = $2 AND name = $3"
        )))
        .bind(&key.kind)
        .bind(&key.namespace)
        .bind(&key.name)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        row.map(|r| config_from_row(&r)).transpose()
    }

    async fn list_config(
        &self,
        kind: Option<&str>,
        namespace: Option<&str>,
    ) -> Result<Vec<StoredConfig>> {
        let mut qb =
            QueryBuilder::<Db>::new(format!("SELECT {COLUMNS} FROM config_objects WHERE 1 = 1"));
        if let Some(kind) = kind {
            qb.push(" AND kind = ").push_bind(kind.to_owned());
        }
        if let Some(namespace) = namespace {
            qb.push(" AND namespace = ").push_bind(namespace.to_owned());
        }
        qb.push(" ORDER BY kind, namespace, name");
        let rows = qb
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        rows.iter().map(config_from_row).collect()
    }

    async fn config_revision(&self) -> Result<i64> {
        let mut conn = self.conn().await?;
        read_config_revision(&mut conn)
            .await
            .map_err(|e| self.err(e))
    }

    async fn config_snapshot(&self) -> Result<(i64, Vec<StoredConfig>)> {
        let mut tx = self.begin_snapshot().await?;
        let read: Result<(i64, Vec<StoredConfig>)> = async {
            let revision = read_config_revision(&mut tx)
                .await
                .map_err(|e| self.err(e))?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM config_objects ORDER BY kind, namespace, name"
            )))
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
            let objects = rows.iter().map(config_from_row).collect::<Result<_>>()?;
            Ok((revision, objects))
        }
        .await;
        // Read only: nothing to keep, so end it the cheap way whatever happened.
        abandon(tx).await;
        read
    }
}
