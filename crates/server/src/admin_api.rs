//! The admin API on the local socket: entries, join tokens, agents, the bundle, health.

use std::sync::Arc;

use sigil_datastore::{
    EntrySpec, JoinToken, ListAgentsFilter, ListEntriesFilter, Pagination, Selector, SelectorMatch,
};
use sigil_proto::admin::admin_server::Admin;
use sigil_proto::admin::{self as api};
use sigil_proto::node as pb;
use sigil_spiffe::{SpiffeId, TrustDomain};
use tonic::{Request, Response, Status};
use tracing::info;

use crate::convert::{ds_status, entry_to_pb, selector_to_pb};
use crate::state::{Shared, now_unix};

#[derive(Clone)]
pub struct AdminApi {
    pub shared: Arc<Shared>,
}

fn invalid(field: &str, value: &str, why: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field} {value:?}: {why}"))
}

impl AdminApi {
    fn parse_id_in_td(&self, field: &str, s: &str) -> Result<SpiffeId, Status> {
        let id = SpiffeId::parse(s).map_err(|e| invalid(field, s, e))?;
        let td = &self.shared.cfg.trust_domain;
        if id.trust_domain() != td {
            return Err(invalid(
                field,
                s,
                format!("not in this server's trust domain {td}; use spiffe://{td}/..."),
            ));
        }
        Ok(id)
    }

