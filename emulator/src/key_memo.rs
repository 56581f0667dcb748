//! Public keys remembered by the bytes they were read from.
//!
//! Building an OpenSSL key (from a certificate's DER, or from a `PUBLICKEYBLOB`'s numbers)
//! costs as much as or more than verifying a signature with it, and an ISV proxy signs for
//! thousands of clients with one key. The bytes determine the key, so remembering it changes
//! no decision. Failures are not remembered; past [`KeyMemo::MAX`] keys the memo starts over,
//! so no sender can make it grow without bound.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use openssl::pkey::{PKey, Public};

/// Keys by the bytes they were read from.
#[derive(Debug, Default)]
pub(crate) struct KeyMemo(Mutex<BTreeMap<Vec<u8>, PKey<Public>>>);

impl KeyMemo {
    /// The most keys kept.
    pub(crate) const MAX: usize = 4_096;

    pub(crate) const fn new() -> Self {
        Self(Mutex::new(BTreeMap::new()))
    }

    /// The key read from `bytes`: remembered, or made by `read` (and remembered if it is `Ok`).
    pub(crate) fn get_or_read<E>(
        &self,
        bytes: &[u8],
        read: impl FnOnce(&[u8]) -> Result<PKey<Public>, E>,
    ) -> Result<PKey<Public>, E> {
        // The map holds plain keys; a panic elsewhere cannot leave it inconsistent.
        let lock = || self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(key) = lock().get(bytes) {
            return Ok(key.clone());
        }
        let key = read(bytes)?;
        let mut keys = lock();
        if keys.len() >= Self::MAX {
            keys.clear();
        }
        keys.insert(bytes.to_vec(), key.clone());
        Ok(key)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use cmmp_transport::sign::{SigningKey, public_key_from_blob};

    use super::KeyMemo;

    fn key_blob() -> Vec<u8> {
        let pem = include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../transport/tests/wire/test-key.pem"
        ));
        SigningKey::from_pem(pem).unwrap().public_key_blob().to_vec()
    }

    #[test]
    fn a_key_is_read_once_and_failures_are_not_remembered() {
        let memo = KeyMemo::new();
        let blob = key_blob();
        let mut reads = 0;
        let mut read = |bytes: &[u8]| {
            reads += 1;
            public_key_from_blob(bytes)
        };
        let first = memo.get_or_read(&blob, &mut read).unwrap();
        let second = memo.get_or_read(&blob, &mut read).unwrap();
        assert!(first.public_eq(&second));
        assert!(memo.get_or_read(b"RSA1 but not a blob", &mut read).is_err());
        let mut damaged = blob;
        damaged[0] ^= 0xFF;
        assert!(memo.get_or_read(&damaged, &mut read).is_err());
        assert_eq!(reads, 3, "the second lookup read nothing");
        assert_eq!(memo.len(), 1, "only the real key is kept");
    }

    #[test]
    fn a_full_memo_is_emptied_before_the_next_key() {
        let memo = KeyMemo::new();
        let key = memo.get_or_read(&key_blob(), public_key_from_blob).unwrap();
        for i in 1..KeyMemo::MAX {
            memo.get_or_read(&i.to_le_bytes(), |_| Ok::<_, ()>(key.clone())).unwrap();
        }
        assert_eq!(memo.len(), KeyMemo::MAX);
        // A failure evicts nothing; a known key is found without eviction.
        assert!(memo.get_or_read(b"not a key", public_key_from_blob).is_err());
        memo.get_or_read(&key_blob(), |_| -> Result<_, ()> { panic!("read again") }).unwrap();
        assert_eq!(memo.len(), KeyMemo::MAX);
        // A new key empties the full memo first.
        let other = SigningKey::generate(2048).unwrap().public_key_blob().to_vec();
        memo.get_or_read(&other, public_key_from_blob).unwrap();
        assert_eq!(memo.len(), 1);
    }
}
