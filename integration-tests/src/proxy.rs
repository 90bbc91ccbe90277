//! A TCP proxy in front of one node's RPC port, for one client: the test can cut it (open
//! connections are closed, new ones refused), blackhole one direction (bytes are held, as a
//! network that drops every packet makes TCP wait) or delay one direction.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How one direction of a link behaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Direction {
    /// Hold every byte until this is lifted.
    pub blackhole: bool,
    /// Forward each read after this long.
    pub delay: Duration,
}

/// How a link behaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkState {
    /// Closed: open connections are dropped and new ones closed at once.
    pub cut: bool,
    /// Client to node.
    pub request: Direction,
    /// Node to client.
    pub response: Direction,
}

/// One proxied link; dropping it stops the proxy.
pub struct Proxy {
    /// The address clients connect to.
    pub addr: SocketAddr,
    state: watch::Sender<LinkState>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `target` on a free loopback port, on `runtime`.
    pub fn start(runtime: &tokio::runtime::Handle, target: SocketAddr) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (state, watcher) = watch::channel(LinkState::default());
        let task = runtime.spawn(async move {
            let Ok(listener) = TcpListener::from_std(listener) else { return };
            while let Ok((client, _)) = listener.accept().await {
                if watcher.borrow().cut {
                    continue; // dropped: the client sees the connection close
                }
                tokio::spawn(serve(client, target, watcher.clone()));
            }
        });
        Ok(Self { addr, state, task })
    }

    /// Sets how the link behaves from now on.
    pub fn set(&self, state: LinkState) {
        self.state.send_replace(state);
    }

    /// Cuts the link.
    pub fn cut(&self) {
        self.set(LinkState { cut: true, ..LinkState::default() });
    }

    /// Restores a plain link.
    pub fn heal(&self) {
        self.set(LinkState::default());
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.state.send_replace(LinkState { cut: true, ..LinkState::default() });
    }
}

async fn serve(client: TcpStream, target: SocketAddr, state: watch::Receiver<LinkState>) {
    let Ok(server) = TcpStream::connect(target).await else { return };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let state = Arc::new(state);
    let up = pump(client_read, server_write, state.as_ref().clone(), |s| s.request);
    let down = pump(server_read, client_write, state.as_ref().clone(), |s| s.response);
    // Either side closing, or a cut, ends both.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut state: watch::Receiver<LinkState>,
    direction: fn(&LinkState) -> Direction,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        // Hold while blackholed; give up when cut.
        let current = match state.wait_for(|s| s.cut || !direction(s).blackhole).await {
            Ok(current) => *current,
            Err(_) => return,
        };
        if current.cut {
            return;
        }
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            changed = state.changed() => match changed {
                Ok(()) => continue,
                Err(_) => return,
            },
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let link = *state.borrow();
        if link.cut {
            return;
        }
        let delay = direction(&link).delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        // Bytes read while a blackhole began are held until it lifts.
        match state.wait_for(|s| s.cut || !direction(s).blackhole).await {
            Ok(s) if !s.cut => {}
            _ => return,
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