    /// Checks an entry from the API the way SPIRE does and turns it into a datastore spec.
    fn entry_spec(&self, e: &pb::Entry) -> Result<EntrySpec, Status> {
        let spiffe_id = self.parse_id_in_td("spiffe_id", &e.spiffe_id)?;
        if spiffe_id.is_root() {
            return Err(invalid(
                "spiffe_id",
                &e.spiffe_id,
                "a workload ID needs a path",
            ));
        }
        if spiffe_id.path().starts_with("/spire/") {
            return Err(invalid(
                "spiffe_id",
                &e.spiffe_id,
                "paths under /spire/ are reserved for agents and servers",
            ));
        }
        let parent_id = self.parse_id_in_td("parent_id", &e.parent_id)?;
        if e.selectors.is_empty() {
            return Err(Status::invalid_argument(
                "an entry needs at least one selector (type:value)",
            ));
        }
        let selectors = e
            .selectors
            .iter()
            .map(|s| {
                Selector::new(s.r#type.clone(), s.value.clone())
                    .map_err(|err| invalid("selector", &format!("{}:{}", s.r#type, s.value), err))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ttl = |field: &str, v: i32| {
            u32::try_from(v).map_err(|_| {
                invalid(
                    field,
                    &v.to_string(),
                    "must be 0 (server default) or a positive number of seconds",
                )
            })
        };
        let x509_svid_ttl = ttl("x509_svid_ttl", e.x509_svid_ttl)?;
        let jwt_svid_ttl = ttl("jwt_svid_ttl", e.jwt_svid_ttl)?;
        let mut federates_with = Vec::new();
        for f in &e.federates_with {
            let td = TrustDomain::new(f).map_err(|err| invalid("federates_with", f, err))?;
            if td == self.shared.cfg.trust_domain {
                return Err(invalid(
                    "federates_with",
                    f,
                    "is this server's own trust domain",
                ));
            }
            federates_with.push(td);
        }
        for d in &e.dns_names {
            check_dns_name(d).map_err(|why| invalid("dns", d, why))?;
        }
        if e.expires_at < 0 {
            return Err(invalid(
                "entry_expiry",
                &e.expires_at.to_string(),
                "must be unix seconds",
            ));
        }
        let mut spec = EntrySpec::new(spiffe_id, parent_id, selectors);
        spec.x509_svid_ttl = x509_svid_ttl;
        spec.jwt_svid_ttl = jwt_svid_ttl;
        spec.dns_names = e.dns_names.clone();
        spec.federates_with = federates_with;
        spec.admin = e.admin;
        spec.downstream = e.downstream;
        spec.expires_at = (e.expires_at != 0).then_some(e.expires_at);
        spec.hint = e.hint.clone();
        spec.store_svid = e.store_svid;
        Ok(spec)
    }
}

/// A DNS name as it may appear in a certificate SAN (a leading `*.` wildcard allowed).
pub fn check_dns_name(d: &str) -> Result<(), String> {
    let name = d.strip_prefix("*.").unwrap_or(d);
    if name.is_empty() || d.len() > 253 {
        return Err("must be 1 to 253 characters".into());
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("labels must be 1 to 63 characters (no empty labels)".into());
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(format!(
                "label {label:?} may hold only letters, digits and inner hyphens"
            ));
        }
    }
    Ok(())
}

fn agent_to_pb(a: &sigil_datastore::AttestedAgent) -> api::Agent {
    api::Agent {
        spiffe_id: a.spiffe_id.to_string(),
        attestation_type: a.attestation_type.clone(),
        cert_serial: a.cert_serial.clone(),
        cert_expires_at: a.cert_not_after,
        selectors: a.selectors.iter().map(selector_to_pb).collect(),
        banned: a.banned,
        can_reattest: a.can_reattest,
        created_at: a.created_at,
        updated_at: a.updated_at,
    }
}

fn agent_id(s: &str) -> Result<SpiffeId, Status> {
    SpiffeId::parse(s).map_err(|e| invalid("spiffe_id", s, e))
}

#[tonic::async_trait]
impl Admin for AdminApi {
    async fn create_entry(
        &self,
        req: Request<api::CreateEntryRequest>,
    ) -> Result<Response<pb::Entry>, Status> {
        let e = req
            .into_inner()
            .entry
            .ok_or_else(|| Status::invalid_argument("entry is missing"))?;
        if !e.id.is_empty() {
            return Err(invalid(
                "entry_id",
                &e.id,
                "entry IDs are assigned by the server; leave it out",
            ));
        }
        let spec = self.entry_spec(&e)?;
        let created = self.shared.ds.create_entry(spec).await.map_err(ds_status)?;
        info!(entry = %created.id, spiffe_id = %created.spiffe_id, parent_id = %created.parent_id, "entry created");
        self.shared.refresh_counts().await;
        Ok(Response::new(entry_to_pb(&created)))
    }

    async fn get_entry(
        &self,
        req: Request<api::GetEntryRequest>,
    ) -> Result<Response<pb::Entry>, Status> {
        let id = req.into_inner().id;
        match self.shared.ds.get_entry(&id).await.map_err(ds_status)? {
            Some(e) => Ok(Response::new(entry_to_pb(&e))),
            None => Err(Status::not_found(format!(
                "entry {id:?} not found; `sigil entry show` lists them"
            ))),
        }
    }

    async fn list_entries(
        &self,
        req: Request<api::ListEntriesRequest>,
    ) -> Result<Response<api::ListEntriesResponse>, Status> {
        let r = req.into_inner();
        let mut f = ListEntriesFilter::default();
        if !r.by_spiffe_id.is_empty() {
            f.by_spiffe_id = Some(
                SpiffeId::parse(&r.by_spiffe_id)
                    .map_err(|e| invalid("by_spiffe_id", &r.by_spiffe_id, e))?,
            );
        }
        if !r.by_parent_id.is_empty() {
            f.by_parent_id = Some(
                SpiffeId::parse(&r.by_parent_id)
                    .map_err(|e| invalid("by_parent_id", &r.by_parent_id, e))?,
            );
        }
        if !r.by_selectors.is_empty() {
            let m: SelectorMatch = if r.selector_match.is_empty() {
                "superset"
            } else {
                r.selector_match.as_str()
            }
            .parse()
            .map_err(ds_status)?;
            let sels = r
                .by_selectors
                .iter()
                .map(|s| Selector::new(s.r#type.clone(), s.value.clone()).map_err(ds_status))
                .collect::<Result<Vec<_>, _>>()?;
            f.by_selectors = Some((sels, m));
        }
        if !r.by_federates_with.is_empty() {
            let td = TrustDomain::new(&r.by_federates_with)
                .map_err(|e| invalid("by_federates_with", &r.by_federates_with, e))?;
            f.by_federates_with = Some((vec![td], SelectorMatch::Superset));
        }
        if !r.by_hint.is_empty() {
            f.by_hint = Some(r.by_hint);
        }
        let page = Pagination {
            page_size: u32::try_from(r.page_size).unwrap_or(0),
            page_token: (!r.page_token.is_empty()).then_some(r.page_token),
        };
        let p = self
            .shared
            .ds
            .list_entries(&f, &page)
            .await
            .map_err(ds_status)?;
        Ok(Response::new(api::ListEntriesResponse {
            entries: p.items.iter().map(entry_to_pb).collect(),
            next_page_token: p.next_page_token.unwrap_or_default(),
        }))
    }

    async fn update_entry(
        &self,
        req: Request<api::UpdateEntryRequest>,
    ) -> Result<Response<pb::Entry>, Status> {
        let e = req
            .into_inner()
            .entry
            .ok_or_else(|| Status::invalid_argument("entry is missing"))?;
        if e.id.is_empty() {
            return Err(Status::invalid_argument(
                "entry_id is required to update an entry",
            ));
        }
        let spec = self.entry_spec(&e)?;
        let updated = self
            .shared
            .ds
            .update_entry(&e.id, spec)
            .await
            .map_err(ds_status)?;
        info!(entry = %updated.id, spiffe_id = %updated.spiffe_id, "entry updated");
        Ok(Response::new(entry_to_pb(&updated)))
    }

    async fn delete_entry(
        &self,
        req: Request<api::DeleteEntryRequest>,
    ) -> Result<Response<api::DeleteEntryResponse>, Status> {
        let id = req.into_inner().id;
        let deleted = self.shared.ds.delete_entry(&id).await.map_err(ds_status)?;
        info!(entry = %deleted.id, spiffe_id = %deleted.spiffe_id, "entry deleted");
        self.shared.refresh_counts().await;
        Ok(Response::new(api::DeleteEntryResponse {}))
    }

    async fn generate_join_token(
        &self,
        req: Request<api::GenerateJoinTokenRequest>,
    ) -> Result<Response<api::GenerateJoinTokenResponse>, Status> {
        let r = req.into_inner();
        let ttl = match r.ttl {
            0 => crate::config::DEFAULT_JOIN_TOKEN_TTL.as_secs() as i64,
            t if t > 0 => i64::from(t),
            t => {
                return Err(invalid(
                    "ttl",
                    &t.to_string(),
                    "must be a positive number of seconds",
                ));
            }
        };
        let spiffe_id = if r.spiffe_id.is_empty() {
            None
        } else {
            Some(self.parse_id_in_td("spiffe_id", &r.spiffe_id)?)
        };
        // A random (version 4) UUID, like SPIRE's tokens.
        let mut b: [u8; 16] = rand::random();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = hex::encode(b);
        let token = format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        );
        let expires_at = now_unix() + ttl;
        self.shared
            .ds
            .create_join_token(JoinToken {
                token: token.clone(),
                spiffe_id,
                expires_at,
            })
            .await
            .map_err(ds_status)?;
        info!(expires_at, "join token generated");
        Ok(Response::new(api::GenerateJoinTokenResponse {
            token,
            expires_at,
        }))
    }

    async fn list_agents(
        &self,
        req: Request<api::ListAgentsRequest>,
    ) -> Result<Response<api::ListAgentsResponse>, Status> {
        let r = req.into_inner();
        let filter = ListAgentsFilter {
            by_banned: match r.by_banned.as_str() {
                "" => None,
                "true" => Some(true),
                "false" => Some(false),
                b => return Err(invalid("by_banned", b, "use true or false")),
            },
            by_attestation_type: (!r.by_attestation_type.is_empty())
                .then_some(r.by_attestation_type),
            ..Default::default()
        };
        let p = self
            .shared
            .ds
            .list_agents(&filter, &Pagination::all())
            .await
            .map_err(ds_status)?;
        Ok(Response::new(api::ListAgentsResponse {
            agents: p.items.iter().map(agent_to_pb).collect(),
        }))
    }

    async fn get_agent(
        &self,
        req: Request<api::GetAgentRequest>,
    ) -> Result<Response<api::Agent>, Status> {
        let id = agent_id(&req.into_inner().spiffe_id)?;
        match self.shared.ds.get_agent(&id).await.map_err(ds_status)? {
            Some(a) => Ok(Response::new(agent_to_pb(&a))),
            None => Err(Status::not_found(format!(
                "agent {id} not found; `sigil agent list` shows attested agents"
            ))),
        }
    }

    async fn evict_agent(
        &self,
        req: Request<api::GetAgentRequest>,
    ) -> Result<Response<api::Agent>, Status> {
        let id = agent_id(&req.into_inner().spiffe_id)?;
        let a = self.shared.ds.delete_agent(&id).await.map_err(ds_status)?;
        info!(agent = %id, "agent evicted");
        self.shared.refresh_counts().await;
        Ok(Response::new(agent_to_pb(&a)))
    }

    async fn ban_agent(
        &self,
        req: Request<api::GetAgentRequest>,
    ) -> Result<Response<api::Agent>, Status> {
        let id = agent_id(&req.into_inner().spiffe_id)?;
        let a = self
            .shared
            .ds
            .set_agent_banned(&id, true)
            .await
            .map_err(ds_status)?;
        info!(agent = %id, "agent banned");
        Ok(Response::new(agent_to_pb(&a)))
    }

    async fn get_bundle(
        &self,
        req: Request<api::GetBundleRequest>,
    ) -> Result<Response<api::GetBundleResponse>, Status> {
        let r = req.into_inner();
        let td = if r.trust_domain.is_empty() {
            self.shared.cfg.trust_domain.clone()
        } else {
            TrustDomain::new(&r.trust_domain)
                .map_err(|e| invalid("trust_domain", &r.trust_domain, e))?
        };
        let stored = self
            .shared
            .ds
            .get_bundle(&td)
            .await
            .map_err(ds_status)?
            .ok_or_else(|| Status::not_found(format!("no bundle for trust domain {td}")))?;
        let bundle = sigil_spiffe::Bundle::from_spiffe_json(td.clone(), &stored.data)
            .map_err(|e| Status::internal(format!("stored bundle of {td} is unreadable: {e}")))?;
        Ok(Response::new(api::GetBundleResponse {
            trust_domain: td.to_string(),
            spiffe_json: stored.data,
            x509_authorities: bundle
                .x509_authorities()
                .iter()
                .map(|c| c.to_vec())
                .collect(),
            sequence_number: stored.sequence,
        }))
    }

    async fn apply_config(
        &self,
        req: Request<api::ApplyConfigRequest>,
    ) -> Result<Response<api::ApplyConfigResponse>, Status> {
        crate::mesh::admin::apply(&self.shared, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_config(
        &self,
        req: Request<api::GetConfigRequest>,
    ) -> Result<Response<api::GetConfigResponse>, Status> {
        crate::mesh::admin::get(&self.shared, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn delete_config(
        &self,
        req: Request<api::DeleteConfigRequest>,
    ) -> Result<Response<api::ApplyConfigResponse>, Status> {
        crate::mesh::admin::delete(&self.shared, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_proxies(
        &self,
        req: Request<api::ListProxiesRequest>,
    ) -> Result<Response<api::ListProxiesResponse>, Status> {
        let window = req.into_inner().window_seconds;
        if !(0..=crate::proxies::HISTORY_SECONDS).contains(&window) {
            return Err(Status::invalid_argument(format!(
                "window {window}s: use 0 (since each proxy started) up to {}s",
                crate::proxies::HISTORY_SECONDS
            )));
        }
        let now = now_unix();
        let s = &self.shared;
        let stored =
            s.ds.list_proxy_status(None, now - crate::proxies::FORGET_AFTER)
                .await
                .map_err(ds_status)?;
        Ok(Response::new(api::ListProxiesResponse {
            proxies: s.proxies.list(window, now, &stored),
            config_revision: s.config.current().revision,
            now,
        }))
    }

    async fn mint_x509svid(
        &self,
        req: Request<api::MintX509svidRequest>,
    ) -> Result<Response<api::MintX509svidResponse>, Status> {
        let who = crate::admin_mint::caller(&req);
        crate::admin_mint::mint(&self.shared, &who, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn revoke_x509(
        &self,
        req: Request<api::RevokeX509Request>,
    ) -> Result<Response<api::RevokeX509Response>, Status> {
        let who = crate::admin_mint::caller(&req);
        crate::revoke::revoke(&self.shared, &who, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_revocations(
        &self,
        _req: Request<api::ListRevocationsRequest>,
    ) -> Result<Response<api::ListRevocationsResponse>, Status> {
        crate::revoke::list(&self.shared).await.map(Response::new)
    }

    async fn health(
        &self,
        _req: Request<api::HealthRequest>,
    ) -> Result<Response<api::HealthResponse>, Status> {
        let s = &self.shared;
        let (ready, detail) = match s.ds.revision().await {
            Ok(_) => match s.ca.active_not_after() {
                Some(t) if t > now_unix() => (true, "ok".to_owned()),
                _ => (
                    false,
                    "the CA has no active, unexpired signing key".to_owned(),
                ),
            },
            Err(e) => (false, format!("datastore: {e}")),
        };
        Ok(Response::new(api::HealthResponse {
            live: true,
            ready,
            detail,
            trust_domain: s.cfg.trust_domain.to_string(),
            server_id: s.server_id.clone(),
        }))
    }

    async fn describe_certificate(
        &self,
        req: Request<api::CertificateRef>,
    ) -> Result<Response<api::DescribeCertificateResponse>, Status> {
        crate::certs::describe(&self.shared, req.into_inner())
            .await
            .map(Response::new)
    }

    async fn renew_certificate(
        &self,
        req: Request<api::CertificateRef>,
    ) -> Result<Response<api::DescribeCertificateResponse>, Status> {
        crate::certs::renew(&self.shared, req.into_inner())
            .await
            .map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::check_dns_name;

    #[test]
    fn dns_names() {
        for ok in ["billing.payments.svc", "*.example.org", "a-b.c"] {
            assert!(check_dns_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a..b", "-a.b", "a_b.c", "*.", "a b"] {
            assert!(check_dns_name(bad).is_err(), "{bad}");
        }
    }
}
