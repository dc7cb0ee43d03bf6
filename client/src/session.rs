//! The background task that owns the connection and the session: it sends requests (many in
//! flight), matches replies, dispatches watch events, pings when idle, and on a lost
//! connection suspends the session, reconnects with backoff, resumes it and restores its
//! watches. It ends when the session expires or closes, or when every handle is dropped.
//!
//! Only this task touches the connection, the in-flight queue and the watch registry, so
//! none of them needs a lock. Handles talk to it through a bounded channel.

use crate::addr::Endpoint;
use crate::command::{Command, InFlight, Pending, Purpose, response_zxid};
use crate::connection::{ConnError, Connection};
use crate::error::Error;
use crate::options::{Options, RECONNECT_BACKOFF_MAX, RECONNECT_BACKOFF_MIN};
use crate::state::{SessionInfo, SessionState};
use crate::watch::{WatchEnd, WatchRegistry, WatchRequest};
use baton_proto::{
    ErrorCode, ErrorReply, Hello, MAGIC, Op, PROTOCOL_VERSION, Request, Response, ServerHello, ServerMessage,
    SessionRequest, WatchEvent, Zxid,
};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tracing::{debug, info, warn};

/// Most commands taken off the channel in one go before the connection is read again.
const COMMAND_BATCH_MAX: usize = 64;
/// The shortest ping interval, whatever the timeout, so a tiny timeout cannot spin.
const PING_INTERVAL_MIN: Duration = Duration::from_millis(10);

/// How a connected phase ended.
enum Outcome {
    /// The connection is gone; the session may live on.
    Lost(String),
    /// The session is over: `Expired` or `Closed`.
    Ended(SessionState),
}

/// Everything the session task owns.
pub(crate) struct SessionTask {
    options: Options,
    endpoints: Vec<Endpoint>,
    commands: mpsc::Receiver<Command>,
    state: watch::Sender<SessionState>,
    info: Arc<SessionInfo>,
    /// Woken when a watcher is dropped, to sweep the registry.
    gc: Arc<Notify>,
    secret: u64,
    timeout: Duration,
    watches: WatchRegistry,
    in_flight: VecDeque<InFlight>,
    /// Paths with watch-setting requests in flight, and how many: their watches must not be
    /// removed on the server until the replies are in.
    watch_requests: HashMap<String, usize>,
    /// Requests received while reconnecting, sent once the session is resumed.
    backlog: VecDeque<Command>,
    next_id: u64,
    /// The earliest moment the server may expire the session: the timeout after the send
    /// time of the newest request it has answered.
    alive_until: Instant,
    last_sent: Instant,
    last_received: Instant,
    /// A `CloseSession` was sent: no further requests are taken.
    closing: bool,
    /// Every handle was dropped.
    handles_gone: bool,
}

/// The channels and shared facts a new session task is built from.
pub(crate) struct TaskParts {
    pub options: Options,
    pub endpoints: Vec<Endpoint>,
    pub commands: mpsc::Receiver<Command>,
    pub state: watch::Sender<SessionState>,
    pub info: Arc<SessionInfo>,
    pub gc: Arc<Notify>,
}

impl SessionTask {
    /// A task for the session `server` just started; `started` is when its hello was sent.
    pub fn new(parts: TaskParts, server: &ServerHello, started: Instant) -> Self {
        let timeout = Duration::from_millis(u64::from(server.timeout_ms));
        SessionTask {
            options: parts.options,
            endpoints: parts.endpoints,
            commands: parts.commands,
            state: parts.state,
            info: parts.info,
            gc: parts.gc,
            secret: server.secret,
            timeout,
            watches: WatchRegistry::default(),
            in_flight: VecDeque::new(),
            watch_requests: HashMap::new(),
            backlog: VecDeque::new(),
            next_id: 1,
            alive_until: started + timeout,
            last_sent: started,
            last_received: started,
            closing: false,
            handles_gone: false,
        }
    }

