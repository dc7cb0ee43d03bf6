//! Plain reads (get, exists, children without a watch; ACLs, counts, multi-reads) answered on
//! the connection's own task from the state the engine publishes between rounds, instead of a
//! round trip through the engine's thread.
//!
//! Why the guarantees hold:
//! - **Linearizable, durable**: the state is only readable between rounds (see
//!   `engine::StateView`), when everything in it is committed and every write whose reply was
//!   released is in it. A reader that finds a round running asks the engine instead.
//! - **Events before replies**: a round announces its events to their connections before it
//!   lets readers in, and a read is answered here only once this connection's writer has
//!   taken every announced event off the outbox; its reply goes on the same outbox after
//!   them, which is written in order. It is queued before the state is let go, so a later
//!   round's events come after it (a client never sees an event, then older state).
//! - **Session order**: a request is answered here only when the connection has no earlier
//!   request still with the engine (every one it handed over has had its reply written), so
//!   the reply cannot overtake an earlier reply, and it sees the effect of every earlier write.
//!   Once one request goes to the engine, the following ones do too until it has answered.

use crate::engine::{ConnLink, StateView};
use crate::wire;
use baton_proto::SessionId;
use baton_proto::message::{Request, ServerMessage};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use tokio::sync::mpsc;
use tracing::debug;

pub(super) struct LocalReads {
    state: StateView,
    link: Arc<ConnLink>,
    session: SessionId,
    outbox: mpsc::Sender<ServerMessage>,
    queued_bytes: Arc<AtomicUsize>,
    outbound_bytes_max: usize,
    /// Requests taken off the connection so far.
    taken: u64,
    /// The number (in `taken`) of the last request handed to the engine.
    last_routed: u64,
}

impl LocalReads {
    pub fn new(
        state: StateView,
        link: Arc<ConnLink>,
        session: SessionId,
        outbox: mpsc::Sender<ServerMessage>,
        (queued_bytes, outbound_bytes_max): (Arc<AtomicUsize>, usize),
    ) -> Self {
        LocalReads { state, link, session, outbox, queued_bytes, outbound_bytes_max, taken: 0, last_routed: 0 }
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
            // Over the byte budget or a full outbox: the engine decides (it cuts slow clients
            // off).
            let queued = self.queued_bytes.fetch_add(weight, Ordering::AcqRel) + weight <= self.outbound_bytes_max
                && self.outbox.try_send(message).is_ok();
            if !queued {
                self.queued_bytes.fetch_sub(weight, Ordering::AcqRel);
            }
            queued
        };
        if !self.state.answer(self.session, &self.link, &request.op, queue) {
            return false;
        }
        self.state.record(&request.op, started.elapsed());
        debug!(id = request.id, "read answered by its connection");
        true
    }
}
