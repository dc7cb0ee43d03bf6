//! The command line: flags, subcommands and their help texts (clap derive). Parsing only.

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::time::Duration;

const AFTER_HELP: &str = "\
DATA arguments may be '-' to read the data from standard input.

Each invocation opens a normal session (10 s timeout) and closes it before exiting; lock,
elect and register on a Unix socket use a connection-bound session instead (see their help).
Set BATON_LOG (e.g. BATON_LOG=debug) to see the client's log on stderr.

Exit status:
  0  success
  1  any other error (cannot connect, session expired, refused by the server, ...)
  2  usage error
  3  no such node
  4  version conflict, or the node already exists
  5  not acquired within --timeout, or at once with --nonblock; wait or barrier wait timed
     out; queue take found no item
  6  lock: the lock was lost while CMD ran, and CMD's process group was killed
     (elect campaigns again instead)
lock, elect and register exit with CMD's status (128+N if signal N killed it; 126/127 if
CMD could not be run). A command stopped by SIGINT, SIGTERM or SIGHUP while waiting exits
with 128+N.

Errors are printed to stderr as 'baton: <message>'.";

/// The document of 'baton export' and 'baton import', shown in both their --help.
pub const DOCUMENT_HELP: &str = r#"Document format (version 1), one node per line:
  {"format":"baton-export","version":1,"root":"/app","nodes":[
  {"path":"/app","kind":"persistent","data":"v1","encoding":"utf8","stat":{...}},
  {"path":"/app/key","kind":"persistent","data":"/wAB","encoding":"base64","stat":{...}}
  ]}
"path" is absolute. "data" is the data as a string when it is valid UTF-8 ("encoding":
"utf8"), else its base64 ("encoding": "base64"), as for 'baton get --json'. "kind" is
"persistent" or "ephemeral". "stat" is for humans: version, ctime and mtime (RFC 3339),
ctime_ms and mtime_ms; import ignores it. On import "kind" defaults to "persistent",
"data" to "" and "encoding" to "utf8"; unknown fields are ignored.

Example: baton export /app > app.json && baton --addr HOST:PORT import < app.json"#;

/// Command-line client for the Baton coordination service.
#[derive(Debug, Parser)]
#[command(name = "baton", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// Server address: a Unix socket path (contains '/' or no ':'), HOST:PORT, or a
    /// comma-separated list of them tried in order
    #[arg(
        long,
        global = true,
        env = "BATON_ADDR",
        hide_env_values = true,
        value_name = "ADDR",
        default_value_t = default_addr()
    )]
    pub addr: String,

    /// Authenticate with the token in FILE (NAME:SECRET, from 'baton token new'); TCP
    /// servers require a token or a TLS client certificate
    #[arg(long, global = true, env = "BATON_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Checks what clap does not: a wrapper's `--grace` must be shorter than its
    /// `--session-timeout`; `elect`'s `--json` and `--count` need `--observe`.
    ///
    /// # Errors
    /// The message for a usage error.
    pub fn validate(&self) -> Result<(), String> {
        if let Command::Elect { observe: false, json, count, .. } = &self.command
            && (*json || count.is_some())
        {
            return Err("--json and --count go with --observe".to_owned());
        }
        let (Command::Lock { grace, session, .. } | Command::Elect { grace, session, observe: false, .. }) =
            &self.command
        else {
            return Ok(());
        };
        if *grace >= session.session_timeout {
            return Err(format!(
                "--grace ({}) must be shorter than --session-timeout ({})",
                humantime::format_duration(*grace),
                humantime::format_duration(session.session_timeout)
            ));
        }
        Ok(())
    }
}

