//! The command line: flags, subcommands and their help texts (clap derive). Parsing only.

use clap::{ArgGroup, Parser, Subcommand};
use std::ffi::OsString;
use std::time::Duration;

const AFTER_HELP: &str = "\
DATA arguments may be '-' to read the data from standard input.

Each invocation opens a normal session (10 s timeout) and closes it before exiting.
Set BATON_LOG (e.g. BATON_LOG=debug) to see the client's log on stderr.

Exit status:
  0  success
  1  any other error (cannot connect, session expired, refused by the server, ...)
  2  usage error
  3  no such node
  4  version conflict, or the node already exists

Errors are printed to stderr as 'baton: <message>'.";

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

    #[command(subcommand)]
    pub command: Command,
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
}
