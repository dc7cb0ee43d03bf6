//! Online backups: a consistent copy of the store written off the engine thread from one
//! redb read transaction, so commits go on meanwhile. The requesting connection's later
//! requests wait (parked) so its replies stay in order.

use super::{ConnId, Engine, EngineInput, Output};
use baton_proto::{ErrorCode, ErrorReply, Op, Response, ServerMessage};
use std::path::PathBuf;
use tracing::{info, warn};

impl Engine {
    pub(super) fn start_backup(&mut self, conn: ConnId, id: u64, path: String) {
        let Some(inputs) = self.inputs.clone() else {
            let error = ErrorReply::new(ErrorCode::Internal, "backups are not available in this engine");
            return self.backup_done(conn, id, Err(error));
        };
        if let Some(link) = self.conns.get_mut(&conn) {
            link.parked = Some(std::collections::VecDeque::new());
        }
        let reader = self.store.reader();
        let started = std::time::Instant::now();
        let spawned = std::thread::Builder::new().name("backup".into()).spawn(move || {
            let target = PathBuf::from(&path);
            let result = match reader.backup_to(&target) {
                Ok((last_zxid, nodes)) => {
                    let bytes = std::fs::metadata(&target).map_or(0, |m| m.len());
                    info!(path, %last_zxid, nodes, bytes, took_ms = started.elapsed().as_millis() as u64, "backup written");
                    Ok(Response::BackedUp { last_zxid, nodes, bytes })
                }
                Err(e) => {
                    warn!(path, error = %e, "backup failed");
                    Err(ErrorReply::new(ErrorCode::InvalidArgument, e.to_string()))
                }
            };
            let _ = inputs.blocking_send(EngineInput::BackupDone { conn, id, result });
        });
        if let Err(e) = spawned {
            self.backup_done(
                conn,
                id,
                Err(ErrorReply::new(ErrorCode::Internal, format!("cannot start a backup: {e}"))),
            );
        }
    }

    /// Answers the backup request, then the requests that waited behind it, in order.
    pub(super) fn backup_done(&mut self, conn: ConnId, id: u64, result: Result<Response, ErrorReply>) {
        let zxid = self.sm.last_zxid();
        let message = ServerMessage::Reply { id, zxid, result };
        self.outputs.push(Output::Reply {
            conn,
            message,
            op: super::op_index(&Op::Backup { path: String::new() }),
            round: self.round,
        });
        let parked = self.conns.get_mut(&conn).and_then(|link| link.parked.take()).unwrap_or_default();
        for request in parked {
            self.request(conn, request);
        }
    }
}