/// Mutual TLS to a TCP address: all three, or none. The field names are the flags'.
#[derive(Debug, Args)]
#[allow(clippy::struct_field_names)]
pub struct TlsArgs {
    /// Connect to TCP addresses over mutual TLS, trusting server certificates signed by the CA
    /// in FILE (PEM); needs --tls-cert and --tls-key
    #[arg(long, global = true, env = "BATON_TLS_CA", value_name = "FILE", requires_all = ["tls_cert", "tls_key"])]
    pub tls_ca: Option<std::path::PathBuf>,
    /// This client's certificate (PEM); its name is the client's identity (cert:NAME)
    #[arg(long, global = true, env = "BATON_TLS_CERT", value_name = "FILE", requires_all = ["tls_ca", "tls_key"])]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM)
    #[arg(long, global = true, env = "BATON_TLS_KEY", value_name = "FILE", requires_all = ["tls_ca", "tls_cert"])]
    pub tls_key: Option<std::path::PathBuf>,
}

/// The socket a local daemon listens on: this user's, else the system service's.
fn default_addr() -> String {
    baton_proto::defaults::client_socket_path().display().to_string()
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a node and print the path created (which differs for --sequential)
    #[command(group(ArgGroup::new("kind").args(["ephemeral", "container", "ttl"])))]
    Create {
        /// The node's path
        path: String,
        /// The node's data (empty if omitted; '-' reads stdin)
        data: Option<OsString>,
        /// Make an ephemeral node. It belongs to this command's session, so it is deleted as
        /// soon as the command exits: useful for testing only
        #[arg(long)]
        ephemeral: bool,
        /// Append the parent's 10-digit child counter to the name
        #[arg(long)]
        sequential: bool,
        /// Make a container node, deleted automatically once its last child is gone
        #[arg(long)]
        container: bool,
        /// Make a TTL node, deleted once childless and unmodified for DURATION (e.g. 10s,
        /// 500ms, 1h)
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        ttl: Option<Duration>,
        /// The node's ACL, PRINCIPAL:PERMS entries (comma-separated; see 'baton acl --help');
        /// default: the server's default ACL (normally only the creator)
        #[arg(long, value_name = "ACL")]
        acl: Option<String>,
    },

    /// Write a node's data to stdout, as raw bytes with no newline added
    Get {
        /// The node's path
        path: String,
        /// Also print the node's stat, to stderr (so stdout stays the bare data)
        #[arg(long)]
        stat: bool,
        /// Print one JSON object instead: {"path", "data", "encoding", "stat"}. "data" is the
        /// data as a string when it is valid UTF-8 ("encoding": "utf8"), else its base64
        /// ("encoding": "base64"); "stat" is as for 'baton stat --json'
        #[arg(long)]
        json: bool,
    },

    /// Replace a node's data
    Set {
        /// The node's path
        path: String,
        /// The new data ('-' reads stdin)
        data: OsString,
        /// Only if the node's current data version is N (else exit status 4)
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        version: Option<i32>,
    },

    /// Delete a node
    Rm {
        /// The node's path
        path: String,
        /// Only if the node's current data version is N (else exit status 4)
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        version: Option<i32>,
        /// Delete the whole subtree, children first (not atomic: a node created meanwhile
        /// makes it fail). On '/', deletes everything but the root
        #[arg(long, short = 'r')]
        recursive: bool,
    },

    /// List a node's children, one name per line, sorted
    Ls {
        /// The node's path
        path: String,
        /// Print a JSON array of names instead
        #[arg(long)]
        json: bool,
    },

    /// Print a node's stat, one 'field = value' per line (zxids and session ids in hex)
    Stat {
        /// The node's path
        path: String,
        /// Print one JSON object instead, every field a number: czxid, mzxid, pzxid,
        /// ctime_ms, mtime_ms, version, cversion, aversion, ephemeral_owner, data_length,
        /// num_children
        #[arg(long)]
        json: bool,
    },

    /// Print a subtree: PATH, then each descendant's name indented two spaces per level
    Tree {
        /// The subtree's root
        #[arg(default_value = "/")]
        path: String,
    },

    /// Write the subtree under PATH to stdout as one JSON document, for 'baton import'
    ///
    /// Walks the tree depth first, children in name order, parents before children. The
    /// walk is not a snapshot: nodes changed meanwhile are exported as each was when read,
    /// and nodes deleted meanwhile are left out. Ephemeral nodes are left out unless
    /// --ephemeral: they belong to live sessions (a note on stderr says how many). Container
    /// and TTL nodes cannot be told from persistent ones by a client and are exported as
    /// persistent. Exit status 3 if PATH does not exist.
    #[command(after_long_help = DOCUMENT_HELP)]
    Export {
        /// The subtree's root
        #[arg(default_value = "/")]
        path: String,
        /// Include ephemeral nodes, with "kind": "ephemeral" (import skips them)
        #[arg(long)]
        ephemeral: bool,
    },

    /// Create the nodes of a 'baton export' document read from stdin
    ///
    /// Creates the nodes parents first, as persistent nodes, creating missing parents empty.
    /// The whole document is read and checked before anything is written: malformed JSON, a
    /// bad path, a repeated path or bad base64 is an error (exit status 1). If a node already
    /// exists, nothing is imported and the exit status is 4, unless --overwrite, which sets
    /// its data instead. The root '/' always exists, so an entry for it (without --under) is
    /// no conflict if its data is the same. Ephemeral nodes are skipped (they would vanish
    /// with this command's session). "stat" is ignored: imported nodes start at version 0
    /// with new times.
    ///
    /// The writes go in multi-operation transactions of at most 1000 nodes and 512 KiB: a
    /// document that fits in one is imported all or nothing. If a later transaction fails,
    /// the earlier ones stay and the error says how many nodes were imported. On success a
    /// summary goes to stderr.
    #[command(after_long_help = DOCUMENT_HELP)]
    Import {
        /// Import below PATH instead of at the exported paths: /a becomes PATH/a, / becomes
        /// PATH
        #[arg(long, value_name = "PATH")]
        under: Option<String>,
        /// Set the data of nodes that already exist instead of failing
        #[arg(long)]
        overwrite: bool,
    },

    /// Print a line per change of PATH until interrupted (or --count events)
    ///
    /// Without --recursive the watch sees PATH's creation, deletion, data changes and child
    /// list changes; with it, creations, deletions and data changes of PATH and every node
    /// below it. The node need not exist. Each line is 'TYPE PATH ZXID' (zxid in hex), TYPE
    /// one of created, deleted, data_changed, children_changed, watch_reset (changes during
    /// a reconnect were lost: re-read the state). Once the watch is set, 'baton: watching
    /// PATH' goes to stderr. stdout is flushed after every line. On SIGINT or SIGTERM it closes
    /// the session and exits with status 130 or 143.
    Watch {
        /// The node to watch
        path: String,
        /// Watch the whole subtree
        #[arg(long, short = 'r')]
        recursive: bool,
        /// Exit (status 0) after N events
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Print one JSON object per line instead: {"type", "path", "zxid"} with the zxid as a
        /// number
        #[arg(long)]
        json: bool,
    },

    /// Run CMD while holding the lock PATH: flock(1) across processes and hosts
    ///
    /// Waits for the lock (fair: first come, first served), runs CMD with
    /// BATON_FENCING_TOKEN=<token> in its environment, releases the lock once CMD is gone and
    /// exits with CMD's status. The token is a decimal number that grows with every
    /// acquisition of the lock: hand it to whatever CMD writes to, so that the writes of a
    /// holder that has lost the lock can be refused.
    ///
    /// CMD runs in a process group of its own, and that whole group (CMD and whatever it
    /// started that stayed in the group) is dead before the lock is released, whichever way
    /// it ends:
    ///
    ///   - CMD exits: what it left behind in its group gets SIGKILL, then the lock is released.
    ///   - SIGINT, SIGTERM or SIGHUP to baton: forwarded to the group; baton waits for CMD,
    ///     releases the lock and exits with CMD's status (143 if SIGTERM killed it).
    ///   - The lock is lost (its node was deleted, the session ended, or the connection of a
    ///     connection-bound session was lost): the group gets SIGKILL at once; exit status 6.
    ///   - The connection is lost and a normal session may expire: the group gets SIGTERM
    ///     --grace before, and SIGKILL 250 ms before, the earliest moment the server could
    ///     expire the session, unless the session is resumed before the SIGTERM; then exit
    ///     status 6.
    ///   - baton itself is killed, even by SIGKILL: a guard process kills the group.
    ///
    /// On a Unix socket the session is connection-bound: it ends the moment baton's
    /// connection closes, so the lock of a dead baton is free in milliseconds. Over TCP, or
    /// with --resumable, a normal session (--session-timeout) rides out short
    /// disconnections.
    ///
    /// CMD is not in the terminal's foreground process group: if it reads from the terminal
    /// it is stopped (SIGTTIN). A process that leaves CMD's group (setsid, setpgid) is beyond
    /// baton's reach.
    ///
    /// Exit status: CMD's (128+N if signal N killed it; 126/127 if it could not be run);
    /// 5 not acquired (--timeout, --nonblock) and CMD not run; 6 the lock was lost and CMD
    /// killed; 1 any other error.
    #[command(verbatim_doc_comment, after_help = "Example: baton lock /locks/backup --timeout 30s -- ./backup.sh")]
    Lock {
        /// The lock's node (created if missing)
        path: String,
        /// Give up (exit status 5) if the lock is not acquired within DURATION (e.g. 30s)
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        timeout: Option<Duration>,
        /// Give up (exit status 5) at once if the lock is held
        #[arg(long, short = 'n', conflicts_with = "timeout")]
        nonblock: bool,
        /// Between the SIGTERM and the SIGKILL sent to CMD when a normal session may expire
        /// (shorter than --session-timeout)
        #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
        grace: Duration,
        #[command(flatten)]
        session: SessionArgs,
        /// The command to run and its arguments, after '--'
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<OsString>,
    },

    /// Run CMD only while leader of the election PATH; or, with --observe, follow the leader
    ///
    /// Campaigns (first come, first served) and, once leader, runs CMD with
    /// BATON_LEADER_ID=<id> and BATON_FENCING_TOKEN=<token> (as for 'baton lock') in its
    /// environment. If the leadership is lost, CMD's process group is killed exactly as
    /// 'baton lock' does when its lock is lost (see 'baton lock --help'), and baton
    /// campaigns again (with a new session if the old one ended). When CMD exits by itself,
    /// baton resigns and exits with CMD's status. SIGINT, SIGTERM and SIGHUP are forwarded
    /// to CMD's group; while campaigning they stop baton (exit status 128+N).
    ///
    /// With --observe, prints the current leader's id (or '-' when there is none), then a
    /// line per change, until interrupted or --count lines.
    ///
    /// Exit status: CMD's (128+N if signal N killed it; 126/127 if it could not be run);
    /// 1 any other error.
    #[command(after_help = "Example: baton elect /services/mailer/leader -- ./mailer --active")]
    Elect {
        /// The election's node (created if missing)
        path: String,
        /// This candidate's id, shown to observers [default: HOSTNAME:PID]
        #[arg(long, value_name = "NAME", conflicts_with = "observe")]
        id: Option<String>,
        /// Between the SIGTERM and the SIGKILL sent to CMD when a normal session may expire
        /// (shorter than --session-timeout)
        #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
        grace: Duration,
        #[command(flatten)]
        session: SessionArgs,
        /// Print the leader and each change instead of campaigning
        #[arg(long)]
        observe: bool,
        /// With --observe: print one JSON object per line, {"leader": ID or null}
        #[arg(long, requires = "observe")]
        json: bool,
        /// With --observe: exit (status 0) after N lines
        #[arg(long, value_name = "N", requires = "observe")]
        count: Option<u64>,
        /// The command to run while leader and its arguments, after '--'
        #[arg(last = true, value_name = "CMD", required_unless_present = "observe", conflicts_with = "observe")]
        command: Vec<OsString>,
    },

    /// Wait until PATH exists (the default), is gone, or holds a given value
    ///
    /// Uses watches: it sleeps until the server reports a change, then looks again. Exits 0
    /// as soon as the condition holds (at once if it already does), 5 after --timeout.
    #[command(group(ArgGroup::new("condition").args(["exists", "gone", "value"])))]
    Wait {
        /// The node to wait for
        path: String,
        /// Until the node exists (the default)
        #[arg(long)]
        exists: bool,
        /// Until the node does not exist
        #[arg(long)]
        gone: bool,
        /// Until the node exists and its data is exactly V ('-' reads V from stdin)
        #[arg(long, value_name = "V")]
        value: Option<OsString>,
        /// Give up (exit status 5) after DURATION
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        timeout: Option<Duration>,
    },

    /// Raise (set) or lower (remove) the barrier PATH, or wait until it is lowered
    ///
    /// The barrier is raised while its node exists. 'set' creates it (and its parents),
    /// 'remove' deletes it, releasing every waiter; both succeed if it already was so.
    /// 'wait' returns at once if it is lowered, else when it is; exit status 5 after
    /// --timeout.
    Barrier {
        /// The barrier's node
        path: String,
        /// What to do
        action: BarrierAction,
        /// With 'wait': give up (exit status 5) after DURATION
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        timeout: Option<Duration>,
    },

    /// Put items into or take them out of the FIFO queue under a node
    Queue {
        #[command(subcommand)]
        action: QueueCommand,
    },

    /// Add to or read the atomic counter held in a node (as decimal text)
    Counter {
        #[command(subcommand)]
        action: CounterCommand,
    },

    /// Operate the server: status, promotion of a standby, recovery files
    Admin {
        #[command(subcommand)]
        action: AdminCommand,
    },

    /// Show or change who may do what to a node (ACLs)
    #[command(after_help = ACL_HELP)]
    Acl {
        #[command(subcommand)]
        action: AclCommand,
    },

    /// Make tokens for TCP clients (no server needed)
    Token {
        #[command(subcommand)]
        action: TokenCommand,
    },

    /// Register instance ID of SERVICE (an ephemeral node ROOT/SERVICE/ID holding DATA)
    ///
    /// With CMD, keeps the registration while CMD runs, and exits with CMD's status once CMD
    /// has exited (SIGINT, SIGTERM and SIGHUP are forwarded to CMD's process group, which is
    /// killed once CMD exits). Without CMD, keeps it until SIGINT, SIGTERM or SIGHUP (exit
    /// status 0). If the registration is lost (its session ended), it is made again with a
    /// new session, CMD running on. It disappears when baton exits, even by SIGKILL: at once
    /// on a Unix socket (connection-bound session), else after --session-timeout.
    Register {
        /// The service's name (one path segment)
        service: String,
        /// This instance's id (one path segment), e.g. HOST:PORT
        id: String,
        /// The instance's metadata (empty if omitted; '-' reads stdin)
        data: Option<OsString>,
        /// The registry's root node
        #[arg(long, value_name = "PATH", default_value = baton::recipes::registry::DEFAULT_ROOT)]
        root: String,
        #[command(flatten)]
        session: SessionArgs,
        /// A command to run while registered, and its arguments, after '--'
        #[arg(last = true, value_name = "CMD")]
        command: Vec<OsString>,
    },

    /// List the registered instances of SERVICE, one 'ID DATA' line each, sorted by id
    ///
    /// DATA is the instance's metadata as text, with control characters escaped (\n, \t,
    /// \u{1b}, ...), or 'base64:' and its base64 if it is not UTF-8.
    Discover {
        /// The service's name
        service: String,
        /// The registry's root node
        #[arg(long, value_name = "PATH", default_value = baton::recipes::registry::DEFAULT_ROOT)]
        root: String,
        /// Print one JSON array per set instead: [{"id", "data", "encoding"}] with "data" as
        /// for 'baton get --json'
        #[arg(long)]
        json: bool,
        /// Print the set again after every change (text: each set ends with an empty line)
        #[arg(long)]
        watch: bool,
        /// With --watch: exit (status 0) after N sets, the first included
        #[arg(long, value_name = "N", requires = "watch")]
        count: Option<u64>,
    },

    /// Internal: the guard process of a process wrapper (kills a process group if its
    /// wrapper dies)
    #[command(name = "__guard", hide = true)]
    Guard,
}

