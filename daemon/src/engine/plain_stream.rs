//! A plain (not TLS) client socket with two users: the connection's task reads and writes it
//! as a stream, and the engine writes to it with one non-blocking call (`SharedSocket`).
//!
//! Both hold the one tokio socket through an `Arc`, so a connection takes one descriptor,
//! where a duplicate for the engine took two. The stream side goes through the socket's
//! readiness (`poll_read_ready`, then `try_read`), as tokio's own stream does; the engine's
//! `try_write` needs no runtime on its thread, and a socket tokio has not seen writable since
//! it last filled is simply not written to (the message goes to the outbox).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// The socket, shared.
#[derive(Clone, Debug)]
pub enum PlainStream {
    Unix(Arc<UnixStream>),
    Tcp(Arc<TcpStream>),
}

impl PlainStream {
    /// Writes what the socket takes now, without waiting.
    ///
    /// # Errors
    /// `WouldBlock` when the socket is full (or not yet known to have room); any other error
    /// of the write.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            PlainStream::Unix(s) => s.try_write(buf),
            PlainStream::Tcp(s) => s.try_write(buf),
        }
    }

    /// Reads what the socket holds, without waiting. A read that leaves the socket empty
    /// (it returned less than `buf` could take) also clears the socket's readiness, as
    /// tokio's own streams do on epoll: the next poll then waits for the socket instead of
    /// trying a read that can only fail, one system call less per request. Data that comes
    /// in meanwhile is a new readiness event, which the clearing leaves alone.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let wanted = buf.len();
        let mut drained = None;
        let result = match self {
            PlainStream::Unix(s) => {
                s.try_io(Interest::READABLE, || drained_read(s.try_read(buf), wanted, &mut drained))
            }
            PlainStream::Tcp(s) => s.try_io(Interest::READABLE, || drained_read(s.try_read(buf), wanted, &mut drained)),
        };
        match (result, drained) {
            (Err(e), Some(n)) if e.kind() == io::ErrorKind::WouldBlock => Ok(n),
            (result, _) => result,
        }
    }

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            PlainStream::Unix(s) => s.poll_read_ready(cx),
            PlainStream::Tcp(s) => s.poll_read_ready(cx),
        }
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            PlainStream::Unix(s) => s.poll_write_ready(cx),
            PlainStream::Tcp(s) => s.poll_write_ready(cx),
        }
    }

    fn shutdown_write(&self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let fd = match self {
            PlainStream::Unix(s) => s.as_raw_fd(),
            PlainStream::Tcp(s) => s.as_raw_fd(),
        };
        nix::sys::socket::shutdown(fd, nix::sys::socket::Shutdown::Write).map_err(io::Error::from)
    }
}

/// `read`'s result, as a `WouldBlock` when it emptied the socket (so that `try_io` clears the
/// readiness), the count kept in `drained`.
fn drained_read(read: io::Result<usize>, wanted: usize, drained: &mut Option<usize>) -> io::Result<usize> {
    match read {
        Ok(n) if n > 0 && n < wanted => {
            *drained = Some(n);
            Err(io::ErrorKind::WouldBlock.into())
        }
        other => other,
    }
}

impl AsyncRead for PlainStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.poll_read_ready(cx))?;
            // A `WouldBlock` clears the readiness, so the next poll waits for the socket.
            match self.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for PlainStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.poll_write_ready(cx))?;
            match self.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                written => return Poll::Ready(written),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Nothing is buffered here.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shutdown_write())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn both_users_write_to_one_socket_and_the_stream_reads_and_shuts_down() {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let shared = PlainStream::Unix(Arc::new(ours));
        let mut stream = shared.clone();
        stream.write_all(b"from the task, ").await.unwrap();
        // Written once the socket is known writable, as it is after the task's write.
        assert_eq!(shared.try_write(b"from the engine").unwrap(), 15);
        let mut got = [0u8; 30];
        theirs.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"from the task, from the engine");
        theirs.write_all(b"request").await.unwrap();
        let mut request = [0u8; 7];
        stream.read_exact(&mut request).await.unwrap();
        assert_eq!(&request, b"request");
        stream.shutdown().await.unwrap();
        assert_eq!(theirs.read(&mut got).await.unwrap(), 0, "the peer sees the end");
    }

    /// A read that fills its buffer leaves the rest to be read at once; one that empties the
    /// socket waits for the next data, and gets it.
    #[tokio::test]
    async fn reads_take_what_is_left_at_once_and_what_comes_later_when_it_comes() {
        use std::time::Duration;
        use tokio::time::timeout;
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let mut stream = PlainStream::Unix(Arc::new(ours));
        theirs.write_all(b"0123456789").await.unwrap();
        let mut four = [0u8; 4];
        let soon = Duration::from_secs(5);
        for expected in [b"0123", b"4567"] {
            // A full buffer says nothing of what is left: the readiness must stay.
            assert_eq!(timeout(soon, stream.read(&mut four)).await.expect("left data read at once").unwrap(), 4);
            assert_eq!(&four, expected);
        }
        let mut more = [0u8; 16];
        assert_eq!(timeout(soon, stream.read(&mut more)).await.unwrap().unwrap(), 2, "the last of it, draining");
        assert_eq!(&more[..2], b"89");
        assert!(timeout(Duration::from_millis(50), stream.read(&mut more)).await.is_err(), "nothing to read: waits");
        theirs.write_all(b"later").await.unwrap();
        assert_eq!(timeout(soon, stream.read(&mut more)).await.expect("new data wakes the reader").unwrap(), 5);
        assert_eq!(&more[..5], b"later");
    }
}
