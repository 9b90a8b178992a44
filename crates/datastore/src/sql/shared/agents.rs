//! Attested agents and node selectors.

use async_trait::async_trait;
use sigil_spiffe::SpiffeId;
use sqlx::QueryBuilder;

use super::{Db, DbConn, DbRow, SqlStore, col, push_set_match, selector_members, set_size};
use crate::error::{Error, Result};
use crate::model::{
    AgentSerials, AttestedAgent, ListAgentsFilter, NewAgent, Page, Pagination, normalize_serial,
};
use crate::selector::{Selector, normalize_selectors};
use crate::sql::{filter_selectors, page_after, parse_stored};
use crate::store::AgentStore;

const WHAT: &str = "agent";

const COLUMNS: &str = "a.seq, a.spiffe_id, a.attestation_type, a.cert_serial, a.cert_not_after, \
     a.new_cert_serial, a.new_cert_not_after, a.banned, a.can_reattest, a.created_at, a.updated_at";

fn not_found(id: &SpiffeId) -> Error {
    Error::NotFound {
        what: WHAT,
        id: id.to_string(),
    }
}

/// An agent row without its selectors, and its `seq`.
fn agent_from_row(row: &DbRow) -> Result<(i64, AttestedAgent)> {
    let spiffe_id: String = col(row, "spiffe_id")?;
    let agent = AttestedAgent {
        spiffe_id: parse_stored("agent spiffe_id", &spiffe_id, SpiffeId::parse)?,
        attestation_type: col(row, "attestation_type")?,
        cert_serial: col(row, "cert_serial")?,
        cert_not_after: col(row, "cert_not_after")?,
        new_cert_serial: col(row, "new_cert_serial")?,
        new_cert_not_after: col(row, "new_cert_not_after")?,
        selectors: Vec::new(),
        banned: col(row, "banned")?,
        can_reattest: col(row, "can_reattest")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    };
    Ok((col(row, "seq")?, agent))
}

async fn load_selectors(
    conn: &mut DbConn,
    id: &SpiffeId,
) -> std::result::Result<Vec<Selector>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT sel_type, sel_value FROM node_selectors WHERE spiffe_id = $1 \
         ORDER BY sel_type, sel_value",
    )
    .bind(id.as_str())
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(r#type, value)| Selector { r#type, value })
        .collect())
}

async fn replace_selectors(
    conn: &mut DbConn,
    id: &SpiffeId,
    selectors: &[Selector],
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM node_selectors WHERE spiffe_id = $1")
        .bind(id.as_str())
        .execute(&mut *conn)
        .await?;
    if selectors.is_empty() {
        return Ok(());
    }
    let mut qb = QueryBuilder::<Db>::new(
        "INSERT INTO node_selectors (spiffe_id, sel_type, sel_value, set_size) ",
    );
    let size = set_size(selectors.len());
    qb.push_values(selectors, |mut b, s| {
        b.push_bind(id.as_str().to_owned())
            .push_bind(s.r#type.clone())
            .push_bind(s.value.clone())
            .push_bind(size);
    });
    qb.build().execute(&mut *conn).await?;
    Ok(())
}

impl SqlStore {
    async fn fetch_agent(&self, conn: &mut DbConn, id: &SpiffeId) -> Result<Option<AttestedAgent>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM agents a WHERE a.spiffe_id = $1"
        )))
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| self.err(e))?;
        let Some(row) = row else { return Ok(None) };
        let (_, mut agent) = agent_from_row(&row)?;
        agent.selectors = load_selectors(conn, id).await.map_err(|e| self.err(e))?;
        Ok(Some(agent))
    }

    /// Runs one `UPDATE agents SET … WHERE spiffe_id = <last bind>` built by `build`, and returns
    /// the updated agent; all in one write transaction.
    async fn update_agent(
        &self,
        id: &SpiffeId,
        build: impl FnOnce(&mut QueryBuilder<Db>),
    ) -> Result<AttestedAgent> {
        let mut qb = QueryBuilder::<Db>::new("UPDATE agents SET updated_at = ");
        qb.push_bind(self.now());
        build(&mut qb);
        qb.push(" WHERE spiffe_id = ")
            .push_bind(id.as_str().to_owned());
        let (mut tx, _) = self.begin().await?;
        let result = async {
            let done = qb
                .build()
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
            if done.rows_affected() == 0 {
                return Err(not_found(id));
            }
            self.fetch_agent(&mut tx, id)
                .await?
                .ok_or_else(|| not_found(id))
        }
        .await;
        self.finish(tx, result).await
    }
}

