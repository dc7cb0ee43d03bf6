//! A tiny HTTP/1.1 endpoint: `GET /metrics` (the OpenMetrics text exposition) and
//! `GET /health` (200 "ok" when the engine answers within a second, else 503).
//!
//! Each connection gets one response and is closed. The request head is read whole (so the
//! client's bytes are consumed before closing) but only its request line is parsed; it is
//! bounded in size and in time, and so is the number of connections served at once.

use super::Metrics;
use crate::engine::EngineInput;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

/// Largest request head (request line and headers) read.
pub const REQUEST_HEAD_BYTES_MAX: usize = 8 * 1024;
/// Time a client has to send its request head, and then to take the response.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait to be accepted.
pub const CONNECTIONS_MAX: usize = 16;
/// After the response: how long, and how many bytes, to read and discard before closing.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES_MAX: usize = 64 * 1024;
/// Time the engine has to answer a health check.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// An HTTP response, written whole.
#[derive(Debug, PartialEq, Eq)]
struct Reply {
    status: u16,
    content_type: &'static str,
    body: String,
}

impl Reply {
    fn text(status: u16, body: &str) -> Reply {
        Reply { status, content_type: TEXT, body: format!("{body}\n") }
    }

    /// The bytes on the wire; `head_only` for a HEAD request.
    fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let mut bytes = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        if !head_only {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        bytes
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

/// What the request line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    Health,
}

/// Serves the endpoint on `listener` until `shutdown`; open connections are dropped then.
///
/// # Cancellation safety
/// Safe to drop: connections in hand are aborted with it.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    engine: mpsc::Sender<EngineInput>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let mut connections = JoinSet::new();
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "serving metrics (GET /metrics, GET /health)");
    }
    loop {
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let Ok(slot) = slot else { return };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let (metrics, engine) = (metrics.clone(), engine.clone());
                connections.spawn(async move {
                    debug!(%peer, "metrics connection");
                    answer(stream, &metrics, &engine).await;
                    drop(slot);
                });
            }
            Err(e) => {
                // Out of descriptors and the like: pause rather than spin.
                warn!(error = %e, "cannot accept a metrics connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one request, writes its response and closes.
async fn answer(mut stream: TcpStream, metrics: &Metrics, engine: &mpsc::Sender<EngineInput>) {
    let (reply, head_only) = match tokio::time::timeout(IO_TIMEOUT, read_head(&mut stream)).await {
        Err(_) => (Reply::text(408, "request not received in time"), false),
        Ok(Err(Incomplete::TooLarge)) => (Reply::text(431, "request head too large"), false),
        Ok(Err(Incomplete::Closed)) => return,
        Ok(Ok(head)) => match parse_request_line(&head) {
            Ok((route, head_only)) => (respond(&route, metrics, engine).await, head_only),
            Err(reply) => (reply, false),
        },
    };
    let bytes = reply.to_bytes(head_only);
    let written = tokio::time::timeout(IO_TIMEOUT, async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    })
    .await;
    if !matches!(written, Ok(Ok(()))) {
        debug!("metrics client did not take its response");
        return;
    }
    // Closing with unread bytes (an oversized request) would reset the connection and could
    // destroy the response before the client reads it: consume what is left, briefly.
    let _ = tokio::time::timeout(LINGER, async {
        let mut sink = [0u8; 1024];
        let mut left = LINGER_BYTES_MAX;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

async fn respond(route: &Route, metrics: &Metrics, engine: &mpsc::Sender<EngineInput>) -> Reply {
    match route {
        Route::Metrics => match metrics.encode() {
            Ok(body) => Reply { status: 200, content_type: OPENMETRICS, body },
            Err(_) => Reply::text(500, "cannot encode the metrics"),
        },
        Route::Health => match tokio::time::timeout(HEALTH_TIMEOUT, engine_answers(engine)).await {
            Ok(true) => Reply::text(200, "ok"),
            Ok(false) => Reply::text(503, "the engine has stopped"),
            Err(_) => Reply::text(503, "the engine did not answer within a second"),
        },
    }
}

/// Asks the engine thread to answer; false if it is gone.
///
/// # Cancellation safety
/// Safe: an abandoned question is answered into a dropped channel.
async fn engine_answers(engine: &mpsc::Sender<EngineInput>) -> bool {
    let (reply, answered) = oneshot::channel();
    engine.send(EngineInput::Health { reply }).await.is_ok() && answered.await.is_ok()
}

#[derive(Debug)]
enum Incomplete {
    /// The head did not end within `REQUEST_HEAD_BYTES_MAX`.
    TooLarge,
    /// The client hung up (or the read failed) before the head ended.
    Closed,
}

/// Reads up to the blank line ending the request head.
async fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, Incomplete> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|_| Incomplete::Closed)?;
        if n == 0 {
            return Err(Incomplete::Closed);
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            head.truncate(end + 2);
            return Ok(head);
        }
        if head.len() >= REQUEST_HEAD_BYTES_MAX {
            return Err(Incomplete::TooLarge);
        }
    }
}

/// Parses `METHOD TARGET HTTP/1.x` into a route and whether only the head is wanted (HEAD);
/// an error is the response to send.
fn parse_request_line(head: &[u8]) -> Result<(Route, bool), Reply> {
    let bad = || Reply::text(400, "malformed request line");
    let line_end = head.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
    let line = std::str::from_utf8(&head[..line_end]).map_err(|_| bad())?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") || !target.starts_with('/') {
        return Err(bad());
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        m if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => {
            return Err(Reply::text(405, "only GET and HEAD"));
        }
        _ => return Err(bad()),
    };
    let path = target.split('?').next().unwrap_or(target);
    match path {
        "/metrics" => Ok((Route::Metrics, head_only)),
        "/health" => Ok((Route::Health, head_only)),
        _ => Err(Reply::text(404, "try /metrics or /health")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(head: &[u8]) -> u16 {
        match parse_request_line(head) {
            Ok(_) => 200,
            Err(reply) => reply.status,
        }
    }

    #[test]
    fn request_lines_route_or_are_refused_with_a_4xx() {
        assert_eq!(parse_request_line(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap(), (Route::Metrics, false));
        assert_eq!(parse_request_line(b"GET /health?verbose HTTP/1.0\r\n").unwrap(), (Route::Health, false));
        assert_eq!(parse_request_line(b"HEAD /metrics HTTP/1.1\r\n").unwrap(), (Route::Metrics, true));
        assert_eq!(status(b"GET /nope HTTP/1.1\r\n"), 404);
        assert_eq!(status(b"POST /metrics HTTP/1.1\r\n"), 405);
        assert_eq!(status(b"GET /metrics\r\n"), 400);
        assert_eq!(status(b"GET  /metrics HTTP/1.1\r\n"), 400);
        assert_eq!(status(b"GET /metrics HTTP/2.0\r\n"), 400);
        assert_eq!(status(b"GET metrics HTTP/1.1\r\n"), 400);
        assert_eq!(status(b"get /metrics HTTP/1.1\r\n"), 400);
        assert_eq!(status(b"\xff\xfe /metrics HTTP/1.1\r\n"), 400);
        assert_eq!(status(b"no line end"), 400);
    }

    #[test]
    fn responses_say_their_length_and_close() {
        let reply = Reply::text(200, "ok");
        assert_eq!(
            String::from_utf8(reply.to_bytes(false)).unwrap(),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
        );
        assert!(
            String::from_utf8(reply.to_bytes(true))
                .unwrap()
                .ends_with("Content-Length: 3\r\nConnection: close\r\n\r\n")
        );
    }

    #[tokio::test]
    async fn health_is_ok_while_the_engine_answers_and_503_once_it_is_gone() {
        let metrics = Metrics::new(&[]);
        let (engine, mut inputs) = mpsc::channel(4);
        let answering = tokio::spawn(async move {
            if let Some(EngineInput::Health { reply }) = inputs.recv().await {
                let _ = reply.send(());
            }
        });
        assert_eq!(respond(&Route::Health, &metrics, &engine).await.status, 200);
        answering.await.unwrap();
        assert_eq!(respond(&Route::Health, &metrics, &engine).await.status, 503);
        let scraped = respond(&Route::Metrics, &metrics, &engine).await;
        assert_eq!((scraped.status, scraped.content_type), (200, OPENMETRICS));
    }
}
