//! `networking.istio.io` kinds (`v1alpha3`, `v1beta1`, `v1` share one schema):
//! [`DestinationRuleSpec`], [`ServiceEntrySpec`] and [`WorkloadEntrySpec`].
//!
//! Every field of the upstream schema (istio/api `networking/v1alpha3/*.proto`) is typed and
//! kept, including the ones Sigil does not act on (load balancing, connection pools, outlier
//! detection…), so documents round-trip through serde and unused settings can be reported.
//! Durations stay strings as written (`10s`, `1m30s`) and are checked by validation.
//! Scalars that protobuf treats as "unset when zero" are `Option`s here, so an explicit `0`
//! survives a round trip.

mod destination_rule;
mod service_entry;
mod workload_entry;

pub use destination_rule::{
    ClientTlsSettings, ConnectionPoolSettings, ConsistentHashLb, CookieAttribute,
    DestinationRuleSpec, Distribute, Failover, H2UpgradePolicy, HttpCookie, HttpSettings,
    LoadBalancerSettings, LocalityLoadBalancerSetting, MagLev, OutlierDetection, PortSelector,
    PortTrafficPolicy, ProxyProtocol, ProxyProtocolVersion, RetryBudget, RingHash, SimpleLb,
    Subset, TcpKeepalive, TcpSettings, TlsMode, TrafficPolicy, TunnelSettings, WarmupConfiguration,
};
pub use service_entry::{
    Location, Resolution, ServiceEntrySpec, ServiceEntryWorkloadSelector, ServicePort,
};
pub use workload_entry::WorkloadEntrySpec;
