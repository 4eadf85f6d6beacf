//! The JSON helpers every input reader shares: a scalar as text or as a number, and a text cut to a
//! bound, so that each sensor's parser reads a loosely typed field the same way.

use serde_json::Value;

/// A string, number or boolean as text (sensors write numbers and flags as either).
pub(crate) fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A number, or a string holding one.
pub(crate) fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

/// `value` cut to at most `limit` bytes, on a character boundary.
pub(crate) fn truncated(mut value: String, limit: usize) -> String {
    if value.len() > limit {
        let mut cut = limit;
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        value.truncate(cut);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_read_as_text_or_numbers_and_texts_cut_on_a_character() {
        assert_eq!(text(&Value::from(7)), Some("7".into()));
        assert_eq!(text(&Value::from(true)), Some("true".into()));
        assert_eq!(text(&Value::Null), None);
        assert_eq!(int(&Value::from("42")), Some(42));
        assert_eq!(int(&Value::from("x")), None);
        assert_eq!(truncated("héllo".into(), 2), "h");
        assert_eq!(truncated("abc".into(), 5), "abc");
    }
}

/// What one byte is to a JSON string, for the readers that follow JSON a byte at a time (the
/// multi-line value scanner, the slimmer of oversized events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StringByte {
    /// Outside any string.
    Outside,
    /// The opening quote.
    Open,
    /// Inside: content, a backslash or what it escapes.
    Content,
    /// The closing quote.
    Close,
}

/// Whether a byte-at-a-time reader is inside a JSON string, escapes included.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StringState {
    inside: bool,
    escaped: bool,
}

impl StringState {
    pub(crate) fn inside(self) -> bool {
        self.inside
    }

    /// Takes the next byte and says what it is to a string.
    pub(crate) fn step(&mut self, byte: u8) -> StringByte {
        if !self.inside {
            if byte == b'"' {
                self.inside = true;
                return StringByte::Open;
            }
            return StringByte::Outside;
        }
        if self.escaped {
            self.escaped = false;
        } else if byte == b'\\' {
            self.escaped = true;
        } else if byte == b'"' {
            self.inside = false;
            return StringByte::Close;
        }
        StringByte::Content
    }
}
