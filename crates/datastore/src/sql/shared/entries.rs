//! Registration entries.

use async_trait::async_trait;
use sigil_spiffe::{SpiffeId, TrustDomain};
use sqlx::QueryBuilder;

use super::{
    Db, DbConn, DbRow, SqlStore, abandon, col, push_set_match, selector_members, set_size,
};
use crate::error::{Error, Result};
use crate::model::{EntrySpec, ListEntriesFilter, Page, Pagination, RegistrationEntry};
use crate::selector::Selector;
use crate::sql::{
    CheckedEntry, check_entry, filter_selectors, filter_trust_domains, from_json, new_id,
    page_after, parse_stored, to_json, to_u32, to_u64,
};
use crate::store::EntryStore;

const WHAT: &str = "registration entry";

/// The columns of an entry, prefixed by `e.`.
const COLUMNS: &str = "e.seq, e.id, e.spiffe_id, e.parent_id, e.selectors, e.x509_svid_ttl, \
     e.jwt_svid_ttl, e.dns_names, e.federates_with, e.admin, e.downstream, e.expires_at, e.hint, \
     e.store_svid, e.revision_number, e.created_at";

fn entry_from_row(row: &DbRow) -> Result<(i64, RegistrationEntry)> {
    let spiffe_id: String = col(row, "spiffe_id")?;
    let parent_id: String = col(row, "parent_id")?;
    let selectors: String = col(row, "selectors")?;
    let dns_names: String = col(row, "dns_names")?;
    let federates_with: String = col(row, "federates_with")?;
    let entry = RegistrationEntry {
        id: col(row, "id")?,
        spiffe_id: parse_stored("spiffe_id", &spiffe_id, SpiffeId::parse)?,
        parent_id: parse_stored("parent_id", &parent_id, SpiffeId::parse)?,
        selectors: from_json::<Vec<Selector>>("selectors", &selectors)?,
        x509_svid_ttl: to_u32("x509_svid_ttl", col(row, "x509_svid_ttl")?)?,
        jwt_svid_ttl: to_u32("jwt_svid_ttl", col(row, "jwt_svid_ttl")?)?,
        dns_names: from_json("dns_names", &dns_names)?,
        federates_with: from_json::<Vec<TrustDomain>>("federates_with", &federates_with)?,
        admin: col(row, "admin")?,
        downstream: col(row, "downstream")?,
        expires_at: col(row, "expires_at")?,
        hint: col(row, "hint")?,
        store_svid: col(row, "store_svid")?,
        revision_number: col(row, "revision_number")?,
        created_at: col(row, "created_at")?,
    };
    Ok((col(row, "seq")?, entry))
}

