//! Stored record encoding: every value the store writes carries a CRC-32C of its bytes, so
//! damage on disk (a flipped bit, a torn page redb did not catch) is reported as corruption
//! instead of being served as data. Node and session records are a format version byte, then
//! postcard, then the checksum; log entries are the txn record (`baton_proto::txn`) sealed
//! the same way.

use serde::{Serialize, de::DeserializeOwned};

/// The format version of node and session records.
pub const RECORD_FORMAT_VERSION: u8 = 3;
/// Bytes of the checksum that ends every stored value.
const CHECKSUM_LEN: usize = 4;

pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    // Sized exactly, with room for the checksum (see `baton_proto::txn::encode_record`).
    let size = postcard::experimental::serialized_size(record).unwrap_or(0);
    let mut bytes = Vec::with_capacity(1 + size + CHECKSUM_LEN);
    bytes.push(RECORD_FORMAT_VERSION);
    match postcard::to_extend(record, bytes) {
        Ok(bytes) => seal(bytes),
        Err(e) => panic!("encoding a stored record cannot fail: {e}"),
    }
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (&version, payload) = unseal(bytes)?.split_first().ok_or("empty record")?;
    if version != RECORD_FORMAT_VERSION {
        return Err(format!("record format {version}, this build reads {RECORD_FORMAT_VERSION}"));
    }
    let (record, rest) = postcard::take_from_bytes(payload).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes", rest.len()));
    }
    Ok(record)
}

/// Appends the checksum of `bytes`.
pub fn seal(mut bytes: Vec<u8>) -> Vec<u8> {
    let sum = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&sum.to_le_bytes());
    bytes
}

/// Sets `sealed` to `bytes` and their checksum (reusing its allocation).
pub fn seal_into(sealed: &mut Vec<u8>, bytes: &[u8]) {
    sealed.clear();
    sealed.extend_from_slice(bytes);
    sealed.extend_from_slice(&crc32c::crc32c(bytes).to_le_bytes());
}

/// The bytes a sealed value holds, once their checksum is verified.
pub fn unseal(sealed: &[u8]) -> Result<&[u8], String> {
    let Some((bytes, sum)) = sealed.split_last_chunk::<CHECKSUM_LEN>() else {
        return Err(format!("{} bytes, too short for a sealed value", sealed.len()));
    };
    let (stored, actual) = (u32::from_le_bytes(*sum), crc32c::crc32c(bytes));
    if stored != actual {
        return Err(format!("checksum mismatch (stored {stored:#010x}, computed {actual:#010x}): damaged on disk"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_flipped_bit_is_caught() {
        let sealed = encode(&("a node", 42u64, vec![7u8; 40]));
        assert_eq!(decode::<(String, u64, Vec<u8>)>(&sealed).unwrap().1, 42);
        for bit in 0..sealed.len() * 8 {
            let mut damaged = sealed.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            let err = decode::<(String, u64, Vec<u8>)>(&damaged).unwrap_err();
            assert!(err.contains("checksum mismatch"), "bit {bit}: {err}");
        }
        assert!(unseal(&[1, 2]).unwrap_err().contains("too short"));
    }

    #[test]
    fn a_sealed_record_is_allocated_at_its_exact_size() {
        for record in [("a node", 42u64, vec![7u8; 100]), ("", 0, Vec::new())] {
            let sealed = encode(&record);
            assert_eq!(sealed.capacity(), sealed.len());
        }
    }
}
