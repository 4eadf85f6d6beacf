//! Detector state as checkpoint bytes: one versioned envelope for every kind of state.
//!
//! A checkpoint is JSON `{"kind": "...", "version": N, "body": ...}`. The kind says what the bytes
//! hold (a reader never misreads one kind as another); the version says which shape of it, so a
//! build that changed the shape refuses an older one by name instead of misreading it. Each kind
//! may still read the form it was written in before the envelope ([`Checkpoint::legacy`]), so an
//! upgrade relearns nothing. A tombstone (a key deleted) is no bytes at all: `StateEntry::value` is
//! `None`, never an empty vector.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

/// Why state could not be written or read back.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("a {kind} checkpoint does not encode: {message}")]
    Encode { kind: &'static str, message: String },
    #[error("not a checkpoint: {0}")]
    Malformed(String),
    #[error("a {found} checkpoint where a {expected} was expected")]
    Kind {
        expected: &'static str,
        found: String,
    },
    #[error("a {kind} checkpoint of version {found}; this build reads version {expected}")]
    Version {
        kind: &'static str,
        expected: u32,
        found: u32,
    },
}

/// A kind of detector state that is checkpointed.
pub trait Checkpoint: Serialize + DeserializeOwned {
    /// What the bytes hold, written into every checkpoint.
    const KIND: &'static str;
    /// The shape's version: raise it when a change would make an older body misread.
    const VERSION: u32;

    /// The state from a checkpoint written before the envelope, if these bytes are one.
    fn legacy(_bytes: &[u8]) -> Option<Self> {
        None
    }
}

#[derive(Serialize)]
struct Written<'a, T> {
    kind: &'static str,
    version: u32,
    body: &'a T,
}

#[derive(serde::Deserialize)]
struct Read<'a> {
    kind: String,
    version: u32,
    #[serde(borrow)]
    body: &'a RawValue,
}

/// The checkpoint bytes of `state`.
pub fn encode<C: Checkpoint>(state: &C) -> Result<Vec<u8>, CheckpointError> {
    serde_json::to_vec(&Written {
        kind: C::KIND,
        version: C::VERSION,
        body: state,
    })
    .map_err(|error| CheckpointError::Encode {
        kind: C::KIND,
        message: error.to_string(),
    })
}

/// The state in checkpoint bytes written by [`encode`] (or, for kinds that read one, the form
/// written before the envelope).
pub fn decode<C: Checkpoint>(bytes: &[u8]) -> Result<C, CheckpointError> {
    let envelope = match serde_json::from_slice::<Read<'_>>(bytes) {
        Ok(envelope) => envelope,
        Err(error) => {
            return C::legacy(bytes).ok_or_else(|| CheckpointError::Malformed(error.to_string()));
        }
    };
    if envelope.kind != C::KIND {
        return Err(CheckpointError::Kind {
            expected: C::KIND,
            found: envelope.kind,
        });
    }
    if envelope.version != C::VERSION {
        return Err(CheckpointError::Version {
            kind: C::KIND,
            expected: C::VERSION,
            found: envelope.version,
        });
    }
    serde_json::from_str(envelope.body.get())
        .map_err(|error| CheckpointError::Malformed(format!("{} body: {error}", C::KIND)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
    struct Window {
        start: i64,
        seen: Vec<u64>,
    }

    impl Checkpoint for Window {
        const KIND: &'static str = "window";
        const VERSION: u32 = 2;
        fn legacy(bytes: &[u8]) -> Option<Self> {
            let start = std::str::from_utf8(bytes).ok()?.parse().ok()?;
            Some(Self {
                start,
                seen: Vec::new(),
            })
        }
    }

    #[derive(Debug, Serialize, serde::Deserialize)]
    struct Other {
        start: i64,
    }

    impl Checkpoint for Other {
        const KIND: &'static str = "other";
        const VERSION: u32 = 2;
    }

    #[test]
    fn state_round_trips_through_its_envelope() {
        let window = Window {
            start: 42,
            seen: vec![7, 9],
        };
        let bytes = encode(&window).unwrap();
        assert!(
            String::from_utf8_lossy(&bytes).starts_with(r#"{"kind":"window","version":2,"body":"#)
        );
        assert_eq!(decode::<Window>(&bytes).unwrap(), window);
    }

    #[test]
    fn another_kind_another_version_and_garbage_are_refused_by_name() {
        let bytes = encode(&Window {
            start: 1,
            seen: Vec::new(),
        })
        .unwrap();
        let error = decode::<Other>(&bytes).unwrap_err();
        assert!(matches!(error, CheckpointError::Kind { .. }), "{error}");
        let old = br#"{"kind":"window","version":1,"body":{"start":1}}"#;
        let error = decode::<Window>(old).unwrap_err();
        assert_eq!(
            error.to_string(),
            "a window checkpoint of version 1; this build reads version 2"
        );
        assert!(matches!(
            decode::<Other>(b"\xff\x00"),
            Err(CheckpointError::Malformed(_))
        ));
        assert!(matches!(
            decode::<Window>(br#"{"kind":"window","version":2,"body":{"start":"x"}}"#),
            Err(CheckpointError::Malformed(_))
        ));
    }

    #[test]
    fn a_kind_reads_what_it_wrote_before_the_envelope() {
        assert_eq!(
            decode::<Window>(b"1700").unwrap(),
            Window {
                start: 1700,
                seen: Vec::new()
            }
        );
        assert!(decode::<Other>(b"1700").is_err());
    }
}
