//! Revoked certificates, and the issued-log queries that find what to revoke.

use async_trait::async_trait;
use sigil_spiffe::SpiffeId;

use super::{DbRow, SqlStore, Tx, abandon, col};
use crate::error::{Error, Result};
use crate::model::{Revocation, normalize_serial};
use crate::sql::parse_stored;
use crate::store::RevocationStore;

const COLUMNS: &str =
    "serial_hex, spiffe_id, reason, revoked_at, not_after, issued_by, entry_id, agent_id";

fn revocation_from_row(row: &DbRow) -> Result<Revocation> {
    let spiffe_id: String = col(row, "spiffe_id")?;
    let agent_id: Option<String> = col(row, "agent_id")?;
    Ok(Revocation {
        serial_hex: col(row, "serial_hex")?,
        spiffe_id: parse_stored("revocation spiffe_id", &spiffe_id, SpiffeId::parse)?,
        reason: col(row, "reason")?,
        revoked_at: col(row, "revoked_at")?,
        not_after: col(row, "not_after")?,
        issued_by: col(row, "issued_by")?,
        entry_id: col(row, "entry_id")?,
        agent_id: agent_id
            .map(|s| parse_stored("revocation agent_id", &s, SpiffeId::parse))
            .transpose()?,
    })
}

/// Checks and normalizes every record before anything is written.
fn checked(revocations: Vec<Revocation>) -> Result<Vec<Revocation>> {
    let mut out = Vec::with_capacity(revocations.len());
    for mut r in revocations {
        r.serial_hex = normalize_serial(&r.serial_hex)?;
        if r.reason.trim().is_empty() {
            return Err(Error::Invalid(format!(
                "revocation of {} has no reason; give one such as \"unspecified\"",
                r.serial_hex
            )));
        }
        if r.issued_by.trim().is_empty() {
            return Err(Error::Invalid(format!(
                "revocation of {} has no issuer; give the signing server's id",
                r.serial_hex
            )));
        }
        out.push(r);
    }
    Ok(out)
}

impl SqlStore {
    /// Inserts the records that are new; returns them.
    async fn insert_revocations(
        tx: &mut Tx,
        revocations: Vec<Revocation>,
    ) -> std::result::Result<Vec<Revocation>, sqlx::Error> {
        let mut new = Vec::new();
        for r in revocations {
            let done = sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO revocations ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (serial_hex) DO NOTHING"
            )))
            .bind(&r.serial_hex)
            .bind(r.spiffe_id.as_str())
            .bind(&r.reason)
            .bind(r.revoked_at)
            .bind(r.not_after)
            .bind(&r.issued_by)
            .bind(&r.entry_id)
            .bind(r.agent_id.as_ref().map(|id| id.as_str().to_owned()))
            .execute(&mut **tx)
            .await?;
            if done.rows_affected() == 1 {
                new.push(r);
            }
        }
        Ok(new)
    }

    /// Moves the configuration revision to `revision` (taken by `begin`).
    async fn mark_config_revision(
        tx: &mut Tx,
        revision: i64,
    ) -> std::result::Result<(), sqlx::Error> {
        sqlx::query("UPDATE store_meta SET config_revision = $1 WHERE id = 1")
            .bind(revision)
            .execute(&mut **tx)
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl RevocationStore for SqlStore {
    async fn revoke(&self, revocations: Vec<Revocation>) -> Result<Vec<Revocation>> {
        let revocations = checked(revocations)?;
        if revocations.is_empty() {
            return Ok(Vec::new());
        }
        let (mut tx, revision) = self.begin().await?;
        let new = match Self::insert_revocations(&mut tx, revocations).await {
            Ok(new) => new,
            Err(e) => return self.finish(tx, Err(self.err(e))).await,
        };
        if new.is_empty() {
            // Nothing changed: the revision must not move.
            abandon(tx).await;
            return Ok(new);
        }
        let marked = Self::mark_config_revision(&mut tx, revision)
            .await
            .map_err(|e| self.err(e))
            .map(|()| new);
        self.finish(tx, marked).await
    }

    async fn list_revocations(&self) -> Result<Vec<Revocation>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM revocations ORDER BY revoked_at, serial_hex"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        rows.iter().map(revocation_from_row).collect()
    }

    async fn prune_revocations(&self, before: i64) -> Result<u64> {
        let (mut tx, revision) = self.begin().await?;
        let deleted = match sqlx::query("DELETE FROM revocations WHERE not_after < $1")
            .bind(before)
            .execute(&mut *tx)
            .await
        {
            Ok(d) => d.rows_affected(),
            Err(e) => return self.finish(tx, Err(self.err(e))).await,
        };
        if deleted == 0 {
            abandon(tx).await;
            return Ok(0);
        }
        let marked = Self::mark_config_revision(&mut tx, revision)
            .await
            .map_err(|e| self.err(e))
            .map(|()| deleted);
        self.finish(tx, marked).await
    }
}
