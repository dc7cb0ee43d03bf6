//! Test support: start the real `batond` binary on a private data directory and socket, and
//! find the real `baton` CLI, both as built by `cargo test --workspace`.
//!
//! Everything here waits on observable state (a socket answering, a process exiting) with a
//! deadline, never on a fixed sleep.

pub mod access;
pub mod disk;
pub mod netns;
pub mod pair;
pub mod proxy;
pub mod raw;
pub mod torture;
pub mod traffic;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long the daemon may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The directory holding the workspace's binaries: the parent of the test executable's
/// `deps/` directory.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BATON_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// The path of a workspace binary, checked to exist and to be newer than its sources
/// (`cargo test -p baton-tests` alone does not rebuild the binaries; `--workspace` does).
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    let built = std::fs::metadata(&path).and_then(|m| m.modified()).unwrap_or_else(|_| {
        panic!("{} not built: run `cargo test --workspace` (or `cargo build --workspace` first)", path.display())
    });
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    // Only what the binary is built from: cargo rightly leaves `baton` alone when only the
    // daemon changed.
    let own_sources = if name == "batond" { "daemon/src" } else { "client/src" };
    let sources = [own_sources, "client/proto/src"].map(|dir| workspace.join(dir));
    if std::env::var_os("BATON_BIN_DIR").is_none()
        && let Some(newest) = sources.iter().filter_map(|dir| newest_mtime(dir)).max()
    {
        assert!(
            newest <= built,
            "{} is older than its sources: run `cargo test --workspace` (or `cargo build --workspace` first)",
            path.display()
        );
    }
    path
}

/// The newest modification time of any file under `dir` (iteratively, no recursion).
fn newest_mtime(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(entry.path());
            } else if let Ok(modified) = meta.modified() {
                newest = newest.max(Some(modified));
            }
        }
    }
    newest
}

/// A command running one of the client crate's examples (built by `cargo test --workspace`).
pub fn example(name: &str) -> Command {
    let path = bin_dir().join("examples").join(name);
    assert!(path.exists(), "{} not built: run `cargo test --workspace`", path.display());
    Command::new(path)
}

/// A child process killed (by its PID) and reaped when dropped, so no test leaves one behind.
pub struct Spawned(pub Child);

