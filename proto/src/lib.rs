//! Generated gRPC types for tandem: the peer link (keep-alives and replication), the admin
//! service, the clients gateway and the Data API.
//!
//! Only the gRPC edges of the other crates use these types; everything inside converts to domain
//! types at the boundary (DESIGN.md §2).

/// The peer link. Generated code: a heartbeat makes the message enum's variants uneven in size.
#[allow(clippy::large_enum_variant)]
pub mod peer {
    tonic::include_proto!("tandem.peer.v1");
}

pub mod admin {
    tonic::include_proto!("tandem.admin.v1");
}

pub mod gateway {
    tonic::include_proto!("tandem.gateway.v1");
}

pub mod data {
    tonic::include_proto!("tandem.data.v1");
}

/// File replication between the nodes (DESIGN.md §7).
pub mod files {
    tonic::include_proto!("tandem.files.v1");
}

/// The witness: a third vote for one or many pairs (DESIGN.md §12).
pub mod witness {
    tonic::include_proto!("tandem.witness.v1");
}
