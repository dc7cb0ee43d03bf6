//! `baton admin`: the server's status, promotion of a standby, and reading the recovery
//! files in which a rejoining old primary sets aside its divergent tail.
//!
//! A recovery file is a sequence of frames, each a u32 little-endian length followed by one
//! log record exactly as stored (a format version byte, then the postcard `Txn`).

use crate::args::AdminCommand;
use anyhow::{Context as _, Result, bail};
use baton::Client;
use baton::proto::message::{Role, StatusReport};
use baton::proto::txn::decode_record;
use baton::proto::{TxnBody, TxnOp};
use serde_json::json;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

pub async fn run(client: &Client, action: AdminCommand) -> Result<()> {
    match action {
        AdminCommand::Status { json } => {
            let report = client.status().await?;
            let text = if json { status_json(&report).to_string() } else { status_text(&report) };
            println!("{text}");
        }
        AdminCommand::Promote => {
            let promotion = client.promote().await?;
            let behind = promotion.behind_txns.map_or_else(|| "unknown".to_owned(), |n| n.to_string());
            let heard = promotion.primary_zxid.map_or_else(|| "never".to_owned(), |z| z.to_string());
            println!(
                "promoted: epoch {}, applied up to {}; the old primary was last heard at {heard}, {behind} transactions ahead",
                promotion.epoch, promotion.last_zxid
            );
        }
        AdminCommand::Backup { file } => {
            let (zxid, nodes, bytes) = client.backup(&file).await?;
            println!("backed up {nodes} nodes as of {zxid} to {file} ({bytes} bytes)");
        }
        AdminCommand::Recovery { .. } => bail!("a recovery file is read locally, without a server"),
    }
    Ok(())
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Primary => "primary",
        Role::Standby => "standby",
    }
}

fn status_json(r: &StatusReport) -> serde_json::Value {
    let peer = r.peer.as_ref().map(|p| {
        json!({
            "addr": p.addr, "connected": p.connected, "peer_zxid": p.peer_zxid.0,
            "lag_txns": p.lag_txns, "lag_ms": p.lag_ms,
        })
    });
    json!({
        "role": role_name(r.role),
        "epoch": r.epoch,
        "last_zxid": r.last_zxid.0,
        "mode": r.mode.map(|m| format!("{m:?}").to_lowercase()),
        "peer": peer,
        "fenced": r.fenced,
        "sessions": r.sessions,
        "nodes": r.nodes,
        "watches": r.watches,
        "connections": r.connections,
        "uptime_ms": r.uptime_ms,
        "store_bytes": r.store_bytes,
        "digest": format!("{:016x}", r.digest),
        "sync_degraded": r.sync_degraded,
        "log": { "floor": r.log_floor.0, "txns": r.log_txns, "bytes": r.log_bytes },
    })
}

fn status_text(r: &StatusReport) -> String {
    let mut lines = vec![
        format!("role        {}{}", role_name(r.role), if r.fenced { " (fenced: writes refused)" } else { "" }),
        format!("epoch       {}", r.epoch),
        format!("last_zxid   {}", r.last_zxid),
    ];
    if let Some(mode) = r.mode {
        lines.push(format!("mode        {}", format!("{mode:?}").to_lowercase()));
    }
    match &r.peer {
        Some(p) => lines.push(format!(
            "peer        {} ({}), at {}, lag {} txns / {} ms",
            p.addr,
            if p.connected { "connected" } else { "disconnected" },
            p.peer_zxid,
            p.lag_txns,
            p.lag_ms
        )),
        None => lines.push("peer        none".to_owned()),
    }
    lines.push(format!("sessions    {}", r.sessions));
    lines.push(format!("nodes       {}", r.nodes));
    lines.push(format!("watches     {}", r.watches));
    lines.push(format!("connections {}", r.connections));
    lines.push(format!("uptime      {} ms", r.uptime_ms));
    lines.push(format!("store       {} bytes", r.store_bytes));
    lines.push(format!("log         {} txns, {} bytes, after {}", r.log_txns, r.log_bytes, r.log_floor));
    if r.sync_degraded {
        lines.push("ALARM       synchronous replication degraded to asynchronous".to_owned());
    }
    lines.push(format!("digest      {:016x}", r.digest));
    lines.join("\n")
}

/// Prints the transactions of a recovery file.
pub fn recovery(file: &Path, json: bool) -> Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut rest = bytes.as_slice();
    let mut out = std::io::stdout().lock();
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            bail!("truncated frame header in {}", file.display())
        };
        let len = u32::from_le_bytes(*len) as usize;
        let Some((record, tail)) = tail.split_at_checked(len) else { bail!("truncated record in {}", file.display()) };
        let txn = decode_record(record).with_context(|| format!("corrupt record in {}", file.display()))?;
        let ops = describe(&txn.body);
        if json {
            let line = json!({ "zxid": txn.zxid.0, "time_ms": txn.time_ms, "session": txn.session_id.0, "ops": ops });
            writeln!(out, "{line}")?;
        } else {
            writeln!(out, "{} session {} {}", txn.zxid, txn.session_id, ops.join("; "))?;
        }
        rest = tail;
    }
    Ok(ExitCode::SUCCESS)
}

/// "N bytes", or "null data" (ZooKeeper clients may write null).
fn byte_count(data: Option<&[u8]>) -> String {
    data.map_or_else(|| "null data".to_owned(), |d| format!("{} bytes", d.len()))
}

fn describe(body: &TxnBody) -> Vec<String> {
    let op = |op: &TxnOp| match op {
        TxnOp::Create { path, data, kind, .. } => format!("create {path} ({kind:?}, {})", byte_count(data.as_deref())),
        TxnOp::Delete { path } => format!("delete {path}"),
        TxnOp::Set { path, data } => format!("set {path} ({})", byte_count(data.as_deref())),
        TxnOp::Check { path, version } => format!("check {path} at version {version}"),
        TxnOp::SetAcl { path, acl } => {
            let entries: Vec<String> = acl.iter().map(ToString::to_string).collect();
            format!("set the ACL of {path} to {}", entries.join(","))
        }
    };
    match body {
        TxnBody::CreateSession { timeout_ms, .. } => vec![format!("open session ({timeout_ms} ms)")],
        TxnBody::CloseSession { deletes } => {
            std::iter::once("close session".to_owned()).chain(deletes.iter().map(|p| format!("delete {p}"))).collect()
        }
        TxnBody::Write(ops) => ops.iter().map(op).collect(),
        TxnBody::NewEpoch { epoch } => vec![format!("begin epoch {epoch}")],
    }
}
