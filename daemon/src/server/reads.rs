//! Plain reads (get, exists, children without a watch; ACLs, counts, multi-reads) answered on
//! the connection's own task from the state the engine publishes between rounds, instead of a
//! round trip through the engine's thread.
//!
//! Why the guarantees hold:
//! - **Linearizable, durable**: the state is only readable between rounds (see
//!   `engine::StateView`), when everything in it is committed and every write whose reply was
//!   released is in it — or while a round is synced, as the state was before that round
//!   (`get`, `exists` and `children`), which is just as committed and complete: none of the
//!   round's writes has been acknowledged. A reader that finds a round running, or needs more
//!   than the tree during a sync, asks the engine instead.
//! - **Events before replies**: a round announces its events to their connections before it
//!   lets readers in, and a read is answered here only once this connection's writer has
//!   taken every announced event off the outbox; its reply goes on the same outbox after
//!   them, which is written in order. It is queued before the state is let go, so a later
//!   round's events come after it (a client never sees an event, then older state).
//!
//! The answers wait in the connection's own queue ([`Answered`]), which its writer empties
//! before taking anything off the outbox: the engine can only have put there what came after
//! them. Unlike the outbox, this queue wakes no one — its only producer runs on the writer's
//! task — so an answer costs no extra scheduling of the task (nor a wake-up of an idle
//! worker thread to steal it).
//! - **Session order**: a request is answered here only when the connection has no earlier
//!   request still with the engine (every one it handed over has had its reply written), so
//!   the reply cannot overtake an earlier reply, and it sees the effect of every earlier write.
//!   Once one request goes to the engine, the following ones do too until it has answered.

use crate::engine::{ConnLink, StateView};
use crate::wire;
use baton_proto::SessionId;
use baton_proto::message::{Request, ServerMessage};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::Instant;
use tracing::debug;

/// Replies answered on the connection, waiting for its writer (bounded by the requests in
/// flight).
#[derive(Default)]
pub(super) struct Answered(Mutex<VecDeque<ServerMessage>>);

impl Answered {
    fn queue(&self) -> MutexGuard<'_, VecDeque<ServerMessage>> {
        // Only the connection's task takes it, never across an await: never contended.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn pop(&self) -> Option<ServerMessage> {
        self.queue().pop_front()
    }

    /// Ready once something is queued. It registers no waker: it must be polled right after
    /// the request reader, the only producer, in the same `select!`.
    pub async fn ready(&self) {
        std::future::poll_fn(|_| if self.queue().is_empty() { Poll::Pending } else { Poll::Ready(()) }).await;
    }
}

pub(super) struct LocalReads<'a> {
    state: StateView,
    link: Arc<ConnLink>,
    session: SessionId,
    answered: &'a Answered,
    queued_bytes: Arc<AtomicUsize>,
    outbound_bytes_max: usize,
    /// Requests taken off the connection so far.
    taken: u64,
    /// The number (in `taken`) of the last request handed to the engine.
    last_routed: u64,
}

impl<'a> LocalReads<'a> {
    pub fn new(
        state: StateView,
        link: Arc<ConnLink>,
        session: SessionId,
        answered: &'a Answered,
        (queued_bytes, outbound_bytes_max): (Arc<AtomicUsize>, usize),
    ) -> Self {
        LocalReads { state, link, session, answered, queued_bytes, outbound_bytes_max, taken: 0, last_routed: 0 }
    }

    /// Takes the next request off the connection (`None`: one only the engine can answer),
    /// `unanswered` replies being still unwritten before it. True if it was answered here;
    /// false if it must go to the engine, which it then counts as handed over.
    pub fn take(&mut self, request: Option<&Request>, unanswered: usize) -> bool {
        // Replies are written in request order, so this many requests are fully answered.
        let answered = self.taken - unanswered as u64;
        self.taken += 1;
        if let Some(request) = request
            && answered >= self.last_routed
            && self.answer(request)
        {
            return true;
        }
        self.last_routed = self.taken;
        false
    }

    fn answer(&self, request: &Request) -> bool {
        let started = Instant::now();
        let queue = |zxid, result| {
            let message = ServerMessage::Reply { id: request.id, zxid, result };
            let weight = wire::weight(&message);
            // Over the byte budget: the engine decides (it cuts slow clients off).
            if self.queued_bytes.fetch_add(weight, Ordering::AcqRel) + weight > self.outbound_bytes_max {
                self.queued_bytes.fetch_sub(weight, Ordering::AcqRel);
                return false;
            }
            self.answered.queue().push_back(message);
            true
        };
        if !self.state.answer(self.session, &self.link, &request.op, queue) {
            return false;
        }
        self.state.record(&request.op, started.elapsed());
        debug!(id = request.id, "read answered by its connection");
        true
    }
}
