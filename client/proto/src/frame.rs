//! Framing: a u32 little-endian payload length, then a postcard-encoded payload.
//!
//! The length is checked against the receiver's limit before anything is allocated, so a
//! hostile 4 GiB prefix costs nothing.

use serde::{Serialize, de::DeserializeOwned};
use thiserror::Error;

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 4;
/// The default limit on a frame's payload: a 1 MiB node plus room for its path and stat.
pub const FRAME_LEN_MAX_DEFAULT: u32 = 1024 * 1024 + 64 * 1024;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLong { len: u64, max: u32 },
    #[error("cannot encode message: {0}")]
    Encode(postcard::Error),
    #[error("cannot decode message: {0}")]
    Decode(postcard::Error),
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
}

/// The payload length announced by `header`, if within `max`.
pub fn payload_len(header: [u8; HEADER_LEN], max: u32) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(header);
    if len > max {
        return Err(FrameError::TooLong { len: u64::from(len), max });
    }
    Ok(len as usize)
}

/// Appends `message` as one frame to `out`.
pub fn encode<T: Serialize>(message: &T, max: u32, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    let encoded = postcard::to_extend(message, std::mem::take(out));
    *out = match encoded {
        Ok(buf) => buf,
        Err(e) => return Err(FrameError::Encode(e)),
    };
    let len = out.len() - start - HEADER_LEN;
    if len > max as usize {
        out.truncate(start);
        return Err(FrameError::TooLong { len: len as u64, max });
    }
    out[start..start + HEADER_LEN].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(())
}

/// `message` as one frame.
pub fn to_frame<T: Serialize>(message: &T, max: u32) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    encode(message, max, &mut out)?;
    Ok(out)
}

/// Decodes a whole payload, rejecting trailing bytes.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    let (message, rest) = postcard::take_from_bytes(payload).map_err(FrameError::Decode)?;
    if !rest.is_empty() {
        return Err(FrameError::Trailing(rest.len()));
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Op, Request};

    #[test]
    fn variant_count_matches_the_last_op() {
        let create = crate::message::CreateRequest {
            path: String::new(),
            data: None,
            kind: crate::message::CreateKind::Ephemeral,
            sequential: true,
            acl: Vec::new(),
        };
        let last = postcard::to_allocvec(&Op::CreateInLine(create)).unwrap();
        assert_eq!(u32::from(last[0]) + 1, Op::VARIANTS, "update Op::VARIANTS when appending an op");
    }

    #[test]
    fn round_trips_a_request() {
        let request = Request { id: 9, op: Op::Get { path: "/a".into(), watch: true } };
        let frame = to_frame(&request, 1024).unwrap();
        let len = payload_len(frame[..4].try_into().unwrap(), 1024).unwrap();
        assert_eq!(len, frame.len() - 4);
        assert_eq!(Request::decode(&frame[4..]).unwrap(), request);
    }

    #[test]
    fn refuses_a_length_over_the_limit_before_reading_it() {
        let err = payload_len(u32::MAX.to_le_bytes(), FRAME_LEN_MAX_DEFAULT).unwrap_err();
        assert!(matches!(err, FrameError::TooLong { len, .. } if len == u64::from(u32::MAX)));
    }

    #[test]
    fn refuses_to_encode_past_the_limit() {
        let request = Request { id: 1, op: Op::Set { path: "/a".into(), data: Some(vec![0; 100]), version: None } };
        let mut out = vec![1, 2, 3];
        assert!(matches!(encode(&request, 50, &mut out), Err(FrameError::TooLong { .. })));
        assert_eq!(out, [1, 2, 3], "a refused frame leaves the buffer as it was");
    }

    #[test]
    fn unknown_op_keeps_the_request_id() {
        // id 7, then an op variant index far beyond the last one.
        let err = Request::decode(&[7, 100]).unwrap_err();
        assert_eq!(err.id, Some(7));
        assert!(err.unknown_op);
        let err = Request::decode(&[7, 1, 0xff]).unwrap_err();
        assert!(!err.unknown_op, "a known op with a broken body is a bad request");
        assert!(Request::decode(&[]).unwrap_err().id.is_none());
    }
}
