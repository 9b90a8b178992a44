//! Where the Workload API gets JWT-SVIDs: the agent's manager mints them through the server
//! (which holds the JWT signing keys) and caches them until half their life has passed.

use crate::cache::CachedSvid;

/// Why a JWT-SVID could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JwtError {
    /// The request was wrong (no audience, bad SPIFFE ID...): InvalidArgument.
    #[error("{0}")]
    Invalid(String),
    /// The server could not be reached or refused: Unavailable.
    #[error("{0}")]
    Unavailable(String),
}

/// Mints JWT-SVIDs for cached entries.
#[tonic::async_trait]
pub trait JwtSource: Send + Sync + 'static {
    /// A JWT-SVID (JWS compact) for `svid`'s SPIFFE ID with these audiences (non-empty), fresh
    /// or cached while more than half of its life remains.
    async fn jwt_svid(&self, svid: &CachedSvid, audience: &[String]) -> Result<String, JwtError>;
}

/// A cached token: (token, issued at, expires at), keyed by (entry ID, sorted audiences).
type TokenCache = std::collections::HashMap<(String, Vec<String>), (String, i64, i64)>;

/// The agent's [`JwtSource`]: asks the server (node API `NewJWTSVID`) and caches each token
/// per (entry, audience set) until half of its life has passed.
pub struct ServerJwtSource {
    pub manager: std::sync::Arc<crate::manager::Manager>,
    cache: tokio::sync::Mutex<TokenCache>,
}

impl ServerJwtSource {
    pub fn new(manager: std::sync::Arc<crate::manager::Manager>) -> Self {
        ServerJwtSource {
            manager,
            cache: Default::default(),
        }
    }
}

#[tonic::async_trait]
impl JwtSource for ServerJwtSource {
    async fn jwt_svid(&self, svid: &CachedSvid, audience: &[String]) -> Result<String, JwtError> {
        if audience.is_empty() || audience.iter().any(|a| a.is_empty()) {
            return Err(JwtError::Invalid("audience must be specified".into()));
        }
        let mut aud = audience.to_vec();
        aud.sort();
        aud.dedup();
        let key = (svid.entry_id.clone(), aud.clone());
        let now = crate::manager::now_unix();
        if let Some((tok, iat, exp)) = self.cache.lock().await.get(&key)
            && !crate::plan::past_half_life(*iat, *exp, now)
        {
            return Ok(tok.clone());
        }
        let mut client = self.manager.node_client().await.map_err(|e| {
            JwtError::Unavailable(format!(
                "cannot reach the Sigil server to mint a JWT-SVID: {e:#}"
            ))
        })?;
        let req = sigil_proto::node::NewJwtsvidRequest {
            entry_id: svid.entry_id.clone(),
            audience: aud,
        };
        let resp = client.new_jwtsvid(req).await.map_err(|s| match s.code() {
            tonic::Code::InvalidArgument => JwtError::Invalid(s.message().to_owned()),
            _ => JwtError::Unavailable(format!(
                "the Sigil server did not mint a JWT-SVID: {}",
                s.message()
            )),
        })?;
        let r = resp.into_inner();
        let mut cache = self.cache.lock().await;
        cache.retain(|_, (_, _, exp)| *exp > now);
        cache.insert(key, (r.token.clone(), now, r.expires_at));
        Ok(r.token)
    }
}
