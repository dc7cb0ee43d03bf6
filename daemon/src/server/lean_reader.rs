//! A buffered reader that holds no buffer while its connection is idle.
//!
//! A connection reads its requests in small pieces (a frame's header, then its payload), so
//! it needs a buffer to take a whole request, or several, in one system call. A
//! `tokio::io::BufReader` keeps its buffer for the connection's life: 4 KiB of every idle
//! session, almost a third of one's memory with thousands of them. This reader takes each read
//! of the socket into a buffer of its thread's, and keeps on the heap only what the caller did
//! not take yet, exactly that much. Once all is taken and the socket has nothing more, that
//! leftover's memory is freed.
//!
//! The thread's buffer is zeroed once: one the stack gave each read anew would be zeroed every
//! time (tokio's streams read only into initialized memory), 4 KiB per request.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// The most one read of the socket takes (larger reads go straight to the caller's buffer).
const READ_CHUNK: usize = 4 * 1024;

thread_local! {
    /// Where this thread's reads land before they are handed out, zeroed once.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

pub struct LeanReader<R> {
    inner: R,
    /// Read from the socket, not yet taken: `leftover[taken..]`.
    leftover: Vec<u8>,
    taken: usize,
}

impl<R> LeanReader<R> {
    pub fn new(inner: R) -> Self {
        LeanReader { inner, leftover: Vec::new(), taken: 0 }
    }

    /// Heap bytes held for data read and not yet taken.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.leftover.capacity()
    }

    /// Gives the caller what is left of the last read; true if there was any.
    fn give_leftover(&mut self, out: &mut ReadBuf<'_>) -> bool {
        let rest = &self.leftover[self.taken..];
        if rest.is_empty() {
            return false;
        }
        let n = rest.len().min(out.remaining());
        out.put_slice(&rest[..n]);
        self.taken += n;
        if self.taken == self.leftover.len() {
            self.leftover.clear();
            self.taken = 0;
        }
        true
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for LeanReader<R> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.give_leftover(out) {
            return Poll::Ready(Ok(()));
        }
        if out.remaining() >= READ_CHUNK {
            return Pin::new(&mut this.inner).poll_read(cx, out);
        }
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut chunk) => this.read_through(cx, &mut chunk, out),
            // Only if an inner reader reads through another `LeanReader`: pay the zeroing.
            Err(_) => this.read_through(cx, &mut [0; READ_CHUNK], out),
        })
    }
}

impl<R: AsyncRead + Unpin> LeanReader<R> {
    /// One read of the socket into `chunk`: what `out` takes goes there, the rest is kept.
    fn read_through(&mut self, cx: &mut Context<'_>, chunk: &mut [u8], out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut read = ReadBuf::new(chunk);
        match Pin::new(&mut self.inner).poll_read(cx, &mut read) {
            Poll::Pending => {
                // Nothing left and nothing coming yet: the connection is idle for now.
                self.leftover = Vec::new();
                Poll::Pending
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {
                let got = read.filled();
                let n = got.len().min(out.remaining());
                out.put_slice(&got[..n]);
                self.leftover.extend_from_slice(&got[n..]);
                Poll::Ready(Ok(()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn pieces_of_one_read_come_in_order_and_an_idle_reader_holds_nothing() {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (mut client, mut server) = (client, LeanReader::new(server));
        client.write_all(b"headpayload-onehead").await.unwrap();
        let mut piece = [0u8; 4];
        server.read_exact(&mut piece).await.unwrap();
        assert_eq!(&piece, b"head");
        assert!(server.held() >= "payload-onehead".len(), "the rest of the read is kept");
        let mut payload = [0u8; 11];
        server.read_exact(&mut payload).await.unwrap();
        assert_eq!(&payload, b"payload-one");
        server.read_exact(&mut piece).await.unwrap();
        assert_eq!(&piece, b"head");

        // Nothing more has come: the read waits, and the reader lets its memory go.
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), server.read_exact(&mut piece));
        assert!(waiting.await.is_err());
        assert_eq!(server.held(), 0);

        client.write_all(b"tail").await.unwrap();
        server.read_exact(&mut piece).await.unwrap();
        assert_eq!(&piece, b"tail");
    }

    #[tokio::test]
    async fn a_large_read_and_the_end_of_the_stream_come_through() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let mut server = LeanReader::new(server);
        let sent: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let writing = tokio::spawn(async move {
            client.write_all(&sent).await.unwrap();
            sent
        });
        let mut head = [0u8; 3];
        server.read_exact(&mut head).await.unwrap();
        let mut rest = vec![0u8; 20_000 - 3];
        server.read_exact(&mut rest).await.unwrap();
        let sent = writing.await.unwrap();
        assert_eq!(head, sent[..3]);
        assert_eq!(rest, sent[3..]);
        assert_eq!(server.read(&mut head).await.unwrap(), 0, "the end of the stream");
    }

    /// Reads its inner reader a few bytes at a time, as a TLS stream reads a record's header.
    struct Trickle<R>(R);

    impl<R: AsyncRead + Unpin> AsyncRead for Trickle<R> {
        fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            let mut few = [0u8; 5];
            let mut read = ReadBuf::new(&mut few);
            let polled = Pin::new(&mut self.0).poll_read(cx, &mut read);
            if let Poll::Ready(Ok(())) = polled {
                out.put_slice(read.filled());
            }
            polled
        }
    }

    #[tokio::test]
    async fn a_reader_inside_another_reads_through_a_buffer_of_its_own() {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        // The outer reader holds the thread's buffer while the inner one reads small pieces.
        let mut server = LeanReader::new(Trickle(LeanReader::new(server)));
        let sent: Vec<u8> = (0..9_000u32).map(|i| (i % 241) as u8).collect();
        client.write_all(&sent).await.unwrap();
        drop(client);
        let mut got = Vec::new();
        let mut piece = [0u8; 7];
        loop {
            let n = server.read(&mut piece).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&piece[..n]);
        }
        assert_eq!(got, sent);
    }
}