fn checked_serials(serials: AgentSerials) -> Result<AgentSerials> {
    Ok(AgentSerials {
        cert_serial: normalize_serial(&serials.cert_serial)?,
        cert_not_after: serials.cert_not_after,
        new_cert_serial: serials
            .new_cert_serial
            .as_deref()
            .map(normalize_serial)
            .transpose()?,
        new_cert_not_after: serials.new_cert_not_after,
    })
}

#[async_trait]
impl AgentStore for SqlStore {
    async fn create_agent(&self, agent: NewAgent) -> Result<AttestedAgent> {
        if agent.attestation_type.trim().is_empty() {
            return Err(Error::Invalid(format!(
                "agent {} has no attestation type; give the attestor's name (join_token, x509pop)",
                agent.spiffe_id
            )));
        }
        let cert_serial = normalize_serial(&agent.cert_serial)?;
        let selectors = normalize_selectors(agent.selectors)?;
        let now = self.now();
        let (mut tx, _) = self.begin().await?;
        let result = async {
            let taken: Option<i64> =
                sqlx::query_scalar("SELECT seq FROM agents WHERE spiffe_id = $1")
                    .bind(agent.spiffe_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| self.err(e))?;
            if taken.is_some() {
                return Err(Error::AlreadyExists {
                    what: WHAT,
                    id: agent.spiffe_id.to_string(),
                });
            }
            sqlx::query(
                "INSERT INTO agents (spiffe_id, attestation_type, cert_serial, cert_not_after, \
                 new_cert_serial, new_cert_not_after, banned, can_reattest, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, NULL, NULL, $5, $6, $7, $7)",
            )
            .bind(agent.spiffe_id.as_str())
            .bind(&agent.attestation_type)
            .bind(&cert_serial)
            .bind(agent.cert_not_after)
            .bind(false)
            .bind(agent.can_reattest)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
            replace_selectors(&mut tx, &agent.spiffe_id, &selectors)
                .await
                .map_err(|e| self.err(e))?;
            Ok(())
        }
        .await;
        self.finish(tx, result).await?;
        Ok(AttestedAgent {
            spiffe_id: agent.spiffe_id,
            attestation_type: agent.attestation_type,
            cert_serial,
            cert_not_after: agent.cert_not_after,
            new_cert_serial: None,
            new_cert_not_after: None,
            selectors,
            banned: false,
            can_reattest: agent.can_reattest,
            created_at: now,
            updated_at: now,
        })
    }

    async fn get_agent(&self, id: &SpiffeId) -> Result<Option<AttestedAgent>> {
        let mut conn = self.conn().await?;
        self.fetch_agent(&mut conn, id).await
    }

