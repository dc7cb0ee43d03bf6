//! Frames on a byte stream, shared by client connections and the replication link: a u32
//! little-endian length checked before anything is allocated, then a postcard payload.

use baton_proto::frame::{self, HEADER_LEN};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why a frame could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The stream ended or failed.
    Io(std::io::Error),
    /// The peer broke the framing (an oversized length, an undecodable payload).
    Frame(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Frame(e) => write!(f, "{e}"),
        }
    }
}

/// Reads one frame's payload. Cancellation safe only between frames: a cancelled read may
/// leave a partial frame behind, so callers cancel only to drop the stream.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R, frame_len_max: u32) -> Result<Vec<u8>, ReadError> {
    let mut header = [0u8; HEADER_LEN];
    reader.read_exact(&mut header).await.map_err(ReadError::Io)?;
    let len = frame::payload_len(header, frame_len_max).map_err(|e| ReadError::Frame(e.to_string()))?;
    let mut payload = vec![0u8; len];
    reader.read_exact(&mut payload).await.map_err(ReadError::Io)?;
    Ok(payload)
}

/// Reads and decodes one message.
pub async fn read_message<R, T>(reader: &mut R, frame_len_max: u32) -> Result<T, ReadError>
where
    R: AsyncRead + Unpin,
    T: DeserializeOwned,
{
    let payload = read_frame(reader, frame_len_max).await?;
    frame::decode(&payload).map_err(|e| ReadError::Frame(e.to_string()))
}

/// Writes one message as a frame and flushes.
pub async fn write_message<W, T>(writer: &mut W, message: &T, frame_len_max: u32) -> std::io::Result<()>
where
    W: AsyncWrite + Unpin,
    T: Serialize,
{
    let bytes = frame::to_frame(message, frame_len_max).map_err(std::io::Error::other)?;
    writer.write_all(&bytes).await?;
    writer.flush().await
}

/// What a queued server message costs, for the per-connection limit on queued bytes: its
/// variable-length parts plus a fixed allowance for the rest. An estimate (no encoding twice),
/// the same on both sides of the queue.
pub fn weight(message: &baton_proto::ServerMessage) -> usize {
    use baton_proto::{Response, ServerMessage};
    const FIXED: usize = 64;
    match message {
        ServerMessage::Reply { result: Ok(response), .. } => {
            FIXED
                + match response {
                    Response::Data { data, .. } => data.as_ref().map_or(0, Vec::len),
                    Response::Children { children, .. } | Response::Ephemerals(children) => {
                        children.iter().map(|c| c.len() + 2).sum()
                    }
                    Response::ChildrenWithStats { children, .. } => children.iter().map(|(c, _)| c.len() + FIXED).sum(),
                    Response::Created { path, .. } => path.len(),
                    Response::Multi(results) => results.len() * FIXED,
                    Response::MultiRead(results) => results
                        .iter()
                        .map(|result| match result {
                            Ok(Response::Data { data, .. }) => FIXED + data.as_ref().map_or(0, Vec::len),
                            Ok(Response::Children { children, .. }) => {
                                FIXED + children.iter().map(|c| c.len() + 2).sum::<usize>()
                            }
                            _ => FIXED,
                        })
                        .sum(),
                    _ => 0,
                }
        }
        ServerMessage::Reply { result: Err(e), .. } | ServerMessage::Closing(e) => FIXED + e.message.len(),
        ServerMessage::Event(event) => FIXED + event.path.len(),
    }
}

/// Output is written once this much is buffered, or when a connection's outbox is momentarily
/// empty (client and ZooKeeper connections alike).
pub const WRITE_CHUNK: usize = 64 * 1024;

/// After a write: a connection's output buffer starts empty and grows with what is written, so
/// an idle session (of thousands) holds almost nothing; past two chunks it goes back to one,
/// so a busy connection keeps a chunk rather than what its largest reply needed.
pub fn trim_output_buffer(buf: &mut Vec<u8>) {
    if buf.capacity() > 2 * WRITE_CHUNK {
        buf.clear();
        buf.shrink_to(WRITE_CHUNK);
    }
}
