//! Generated protocol code: Sigil's node API (agent ↔ server) and admin API (CLI ↔ server).

#![allow(clippy::all, clippy::pedantic, missing_docs, unused_qualifications)]

/// Modules nested as the proto packages are, so cross-package references resolve.
pub mod sigil {
    pub mod node {
        pub mod v1 {
            tonic::include_proto!("sigil.node.v1");
        }
    }
    pub mod config {
        pub mod v1 {
            tonic::include_proto!("sigil.config.v1");
        }
    }
    pub mod status {
        pub mod v1 {
            tonic::include_proto!("sigil.status.v1");
        }
    }
    pub mod admin {
        pub mod v1 {
            tonic::include_proto!("sigil.admin.v1");
        }
    }
    pub mod agent {
        pub mod admin {
            pub mod v1 {
                tonic::include_proto!("sigil.agent.admin.v1");
            }
        }
    }
}

/// The SPIFFE Workload API (package-less, as the specification requires).
pub mod workload {
    tonic::include_proto!("_");
}

/// The node API (agents → server).
pub use sigil::node::v1 as node;

/// Mesh configuration for the data plane (server → agent → proxies).
pub use sigil::config::v1 as config;

/// Proxy status reports (proxy → agent → server).
pub use sigil::status::v1 as status;

/// The admin API (CLI → server, over the admin Unix socket).
pub use sigil::admin::v1 as admin;

/// The agent's admin API (CLI → agent, over the agent's private admin Unix socket).
pub use sigil::agent::admin::v1 as agent_admin;