    async fn list_agents(
        &self,
        filter: &ListAgentsFilter,
        page: &Pagination,
    ) -> Result<Page<AttestedAgent>> {
        let after = page_after(page.page_token.as_deref())?;
        // The page of agents is chosen in a subquery, then joined with its selectors.
        let mut qb = QueryBuilder::<Db>::new(format!(
            "SELECT p.*, ns.sel_type, ns.sel_value FROM (SELECT {COLUMNS} FROM agents a"
        ));
        if let Some((selectors, how)) = &filter.by_selector_match {
            let members = selector_members(filter_selectors("agents", selectors)?);
            push_set_match(
                &mut qb,
                "node_selectors",
                "spiffe_id",
                "a.spiffe_id",
                members,
                *how,
            );
        }
        qb.push(" WHERE a.seq > ").push_bind(after);
        if let Some(banned) = filter.by_banned {
            qb.push(" AND a.banned = ").push_bind(banned);
        }
        if let Some(t) = &filter.by_attestation_type {
            qb.push(" AND a.attestation_type = ").push_bind(t.clone());
        }
        if let Some(r) = filter.by_can_reattest {
            qb.push(" AND a.can_reattest = ").push_bind(r);
        }
        if let Some(before) = filter.by_expires_before {
            qb.push(" AND a.cert_not_after < ").push_bind(before);
        }
        qb.push(" ORDER BY a.seq");
        if page.page_size > 0 {
            qb.push(" LIMIT ").push_bind(i64::from(page.page_size) + 1);
        }
        qb.push(
            ") p LEFT JOIN node_selectors ns ON ns.spiffe_id = p.spiffe_id \
             ORDER BY p.seq, ns.sel_type, ns.sel_value",
        );
        let rows = qb
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;

        let mut items: Vec<AttestedAgent> = Vec::new();
        let mut last_seq = 0;
        let mut more = false;
        for row in &rows {
            let seq: i64 = col(row, "seq")?;
            if seq != last_seq {
                if page.page_size > 0 && items.len() == page.page_size as usize {
                    more = true;
                    break;
                }
                items.push(agent_from_row(row)?.1);
                last_seq = seq;
            }
            let sel_type: Option<String> = col(row, "sel_type")?;
            let sel_value: Option<String> = col(row, "sel_value")?;
            if let (Some(r#type), Some(value), Some(agent)) =
                (sel_type, sel_value, items.last_mut())
            {
                agent.selectors.push(Selector { r#type, value });
            }
        }
        Ok(Page {
            items,
            next_page_token: more.then(|| last_seq.to_string()),
        })
    }

    async fn update_agent_serials(
        &self,
        id: &SpiffeId,
        serials: AgentSerials,
    ) -> Result<AttestedAgent> {
        let s = checked_serials(serials)?;
        self.update_agent(id, |qb| {
            qb.push(", cert_serial = ").push_bind(s.cert_serial);
            qb.push(", cert_not_after = ").push_bind(s.cert_not_after);
            qb.push(", new_cert_serial = ").push_bind(s.new_cert_serial);
            qb.push(", new_cert_not_after = ")
                .push_bind(s.new_cert_not_after);
        })
        .await
    }

    async fn set_agent_banned(&self, id: &SpiffeId, banned: bool) -> Result<AttestedAgent> {
        self.update_agent(id, |qb| {
            qb.push(", banned = ").push_bind(banned);
        })
        .await
    }

    async fn delete_agent(&self, id: &SpiffeId) -> Result<AttestedAgent> {
        let (mut tx, _) = self.begin().await?;
        let result = async {
            let agent = self
                .fetch_agent(&mut tx, id)
                .await?
                .ok_or_else(|| not_found(id))?;
            for sql in [
                "DELETE FROM agents WHERE spiffe_id = $1",
                "DELETE FROM node_selectors WHERE spiffe_id = $1",
            ] {
                sqlx::query(sql)
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e))?;
            }
            Ok(agent)
        }
        .await;
        self.finish(tx, result).await
    }

    async fn set_node_selectors(&self, id: &SpiffeId, selectors: Vec<Selector>) -> Result<()> {
        let selectors = normalize_selectors(selectors)?;
        let (mut tx, _) = self.begin().await?;
        let result = replace_selectors(&mut tx, id, &selectors)
            .await
            .map_err(|e| self.err(e));
        self.finish(tx, result).await
    }

    async fn get_node_selectors(&self, id: &SpiffeId) -> Result<Vec<Selector>> {
        let mut conn = self.conn().await?;
        load_selectors(&mut conn, id).await.map_err(|e| self.err(e))
    }
}
