//! The subcommands: each opens nothing itself, it gets a connected [`Client`], does its work
//! and prints through [`crate::output`]. [`run`] connects, dispatches and always closes the
//! session before returning.

use crate::args::{AdminCommand, Cli, Command};
use crate::{access, admin, output, registrar, transfer, verbs, wrappers};
use anyhow::{Context as _, Result};
use baton::proto::path;
use baton::{Client, ClientBuilder, CreateOptions, ErrorCode, SESSION_TIMEOUT_DEFAULT, TlsClient, Token};
use std::ffi::OsString;
use std::io::{Read as _, Write};
use std::os::unix::ffi::OsStringExt as _;
use std::process::ExitCode;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};

/// How long to wait for the server to confirm the close (it may be unreachable, e.g. after
/// an interrupted `watch` during a reconnect); past it the session simply times out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects, runs the command and closes the session (also when the command failed). The
/// process wrappers manage their sessions themselves.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let Cli { addr, token_file, tls, command } = cli;
    if let Command::Token { action } = command {
        access::token(action)?;
        return Ok(ExitCode::SUCCESS);
    }
    let token = token_file.as_deref().map(access::load_token).transpose()?;
    let tls = match (tls.tls_ca, tls.tls_cert, tls.tls_key) {
        (Some(ca), Some(cert), Some(key)) => Some(TlsClient::from_files(&ca, &cert, &key)?),
        _ => None,
    };
    let _ = CREDENTIALS.set((token, tls));
    let command = match command {
        Command::Lock { path, timeout, nonblock, grace, session, command } => {
            let wait = if nonblock { wrappers::Wait::NonBlocking } else { wrappers::Wait::Up(timeout) };
            return wrappers::lock(&addr, &path, wait, grace, &session, &command).await;
        }
        Command::Elect { path, id, grace, session, observe: false, command, .. } => {
            return wrappers::elect(&addr, &path, id, grace, &session, &command).await;
        }
        Command::Admin { action: AdminCommand::Recovery { file, json } } => return admin::recovery(&file, json),
        Command::Register { service, id, data, root, session, command } => {
            let data = data.map(read_data).transpose()?.unwrap_or_default();
            let registration = registrar::Registrant { root, service, id, data };
            return registrar::register(&addr, registration, &session, &command).await;
        }
        Command::Import { under, overwrite } => {
            // Checked whole before connecting: a bad document writes nothing.
            let nodes = transfer::read_document(std::io::stdin().lock(), under.as_deref())?;
            let client = connect(&addr).await?;
            let result = transfer::import(&client, nodes, overwrite).await;
            close(&client).await;
            return result.map(|()| ExitCode::SUCCESS);
        }
        command => command,
    };
    let client = connect(&addr).await?;
    let result = execute(&client, command).await;
    close(&client).await;
    result
}

/// The `--token-file` token and the `--tls-*` settings, read once before anything connects.
static CREDENTIALS: std::sync::OnceLock<(Option<Token>, Option<TlsClient>)> = std::sync::OnceLock::new();

/// A client builder with this tool's name and credentials.
pub fn builder() -> ClientBuilder {
    let mut builder = Client::builder().client_name(client_name());
    if let Some((token, tls)) = CREDENTIALS.get() {
        if let Some(token) = token {
            builder = builder.token(token.clone());
        }
        if let Some(tls) = tls {
            builder = builder.tls(tls.clone());
        }
    }
    builder
}

/// A normal session for one command.
async fn connect(addr: &str) -> Result<Client> {
    Ok(builder().session_timeout(SESSION_TIMEOUT_DEFAULT).connect(addr).await?)
}

/// The name this tool gives the server for its sessions.
pub fn client_name() -> String {
    format!("baton-cli/{}", env!("CARGO_PKG_VERSION"))
}

