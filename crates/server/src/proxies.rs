//! The proxies the agents report: each agent sends the full set of its live proxies every few
//! seconds (state of the world), the server keeps the latest report of each proxy and a short
//! history of its inbound counters so that `sigil strict-readiness` can ask "what did this
//! port see in the last hour" rather than "since the proxy started".
//!
//! The replica an agent talks to holds that agent's proxies in memory and writes them (report
//! and history) to the datastore every [`PERSIST_EVERY`] seconds or when the set changes, so
//! every replica answers `sigil proxy status` alike and a replica that takes over an agent
//! continues its history.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use prost::Message as _;
use sigil_datastore::ProxyStatusRecord;
use sigil_proto::admin::ProxyRecord;
use sigil_proto::status::{CounterSample, PortCounters, PortTraffic, ProxyReport, TrackedProxy};

/// Samples older than this are dropped (the longest window `strict-readiness` can ask for).
pub const HISTORY_SECONDS: i64 = 24 * 3600;
/// Sample spacing: one a minute for the last hour, one every ten minutes before (about 200
/// samples a day per proxy).
const FINE_EVERY: i64 = 60;
const COARSE_EVERY: i64 = 600;
const FINE_FOR: i64 = 3600;
/// An agent that has not reported for this long is forgotten with its proxies.
pub const FORGET_AFTER: i64 = 600;
/// How often an agent's proxies are written to the datastore when nothing else changed.
pub const PERSIST_EVERY: i64 = 15;
/// Bounds on what one agent may make the server hold.
pub const MAX_PROXIES_PER_AGENT: usize = 1024;
pub const MAX_PORTS: usize = 64;
pub const MAX_SOURCES: usize = 64;
pub const MAX_LABELS: usize = 64;

/// An agent's proxies as written to the datastore: (proxy id, encoded [`TrackedProxy`]).
pub type StoredSet = Vec<(String, Vec<u8>)>;

/// One point of a proxy's inbound counters: (port, mtls, plaintext, refused).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sample {
    at: i64,
    ports: Vec<(u32, u64, u64, u64)>,
}

impl Sample {
    fn of(r: &ProxyReport, at: i64) -> Self {
        Sample {
            at,
            ports: r
                .inbound
                .iter()
                .map(|p| (p.port, p.mtls, p.plaintext, p.plaintext_refused))
                .collect(),
        }
    }
}

#[derive(Debug, Clone)]
struct Tracked {
    report: ProxyReport,
    history: VecDeque<Sample>,
}

impl Tracked {
    fn encode(&self, received_at: i64) -> Vec<u8> {
        TrackedProxy {
            report: Some(self.report.clone()),
            history: self
                .history
                .iter()
                .map(|s| CounterSample {
                    at: s.at,
                    ports: s
                        .ports
                        .iter()
                        .map(|&(port, mtls, plaintext, refused)| PortCounters {
                            port,
                            mtls,
                            plaintext,
                            refused,
                        })
                        .collect(),
                })
                .collect(),
            received_at,
        }
        .encode_to_vec()
    }

    /// `None` for bytes that are not a stored proxy (written by an incompatible build).
    fn decode(data: &[u8]) -> Option<(Tracked, i64)> {
        let t = TrackedProxy::decode(data).ok()?;
        let history = t
            .history
            .into_iter()
            .map(|s| Sample {
                at: s.at,
                ports: s
                    .ports
                    .into_iter()
                    .map(|p| (p.port, p.mtls, p.plaintext, p.refused))
                    .collect(),
            })
            .collect();
        Some((
            Tracked {
                report: t.report?,
                history,
            },
            t.received_at,
        ))
    }
}

#[derive(Debug, Default)]
struct AgentSet {
    received_at: i64,
    proxies: Vec<Tracked>,
    /// When this replica last wrote the set, and which proxy ids it wrote.
    persisted_at: i64,
    persisted_ids: Vec<String>,
}

/// Every reported proxy, by agent.
#[derive(Debug, Default)]
pub struct ProxyRegistry {
    agents: Mutex<HashMap<String, AgentSet>>,
}

/// Why a report was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReportError {
    #[error("{0} proxies reported; an agent may report at most {MAX_PROXIES_PER_AGENT}")]
    TooMany(usize),
    #[error("proxy {proxy_id:?}: {what}")]
    Invalid { proxy_id: String, what: String },
}

/// Trims a report to the bounds the server keeps, or refuses it when it is not usable.
fn sanitize(mut r: ProxyReport) -> Result<ProxyReport, ReportError> {
    let bad = |what: &str| ReportError::Invalid {
        proxy_id: r.proxy_id.chars().take(128).collect(),
        what: what.to_owned(),
    };
    if r.proxy_id.is_empty() || r.proxy_id.len() > 256 {
        return Err(bad("proxy_id must be 1 to 256 bytes"));
    }
    if r.inbound.len() > MAX_PORTS {
        return Err(bad("more than 64 inbound ports"));
    }
    if r.labels.len() > MAX_LABELS {
        return Err(bad("more than 64 labels"));
    }
    for p in &mut r.inbound {
        p.plaintext_sources.truncate(MAX_SOURCES);
    }
    Ok(r)
}

