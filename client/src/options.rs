//! Client options and the builder that sets them (every queue the client keeps is bounded by
//! one of these limits), and the options of `create`.

use crate::client::Client;
use crate::error::Result;
use baton_proto::CreateKind;
use baton_proto::frame::FRAME_LEN_MAX_DEFAULT;
use std::time::Duration;

/// The session timeout asked for by default; the server bounds it (2 s – 60 s by default).
pub const SESSION_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// How long one connection attempt (connect plus handshake) may take by default.
pub const CONNECT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// Requests queued or in flight at once, by default. Callers beyond it wait.
pub const REQUESTS_IN_FLIGHT_MAX_DEFAULT: usize = 1024;
/// Events a persistent watcher buffers by default before it is ended with
/// [`crate::Error::WatchOverflow`].
pub const WATCH_QUEUE_LEN_DEFAULT: usize = 4096;
/// The longest pause between reconnection attempts.
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// The first pause between reconnection attempts; it doubles up to [`RECONNECT_BACKOFF_MAX`].
pub const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);

/// Everything the background session task needs to know about how to behave.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub session_timeout: Duration,
    pub connect_timeout: Duration,
    pub connection_bound: bool,
    pub client_name: String,
    pub requests_in_flight_max: usize,
    pub watch_queue_len: usize,
    pub frame_len_max: u32,
    /// Proved at every connect (TCP servers require a token or a TLS certificate).
    pub token: Option<baton_proto::token::Token>,
    /// Mutual TLS for TCP addresses.
    pub tls: Option<crate::tls::TlsClient>,
}

/// What a connection proves to the server, besides the Unix credentials the kernel gives.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Credentials<'a> {
    pub token: Option<&'a baton_proto::token::Token>,
    pub tls: Option<&'a crate::tls::TlsClient>,
}

impl Options {
    pub fn credentials(&self) -> Credentials<'_> {
        Credentials { token: self.token.as_ref(), tls: self.tls.as_ref() }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            session_timeout: SESSION_TIMEOUT_DEFAULT,
            connect_timeout: CONNECT_TIMEOUT_DEFAULT,
            connection_bound: false,
            client_name: format!("baton-client/{}", env!("CARGO_PKG_VERSION")),
            requests_in_flight_max: REQUESTS_IN_FLIGHT_MAX_DEFAULT,
            watch_queue_len: WATCH_QUEUE_LEN_DEFAULT,
            frame_len_max: FRAME_LEN_MAX_DEFAULT,
            token: None,
            tls: None,
        }
    }
}

/// Configures and connects a [`Client`].
///
/// ```no_run
/// # async fn demo() -> baton::Result<()> {
/// use std::time::Duration;
/// let client = baton::Client::builder()
///     .session_timeout(Duration::from_secs(5))
///     .client_name("my-service")
///     .connect("/run/baton/baton.sock")
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct ClientBuilder {
    options: Options,
}

impl ClientBuilder {
    /// A builder with the defaults: 10 s session, 5 s connect timeout, a normal (resumable)
    /// session.
    pub fn new() -> Self {
        Self::default()
    }

    /// The session timeout to ask for. The server bounds it and the negotiated value is
    /// [`Client::session_timeout`]. The client pings at a third of it when idle.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.options.session_timeout = timeout;
        self
    }

    /// How long one connection attempt (connect plus handshake) may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.options.connect_timeout = timeout;
        self
    }

    /// Ask for a session that ends the moment its connection closes, releasing its
    /// ephemerals at once when the process dies. Unix sockets only. Such a session is never
    /// resumed: losing the connection expires it.
    pub fn connection_bound(mut self, bound: bool) -> Self {
        self.options.connection_bound = bound;
        self
    }

    /// Free text the server logs for this client (program name and version).
    pub fn client_name(mut self, name: impl Into<String>) -> Self {
        self.options.client_name = name.into();
        self
    }

    /// How many requests may be queued or in flight at once; callers beyond it wait.
    /// At least 1.
    pub fn requests_in_flight_max(mut self, max: usize) -> Self {
        self.options.requests_in_flight_max = max.max(1);
        self
    }

    /// How many events a [`crate::PersistentWatcher`] buffers before it is ended with
    /// [`crate::Error::WatchOverflow`]. At least 1.
    pub fn watch_queue_len(mut self, len: usize) -> Self {
        self.options.watch_queue_len = len.max(1);
        self
    }

    /// The largest frame accepted or sent, in bytes.
    pub fn frame_len_max(mut self, max: u32) -> Self {
        self.options.frame_len_max = max;
        self
    }

    /// Authenticates with `token` (`NAME:SECRET`, from `baton token new`). The secret never
    /// crosses the wire: the client proves it holds it.
    pub fn token(mut self, token: baton_proto::token::Token) -> Self {
        self.options.token = Some(token);
        self
    }

    /// Connects to TCP addresses over mutual TLS (see [`TlsClient::from_files`]): the
    /// server's certificate must name the address's host, and this client's certificate
    /// name is its identity (`cert:NAME`).
    ///
    /// [`TlsClient::from_files`]: crate::TlsClient::from_files
    pub fn tls(mut self, tls: crate::tls::TlsClient) -> Self {
        self.options.tls = Some(tls);
        self
    }

    /// Connects to `addrs` (a Unix socket path, `HOST:PORT`, or a comma-separated list tried
    /// in order) and starts a session.
    ///
    /// # Errors
    /// [`crate::Error::InvalidAddress`] for an unparsable address,
    /// [`crate::Error::InvalidArgument`] for a connection-bound session over TCP,
    /// [`crate::Error::Connect`] when no address could be reached, or the server's refusal.
    ///
    /// # Cancellation safety
    /// Cancel-safe: if dropped, no session is left behind on the client side (a session the
    /// server already created times out).
    pub async fn connect(self, addrs: &str) -> Result<Client> {
        Client::connect_with(self.options, addrs).await
    }
}

/// What kind of node [`Client::create`] makes.
///
/// ```
/// use baton::CreateOptions;
/// use std::time::Duration;
/// let lock = CreateOptions::ephemeral().sequential();
/// let lease = CreateOptions::ttl(Duration::from_secs(30));
/// assert!(lock.sequential && !lease.sequential);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct CreateOptions {
    pub kind: CreateKind,
    /// Append the parent's child counter as a 10-digit suffix to the name.
    pub sequential: bool,
}

impl CreateOptions {
    /// A persistent node (the default).
    pub fn persistent() -> Self {
        Self::with_kind(CreateKind::Persistent)
    }

    /// A node deleted when this session ends; it may not have children.
    pub fn ephemeral() -> Self {
        Self::with_kind(CreateKind::Ephemeral)
    }

    /// A node deleted automatically once its last child is gone.
    pub fn container() -> Self {
        Self::with_kind(CreateKind::Container)
    }

    /// A persistent node deleted once it is childless and unmodified for `ttl`
    /// (millisecond precision).
    pub fn ttl(ttl: Duration) -> Self {
        Self::with_kind(CreateKind::Ttl { ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX) })
    }

    /// Options for a node of `kind`, not sequential.
    pub fn with_kind(kind: CreateKind) -> Self {
        CreateOptions { kind, sequential: false }
    }

    /// The same, with a sequential suffix.
    pub fn sequential(mut self) -> Self {
        self.sequential = true;
        self
    }
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self::persistent()
    }
}
