//! Peer credentials: a Unix client's identity is its SO_PEERCRED uid and gid (never its pid
//! alone, which can be recycled).

use crate::engine::Peer;
use tokio::net::UnixStream;

/// The identity of the process at the other end of a Unix connection.
pub fn unix_peer(stream: &UnixStream) -> std::io::Result<Peer> {
    let cred = stream.peer_cred()?;
    Ok(Peer::Unix { uid: cred.uid(), gid: cred.gid(), pid: cred.pid() })
}