impl ProxyRegistry {
    /// Whether this replica holds `agent`'s proxies (else [`seed`](Self::seed) them from the
    /// datastore first, to continue their history).
    pub fn knows(&self, agent: &str) -> bool {
        let agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        agents.contains_key(agent)
    }

    /// Loads `agent`'s proxies as another replica stored them.
    pub fn seed(&self, agent: &str, stored: &[ProxyStatusRecord]) {
        let decoded: Vec<(Tracked, i64)> = stored
            .iter()
            .filter(|r| r.agent_id == agent)
            .filter_map(|r| Tracked::decode(&r.data))
            .collect();
        let mut agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        let set = agents.entry(agent.to_owned()).or_default();
        set.received_at = decoded.iter().map(|d| d.1).max().unwrap_or(0);
        set.persisted_ids = decoded
            .iter()
            .map(|d| d.0.report.proxy_id.clone())
            .collect();
        set.proxies = decoded.into_iter().map(|d| d.0).collect();
    }

    /// Replaces what `agent` reported before with `reports`, keeping the counter history of
    /// the proxies that are still there. Returns the records to write to the datastore when
    /// they are due (the set changed, or [`PERSIST_EVERY`] passed).
    pub fn replace(
        &self,
        agent: &str,
        reports: Vec<ProxyReport>,
        now: i64,
    ) -> Result<Option<StoredSet>, ReportError> {
        if reports.len() > MAX_PROXIES_PER_AGENT {
            return Err(ReportError::TooMany(reports.len()));
        }
        let reports = reports
            .into_iter()
            .map(sanitize)
            .collect::<Result<Vec<_>, _>>()?;
        let mut agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        agents.retain(|_, set| now - set.received_at < FORGET_AFTER);
        let set = agents.entry(agent.to_owned()).or_default();
        let mut old: HashMap<String, Tracked> = set
            .proxies
            .drain(..)
            .map(|t| (t.report.proxy_id.clone(), t))
            .collect();
        set.received_at = now;
        for report in reports {
            let mut history = old
                .remove(&report.proxy_id)
                .map(|t| t.history)
                .unwrap_or_default();
            record(&mut history, Sample::of(&report, now));
            set.proxies.push(Tracked { report, history });
        }
        let ids: Vec<String> = set
            .proxies
            .iter()
            .map(|t| t.report.proxy_id.clone())
            .collect();
        if ids == set.persisted_ids && now - set.persisted_at < PERSIST_EVERY {
            return Ok(None);
        }
        set.persisted_at = now;
        set.persisted_ids = ids;
        Ok(Some(
            set.proxies
                .iter()
                .map(|t| (t.report.proxy_id.clone(), t.encode(now)))
                .collect(),
        ))
    }

    /// Every proxy, with its counters over the last `window` seconds (0: its whole life):
    /// those `stored` by any replica, with this replica's own agents as it holds them now
    /// (fresher than what it last wrote).
    pub fn list(&self, window: i64, now: i64, stored: &[ProxyStatusRecord]) -> Vec<ProxyRecord> {
        let mut by_agent: BTreeMap<String, (i64, Vec<Tracked>)> = BTreeMap::new();
        for r in stored {
            if let Some((t, received_at)) = Tracked::decode(&r.data) {
                let e = by_agent.entry(r.agent_id.clone()).or_default();
                e.0 = e.0.max(received_at);
                e.1.push(t);
            }
        }
        {
            let agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
            for (agent, set) in agents.iter() {
                let newer = by_agent
                    .get(agent)
                    .is_none_or(|(at, _)| set.received_at >= *at);
                if newer {
                    by_agent.insert(agent.clone(), (set.received_at, set.proxies.clone()));
                }
            }
        }
        let mut out = Vec::new();
        for (agent, (received_at, proxies)) in &by_agent {
            if now - received_at >= FORGET_AFTER {
                continue;
            }
            for t in proxies {
                let (window_ports, covered) = windowed(&t.report, &t.history, window, now);
                out.push(ProxyRecord {
                    agent_id: agent.clone(),
                    report: Some(t.report.clone()),
                    received_at: *received_at,
                    window: window_ports,
                    window_covered_seconds: covered,
                });
            }
        }
        out.sort_by(|a, b| {
            let key = |r: &ProxyRecord| {
                r.report.as_ref().map(|p| {
                    (
                        p.workload_namespace.clone(),
                        p.workload_name.clone(),
                        p.proxy_id.clone(),
                    )
                })
            };
            key(a).cmp(&key(b))
        });
        out
    }

