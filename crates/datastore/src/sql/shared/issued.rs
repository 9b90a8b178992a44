//! The issued-certificates log.

use async_trait::async_trait;
use sigil_spiffe::SpiffeId;

use super::{DbRow, SqlStore, col, is_unique_violation};
use crate::error::{Error, Result};
use crate::model::{IssuedCert, IssuedFilter, IssuedKind, normalize_serial};
use crate::sql::{parse_stored, to_u64};
use crate::store::IssuedCertStore;

fn issued_from_row(row: &DbRow) -> Result<IssuedCert> {
    let spiffe_id: String = col(row, "spiffe_id")?;
    let kind: String = col(row, "kind")?;
    let agent_id: Option<String> = col(row, "agent_id")?;
    Ok(IssuedCert {
        serial_hex: col(row, "serial_hex")?,
        spiffe_id: parse_stored("issued spiffe_id", &spiffe_id, SpiffeId::parse)?,
        kind: parse_stored("issued kind", &kind, str::parse::<IssuedKind>)?,
        issued_by: col(row, "issued_by")?,
        agent_id: agent_id
            .map(|s| parse_stored("issued agent_id", &s, SpiffeId::parse))
            .transpose()?,
        entry_id: col(row, "entry_id")?,
        not_after: col(row, "not_after")?,
        issued_at: col(row, "issued_at")?,
    })
}

#[async_trait]
impl IssuedCertStore for SqlStore {
    async fn record_issued(&self, cert: IssuedCert) -> Result<()> {
        let serial = normalize_serial(&cert.serial_hex)?;
        if cert.issued_by.trim().is_empty() {
            return Err(Error::Invalid(format!(
                "issued certificate {serial} has no issuer; give the signing server's id"
            )));
        }
        let inserted = sqlx::query(
            "INSERT INTO issued_certs (serial_hex, spiffe_id, kind, issued_by, agent_id, \
             entry_id, not_after, issued_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&serial)
        .bind(cert.spiffe_id.as_str())
        .bind(cert.kind.as_str())
        .bind(&cert.issued_by)
        .bind(cert.agent_id.as_ref().map(|id| id.as_str().to_owned()))
        .bind(&cert.entry_id)
        .bind(cert.not_after)
        .bind(cert.issued_at)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(Error::AlreadyExists {
                what: "issued certificate",
                id: serial,
            }),
            Err(e) => Err(self.err(e)),
        }
    }

    async fn get_issued(&self, serial_hex: &str) -> Result<Option<IssuedCert>> {
        let serial = normalize_serial(serial_hex)?;
        let row = sqlx::query(
            "SELECT serial_hex, spiffe_id, kind, issued_by, agent_id, entry_id, not_after, \
             issued_at FROM issued_certs WHERE serial_hex = $1",
        )
        .bind(&serial)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        row.map(|r| issued_from_row(&r)).transpose()
    }

    async fn count_issued(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM issued_certs")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        to_u64("issued count", n)
    }

    async fn list_issued(
        &self,
        filter: &IssuedFilter,
        not_after_from: i64,
    ) -> Result<Vec<IssuedCert>> {
        let base = "SELECT serial_hex, spiffe_id, kind, issued_by, agent_id, entry_id, not_after, \
                    issued_at FROM issued_certs WHERE not_after >= $1 AND ";
        let order = " ORDER BY issued_at, serial_hex";
        let (condition, id) = match filter {
            IssuedFilter::Entry(id) => ("entry_id = $2", id.clone()),
            IssuedFilter::Agent(id) => (
                "(agent_id = $2 OR (kind = 'agent-svid' AND spiffe_id = $2))",
                id.as_str().to_owned(),
            ),
        };
        let query = sqlx::query(sqlx::AssertSqlSafe(format!("{base}{condition}{order}")))
            .bind(not_after_from)
            .bind(id);
        let rows = query.fetch_all(&self.pool).await.map_err(|e| self.err(e))?;
        rows.iter().map(issued_from_row).collect()
    }

    async fn prune_issued(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM issued_certs WHERE not_after < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(done.rows_affected())
    }
}