    /// Runs the session over `conn` (fresh from the handshake) and its successors until the
    /// session ends.
    pub async fn run(mut self, conn: Connection) {
        let mut conn = conn;
        let mut restore_from = None;
        loop {
            let reason = match self.serve(&mut conn, restore_from).await {
                Outcome::Ended(state) => return self.finish(state),
                Outcome::Lost(reason) => reason,
            };
            warn!(peer = conn.peer(), %reason, "connection lost");
            self.fail_in_flight();
            if self.closing || self.handles_gone {
                return self.finish(SessionState::Closed);
            }
            if self.options.connection_bound {
                return self.finish(SessionState::Expired);
            }
            self.set_state(SessionState::Suspended { expires_at: self.alive_until });
            // Replay from what was seen before the resume, not from the resuming server's
            // newer zxid: the changes in between are exactly the ones the watches missed.
            let seen = self.info.last_zxid();
            match self.reconnect().await {
                Ok(next) => conn = next,
                Err(state) => return self.finish(state),
            }
            restore_from = Some(seen);
        }
    }

    /// Serves one connection until it is lost or the session ends. After a resume,
    /// `restore_from` is the last zxid seen before it, from which watches are restored.
    async fn serve(&mut self, conn: &mut Connection, restore_from: Option<Zxid>) -> Outcome {
        self.last_received = Instant::now();
        if let Some(last_zxid) = restore_from {
            self.send_restore(conn, last_zxid);
        }
        // Requests queued after a close stay in the backlog; `finish` fails them.
        while !self.closing {
            let Some(command) = self.backlog.pop_front() else { break };
            self.send_command(conn, command);
        }
        self.set_state(SessionState::Connected);
        // One timer for both deadlines, armed at the earlier and re-armed only when it fires:
        // the deadlines only move later (as requests go out and messages come in), so a timer
        // that fires early just finds them moved. Re-arming per message cost timer-wheel work
        // on every request.
        let timer = sleep_until(self.ping_at().min(self.silent_at()));
        tokio::pin!(timer);
        // Kept across turns of the loop, like the timer: a fresh `notified()` on every turn
        // took the notifier's lock twice per message (to join its waiters and to leave).
        let gc = self.gc.clone();
        let swept = gc.notified();
        tokio::pin!(swept);
        loop {
            // What the socket does not take now goes while the read below waits: the session
            // keeps reading whatever its requests wait for (see `connection`).
            if let Err(e) = conn.send_now() {
                return Outcome::Lost(e.to_string());
            }
            let accept =
                !self.closing && !self.handles_gone && self.in_flight.len() < self.options.requests_in_flight_max;
            tokio::select! {
                message = conn.read::<ServerMessage>() => match message {
                    Ok(message) => {
                        if let Some(outcome) = self.on_message(conn, message) {
                            return outcome;
                        }
                    }
                    Err(e) => return Outcome::Lost(e.to_string()),
                },
                command = self.commands.recv(), if accept => match command {
                    Some(command) => self.send_commands(conn, command),
                    None => self.close_on_drop(conn),
                },
                () = &mut swept => {
                    swept.set(gc.notified());
                    for path in self.watches.sweep() {
                        self.remove_server_watch(conn, path);
                    }
                }
                () = &mut timer => {
                    let now = Instant::now();
                    if now >= self.silent_at() {
                        return Outcome::Lost(format!(
                            "no message from the server for {} ms",
                            (self.timeout * 2 / 3).as_millis()
                        ));
                    }
                    if now >= self.ping_at() {
                        self.send_internal(conn, Op::Ping, Purpose::Ping);
                    }
                    timer.as_mut().reset(self.ping_at().min(self.silent_at()));
                }
            }
        }
    }

    /// When to ping: a third of the timeout after the last request sent.
    fn ping_at(&self) -> Instant {
        self.last_sent + (self.timeout / 3).max(PING_INTERVAL_MIN)
    }

    /// When to give the connection up: two thirds of the timeout after the last message.
    fn silent_at(&self) -> Instant {
        self.last_received + self.timeout * 2 / 3
    }

    /// Sends `first` and whatever other commands are already waiting, up to a batch.
    fn send_commands(&mut self, conn: &mut Connection, first: Command) {
        self.send_command(conn, first);
        for _ in 1..COMMAND_BATCH_MAX {
            if self.closing || self.in_flight.len() >= self.options.requests_in_flight_max {
                break;
            }
            match self.commands.try_recv() {
                Ok(command) => self.send_command(conn, command),
                Err(_) => break,
            }
        }
    }

