//! Stored record encoding: a format version byte, then postcard. Checked when read.

use serde::{Serialize, de::DeserializeOwned};

/// The format version of node and session records.
pub const RECORD_FORMAT_VERSION: u8 = 1;

pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    match postcard::to_extend(record, vec![RECORD_FORMAT_VERSION]) {
        Ok(bytes) => bytes,
        Err(e) => panic!("encoding a stored record cannot fail: {e}"),
    }
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (&version, payload) = bytes.split_first().ok_or("empty record")?;
    if version != RECORD_FORMAT_VERSION {
        return Err(format!("record format {version}, this build reads {RECORD_FORMAT_VERSION}"));
    }
    let (record, rest) = postcard::take_from_bytes(payload).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes", rest.len()));
    }
    Ok(record)
}
