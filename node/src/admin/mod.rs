//! The admin port: the gRPC `Admin` service (`service`), and the node's status as a domain type
//! (`status`) with its protobuf edge (`status_wire`).
//!
//! May touch: the driver (through its handle), the replicated database's admin operations, the
//! state store's reads. Must not: decide anything about roles; it asks the driver and reports.

pub mod service;
pub mod status;
pub mod status_wire;
