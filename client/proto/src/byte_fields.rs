//! Serde `with` modules for byte strings nested in lists, where `#[serde(with = "serde_bytes")]`
//! cannot reach: `Vec<Vec<u8>>`, `Vec<(K, Vec<u8>)>` and `Vec<(K, Option<Vec<u8>>)>`.
//!
//! Without them serde treats each byte string as a sequence of `u8` and hands the format one
//! byte at a time (one call per byte to encode, another to decode). postcard writes a sequence
//! of `u8` exactly as it writes a byte string — a varint length, then the bytes — so these
//! modules change the speed, never the bytes: records and frames written either way read back
//! either way.

use serde::de::{Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeSeq, Serializer};
use serde_bytes::{ByteBuf, Bytes};
use std::fmt;
use std::marker::PhantomData;

/// Reads a sequence of `T`, turning each into an `Out` as it comes (no second list).
struct ListVisitor<T, Out> {
    convert: fn(T) -> Out,
    marker: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>, Out> Visitor<'de> for ListVisitor<T, Out> {
    type Value = Vec<Out>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // The hint comes from the input: capped, so a forged length cannot reserve much.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element::<T>()? {
            out.push((self.convert)(item));
        }
        Ok(out)
    }
}

fn deserialize_list<'de, D, T, Out>(deserializer: D, convert: fn(T) -> Out) -> Result<Vec<Out>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_seq(ListVisitor { convert, marker: PhantomData })
}

fn serialize_list<S, I>(serializer: S, len: usize, items: I) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    I: Iterator,
    I::Item: Serialize,
{
    let mut seq = serializer.serialize_seq(Some(len))?;
    for item in items {
        seq.serialize_element(&item)?;
    }
    seq.end()
}

/// `Vec<Vec<u8>>`.
pub mod list {
    use super::{ByteBuf, Bytes, Deserializer, Serializer, deserialize_list, serialize_list};

    /// # Errors
    /// As the serializer's.
    pub fn serialize<S: Serializer>(list: &[Vec<u8>], serializer: S) -> Result<S::Ok, S::Error> {
        serialize_list(serializer, list.len(), list.iter().map(|bytes| Bytes::new(bytes)))
    }

    /// # Errors
    /// As the deserializer's.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Vec<u8>>, D::Error> {
        deserialize_list(deserializer, ByteBuf::into_vec)
    }
}

/// `Vec<(K, Vec<u8>)>`.
pub mod keyed {
    use super::{ByteBuf, Bytes, Deserialize, Deserializer, Serialize, Serializer, deserialize_list, serialize_list};

    /// # Errors
    /// As the serializer's.
    pub fn serialize<S: Serializer, K: Serialize>(list: &[(K, Vec<u8>)], serializer: S) -> Result<S::Ok, S::Error> {
        serialize_list(serializer, list.len(), list.iter().map(|(key, bytes)| (key, Bytes::new(bytes))))
    }

    /// # Errors
    /// As the deserializer's.
    pub fn deserialize<'de, D, K>(deserializer: D) -> Result<Vec<(K, Vec<u8>)>, D::Error>
    where
        D: Deserializer<'de>,
        K: Deserialize<'de>,
    {
        deserialize_list(deserializer, |(key, bytes): (K, ByteBuf)| (key, bytes.into_vec()))
    }
}

/// Keys with byte strings or nothing, as `keyed_optional` takes them.
pub type KeyedOptional<K> = Vec<(K, Option<Vec<u8>>)>;

/// `Vec<(K, Option<Vec<u8>>)>`.
pub mod keyed_optional {
    use super::{
        ByteBuf, Bytes, Deserialize, Deserializer, KeyedOptional, Serialize, Serializer, deserialize_list,
        serialize_list,
    };

    /// # Errors
    /// As the serializer's.
    pub fn serialize<S: Serializer, K: Serialize>(
        list: &[(K, Option<Vec<u8>>)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let items = list.iter().map(|(key, bytes)| (key, bytes.as_deref().map(Bytes::new)));
        serialize_list(serializer, list.len(), items)
    }

    /// # Errors
    /// As the deserializer's.
    pub fn deserialize<'de, D, K>(deserializer: D) -> Result<KeyedOptional<K>, D::Error>
    where
        D: Deserializer<'de>,
        K: Deserialize<'de>,
    {
        deserialize_list(deserializer, |(key, bytes): (K, Option<ByteBuf>)| (key, bytes.map(ByteBuf::into_vec)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The same lists, once through these modules and once as serde's sequences of `u8`.
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Fast {
        #[serde(with = "list")]
        list: Vec<Vec<u8>>,
        #[serde(with = "keyed")]
        keyed: Vec<(String, Vec<u8>)>,
        #[serde(with = "keyed_optional")]
        optional: Vec<(u64, Option<Vec<u8>>)>,
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct PerByte {
        list: Vec<Vec<u8>>,
        keyed: Vec<(String, Vec<u8>)>,
        optional: Vec<(u64, Option<Vec<u8>>)>,
    }

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        // Lengths on both sides of the one- and two-byte varint boundaries.
        prop_oneof![prop::collection::vec(any::<u8>(), 0..140), prop::collection::vec(any::<u8>(), 16_380..16_390)]
    }

    proptest! {
        #[test]
        fn postcard_bytes_are_those_of_sequences_of_u8_both_ways(
            list in prop::collection::vec(bytes(), 0..4),
            keyed in prop::collection::vec((".{0,8}", bytes()), 0..4),
            optional in prop::collection::vec((any::<u64>(), prop::option::of(bytes())), 0..4),
        ) {
            let fast = Fast { list: list.clone(), keyed: keyed.clone(), optional: optional.clone() };
            let per_byte = PerByte { list, keyed, optional };
            let encoded = postcard::to_allocvec(&fast).unwrap();
            prop_assert_eq!(&encoded, &postcard::to_allocvec(&per_byte).unwrap());
            prop_assert_eq!(postcard::from_bytes::<Fast>(&encoded).unwrap(), fast);
            prop_assert_eq!(postcard::from_bytes::<PerByte>(&encoded).unwrap(), per_byte);
        }
    }

    #[test]
    fn a_forged_length_is_an_error_not_a_large_reservation() {
        // A list claiming u32::MAX items, then nothing.
        let forged = [0xff, 0xff, 0xff, 0xff, 0x0f];
        let mut deserializer = postcard::Deserializer::from_bytes(&forged);
        assert!(Fast::deserialize(&mut deserializer).is_err());
    }
}
