//! The order a round's outputs go out in: its events first, then the rest.
//!
//! An event usually wakes someone whose answer starts the next round: a lock's next holder
//! releases, a watcher reads. A reply's client mostly just goes on. Sent first, the event's
//! client runs first on a busy machine, and its request reaches the engine before the others'.
//!
//! Each connection still gets its messages in the order the round made them (events before
//! the replies that follow them, DESIGN.md): an event moves ahead only of other connections'
//! outputs, never past one of its own connection's, and nothing moves past a hello's answer
//! (whose connection may be the event's, attached in this round).

use super::{ConnId, Output};
use std::collections::HashSet;

/// `outputs` with each event that no earlier output of its connection precedes moved to
/// the front, in order; the rest keep their order.
pub(super) fn events_first(outputs: Vec<Output>) -> Vec<Output> {
    if !outputs.iter().any(|o| matches!(o, Output::Message(..))) {
        return outputs;
    }
    let mut first = Vec::with_capacity(outputs.len());
    let mut rest = Vec::with_capacity(outputs.len());
    // Connections with an output in `rest`: their later events stay behind it.
    let mut held: HashSet<ConnId> = HashSet::new();
    let mut hello_seen = false;
    for output in outputs {
        match &output {
            Output::Message(conn, _) if !hello_seen && !held.contains(conn) => first.push(output),
            Output::Message(conn, _) | Output::Reply { conn, .. } | Output::Close(conn, _) => {
                held.insert(*conn);
                rest.push(output);
            }
            Output::Hello(..) => {
                hello_seen = true;
                rest.push(output);
            }
        }
    }
    first.append(&mut rest);
    first
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_proto::{ErrorCode, ErrorReply, EventKind, ServerMessage, WatchEvent, Zxid};
    use std::time::Instant;

    fn event(conn: ConnId, zxid: u64) -> Output {
        let event = WatchEvent { path: "/n".into(), kind: EventKind::DataChanged, zxid: Zxid(zxid) };
        Output::Message(conn, ServerMessage::Event(event))
    }

    fn reply(conn: ConnId, id: u64) -> Output {
        let message = ServerMessage::Reply { id, zxid: Zxid(id), result: Err(ErrorReply::new(ErrorCode::NoNode, "")) };
        Output::Reply { conn, message, op: 0, round: Instant::now() }
    }

    /// (connection, "e" or "r" or "c" or "h", event zxid or reply id) of each output.
    fn shape(outputs: &[Output]) -> Vec<(ConnId, &'static str, u64)> {
        outputs
            .iter()
            .map(|o| match o {
                Output::Message(conn, ServerMessage::Event(e)) => (*conn, "e", e.zxid.0),
                Output::Message(conn, _) => (*conn, "m", 0),
                Output::Reply { conn, message: ServerMessage::Reply { id, .. }, .. } => (*conn, "r", *id),
                Output::Reply { conn, .. } => (*conn, "r", 0),
                Output::Close(conn, _) => (*conn, "c", 0),
                Output::Hello(..) => (0, "h", 0),
            })
            .collect()
    }

    #[test]
    fn an_event_goes_ahead_of_other_connections_replies() {
        let round = vec![reply(1, 10), reply(2, 11), event(3, 12), reply(4, 12)];
        assert_eq!(shape(&events_first(round)), vec![(3, "e", 12), (1, "r", 10), (2, "r", 11), (4, "r", 12)]);
    }

    #[test]
    fn an_event_never_overtakes_its_own_connections_reply() {
        let round = vec![reply(1, 10), event(1, 11), event(2, 11), reply(2, 11), event(2, 12)];
        assert_eq!(
            shape(&events_first(round)),
            vec![(2, "e", 11), (1, "r", 10), (1, "e", 11), (2, "r", 11), (2, "e", 12)]
        );
    }

    #[test]
    fn an_event_never_overtakes_its_connections_hang_up() {
        let closed = Output::Close(1, ErrorReply::new(ErrorCode::SessionMoved, "moved"));
        let round = vec![closed, event(1, 11)];
        assert_eq!(shape(&events_first(round)), vec![(1, "c", 0), (1, "e", 11)]);
    }

    #[test]
    fn nothing_overtakes_a_hellos_answer() {
        let (answer, _answered) = tokio::sync::oneshot::channel();
        let hello = Output::Hello(answer, baton_proto::HelloReply::Refused(ErrorReply::new(ErrorCode::BadRequest, "")));
        let round = vec![event(1, 10), reply(2, 10), hello, event(3, 11)];
        assert_eq!(shape(&events_first(round)), vec![(1, "e", 10), (2, "r", 10), (0, "h", 0), (3, "e", 11)]);
    }

    #[test]
    fn a_round_without_events_keeps_its_order() {
        let round = vec![reply(2, 10), reply(1, 11)];
        assert_eq!(shape(&events_first(round)), vec![(2, "r", 10), (1, "r", 11)]);
    }
}