    /// Queues a caller's request on `conn`.
    fn send_command(&mut self, conn: &mut Connection, command: Command) {
        let Command { op, watch, reply } = command;
        if reply.is_closed() {
            // The caller gave up before the request was sent: do not send it at all.
            return;
        }
        let closes_session = matches!(op, Op::CloseSession);
        let id = self.next_id;
        if let Err(e) = conn.queue(&Request { id, op }) {
            let _ =
                reply.send(Err(Error::Server { code: ErrorCode::TooLarge, message: format!("request not sent: {e}") }));
            return;
        }
        // A node `CreateInLine` makes is new, so nothing can be removing watches on its path.
        if let Some(path) = watch.as_ref().and_then(WatchRequest::path) {
            *self.watch_requests.entry(path.to_owned()).or_default() += 1;
        }
        self.closing |= closes_session;
        self.push_in_flight(id, Purpose::Caller(Pending { watch, reply, closes_session }));
    }

    /// Queues one of the task's own requests on `conn`.
    fn send_internal(&mut self, conn: &mut Connection, op: Op, purpose: Purpose) {
        let id = self.next_id;
        match conn.queue(&Request { id, op }) {
            Ok(()) => self.push_in_flight(id, purpose),
            Err(e) => {
                warn!(error = %e, ?purpose, "cannot send an internal request");
                if matches!(purpose, Purpose::Restore) {
                    self.watches.end_all(WatchEnd::NotRestored(ErrorCode::TooLarge));
                }
            }
        }
    }

    fn push_in_flight(&mut self, id: u64, purpose: Purpose) {
        self.next_id += 1;
        let now = Instant::now();
        self.last_sent = now;
        self.in_flight.push_back(InFlight { id, sent_at: now, purpose });
    }

    /// Every handle is gone: close the session so its ephemerals go at once.
    fn close_on_drop(&mut self, conn: &mut Connection) {
        debug!("every handle dropped; closing the session");
        self.handles_gone = true;
        self.closing = true;
        self.send_internal(conn, Op::CloseSession, Purpose::CloseOnDrop);
    }

    /// After a resume: drop the server's watches no local watcher uses, then re-register the
    /// rest and have the server replay what they missed.
    fn send_restore(&mut self, conn: &mut Connection, last_zxid: Zxid) {
        for path in self.watches.sweep() {
            self.remove_server_watch(conn, path);
        }
        // The server forgot the turn watches with the connection, and has no history of turns
        // to replay: their watchers are told to ask again.
        self.watches.reset_turns(last_zxid);
        let watches = self.watches.watch_set();
        if watches.is_empty() {
            return;
        }
        debug!(count = watches.len(), %last_zxid, "restoring watches");
        self.send_internal(conn, Op::RestoreWatches { last_zxid, watches }, Purpose::Restore);
    }

    /// Asks the server to drop its watches on `path`, unless a local watcher or a pending
    /// watch-setting request still needs them.
    fn remove_server_watch(&mut self, conn: &mut Connection, path: String) {
        if self.watches.has_watchers(&path) || self.watch_requests.contains_key(&path) {
            return;
        }
        debug!(%path, "removing the server's watches");
        self.send_internal(conn, Op::RemoveWatches { path }, Purpose::RemoveWatches);
    }

    /// Handles one message from the server.
    fn on_message(&mut self, conn: &mut Connection, message: ServerMessage) -> Option<Outcome> {
        self.last_received = Instant::now();
        match message {
            ServerMessage::Event(event) => {
                self.on_event(conn, &event);
                None
            }
            ServerMessage::Reply { id, zxid, result } => {
                self.info.observe_zxid(zxid);
                self.on_reply(id, result)
            }
            ServerMessage::Closing(reply) => {
                warn!(reason = %reply, "the server is closing the connection");
                Some(match reply.code {
                    ErrorCode::SessionExpired => Outcome::Ended(SessionState::Expired),
                    _ => Outcome::Lost(format!("closed by the server: {reply}")),
                })
            }
        }
    }

