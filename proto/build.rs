//! Compiles the .proto files with protox (a pure-Rust protobuf compiler), so no system protoc.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/peer.proto",
        "proto/admin.proto",
        "proto/gateway.proto",
        "proto/data.proto",
        "proto/files.proto",
        "proto/witness.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