/// Closes the session, waiting at most [`CLOSE_TIMEOUT`] for the server to confirm.
pub async fn close(client: &Client) {
    match tokio::time::timeout(CLOSE_TIMEOUT, client.close()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "closing the session failed"),
        Err(_) => tracing::warn!("the server did not confirm closing the session; it will time out"),
    }
}

async fn execute(client: &Client, command: Command) -> Result<ExitCode> {
    match command {
        Command::Create { path, data, ephemeral, sequential, container, ttl, acl } => {
            let options = create_options(ephemeral, container, ttl, sequential);
            let data = data.map(read_data).transpose()?.unwrap_or_default();
            let acl = acl.map(|acl| access::parse_entries(&[acl])).transpose()?.unwrap_or_default();
            let (created, _) = client.create_with_acl(&path, &data, options, &acl).await.map_err(|e| at(&path, e))?;
            print_line(&created)?;
        }
        Command::Get { path, stat, json } => get(client, &path, stat, json).await?,
        Command::Set { path, data, version } => {
            let data = read_data(data)?;
            client.set(&path, &data, version).await.map_err(|e| at(&path, e))?;
        }
        Command::Rm { path, version, recursive } => {
            if recursive {
                delete_tree(client, &path, version).await?;
            } else {
                client.delete(&path, version).await.map_err(|e| at(&path, e))?;
            }
        }
        Command::Ls { path, json } => ls(client, &path, json).await?,
        Command::Stat { path, json } => stat(client, &path, json).await?,
        Command::Tree { path } => tree(client, &path).await?,
        Command::Export { path, ephemeral } => transfer::export(client, &path, ephemeral).await?,
        Command::Watch { path, recursive, count, json } => return watch(client, &path, recursive, count, json).await,
        Command::Wait { path, exists: _, gone, value, timeout } => {
            let condition = match value {
                Some(value) => verbs::Condition::Value(read_data(value)?),
                None if gone => verbs::Condition::Gone,
                None => verbs::Condition::Exists,
            };
            return verbs::wait(client, &path, &condition, timeout).await;
        }
        Command::Barrier { path, action, timeout } => return verbs::barrier(client, &path, action, timeout).await,
        Command::Queue { action } => return verbs::queue(client, action).await,
        Command::Counter { action } => verbs::counter(client, action).await?,
        Command::Admin { action } => admin::run(client, action).await?,
        Command::Acl { action } => access::acl(client, action).await?,
        Command::Discover { service, root, json, watch, count } => {
            let how = if watch { verbs::Discovery::Watch(count) } else { verbs::Discovery::Once };
            return verbs::discover(client, &root, &service, json, how).await;
        }
        Command::Elect { path, json, count, .. } => return wrappers::observe(client, &path, json, count).await,
        Command::Lock { .. }
        | Command::Register { .. }
        | Command::Import { .. }
        | Command::Guard
        | Command::Token { .. } => {
            anyhow::bail!("internal error: this subcommand is not run here")
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn create_options(ephemeral: bool, container: bool, ttl: Option<Duration>, sequential: bool) -> CreateOptions {
    let options = match (ephemeral, container, ttl) {
        (true, _, _) => CreateOptions::ephemeral(),
        (_, true, _) => CreateOptions::container(),
        (_, _, Some(ttl)) => CreateOptions::ttl(ttl),
        _ => CreateOptions::persistent(),
    };
    if sequential { options.sequential() } else { options }
}

/// A DATA argument's bytes: stdin for `-`, else the argument itself (any bytes).
pub fn read_data(arg: OsString) -> Result<Vec<u8>> {
    if arg == "-" {
        let mut data = Vec::new();
        std::io::stdin().read_to_end(&mut data).context("reading data from stdin")?;
        Ok(data)
    } else {
        Ok(arg.into_vec())
    }
}

/// `err` about `path`, naming the path unless the server's message already does.
pub fn at(path: &str, err: baton::Error) -> anyhow::Error {
    let named = matches!(&err, baton::Error::Server { message, .. } if message.contains(path));
    let err = anyhow::Error::new(err);
    if named { err } else { err.context(path.to_owned()) }
}

pub fn print_line(line: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

async fn get(client: &Client, path: &str, with_stat: bool, json: bool) -> Result<()> {
    let (data, stat) = client.get(path).await.map_err(|e| at(path, e))?;
    if json {
        return print_line(&output::node_json(path, &data, &stat).to_string());
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&data)?;
    out.flush()?;
    if with_stat {
        eprint!("{}", output::stat_text(&stat));
    }
    Ok(())
}

async fn ls(client: &Client, path: &str, json: bool) -> Result<()> {
    let children = client.children(path).await.map_err(|e| at(path, e))?;
    if json {
        return print_line(&serde_json::to_string(&children)?);
    }
    let mut out = std::io::stdout().lock();
    for child in children {
        writeln!(out, "{child}")?;
    }
    out.flush()?;
    Ok(())
}

async fn stat(client: &Client, path: &str, json: bool) -> Result<()> {
    let Some(stat) = client.exists(path).await.map_err(|e| at(path, e))? else {
        return Err(at(path, baton::Error::Server { code: ErrorCode::NoNode, message: String::new() }));
    };
    if json {
        return print_line(&output::stat_json(&stat).to_string());
    }
    let mut out = std::io::stdout().lock();
    out.write_all(output::stat_text(&stat).as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Prints the subtree under `root` depth first, with an explicit stack (no recursion).
/// Nodes deleted while walking are skipped.
async fn tree(client: &Client, root: &str) -> Result<()> {
    let mut out = std::io::stdout();
    let mut stack = vec![(root.to_owned(), 0_usize)];
    while let Some((node, depth)) = stack.pop() {
        let children = match client.children(&node).await {
            Ok(children) => children,
            Err(e) if e.is_no_node() && depth > 0 => continue,
            Err(e) => return Err(at(&node, e)),
        };
        writeln!(out, "{}", output::tree_line(&node, depth))?;
        for child in children.iter().rev() {
            stack.push((path::join(&node, child), depth + 1));
        }
    }
    out.flush()?;
    Ok(())
}

/// Deletes `root` and everything below it, children first: lists the subtree breadth first,
/// then deletes in reverse. `version` applies to `root` only; nodes already gone are fine.
async fn delete_tree(client: &Client, root: &str, version: Option<i32>) -> Result<()> {
    let mut nodes = vec![root.to_owned()];
    let mut next = 0;
    while let Some(node) = nodes.get(next).cloned() {
        next += 1;
        match client.children(&node).await {
            Ok(children) => nodes.extend(children.iter().map(|c| path::join(&node, c))),
            Err(e) if e.is_no_node() && node != root => {}
            Err(e) => return Err(at(&node, e)),
        }
    }
    for node in nodes.iter().skip(1).rev() {
        match client.delete(node, None).await {
            Ok(()) => {}
            Err(e) if e.is_no_node() => {}
            Err(e) => return Err(at(node, e)),
        }
    }
    if root == "/" {
        return Ok(());
    }
    client.delete(root, version).await.map_err(|e| at(root, e))
}

/// Prints a line per event until `count` events, an error, or SIGINT/SIGTERM (which exits
/// with 128 + the signal number, after closing the session).
async fn watch(client: &Client, path: &str, recursive: bool, count: Option<u64>, json: bool) -> Result<ExitCode> {
    let mut interrupt = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    let mut watcher = client.watch(path, recursive).await.map_err(|e| at(path, e))?;
    eprintln!("baton: watching {path}");
    let mut seen = 0_u64;
    while count.is_none_or(|n| seen < n) {
        let event = tokio::select! {
            event = watcher.next() => event.map_err(|e| at(path, e))?,
            _ = interrupt.recv() => return Ok(ExitCode::from(128 + 2)),
            _ = terminate.recv() => return Ok(ExitCode::from(128 + 15)),
        };
        print_line(&output::event_line(&event, json))?;
        seen += 1;
    }
    Ok(ExitCode::SUCCESS)
}