    fn on_event(&mut self, conn: &mut Connection, event: &WatchEvent) {
        debug!(path = %event.path, kind = ?event.kind, zxid = %event.zxid, "event");
        self.info.observe_zxid(event.zxid);
        let mut orphans = Vec::new();
        self.watches.dispatch(event, &mut orphans);
        for path in orphans {
            self.remove_server_watch(conn, path);
        }
    }

    fn on_reply(&mut self, id: u64, result: Result<Response, ErrorReply>) -> Option<Outcome> {
        let Some(request) = self.in_flight.pop_front() else {
            return Some(Outcome::Lost(format!("reply {id} to no request")));
        };
        if request.id != id {
            let expected = request.id;
            request.fail(|| Error::ConnectionLoss);
            return Some(Outcome::Lost(format!("reply {id} out of order (expected {expected})")));
        }
        self.alive_until = self.alive_until.max(request.sent_at + self.timeout);
        if let Some(path) = request.watch_path() {
            self.finish_watch_request(path);
        }
        let expired = matches!(&result, Err(e) if e.code == ErrorCode::SessionExpired);
        if let Ok(response) = &result {
            self.info.observe_zxid(response_zxid(response));
        }
        let outcome = match request.purpose {
            Purpose::Caller(pending) => self.complete(pending, result),
            Purpose::Ping => {
                if let Err(e) = result {
                    warn!(error = %e, "ping refused");
                }
                None
            }
            Purpose::Restore => {
                self.on_restored(result);
                None
            }
            Purpose::RemoveWatches => {
                if let Err(e) = result {
                    debug!(error = %e, "removing watches failed");
                }
                None
            }
            Purpose::CloseOnDrop => Some(Outcome::Ended(SessionState::Closed)),
        };
        if expired {
            return Some(Outcome::Ended(SessionState::Expired));
        }
        outcome
    }

    fn finish_watch_request(&mut self, path: &str) {
        if let Some(count) = self.watch_requests.get_mut(path) {
            *count -= 1;
            if *count == 0 {
                self.watch_requests.remove(path);
            }
        }
    }

    /// Answers a caller, registering its watcher first if the request succeeded.
    fn complete(&mut self, pending: Pending, result: Result<Response, ErrorReply>) -> Option<Outcome> {
        let Pending { watch, reply, closes_session } = pending;
        match result {
            Ok(response) => {
                // A reply that leaves no watch: the caller discards its watcher.
                if let Some(watch) = watch.and_then(|watch| watch.resolve(&response)) {
                    if watch.is_abandoned() {
                        // Registered so the next sweep removes the server's watch too.
                        self.gc.notify_one();
                    }
                    self.watches.register(watch);
                }
                let _ = reply.send(Ok(response));
                closes_session.then_some(Outcome::Ended(SessionState::Closed))
            }
            Err(e) => {
                let _ = reply.send(Err(Error::from_reply(e)));
                None
            }
        }
    }

    fn on_restored(&mut self, result: Result<Response, ErrorReply>) {
        match result {
            Ok(Response::WatchesRestored { reset }) => {
                debug!(reset, "watches restored");
            }
            Ok(other) => {
                warn!(reply = crate::command::response_name(&other), "unexpected reply to RestoreWatches");
            }
            Err(e) => {
                warn!(error = %e, "the server refused to restore watches; ending them");
                self.watches.end_all(WatchEnd::NotRestored(e.code));
            }
        }
    }

    /// Publishes `state` if it differs from the current one.
    fn set_state(&self, state: SessionState) {
        self.state.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
    }

    /// Fails every request in flight with `ConnectionLoss`: its fate is unknown.
    fn fail_in_flight(&mut self) {
        for request in self.in_flight.drain(..) {
            request.fail(|| Error::ConnectionLoss);
        }
        self.watch_requests.clear();
    }

    /// The hello that resumes this session.
    fn resume_hello(&self) -> Hello {
        Hello {
            magic: MAGIC,
            protocol_version: PROTOCOL_VERSION,
            client_name: self.options.client_name.clone(),
            session: SessionRequest::Resume { session_id: self.info.session_id(), secret: self.secret },
            last_zxid_seen: self.info.last_zxid(),
            token: None,
        }
    }

