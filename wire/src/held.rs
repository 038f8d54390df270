//! A payload held in memory encoded: the recorder keeps every host's latest medium and slow
//! payloads for as long as the server runs, and a parsed `Medium` of a typical host takes
//! about six times the heap of its postcard encoding (docs/PERFORMANCE.md, "Held payloads").
//! Readers decode it when they read it, once per request or round.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// `T` encoded with postcard. Cloning shares the bytes. Postcard is not self-describing:
/// a type held here must serialize every field every time (no `skip_serializing_if`,
/// untagged enums, flatten or `deserialize_any`), which wire's payloads do.
pub struct Held<T> {
    bytes: Arc<[u8]>,
    // fn() -> T: holds no T, so Held is Send and Sync whatever T is.
    kind: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> Held<T> {
    pub fn new(value: &T) -> Held<T> {
        // Cannot fail: postcard fails to serialize only sequences of unknown length and
        // errors raised by a type's own Serialize, which wire's payload types have neither.
        let bytes = postcard::to_allocvec(value).expect("a wire payload always encodes");
        Held { bytes: bytes.into(), kind: PhantomData }
    }

    /// The value, decoded. Cannot fail short of a bug: the bytes are what [`Held::new`]
    /// encoded in this process, from this very type; the one place that says so.
    pub fn get(&self) -> T {
        postcard::from_bytes(&self.bytes).expect("held bytes decode as the type they were encoded from")
    }

    /// The value changed by `change`, held anew (tests build a host's next sample so).
    pub fn changed(&self, change: impl FnOnce(&mut T)) -> Held<T> {
        let mut value = self.get();
        change(&mut value);
        Held::new(&value)
    }
}

impl<T: Serialize + DeserializeOwned> From<T> for Held<T> {
    fn from(value: T) -> Held<T> {
        Held::new(&value)
    }
}

impl<T> Held<T> {
    /// The encoding: two held values are equal exactly when these are.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl<T> Clone for Held<T> {
    fn clone(&self) -> Held<T> {
        Held { bytes: Arc::clone(&self.bytes), kind: PhantomData }
    }
}

impl<T> PartialEq for Held<T> {
    fn eq(&self, other: &Held<T>) -> bool {
        self.bytes == other.bytes
    }
}

impl<T> Eq for Held<T> {}

impl<T> fmt::Debug for Held<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Held<{}>({} bytes)", std::any::type_name::<T>(), self.bytes.len())
    }
}
