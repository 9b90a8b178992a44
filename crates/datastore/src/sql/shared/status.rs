//! The proxies' status reports (see [`ProxyStatusStore`]).

use async_trait::async_trait;

use super::{SqlStore, begin_write, col};
use crate::error::{Error, Result};
use crate::store::{ProxyStatusRecord, ProxyStatusStore};

/// The most records one put may hold (the server's own bound is lower).
const MAX_RECORDS: usize = 4096;

#[async_trait]
impl ProxyStatusStore for SqlStore {
    async fn put_proxy_status(
        &self,
        agent_id: &str,
        records: Vec<(String, Vec<u8>)>,
        now: i64,
    ) -> Result<()> {
        if agent_id.trim().is_empty() {
            return Err(Error::Invalid(
                "proxy status needs the reporting agent's id".to_owned(),
            ));
        }
        if records.len() > MAX_RECORDS {
            return Err(Error::Invalid(format!(
                "{} proxy status records for one agent; at most {MAX_RECORDS}",
                records.len()
            )));
        }
        let mut tx = begin_write(&self.pool).await.map_err(|e| self.err(e))?;
        let result = async {
            sqlx::query("DELETE FROM proxy_status WHERE agent_id = $1")
                .bind(agent_id)
                .execute(&mut *tx)
                .await?;
            for (proxy_id, data) in &records {
                sqlx::query(
                    "INSERT INTO proxy_status (agent_id, proxy_id, data, updated_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (agent_id, proxy_id) DO UPDATE SET \
                     data = excluded.data, updated_at = excluded.updated_at",
                )
                .bind(agent_id)
                .bind(proxy_id)
                .bind(data)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            Ok::<(), sqlx::Error>(())
        }
        .await
        .map_err(|e| self.err(e));
        self.finish(tx, result).await
    }

    async fn list_proxy_status(
        &self,
        agent_id: Option<&str>,
        since: i64,
    ) -> Result<Vec<ProxyStatusRecord>> {
        let rows = sqlx::query(
            "SELECT agent_id, proxy_id, data, updated_at FROM proxy_status \
             WHERE ($1 IS NULL OR agent_id = $1) AND updated_at >= $2 \
             ORDER BY agent_id, proxy_id",
        )
        .bind(agent_id)
        .bind(since)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| {
                Ok(ProxyStatusRecord {
                    agent_id: col(r, "agent_id")?,
                    proxy_id: col(r, "proxy_id")?,
                    data: col(r, "data")?,
                    updated_at: col(r, "updated_at")?,
                })
            })
            .collect()
    }

    async fn prune_proxy_status(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM proxy_status WHERE updated_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(done.rows_affected())
    }
}