    /// Reconnects and resumes the session, trying each address in turn with a growing pause
    /// between rounds, until it works or the session may have expired. Requests arriving
    /// meanwhile wait in the backlog. Returns the final state when it gives up.
    async fn reconnect(&mut self) -> Result<Connection, SessionState> {
        let mut backoff = RECONNECT_BACKOFF_MIN;
        loop {
            for endpoint in self.endpoints.clone() {
                let started = Instant::now();
                if started >= self.alive_until {
                    warn!("the session timed out while disconnected");
                    return Err(SessionState::Expired);
                }
                let limit = self.options.connect_timeout.min(self.alive_until - started);
                let hello = self.resume_hello();
                let opened =
                    Connection::open(&endpoint, &hello, self.options.credentials(), self.options.frame_len_max, limit)
                        .await;
                match opened {
                    Ok((conn, server)) => match self.check_resumed(&server, started) {
                        Ok(()) => {
                            info!(peer = %endpoint, "session resumed");
                            return Ok(conn);
                        }
                        Err(Some(state)) => return Err(state),
                        Err(None) => {}
                    },
                    Err(ConnError::Refused(r)) if r.code == ErrorCode::SessionExpired => {
                        warn!(peer = %endpoint, "the server says the session expired");
                        return Err(SessionState::Expired);
                    }
                    Err(e) => debug!(peer = %endpoint, error = %e, "reconnect attempt failed"),
                }
            }
            let now = Instant::now();
            let pause_until = (now + backoff).min(self.alive_until);
            if !self.wait_collecting(pause_until).await {
                return Err(SessionState::Closed);
            }
            backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
        }
    }

    /// Checks that `server` resumed this session and adopts its terms. `Err(Some(state))`
    /// ends the session; `Err(None)` tries the next server.
    fn check_resumed(&mut self, server: &ServerHello, started: Instant) -> Result<(), Option<SessionState>> {
        if !server.resumed || server.session_id != self.info.session_id() {
            warn!(
                got = %server.session_id,
                "the server did not resume the session; treating it as expired"
            );
            return Err(Some(SessionState::Expired));
        }
        if server.last_zxid < self.info.last_zxid() {
            warn!(
                server = %server.last_zxid,
                seen = %self.info.last_zxid(),
                "the server is behind what this client has seen; trying another"
            );
            return Err(None);
        }
        self.timeout = Duration::from_millis(u64::from(server.timeout_ms));
        self.info.set_timeout(self.timeout);
        self.info.observe_zxid(server.last_zxid);
        self.alive_until = self.alive_until.max(started + self.timeout);
        Ok(())
    }

    /// Waits until `deadline`, putting requests that arrive into the backlog (while it has
    /// room). Returns false if every handle was dropped.
    async fn wait_collecting(&mut self, deadline: Instant) -> bool {
        loop {
            let room = self.backlog.len() < self.options.requests_in_flight_max;
            tokio::select! {
                () = sleep_until(deadline) => return true,
                command = self.commands.recv(), if room => {
                    let Some(command) = command else {
                        self.handles_gone = true;
                        return false;
                    };
                    self.backlog.push_back(command);
                }
            }
        }
    }

    /// Ends the session for good: publishes `state`, fails everything pending and ends every
    /// watcher with the reason.
    fn finish(&mut self, state: SessionState) {
        let expired = state == SessionState::Expired;
        if expired {
            warn!("session expired");
        } else {
            info!("session closed");
        }
        let error = || {
            if expired { Error::SessionExpired } else { Error::Closed }
        };
        self.set_state(state);
        for request in self.in_flight.drain(..) {
            request.fail(error);
        }
        self.commands.close();
        let waiting = std::mem::take(&mut self.backlog);
        for command in waiting.into_iter().chain(std::iter::from_fn(|| self.commands.try_recv().ok())) {
            let _ = command.reply.send(Err(error()));
        }
        self.watches.end_all(if expired { WatchEnd::Expired } else { WatchEnd::Closed });
    }
}