/// The session options of the commands that hold something while a command runs.
#[derive(Debug, Clone, Args)]
pub struct SessionArgs {
    /// The session timeout to ask for (the server bounds it, by default to 2s–60s): how long
    /// the server keeps a session that has gone silent, or, for a normal session, whose
    /// connection was lost
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub session_timeout: Duration,
    /// Use a normal, resumable session even on a Unix socket: it survives a short loss of the
    /// connection (a daemon restart), but the lock of a killed baton is freed only once the
    /// session times out
    #[arg(long)]
    pub resumable: bool,
}

/// What 'baton barrier' does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BarrierAction {
    /// Raise the barrier
    Set,
    /// Lower the barrier, releasing every waiter
    Remove,
    /// Wait until the barrier is lowered
    Wait,
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Append an item (a persistent sequential node under PATH) and print its node's path
    Put {
        /// The queue's node (created if missing)
        path: String,
        /// The item's data ('-' reads stdin)
        data: OsString,
    },
    /// Remove the oldest item and write its data to stdout, as raw bytes
    ///
    /// Waits while the queue is empty. Each item goes to exactly one taker, however many
    /// compete. Exit status 5 if no item came within --timeout (or at once, with
    /// --nonblock).
    Take {
        /// The queue's node (created if missing)
        path: String,
        /// Give up (exit status 5) if no item comes within DURATION
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        timeout: Option<Duration>,
        /// Give up (exit status 5) at once if the queue is empty
        #[arg(long, short = 'n', conflicts_with = "timeout")]
        nonblock: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Print the server's role, epoch, last zxid, replication peer and lag, and counts
    Status {
        /// One JSON object (at least "role", "epoch" and "last_zxid")
        #[arg(long)]
        json: bool,
    },
    /// Make the standby at --addr a writable primary with a new epoch; prints how far behind
    /// the old primary it knew itself to be
    Promote,
    /// Have the server write a consistent copy of its store to FILE on the server's host
    /// (FILE must not exist; writes go on meanwhile). Restore by starting a daemon on a fresh
    /// data directory with `batond --restore FILE`
    Backup {
        /// Where the server writes the copy (an absolute path on the server's host)
        file: String,
    },
    /// Print the transactions in a recovery file: the divergent tail an old primary set aside
    /// when it rejoined as a standby (read locally; needs no server)
    Recovery {
        /// The recovery file (recovery-FIRST-LAST.txns in the data directory)
        file: std::path::PathBuf,
        /// One JSON object per transaction
        #[arg(long)]
        json: bool,
    },
}