    /// How many proxies are held (for the gauge).
    pub fn len(&self) -> usize {
        let agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        agents.values().map(|s| s.proxies.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn record(history: &mut VecDeque<Sample>, s: Sample) {
    let now = s.at;
    match history.back() {
        // Too soon after the last kept sample: the latest counters live in the report itself.
        Some(last) if now - last.at < FINE_EVERY => return,
        _ => history.push_back(s),
    }
    // Thin: drop what is older than a day, and keep one sample per ten minutes past the hour.
    let mut kept: VecDeque<Sample> = VecDeque::with_capacity(history.len());
    for s in history.drain(..) {
        let age = now - s.at;
        if age > HISTORY_SECONDS {
            continue;
        }
        let spacing = if age > FINE_FOR {
            COARSE_EVERY
        } else {
            FINE_EVERY
        };
        match kept.back() {
            Some(prev) if s.at - prev.at < spacing => {}
            _ => kept.push_back(s),
        }
    }
    *history = kept;
}

/// The report's inbound counters minus those at the start of the window, and how many
/// seconds the window really covers.
///
/// The baseline is the newest sample taken at or before `now - window`; a proxy that started
/// inside the window has the zero baseline at its start; otherwise (history shorter than the
/// window) the oldest sample is the baseline and the coverage says so.
fn windowed(
    r: &ProxyReport,
    history: &VecDeque<Sample>,
    window: i64,
    now: i64,
) -> (Vec<PortTraffic>, i64) {
    let since_start = (now - r.started_at).max(0);
    if window <= 0 || r.started_at >= now - window {
        return (r.inbound.clone(), since_start);
    }
    let start = now - window;
    let baseline = history
        .iter()
        .rev()
        .find(|s| s.at <= start)
        .or_else(|| history.front());
    let Some(base) = baseline else {
        return (r.inbound.clone(), since_start);
    };
    let covered = now - base.at.max(r.started_at);
    let ports = r
        .inbound
        .iter()
        .map(|p| {
            let (m, pl, rf) = base
                .ports
                .iter()
                .find(|b| b.0 == p.port)
                .map(|b| (b.1, b.2, b.3))
                .unwrap_or_default();
            let cutoff = now - covered;
            PortTraffic {
                mtls: p.mtls.saturating_sub(m),
                plaintext: p.plaintext.saturating_sub(pl),
                plaintext_refused: p.plaintext_refused.saturating_sub(rf),
                plaintext_sources: p
                    .plaintext_sources
                    .iter()
                    .filter(|s| s.last_seen >= cutoff)
                    .cloned()
                    .collect(),
                ..p.clone()
            }
        })
        .collect();
    (ports, covered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigil_proto::status::TrafficSource;

    fn report(id: &str, started: i64, mtls: u64, plain: u64, seen: i64) -> ProxyReport {
        ProxyReport {
            proxy_id: id.into(),
            workload_namespace: "payments".into(),
            workload_name: "billing".into(),
            started_at: started,
            inbound: vec![PortTraffic {
                port: 8080,
                mtls,
                plaintext: plain,
                plaintext_sources: vec![TrafficSource {
                    address: "10.0.0.7".into(),
                    connections: plain,
                    last_seen: seen,
                    refused: false,
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn the_window_subtracts_the_counters_at_its_start() {
        let reg = ProxyRegistry::default();
        // Plaintext only early on; mTLS only in the last ten minutes (reports every 100 s).
        for t in (100..=1600).step_by(100) {
            let (mtls, plain, seen) = match t {
                ..=900 => (0, 5 + t as u64 / 200, t),
                1000 => (0, 9, 900),
                _ => ((t as u64 - 1000) / 15, 9, 900),
            };
            reg.replace("a", vec![report("p", 0, mtls, plain, seen)], t)
                .unwrap();
        }
        let all = reg.list(0, 1600, &[]);
        assert_eq!(all[0].window[0].plaintext, 9);
        assert_eq!(all[0].window_covered_seconds, 1600);
        let recent = reg.list(600, 1600, &[]);
        let p = &recent[0].window[0];
        assert_eq!((p.mtls, p.plaintext), (40, 0));
        assert!(p.plaintext_sources.is_empty(), "{p:?}");
        assert_eq!(recent[0].window_covered_seconds, 600);
        let hour = reg.list(3600, 1600, &[]);
        assert_eq!(hour[0].window[0].plaintext, 9, "started inside the window");
    }

    #[test]
    fn a_days_history_stays_small() {
        let mut h = VecDeque::new();
        for t in (0..2 * HISTORY_SECONDS).step_by(5) {
            record(
                &mut h,
                Sample {
                    at: t,
                    ports: vec![(1, t as u64, 0, 0)],
                },
            );
        }
        assert!(h.len() <= 24 * 6 + 60 + 2, "{} samples", h.len());
        let newest = h.back().unwrap().at;
        assert!(newest - h.front().unwrap().at <= HISTORY_SECONDS);
        // Minute resolution within the last hour.
        assert!(h.iter().filter(|s| newest - s.at <= FINE_FOR).count() >= 59);
    }

    #[test]
    fn a_short_history_says_how_much_it_covers() {
        let reg = ProxyRegistry::default();
        // The server (re)started at 5000; the proxy has run since 0.
        reg.replace("a", vec![report("p", 0, 10, 3, 4000)], 5000)
            .unwrap();
        reg.replace("a", vec![report("p", 0, 12, 3, 4000)], 5100)
            .unwrap();
        let r = reg.list(3600, 5100, &[]);
        assert_eq!(r[0].window_covered_seconds, 100);
        assert_eq!((r[0].window[0].mtls, r[0].window[0].plaintext), (2, 0));
    }

    #[test]
    fn a_report_replaces_the_agents_set_and_silent_agents_are_forgotten() {
        let reg = ProxyRegistry::default();
        reg.replace(
            "a",
            vec![report("p1", 0, 0, 0, 0), report("p2", 0, 0, 0, 0)],
            10,
        )
        .unwrap();
        reg.replace("b", vec![report("p3", 0, 0, 0, 0)], 10)
            .unwrap();
        reg.replace("a", vec![report("p2", 0, 0, 0, 0)], 20)
            .unwrap();
        let ids: Vec<_> = reg
            .list(0, 20, &[])
            .into_iter()
            .map(|r| r.report.unwrap().proxy_id)
            .collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&"p2".to_string()) && ids.contains(&"p3".to_string()));
        assert!(reg.list(0, 20 + FORGET_AFTER, &[]).is_empty());
    }

    #[test]
    fn any_replica_answers_from_the_datastore_and_continues_the_history() {
        // Replica A receives the agent's reports and writes them when due.
        let a = ProxyRegistry::default();
        let first = a
            .replace("agent", vec![report("p", 0, 1, 2, 5)], 10)
            .unwrap()
            .expect("a new set is written at once");
        assert!(
            a.replace("agent", vec![report("p", 0, 2, 2, 5)], 12)
                .unwrap()
                .is_none(),
            "unchanged set, too soon"
        );
        let later = a
            .replace("agent", vec![report("p", 0, 3, 2, 5)], 10 + PERSIST_EVERY)
            .unwrap()
            .expect("due again");
        let stored: Vec<ProxyStatusRecord> = later
            .into_iter()
            .map(|(proxy_id, data)| ProxyStatusRecord {
                agent_id: "agent".into(),
                proxy_id,
                data,
                updated_at: 10 + PERSIST_EVERY,
            })
            .collect();
        assert_eq!(first.len(), 1);
        // Replica B, which never heard from the agent, lists it from the datastore.
        let b = ProxyRegistry::default();
        let listed = b.list(0, 30, &stored);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].agent_id, "agent");
        assert_eq!(listed[0].window[0].mtls, 3);
        assert_eq!(listed[0].received_at, 10 + PERSIST_EVERY);
        // The agent moves to B: B continues the history it loaded.
        assert!(!b.knows("agent"));
        b.seed("agent", &stored);
        b.replace("agent", vec![report("p", 0, 9, 2, 5)], 200)
            .unwrap();
        let r = b.list(150, 200, &[]);
        assert_eq!(
            r[0].window[0].mtls,
            9 - 1,
            "baseline: the sample A took at 10"
        );
        // Garbage in the datastore is skipped, not fatal.
        let junk = ProxyStatusRecord {
            agent_id: "x".into(),
            proxy_id: "y".into(),
            data: vec![0xff; 3],
            updated_at: 30,
        };
        assert_eq!(ProxyRegistry::default().list(0, 30, &[junk]).len(), 0);
    }

    #[test]
    fn oversized_reports_are_refused_or_trimmed() {
        let reg = ProxyRegistry::default();
        let many = vec![report("p", 0, 0, 0, 0); MAX_PROXIES_PER_AGENT + 1];
        assert!(matches!(
            reg.replace("a", many, 1),
            Err(ReportError::TooMany(_))
        ));
        let mut r = report("", 0, 0, 0, 0);
        assert!(reg.replace("a", vec![r.clone()], 1).is_err());
        r.proxy_id = "p".into();
        r.inbound[0].plaintext_sources = vec![TrafficSource::default(); 500];
        reg.replace("a", vec![r], 1).unwrap();
        assert_eq!(
            reg.list(0, 1, &[])[0].window[0].plaintext_sources.len(),
            MAX_SOURCES
        );
    }
}
