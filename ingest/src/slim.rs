//! An audit event over the size limit, read for what detection needs.
//!
//! What makes an audit event large is its `requestObject` or `responseObject` (an anonymous
//! `list secrets` answered with every Secret of a namespace). Rejecting the event whole would hide
//! exactly that call. So a line over `--max-event-bytes` is streamed through [`Slimmer`], which
//! copies the event but writes `null` for those two objects; if what is left fits the limit, it is
//! read as any event (counted as `oversized_object_dropped`). Only what is kept is held: the
//! objects' bytes go by without being stored.

use crate::json::{StringByte, StringState};

/// The top-level fields left out of an oversized event.
const DROPPED_FIELDS: [&[u8]; 2] = [b"requestObject", b"responseObject"];

/// Longest key remembered while copying (longer ones are not among [`DROPPED_FIELDS`]).
const KEY_MAX: usize = 32;

/// A byte-at-a-time copy of one JSON object that replaces the values of [`DROPPED_FIELDS`] at its
/// top level with `null`, keeping at most `max` bytes.
#[derive(Debug)]
pub(crate) struct Slimmer {
    out: Vec<u8>,
    max: usize,
    /// Nesting depth in the copy (the top-level object is 1).
    depth: usize,
    string: StringState,
    /// At the top level, between `{` or `,` and the next key.
    expect_key: bool,
    /// The top-level key being read, and the last one read (up to [`KEY_MAX`] bytes).
    key: Option<Vec<u8>>,
    last_key: Vec<u8>,
    /// Skipping a dropped value: its own depth (0 before it opens or for a scalar).
    skipping: Option<usize>,
    /// Whether the first significant byte opened an object, and whether the copy overflowed.
    started: bool,
    failed: bool,
    dropped: usize,
}

impl Slimmer {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            out: Vec::new(),
            max,
            depth: 0,
            string: StringState::default(),
            expect_key: false,
            key: None,
            last_key: Vec::new(),
            skipping: None,
            started: false,
            failed: false,
            dropped: 0,
        }
    }

    /// Feeds the next bytes of the line.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if self.failed {
                return;
            }
            self.byte(byte);
        }
    }

    /// The slimmed event: `Some` when the line was one object, something was dropped and the rest
    /// fits the limit.
    pub(crate) fn finish(self) -> Option<Vec<u8>> {
        (self.started && !self.failed && self.depth == 0 && self.dropped > 0).then_some(self.out)
    }

    fn emit(&mut self, bytes: &[u8]) {
        if self.out.len() + bytes.len() > self.max {
            self.failed = true;
            return;
        }
        self.out.extend_from_slice(bytes);
    }

    fn byte(&mut self, byte: u8) {
        if let Some(depth) = self.skipping {
            self.skip(byte, depth);
            return;
        }
        if self.string.inside() {
            self.emit(&[byte]);
            match self.string.step(byte) {
                StringByte::Close => {
                    if let Some(key) = self.key.take() {
                        self.last_key = key;
                    }
                }
                _ => {
                    if let Some(key) = &mut self.key
                        && key.len() < KEY_MAX
                    {
                        key.push(byte);
                    }
                }
            }
            return;
        }
        if !self.started {
            if byte.is_ascii_whitespace() {
                return;
            }
            if byte != b'{' {
                self.failed = true;
                return;
            }
            self.started = true;
        } else if self.depth == 0 && !byte.is_ascii_whitespace() {
            // Something after the object: not one object a line.
            self.failed = true;
            return;
        }
        self.emit(&[byte]);
        if self.string.step(byte) == StringByte::Open {
            if self.depth == 1 && self.expect_key {
                self.key = Some(Vec::new());
                self.expect_key = false;
            }
            return;
        }
        match byte {
            b'{' | b'[' => {
                self.depth += 1;
                if self.depth == 1 {
                    self.expect_key = true;
                }
            }
            b'}' | b']' => self.depth = self.depth.saturating_sub(1),
            b',' if self.depth == 1 => self.expect_key = true,
            b':' if self.depth == 1 => {
                if DROPPED_FIELDS.contains(&self.last_key.as_slice()) {
                    self.emit(b"null");
                    self.skipping = Some(0);
                    self.dropped += 1;
                }
                self.last_key.clear();
            }
            _ => {}
        }
    }

    /// One byte of a dropped value, which started right after its `:`.
    fn skip(&mut self, byte: u8, depth: usize) {
        if self.string.step(byte) != StringByte::Outside {
            return;
        }
        match byte {
            b'{' | b'[' => self.skipping = Some(depth + 1),
            b'}' | b']' if depth > 1 => self.skipping = Some(depth - 1),
            b'}' | b']' if depth == 1 => self.skipping = None,
            // A scalar (or the value) ended at the top level's next `,` or `}`: copied as usual.
            b',' | b'}' if depth == 0 => {
                self.skipping = None;
                self.byte(byte);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slim(text: &str, max: usize) -> Option<String> {
        let mut slimmer = Slimmer::new(max);
        // Fed in pieces, as lines arrive.
        for chunk in text.as_bytes().chunks(7) {
            slimmer.feed(chunk);
        }
        slimmer.finish().map(|out| String::from_utf8(out).unwrap())
    }

    #[test]
    fn the_request_and_response_objects_are_left_out_and_the_rest_is_kept() {
        let big = "x".repeat(10_000);
        let event = format!(
            r#"{{"kind":"Event","verb":"list","responseObject":{{"items":[{{"data":"{big}","s":"a\"}}]"}}]}},"requestObject":"{big}","user":{{"username":"u","responseObject":1}},"sourceIPs":["1.2.3.4"]}}"#
        );
        let slimmed = slim(&event, 200).unwrap();
        assert_eq!(
            slimmed,
            r#"{"kind":"Event","verb":"list","responseObject":null,"requestObject":null,"user":{"username":"u","responseObject":1},"sourceIPs":["1.2.3.4"]}"#
        );
        let value: serde_json::Value = serde_json::from_str(&slimmed).unwrap();
        assert_eq!(value["sourceIPs"][0], "1.2.3.4");
    }

    #[test]
    fn a_scalar_object_value_and_the_last_field_are_handled() {
        assert_eq!(
            slim(r#"{"a":1,"responseObject":12345 }"#, 100).as_deref(),
            Some(r#"{"a":1,"responseObject":null}"#)
        );
        assert_eq!(
            slim(r#" {"responseObject" : "}{" , "b":2}"#, 100).as_deref(),
            Some(r#"{"responseObject" :null, "b":2}"#)
        );
    }

    #[test]
    fn what_cannot_be_slimmed_is_refused() {
        // Nothing dropped, too large once dropped, not an object, cut short, two values.
        assert_eq!(slim(r#"{"a":1}"#, 100), None);
        assert_eq!(
            slim(
                &format!(r#"{{"a":"{}","responseObject":1}}"#, "x".repeat(200)),
                100
            ),
            None
        );
        assert_eq!(slim(r#"["responseObject"]"#, 100), None);
        assert_eq!(slim(r#"{"responseObject":{"a":1}"#, 100), None);
        assert_eq!(slim(r#"{"responseObject":1} {"b":2}"#, 100), None);
    }
}
