//! [`Counter`]: an atomic counter held in one node as decimal text.
//!
//! The algorithm is optimistic compare-and-set on the node's version. [`Counter::add`] reads
//! the value and its version, computes the sum, and writes it back with `set(version)`: the
//! write succeeds only if nobody wrote in between, otherwise it fails with `BadVersion` and
//! the loop reads again. A missing node counts as zero: the first adder creates it holding its
//! delta, and if a concurrent adder created it first (`NodeExists`), it reads and retries like
//! any other loser. Every successful write is therefore one linearizable read-modify-write,
//! and the value returned is exactly the value this add produced.
//!
//! The value is plain decimal text (`"42"`, `"-7"`), so the CLI and other languages can read
//! and write it too. A value that does not parse is reported, never overwritten.

use crate::{Client, CreateOptions, Error, Result};

/// An atomic 64-bit signed counter stored at a node.
///
/// ```no_run
/// # async fn demo(client: baton::Client) -> baton::Result<()> {
/// use baton::recipes::counter::Counter;
/// let hits = Counter::new(client, "/stats/hits");
/// let now = hits.add(1).await?;
/// assert!(now >= 1);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Counter {
    client: Client,
    path: String,
}

impl Counter {
    /// A counter at `path`. The node is created by the first [`Counter::add`]; until then the
    /// counter reads as zero.
    pub fn new(client: Client, path: impl Into<String>) -> Counter {
        Counter { client, path: path.into() }
    }

    /// The counter's node.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The current value (zero if the node does not exist yet).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the node holds something other than a decimal `i64`,
    /// plus the connection and session errors.
    ///
    /// # Cancellation safety
    /// Cancel-safe.
    pub async fn get(&self) -> Result<i64> {
        match self.client.get(&self.path).await {
            Ok((data, _)) => parse(&self.path, &data),
            Err(e) if e.is_no_node() => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Adds `delta` atomically and returns the new value. Concurrent adds never lose one
    /// another: each is applied exactly once, retrying on version conflicts.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if the node holds something other than a decimal `i64`, or
    /// if the sum would overflow; plus the connection and session errors. After
    /// [`Error::ConnectionLoss`] the add may or may not have been applied.
    ///
    /// # Cancellation safety
    /// Cancel-safe in that the counter stays consistent, but an add cancelled after its write
    /// was sent may have been applied.
    pub async fn add(&self, delta: i64) -> Result<i64> {
        loop {
            let (data, stat) = match self.client.get(&self.path).await {
                Ok(found) => found,
                Err(e) if e.is_no_node() => match self.create(delta).await? {
                    Some(value) => return Ok(value),
                    None => continue,
                },
                Err(e) => return Err(e),
            };
            let value = parse(&self.path, &data)?;
            let sum = value
                .checked_add(delta)
                .ok_or_else(|| Error::InvalidArgument(format!("counter {}: {value} + {delta} overflows", self.path)))?;
            match self.client.set(&self.path, sum.to_string().as_bytes(), Some(stat.version)).await {
                Ok(_) => return Ok(sum),
                // Someone wrote (or deleted the node) since we read it: read again.
                Err(e) if e.is_bad_version() || e.is_no_node() => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Creates the node holding `delta`. `None` if someone else created it first.
    async fn create(&self, delta: i64) -> Result<Option<i64>> {
        let data = delta.to_string();
        let mut made_parents = false;
        loop {
            match self.client.create(&self.path, data.as_bytes(), CreateOptions::persistent()).await {
                Ok(_) => return Ok(Some(delta)),
                Err(e) if e.is_node_exists() => return Ok(None),
                Err(e) if e.is_no_node() && !made_parents => {
                    if let Some(parent) = baton_proto::path::parent(&self.path) {
                        self.client.create_path(parent, b"").await?;
                    }
                    made_parents = true;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The counter value held in `data`: decimal text, surrounding whitespace allowed, empty
/// meaning zero.
fn parse(path: &str, data: &[u8]) -> Result<i64> {
    let text = std::str::from_utf8(data).map_or("\u{fffd}", str::trim);
    if text.is_empty() {
        return Ok(0);
    }
    text.parse()
        .map_err(|_| Error::InvalidArgument(format!("counter {path} holds {text:?}, not a decimal 64-bit integer")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_text_and_treats_empty_as_zero() {
        assert_eq!(parse("/c", b"42").unwrap(), 42);
        assert_eq!(parse("/c", b" -7\n").unwrap(), -7);
        assert_eq!(parse("/c", b"").unwrap(), 0);
        assert_eq!(parse("/c", i64::MIN.to_string().as_bytes()).unwrap(), i64::MIN);
    }

    #[test]
    fn refuses_what_is_not_a_number() {
        for bad in [&b"forty"[..], b"1.5", b"\xff\xfe", b"99999999999999999999"] {
            let err = parse("/c", bad).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{bad:?}: {err:?}");
        }
    }
}
