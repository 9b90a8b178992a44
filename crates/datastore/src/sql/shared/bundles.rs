//! Trust bundles and CA journals.

use async_trait::async_trait;
use sigil_spiffe::TrustDomain;

use super::{DbRow, SqlStore, Tx, abandon, col};
use crate::error::{Error, Result};
use crate::model::StoredBundle;
use crate::sql::{parse_stored, to_i64, to_u64};
use crate::store::{BundleStore, CaJournalStore};

const WHAT: &str = "bundle";

fn bundle_from_row(row: &DbRow) -> Result<StoredBundle> {
    let td: String = col(row, "trust_domain")?;
    Ok(StoredBundle {
        trust_domain: parse_stored("bundle trust_domain", &td, TrustDomain::new)?,
        data: col(row, "data")?,
        sequence: to_u64("bundle sequence", col(row, "sequence")?)?,
        updated_at: col(row, "updated_at")?,
    })
}

fn check_data(td: &TrustDomain, data: &[u8]) -> Result<()> {
    if data.is_empty() {
        return Err(Error::Invalid(format!(
            "the bundle for {td} is empty; give the SPIFFE bundle JSON"
        )));
    }
    Ok(())
}

impl SqlStore {
    /// Ends a bundle write whose statement returned the new sequence, or nothing because the
    /// stored sequence was not the expected one (or there is no bundle): then says which.
    async fn finish_bundle_write(
        &self,
        mut tx: Tx,
        td: &TrustDomain,
        data: Vec<u8>,
        now: i64,
        written: Result<Option<i64>>,
        expected: u64,
    ) -> Result<StoredBundle> {
        let sequence = match written {
            Ok(Some(sequence)) => sequence,
            Ok(None) => {
                let current: Result<Option<i64>> =
                    sqlx::query_scalar("SELECT sequence FROM bundles WHERE trust_domain = $1")
                        .bind(td.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(|e| self.err(e));
                abandon(tx).await;
                return Err(match current? {
                    Some(actual) => Error::Conflict {
                        what: WHAT,
                        id: td.to_string(),
                        expected,
                        actual: to_u64("bundle sequence", actual)?,
                    },
                    None => Error::NotFound {
                        what: WHAT,
                        id: td.to_string(),
                    },
                });
            }
            Err(e) => return self.finish(tx, Err(e)).await,
        };
        let stored = to_u64("bundle sequence", sequence).map(|sequence| StoredBundle {
            trust_domain: td.clone(),
            data,
            sequence,
            updated_at: now,
        });
        self.finish(tx, stored).await
    }
}

#[async_trait]
impl BundleStore for SqlStore {
    async fn set_bundle(&self, td: &TrustDomain, data: Vec<u8>) -> Result<StoredBundle> {
        check_data(td, &data)?;
        let now = self.now();
        let (mut tx, _) = self.begin().await?;
        let sequence: Result<i64> = sqlx::query_scalar(
            "INSERT INTO bundles (trust_domain, data, sequence, updated_at) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (trust_domain) DO UPDATE SET data = excluded.data, \
             sequence = bundles.sequence + 1, updated_at = excluded.updated_at RETURNING sequence",
        )
        .bind(td.as_str())
        .bind(&data)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| self.err(e));
        self.finish_bundle_write(tx, td, data, now, sequence.map(Some), 0)
            .await
    }

    async fn update_bundle(
        &self,
        td: &TrustDomain,
        data: Vec<u8>,
        expected_sequence: u64,
    ) -> Result<StoredBundle> {
        check_data(td, &data)?;
        let expected = to_i64("expected sequence", expected_sequence)?;
        let now = self.now();
        let (mut tx, _) = self.begin().await?;
        let written: Result<Option<i64>> = if expected == 0 {
            sqlx::query_scalar(
                "INSERT INTO bundles (trust_domain, data, sequence, updated_at) \
                 VALUES ($1, $2, 1, $3) ON CONFLICT (trust_domain) DO NOTHING RETURNING sequence",
            )
            .bind(td.as_str())
            .bind(&data)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
        } else {
            sqlx::query_scalar(
                "UPDATE bundles SET data = $1, sequence = sequence + 1, updated_at = $2 \
                 WHERE trust_domain = $3 AND sequence = $4 RETURNING sequence",
            )
            .bind(&data)
            .bind(now)
            .bind(td.as_str())
            .bind(expected)
            .fetch_optional(&mut *tx)
            .await
        }
        .map_err(|e| self.err(e));
        self.finish_bundle_write(tx, td, data, now, written, expected_sequence)
            .await
    }

    async fn get_bundle(&self, td: &TrustDomain) -> Result<Option<StoredBundle>> {
        let row = sqlx::query(
            "SELECT trust_domain, data, sequence, updated_at FROM bundles WHERE trust_domain = $1",
        )
        .bind(td.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        row.map(|r| bundle_from_row(&r)).transpose()
    }

    async fn list_bundles(&self) -> Result<Vec<StoredBundle>> {
        let rows = sqlx::query(
            "SELECT trust_domain, data, sequence, updated_at FROM bundles ORDER BY trust_domain",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        rows.iter().map(bundle_from_row).collect()
    }

    async fn delete_bundle(&self, td: &TrustDomain) -> Result<StoredBundle> {
        let (mut tx, _) = self.begin().await?;
        let row = sqlx::query(
            "DELETE FROM bundles WHERE trust_domain = $1 \
             RETURNING trust_domain, data, sequence, updated_at",
        )
        .bind(td.as_str())
        .fetch_optional(&mut *tx)
        .await;
        let result = match row {
            Ok(Some(row)) => bundle_from_row(&row),
            Ok(None) => Err(Error::NotFound {
                what: WHAT,
                id: td.to_string(),
            }),
            Err(e) => Err(self.err(e)),
        };
        self.finish(tx, result).await
    }
}

#[async_trait]
impl CaJournalStore for SqlStore {
    async fn get_ca_journal(&self, server_id: &str) -> Result<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT data FROM ca_journals WHERE server_id = $1")
            .bind(server_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.err(e))
    }

    async fn set_ca_journal(&self, server_id: &str, data: Vec<u8>) -> Result<()> {
        if server_id.trim().is_empty() {
            return Err(Error::Invalid(
                "a CA journal needs a server id; give the server's configured id".to_owned(),
            ));
        }
        sqlx::query(
            "INSERT INTO ca_journals (server_id, data, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (server_id) DO UPDATE SET data = excluded.data, \
             updated_at = excluded.updated_at",
        )
        .bind(server_id)
        .bind(&data)
        .bind(self.now())
        .execute(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }
}
