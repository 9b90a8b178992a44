//! Join tokens. Only a token's sha256 is stored; callers still pass and get back the token.

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use sigil_spiffe::SpiffeId;

use super::{DbRow, SqlStore, col, is_unique_violation};
use crate::error::{Error, Result, redact};
use crate::model::JoinToken;
use crate::sql::parse_stored;
use crate::store::JoinTokenStore;

const WHAT: &str = "join token";

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn token_from_row(token: &str, row: &DbRow) -> Result<JoinToken> {
    let spiffe_id: Option<String> = col(row, "spiffe_id")?;
    Ok(JoinToken {
        token: token.to_owned(),
        spiffe_id: spiffe_id
            .map(|s| parse_stored("join token spiffe_id", &s, SpiffeId::parse))
            .transpose()?,
        expires_at: col(row, "expires_at")?,
    })
}

#[async_trait]
impl JoinTokenStore for SqlStore {
    async fn create_join_token(&self, token: JoinToken) -> Result<()> {
        if token.token.trim().is_empty() {
            return Err(Error::Invalid(
                "a join token cannot be empty; generate a random one (for example 32 hex \
                 characters)"
                    .to_owned(),
            ));
        }
        let inserted = sqlx::query(
            "INSERT INTO join_tokens (token_hash, spiffe_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(token_hash(&token.token))
        .bind(token.spiffe_id.as_ref().map(|id| id.as_str().to_owned()))
        .bind(token.expires_at)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(Error::AlreadyExists {
                what: WHAT,
                id: redact(&token.token),
            }),
            Err(e) => Err(self.err(e)),
        }
    }

    async fn get_join_token(&self, token: &str) -> Result<Option<JoinToken>> {
        let row =
            sqlx::query("SELECT spiffe_id, expires_at FROM join_tokens WHERE token_hash = $1")
                .bind(token_hash(token))
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| self.err(e))?;
        row.map(|r| token_from_row(token, &r)).transpose()
    }

    async fn consume_join_token(&self, token: &str, now: i64) -> Result<JoinToken> {
        // One statement: the row lock (PostgreSQL) or the write lock (SQLite) lets exactly one of
        // several concurrent consumers get the row back.
        let row = sqlx::query(
            "DELETE FROM join_tokens WHERE token_hash = $1 RETURNING spiffe_id, expires_at",
        )
        .bind(token_hash(token))
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        let Some(row) = row else {
            return Err(Error::NotFound {
                what: WHAT,
                id: redact(token),
            });
        };
        let found = token_from_row(token, &row)?;
        if now >= found.expires_at {
            return Err(Error::Expired {
                what: WHAT,
                id: redact(token),
                expired_at: found.expires_at,
            });
        }
        Ok(found)
    }

    async fn prune_join_tokens(&self, now: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM join_tokens WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(|e| self.err(e))?;
        Ok(done.rows_affected())
    }
}