impl Spawned {
    pub fn spawn(command: &mut Command) -> Spawned {
        Spawned(command.spawn().expect("spawn"))
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `baton` CLI command aimed at `addr`.
pub fn cli(addr: &str) -> Command {
    let mut command = Command::new(binary("baton"));
    command.arg("--addr").arg(addr);
    command
}

/// A running `batond` with its own data directory and socket, killed on drop.
pub struct Daemon {
    child: Option<Child>,
    dir: tempfile::TempDir,
    extra_args: Vec<String>,
    /// The network namespace it runs in, if not the test's own.
    netns: Option<String>,
    /// A data directory elsewhere than in the daemon's temp dir (a small filesystem, say).
    data_dir: Option<PathBuf>,
    /// Extra environment for the daemon (e.g. a clock library preloaded).
    env: Vec<(String, String)>,
    /// The open-files limit it starts under (soft, hard), if not the test's own.
    open_files: Option<(u64, u64)>,
}

impl Daemon {
    /// Starts a daemon with default settings.
    pub fn start() -> Daemon {
        Daemon::start_with(&[])
    }

    /// Starts a daemon with extra command-line arguments.
    pub fn start_with(args: &[&str]) -> Daemon {
        Daemon::start_with_env(args, &[])
    }

    /// Starts a daemon with extra command-line arguments and environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut daemon = Daemon::unstarted(args);
        daemon.env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        daemon.spawn();
        daemon
    }

    /// A daemon with default settings and `args`, not yet spawned.
    fn unstarted(args: &[&str]) -> Daemon {
        Daemon {
            child: None,
            dir: tempfile::tempdir().expect("temp dir"),
            extra_args: args.iter().map(|a| (*a).to_owned()).collect(),
            netns: None,
            data_dir: None,
            env: Vec::new(),
            open_files: None,
        }
    }

    /// Starts a daemon inside network namespace `netns` (its Unix socket stays reachable
    /// from the test, which shares the filesystem).
    pub fn start_in(netns: &str, args: &[&str]) -> Daemon {
        let mut daemon = Daemon::unstarted(args);
        daemon.netns = Some(netns.to_owned());
        daemon.spawn();
        daemon
    }

    /// Writes `text` as the daemon's config file and starts it with `--config`.
    pub fn start_with_config(text: &str) -> Daemon {
        let mut daemon = Daemon::unstarted_with_config(text);
        daemon.spawn();
        daemon
    }

    /// Writes `text` as the daemon's config file and starts it with `--config`, under an
    /// open-files limit of `soft` descriptors (and `hard` at most).
    pub fn start_with_open_files(soft: u64, hard: u64, text: &str) -> Daemon {
        let mut daemon = Daemon::unstarted_with_config(text);
        daemon.open_files = Some((soft, hard));
        daemon.spawn();
        daemon
    }

    fn unstarted_with_config(text: &str) -> Daemon {
        let mut daemon = Daemon::unstarted(&[]);
        let config = daemon.dir.path().join("batond.toml");
        std::fs::write(&config, text).expect("write config");
        daemon.extra_args = vec!["--config".to_owned(), config.display().to_string()];
        daemon
    }

    fn spawn(&mut self) {
        let socket = self.socket();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("batond.log"))
            .expect("log file");
        let mut command = match (&self.netns, self.open_files) {
            (Some(ns), _) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", ns]).arg(binary("batond"));
                command
            }
            (None, Some((soft, hard))) => {
                // The shell sets the limits and becomes batond: the pid stays the daemon's. Soft
                // first: a hard limit may not go below the soft one.
                let mut command = Command::new("sh");
                command
                    .args(["-c", r#"ulimit -Sn "$1" && ulimit -Hn "$2" && shift 2 && exec "$@""#, "sh"])
                    .args([soft.to_string(), hard.to_string()])
                    .arg(binary("batond"));
                command
            }
            (None, None) => Command::new(binary("batond")),
        };
        let child = command
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--socket")
            .arg(&socket)
            .args(&self.extra_args)
            .env("BATON_LOG", "debug")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn batond");
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("batond exited with {status} before listening; log:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "batond did not listen within {START_TIMEOUT:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("baton.sock")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| self.dir.path().join("data"))
    }

    /// Starts a daemon whose data directory is `data_dir`.
    pub fn start_on(data_dir: &Path, args: &[&str]) -> Daemon {
        let mut daemon = Daemon::unstarted(args);
        daemon.data_dir = Some(data_dir.to_owned());
        daemon.spawn();
        daemon
    }

    /// The address clients use: the socket path.
    pub fn addr(&self) -> String {
        self.socket().display().to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon running").id()
    }

    /// The daemon's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("batond.log")).unwrap_or_default()
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal batond");
    }

    /// SIGKILLs the daemon and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERMs the daemon and waits for it to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let mut child = self.child.take().expect("daemon running");
        wait_with_deadline(&mut child, Duration::from_secs(20))
    }

    /// Starts the daemon again on the same data directory and socket, with other arguments.
    pub fn restart_with(&mut self, args: &[&str]) {
        self.extra_args = args.iter().map(|a| (*a).to_owned()).collect();
        self.restart();
    }

    /// Starts the daemon again on the same data directory and socket.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the daemon before restarting it");
        self.spawn();
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits for `child` to exit, killing it if it takes longer than `limit`.
pub fn wait_with_deadline(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process {} did not exit within {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Polls `condition` until it holds or `limit` passes.
pub async fn eventually<F: FnMut() -> bool>(limit: Duration, mut condition: F) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}

/// A loopback TCP address that was free a moment ago.
pub fn free_tcp_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr")
}
