//! A TCP proxy between a client and the daemon that a test can cut, to drop connections
//! without touching either end (the kernel offers no netem here).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Proxy {
    addr: SocketAddr,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    blocked: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    acceptor: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a loopback port and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let blocked = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (links2, blocked2, accepted2) = (links.clone(), blocked.clone(), accepted.clone());
        let acceptor = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if blocked2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                accepted2.fetch_add(1, Ordering::SeqCst);
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                links2.lock().expect("links").push(link);
            }
        });
        Proxy { addr, links, blocked, accepted, acceptor }
    }

    /// How many connections it has forwarded so far (reconnections show up here).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The address clients connect to.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Drops every open connection; with `block`, refuses new ones until [`Proxy::unblock`].
    pub fn cut(&self, block: bool) {
        self.blocked.store(block, Ordering::SeqCst);
        for link in self.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }

    pub fn unblock(&self) {
        self.blocked.store(false, Ordering::SeqCst);
    }

    /// Cuts `client` off, refusing its reconnections until [`Proxy::unblock`], and waits (10 s
    /// at most) until it notices: its session suspended.
    pub async fn cut_off(&self, client: &baton::Client) {
        self.cut(true);
        let mut states = client.session_state();
        let suspended = states.wait_for(|s| matches!(s, baton::SessionState::Suspended { .. }));
        tokio::time::timeout(std::time::Duration::from_secs(10), suspended)
            .await
            .expect("the client notices the cut")
            .expect("the client's session state is still reported");
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.cut(true);
    }
}