/// Inserts the selector and federation rows of entry `seq`.
async fn insert_children(
    conn: &mut DbConn,
    seq: i64,
    spec: &EntrySpec,
) -> std::result::Result<(), sqlx::Error> {
    let mut qb = QueryBuilder::<Db>::new(
        "INSERT INTO entry_selectors (entry_seq, sel_type, sel_value, set_size) ",
    );
    let size = set_size(spec.selectors.len());
    qb.push_values(&spec.selectors, |mut b, s| {
        b.push_bind(seq)
            .push_bind(s.r#type.clone())
            .push_bind(s.value.clone())
            .push_bind(size);
    });
    qb.build().execute(&mut *conn).await?;
    if !spec.federates_with.is_empty() {
        let mut qb = QueryBuilder::<Db>::new(
            "INSERT INTO entry_federates_with (entry_seq, trust_domain, set_size) ",
        );
        let size = set_size(spec.federates_with.len());
        qb.push_values(&spec.federates_with, |mut b, td| {
            b.push_bind(seq)
                .push_bind(td.as_str().to_owned())
                .push_bind(size);
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// The id of the entry with this uniqueness key, if any.
async fn existing_with_key(
    conn: &mut DbConn,
    unique_key: &str,
) -> std::result::Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM entries WHERE unique_key = $1")
        .bind(unique_key)
        .fetch_optional(&mut *conn)
        .await
}

/// Writes a new entry. `$1`–`$14` are the same columns as in [`UPDATE_ENTRY`], so one list of
/// binds serves both; `$15` is the id and `$16` the creation time.
const INSERT_ENTRY: &str = "INSERT INTO entries (unique_key, spiffe_id, parent_id, selectors, \
     x509_svid_ttl, jwt_svid_ttl, dns_names, federates_with, admin, downstream, expires_at, hint, \
     store_svid, revision_number, id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
     $10, $11, $12, $13, $14, $15, $16) RETURNING seq, created_at";

/// Rewrites entry `$15`; `$1`–`$14` as in [`INSERT_ENTRY`].
const UPDATE_ENTRY: &str = "UPDATE entries SET unique_key = $1, spiffe_id = $2, parent_id = $3, \
     selectors = $4, x509_svid_ttl = $5, jwt_svid_ttl = $6, dns_names = $7, federates_with = $8, \
     admin = $9, downstream = $10, expires_at = $11, hint = $12, store_svid = $13, \
     revision_number = $14 WHERE id = $15 RETURNING seq, created_at";

impl SqlStore {
    /// Creates an entry (`id` is `None`) or rewrites entry `id`, with its selector and
    /// federation rows, in one write transaction.
    async fn write_entry(&self, id: Option<&str>, spec: EntrySpec) -> Result<RegistrationEntry> {
        let CheckedEntry { spec, unique_key } = check_entry(spec)?;
        let selectors = to_json(&spec.selectors)?;
        let dns_names = to_json(&spec.dns_names)?;
        let federates_with = to_json(&spec.federates_with)?;
        let now = self.now();
        let (mut tx, revision) = self.begin().await?;
        let result: Result<RegistrationEntry> = async {
            let existing = existing_with_key(&mut tx, &unique_key)
                .await
                .map_err(|e| self.err(e))?;
            if let Some(existing) = existing.filter(|e| Some(e.as_str()) != id) {
                return Err(Error::AlreadyExists {
                    what: WHAT,
                    id: existing,
                });
            }
            let entry_id = id.map_or_else(new_id, str::to_owned);
            let mut query = sqlx::query_as::<_, (i64, i64)>(match id {
                None => INSERT_ENTRY,
                Some(_) => UPDATE_ENTRY,
            })
            .bind(&unique_key)
            .bind(spec.spiffe_id.as_str())
            .bind(spec.parent_id.as_str())
            .bind(&selectors)
            .bind(i64::from(spec.x509_svid_ttl))
            .bind(i64::from(spec.jwt_svid_ttl))
            .bind(&dns_names)
            .bind(&federates_with)
            .bind(spec.admin)
            .bind(spec.downstream)
            .bind(spec.expires_at)
            .bind(&spec.hint)
            .bind(spec.store_svid)
            .bind(revision)
            .bind(&entry_id);
            if id.is_none() {
                query = query.bind(now);
            }
            let written = query
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.err(e))?;
            let Some((seq, created_at)) = written else {
                return Err(Error::NotFound {
                    what: WHAT,
                    id: entry_id,
                });
            };
            if id.is_some() {
                for table in ["entry_selectors", "entry_federates_with"] {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DELETE FROM {table} WHERE entry_seq = $1"
                    )))
                    .bind(seq)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(e))?;
                }
            }
            insert_children(&mut tx, seq, &spec)
                .await
                .map_err(|e| self.err(e))?;
            Ok(RegistrationEntry::from_spec(
                entry_id, spec, revision, created_at,
            ))
        }
        .await;
        self.finish(tx, result).await
    }
}

#[async_trait]
impl EntryStore for SqlStore {
    async fn create_entry(&self, spec: EntrySpec) -> Result<RegistrationEntry> {
        self.write_entry(None, spec).await
    }

