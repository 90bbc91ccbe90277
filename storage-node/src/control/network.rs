//! Raft messages between nodes, carried as JSON over the node RPC transport.

use std::sync::Arc;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ControlNode, TypeConfig};

/// Path of Raft AppendEntries.
pub const PATH_RAFT_APPEND: &str = "/control/raft/append";
/// Path of Raft RequestVote.
pub const PATH_RAFT_VOTE: &str = "/control/raft/vote";
/// Path of Raft InstallSnapshot (one chunk per request).
pub const PATH_RAFT_SNAPSHOT: &str = "/control/raft/snapshot";
/// Path of command submission.
pub const PATH_COMMAND: &str = "/control/command";
/// Path of the state long-poll.
pub const PATH_STATE: &str = "/control/state";
/// Path of join requests.
pub const PATH_JOIN: &str = "/control/join";
/// Path asking a node that belongs to no cluster to join one through a seed.
pub const PATH_INVITE: &str = "/control/invite";

/// Largest control-plane request or response body.
pub const MAX_CONTROL_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No answer: connection refused, reset, timed out.
    #[error("node {addr} unreachable: {reason}")]
    Unreachable {
        /// Address called.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// The peer answered with a non-2xx status.
    #[error("node {addr} answered {status}: {message}")]
    Status {
        /// Address called.
        addr: String,
        /// HTTP status code.
        status: u16,
        /// Response body, possibly truncated.
        message: String,
    },
}

/// How the control plane reaches a peer node; implemented over the node RPC client.
pub trait ControlTransport: Send + Sync + 'static {
    /// POST `body` (JSON) to `path` on the node at `addr` and return the response body; non-2xx is an error.
    fn post(
        &self,
        addr: &str,
        path: &str,
        body: Vec<u8>,
    ) -> impl std::future::Future<Output = Result<Vec<u8>, TransportError>> + Send;
}

/// Failure of a JSON call to a peer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The request could not be encoded or the answer decoded.
    #[error("control message: {0}")]
    Codec(#[from] serde_json::Error),
    /// The request is larger than [`MAX_CONTROL_MESSAGE_BYTES`].
    #[error("control message of {0} bytes is too large")]
    TooLarge(usize),
}

/// POSTs `request` as JSON to `path` on `addr` and decodes the JSON answer.
pub async fn call<T, Req, Resp>(transport: &T, addr: &str, path: &str, request: &Req) -> Result<Resp, CallError>
where
    T: ControlTransport,
    Req: Serialize + ?Sized,
    Resp: DeserializeOwned,
{
    let body = serde_json::to_vec(request)?;
    if body.len() > MAX_CONTROL_MESSAGE_BYTES {
        return Err(CallError::TooLarge(body.len()));
    }
    let answer = transport.post(addr, path, body).await?;
    Ok(serde_json::from_slice(&answer)?)
}

/// Creates [`PeerNetwork`] clients for Raft.
pub struct NetworkFactory<T> {
    transport: Arc<T>,
}

impl<T> NetworkFactory<T> {
    /// A factory over `transport`.
    pub fn new(transport: Arc<T>) -> Self {
        NetworkFactory { transport }
    }
}

impl<T: ControlTransport> RaftNetworkFactory<TypeConfig> for NetworkFactory<T> {
    type Network = PeerNetwork<T>;

    async fn new_client(&mut self, target: u64, node: &ControlNode) -> Self::Network {
        PeerNetwork { transport: self.transport.clone(), target, addr: node.rpc_addr.clone() }
    }
}

/// Raft's connection to one peer.
pub struct PeerNetwork<T> {
    transport: Arc<T>,
    target: u64,
    addr: String,
}

impl<T: ControlTransport> PeerNetwork<T> {
    /// Sends one Raft RPC; a transport failure means "unreachable" so that Raft backs off.
    /// An oversized message asks Raft to resend at most `entries_hint` entries.
    async fn send<Req, Resp, E>(
        &self,
        path: &str,
        request: &Req,
        entries_hint: u64,
    ) -> Result<Resp, RPCError<u64, ControlNode, RaftError<u64, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let answer: Result<Resp, RaftError<u64, E>> =
            match call(self.transport.as_ref(), &self.addr, path, request).await {
                Ok(answer) => answer,
                Err(CallError::Transport(e)) => {
                    return Err(RPCError::Unreachable(Unreachable::new(&e)));
                }
                Err(CallError::TooLarge(_)) => {
                    return Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(entries_hint)));
                }
                Err(e) => return Err(RPCError::Network(NetworkError::new(&e))),
            };
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl<T: ControlTransport> RaftNetwork<TypeConfig> for PeerNetwork<T> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, ControlNode, RaftError<u64>>> {
        // Halving lets Raft split an oversized batch instead of resending it unchanged.
        let hint = u64::try_from(rpc.entries.len() / 2).unwrap_or(1).max(1);
        self.send(PATH_RAFT_APPEND, &rpc, hint).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, ControlNode, RaftError<u64, InstallSnapshotError>>> {
        self.send(PATH_RAFT_SNAPSHOT, &rpc, 1).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, ControlNode, RaftError<u64>>> {
        self.send(PATH_RAFT_VOTE, &rpc, 1).await
    }
}