/// ACL entries, shown in the help of 'baton acl'.
const ACL_HELP: &str = "\
An ACL is a list of PRINCIPAL:PERMS entries. PRINCIPAL is anyone, uid:N, gid:N, token:NAME,
cert:NAME, or creator (the caller's own identity: its uid, token or certificate name). PERMS
are letters of rwcda, or all: r read data, children and the ACL; w set data; c create and
d delete children; a change the ACL (on /, also the admin commands).

Example: baton acl set /app uid:1000:all gid:100:r";

#[derive(Debug, Subcommand)]
pub enum AclCommand {
    /// Print a node's ACL, one entry per line
    Get {
        /// The node's path
        path: String,
        /// One JSON object: "acl" (the entries) and "aversion" (how often it changed)
        #[arg(long)]
        json: bool,
    },
    /// Replace a node's ACL (needs the admin permission on it)
    Set {
        /// The node's path
        path: String,
        /// The new entries (PRINCIPAL:PERMS; several, or comma-separated)
        #[arg(required = true, value_name = "ENTRY")]
        entries: Vec<String>,
        /// Only if the ACL's version (aversion) is N
        #[arg(long, value_name = "N")]
        version: Option<i32>,
    },
    /// Print who the server takes this client to be
    Whoami,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token named NAME: writes NAME:SECRET to FILE (mode 0600, must not exist) for
    /// the client, and prints the verifier line to add to the daemon's tokens_file. The
    /// secret is never stored on the server nor sent over the network
    New {
        /// The token's name, as ACLs name it (token:NAME)
        name: String,
        /// Where the client's token goes
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum CounterCommand {
    /// Add N (which may be negative) atomically and print the new value
    Add {
        /// The counter's node (a missing one counts as 0 and is created)
        path: String,
        /// The amount to add
        #[arg(allow_negative_numbers = true)]
        n: i64,
    },
    /// Print the counter's value (0 if its node does not exist)
    Get {
        /// The counter's node
        path: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn kind_flags_are_exclusive() {
        let err = Cli::try_parse_from(["baton", "create", "/a", "--ephemeral", "--container"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let ok = Cli::try_parse_from(["baton", "create", "/a", "x", "--ttl", "500ms"]).unwrap();
        assert!(matches!(
            ok.command,
            Command::Create { ttl: Some(d), .. } if d == Duration::from_millis(500)
        ));
    }

    #[test]
    fn addr_is_global() {
        let cli = Cli::try_parse_from(["baton", "ls", "/", "--addr", "h:1"]).unwrap();
        assert_eq!(cli.addr, "h:1");
    }

    #[test]
    fn lock_takes_the_command_after_a_double_dash() {
        let cli = Cli::try_parse_from(["baton", "lock", "/l", "--nonblock", "--", "sh", "-c", "exit 7"]).unwrap();
        let Command::Lock { path, nonblock, command, grace, session, .. } = cli.command else { panic!() };
        assert_eq!((path.as_str(), nonblock, grace), ("/l", true, Duration::from_secs(2)));
        assert_eq!(command, ["sh", "-c", "exit 7"]);
        assert_eq!((session.session_timeout, session.resumable), (Duration::from_secs(10), false));
        for bad in [
            &["baton", "lock", "/l"][..],
            &["baton", "lock", "/l", "sh"],
            &["baton", "lock", "/l", "-n", "--timeout", "1s", "--", "true"],
        ] {
            assert_eq!(Cli::try_parse_from(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn elect_needs_a_command_unless_observing() {
        assert!(Cli::try_parse_from(["baton", "elect", "/e", "--observe", "--count", "2"]).is_ok());
        assert!(Cli::try_parse_from(["baton", "elect", "/e", "--id", "a", "--", "true"]).is_ok());
        for bad in [&["baton", "elect", "/e"][..], &["baton", "elect", "/e", "--observe", "--", "true"]] {
            assert_eq!(Cli::try_parse_from(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
        let count_without_observe = Cli::try_parse_from(["baton", "elect", "/e", "--count", "1", "--", "true"]);
        assert!(count_without_observe.unwrap().validate().is_err());
    }

    #[test]
    fn grace_must_be_shorter_than_the_session_timeout() {
        let ok = Cli::try_parse_from(["baton", "lock", "/l", "--grace", "1s", "--session-timeout", "3s", "--", "x"]);
        assert_eq!(ok.unwrap().validate(), Ok(()));
        let bad = Cli::try_parse_from(["baton", "elect", "/e", "--grace", "10s", "--", "x"]).unwrap();
        assert!(bad.validate().unwrap_err().contains("--grace"));
    }

    #[test]
    fn wait_conditions_are_exclusive() {
        assert!(Cli::try_parse_from(["baton", "wait", "/a", "--value", "v", "--timeout", "1s"]).is_ok());
        let err = Cli::try_parse_from(["baton", "wait", "/a", "--gone", "--exists"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn counter_add_takes_negative_numbers() {
        let cli = Cli::try_parse_from(["baton", "counter", "add", "/c", "-5"]).unwrap();
        assert!(matches!(cli.command, Command::Counter { action: CounterCommand::Add { n: -5, .. } }));
    }
}