    async fn get_entry(&self, id: &str) -> Result<Option<RegistrationEntry>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM entries e WHERE e.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        row.map(|r| entry_from_row(&r).map(|(_, e)| e)).transpose()
    }

    async fn update_entry(&self, id: &str, spec: EntrySpec) -> Result<RegistrationEntry> {
        self.write_entry(Some(id), spec).await
    }

    async fn delete_entry(&self, id: &str) -> Result<RegistrationEntry> {
        let (mut tx, _) = self.begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM entries WHERE id = $1 RETURNING {}",
            COLUMNS.replace("e.", "")
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await;
        let result = match row {
            Ok(Some(row)) => entry_from_row(&row).map(|(_, entry)| entry),
            Ok(None) => Err(Error::NotFound {
                what: WHAT,
                id: id.to_owned(),
            }),
            Err(e) => Err(self.err(e)),
        };
        self.finish(tx, result).await
    }

    async fn list_entries(
        &self,
        filter: &ListEntriesFilter,
        page: &Pagination,
    ) -> Result<Page<RegistrationEntry>> {
        let after = page_after(page.page_token.as_deref())?;
        let mut qb = QueryBuilder::<Db>::new(format!("SELECT {COLUMNS} FROM entries e"));
        if let Some((selectors, how)) = &filter.by_selectors {
            let members = selector_members(filter_selectors("entries", selectors)?);
            push_set_match(
                &mut qb,
                "entry_selectors",
                "entry_seq",
                "e.seq",
                members,
                *how,
            );
        }
        if let Some((tds, how)) = &filter.by_federates_with {
            let members = filter_trust_domains(tds)?
                .into_iter()
                .map(|td| vec![("trust_domain", td.as_str().to_owned())])
                .collect();
            let table = "entry_federates_with";
            push_set_match(&mut qb, table, "entry_seq", "e.seq", members, *how);
        }
        qb.push(" WHERE e.seq > ").push_bind(after);
        if let Some(id) = &filter.by_spiffe_id {
            qb.push(" AND e.spiffe_id = ")
                .push_bind(id.as_str().to_owned());
        }
        if let Some(id) = &filter.by_parent_id {
            qb.push(" AND e.parent_id = ")
                .push_bind(id.as_str().to_owned());
        }
        if let Some(hint) = &filter.by_hint {
            qb.push(" AND e.hint = ").push_bind(hint.clone());
        }
        if let Some(downstream) = filter.by_downstream {
            qb.push(" AND e.downstream = ").push_bind(downstream);
        }
        qb.push(" ORDER BY e.seq");
        if page.page_size > 0 {
            qb.push(" LIMIT ").push_bind(i64::from(page.page_size) + 1);
        }
        let rows = qb
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        let mut items = Vec::with_capacity(rows.len());
        let mut last_seq = 0;
        let mut more = false;
        for row in &rows {
            if page.page_size > 0 && items.len() == page.page_size as usize {
                more = true;
                break;
            }
            let (seq, entry) = entry_from_row(row)?;
            last_seq = seq;
            items.push(entry);
        }
        Ok(Page {
            items,
            next_page_token: more.then(|| last_seq.to_string()),
        })
    }

    async fn count_entries(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM entries")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        to_u64("entry count", n)
    }

    async fn prune_entries(&self, expires_before: i64) -> Result<u64> {
        let (mut tx, _) = self.begin().await?;
        let done =
            sqlx::query("DELETE FROM entries WHERE expires_at IS NOT NULL AND expires_at < $1")
                .bind(expires_before)
                .execute(&mut *tx)
                .await;
        match done.map(|d| d.rows_affected()) {
            // Nothing deleted: roll back, so that the revision does not move.
            Ok(0) => {
                abandon(tx).await;
                Ok(0)
            }
            done => self.finish(tx, done.map_err(|e| self.err(e))).await,
        }
    }
}
