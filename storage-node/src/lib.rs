//! Cairn storage node: chunk store, metadata store, control-plane replica and the internal RPC
//! contract (server and client) that gateways use to reach nodes.

pub mod anti_entropy;
pub mod chunk_store;
pub mod control;
pub mod failure_detector;
pub mod gc;
pub mod hlc;
pub mod manifest;
pub mod membership;
pub mod meta_store;
pub mod node;
mod pace;
pub mod placement;
pub mod repair;
pub mod rpc;
pub mod scrubber;
