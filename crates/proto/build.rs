//! Generates the gRPC code with protox (pure Rust, no system protoc).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fds = protox::compile(
        [
            "proto/node.proto",
            "proto/admin.proto",
            "proto/workload.proto",
            "proto/config.proto",
            "proto/status.proto",
            "proto/agent_admin.proto",
        ],
        ["proto"],
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
