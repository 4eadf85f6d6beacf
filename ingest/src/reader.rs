//! Telling the input's shape and walking it with bounded memory: a file or message is read line by
//! line (or element by element for a JSON array); no more than one event, or one line, is held at once.

use std::io::{BufRead, BufReader, Read};

use flate2::read::MultiGzDecoder;
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde_json::value::RawValue;
use vigil_schemas::time::parse_rfc3339_micros;

use crate::cloud;
use crate::json::{StringByte, StringState};
use crate::normalize::normalize;
use crate::raw::RawObject;
use crate::runtime;
use crate::slim::Slimmer;
use crate::{Ingested, Ingestor, RejectReason, Rejection, SkipReason, Tolerance};

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const READ_BUFFER: usize = 256 * 1024;
/// Envelopes inside envelopes (an array of CloudWatch records of EventLists) stop somewhere.
const MAX_NESTING: u8 = 4;

/// Reads a whole stream (a file, stdin, a message), handing each event or rejection to `out`.
/// Returns the rejection that ended the stream early (a corrupt gzip, a broken JSON array), if any.
pub(crate) fn read_stream<R: Read>(
    ingestor: &mut Ingestor,
    input: R,
    out: &mut dyn FnMut(Ingested),
) -> Result<(), Rejection> {
    let mut buffered = BufReader::with_capacity(READ_BUFFER, input);
    let head = buffered
        .fill_buf()
        .map_err(|error| io_rejection(&error, false))?;
    if head.starts_with(&GZIP_MAGIC) {
        let inflated = Inflated {
            inner: MultiGzDecoder::new(buffered),
            left: ingestor.limits().max_inflated_bytes,
        };
        let decoder = BufReader::with_capacity(READ_BUFFER, inflated);
        read_text(ingestor, decoder, true, out)
    } else {
        read_text(ingestor, buffered, false, out)
    }
}

/// A gzip stream read through a budget of inflated bytes: past it, reading fails with
/// [`InflateLimit`].
struct Inflated<R> {
    inner: R,
    /// Bytes still allowed; `None`: no bound.
    left: Option<u64>,
}

/// The error an [`Inflated`] reader fails with once its budget is spent.
#[derive(Debug)]
struct InflateLimit;

impl std::fmt::Display for InflateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the gzip input inflates past the limit")
    }
}

impl std::error::Error for InflateLimit {}

impl<R: Read> Read for Inflated<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(left) = self.left else {
            return self.inner.read(buf);
        };
        if left == 0 {
            // One byte more tells a stream that ends exactly at the budget from one that goes on.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other(InflateLimit)),
            };
        }
        let room = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let read = self.inner.read(buf.get_mut(..room).unwrap_or_default())?;
        self.left = Some(left.saturating_sub(u64::try_from(read).unwrap_or(u64::MAX)));
        Ok(read)
    }
}

fn io_rejection(error: &std::io::Error, compressed: bool) -> Rejection {
    if error
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<InflateLimit>().is_some())
    {
        return Rejection::new(
            RejectReason::TooLarge,
            "the gzip input inflates past the limit (--max-inflated-bytes); the rest is skipped",
        );
    }
    if compressed {
        Rejection::new(
            RejectReason::BadCompression,
            format!("gzip stream is corrupt or cut short: {error}"),
        )
    } else {
        Rejection::new(RejectReason::Unreadable, format!("read failed: {error}"))
    }
}

fn first_significant_byte<B: BufRead>(
    reader: &mut B,
    compressed: bool,
) -> Result<Option<u8>, Rejection> {
    loop {
        let available = reader
            .fill_buf()
            .map_err(|error| io_rejection(&error, compressed))?;
        if available.is_empty() {
            return Ok(None);
        }
        // A UTF-8 byte order mark and leading blank space say nothing about the shape.
        let skip = available
            .iter()
            .position(|byte| !byte.is_ascii_whitespace() && !matches!(byte, 0xEF | 0xBB | 0xBF))
            .unwrap_or(available.len());
        if let Some(byte) = available.get(skip) {
            let byte = *byte;
            reader.consume(skip);
            return Ok(Some(byte));
        }
        let all = available.len();
        reader.consume(all);
    }
}

fn read_text<B: BufRead>(
    ingestor: &mut Ingestor,
    mut reader: B,
    compressed: bool,
    out: &mut dyn FnMut(Ingested),
) -> Result<(), Rejection> {
    match first_significant_byte(&mut reader, compressed)? {
        None => Ok(()),
        Some(b'[') => read_array(ingestor, reader, compressed, out),
        Some(_) => read_lines(ingestor, reader, compressed, out),
    }
}

/// A JSON array streamed element by element.
fn read_array<B: BufRead>(
    ingestor: &mut Ingestor,
    reader: B,
    compressed: bool,
    out: &mut dyn FnMut(Ingested),
) -> Result<(), Rejection> {
    struct Elements<'s> {
        ingestor: &'s mut Ingestor,
        out: &'s mut dyn FnMut(Ingested),
    }
    impl<'de> Visitor<'de> for Elements<'_> {
        type Value = ();
        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("a JSON array of audit events or log records")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(element) = seq.next_element::<Box<RawValue>>()? {
                let text = element.get();
                if text.len() > self.ingestor.limits().max_event_bytes {
                    let rejection = Rejection::new(
                        RejectReason::TooLarge,
                        format!("array element of {} bytes is over the limit", text.len()),
                    );
                    self.ingestor.reject(rejection, self.out);
                    continue;
                }
                handle_document(self.ingestor, text, None, Origin::default(), 1, self.out);
            }
            Ok(())
        }
    }
    impl<'de> DeserializeSeed<'de> for Elements<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            deserializer.deserialize_seq(self)
        }
    }

    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let result = Elements { ingestor, out }
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    result.map_err(|error| {
        if error.is_io() {
            let error = std::io::Error::from(error);
            if error
                .get_ref()
                .is_some_and(|inner| inner.is::<InflateLimit>())
            {
                return io_rejection(&error, compressed);
            }
            Rejection::new(
                if compressed {
                    RejectReason::BadCompression
                } else {
                    RejectReason::Unreadable
                },
                format!("reading the JSON array failed: {error}"),
            )
        } else {
            Rejection::new(
                RejectReason::InvalidJson,
                format!("JSON array is malformed, rest of input skipped: {error}"),
            )
        }
    })
}

/// How [`read_line_bounded`] read a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineRead {
    Whole,
    /// Over the limit, but one object whose request and response objects were left out to fit
    /// (see `slim`).
    Slimmed,
    /// Over the limit: its bytes were dropped, not kept.
    Over,
}

/// Reads one line into `line`, keeping at most `max` bytes; returns the bytes consumed and how the
/// line was read. A line over the limit is streamed through a [`Slimmer`], never held whole.
fn read_line_bounded<B: BufRead>(
    reader: &mut B,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<(usize, LineRead)> {
    let mut consumed = 0;
    let mut slimmer: Option<Slimmer> = None;
    let finish = |slimmer: Option<Slimmer>, line: &mut Vec<u8>| match slimmer {
        None => LineRead::Whole,
        Some(slimmer) => match slimmer.finish() {
            Some(slimmed) => {
                *line = slimmed;
                LineRead::Slimmed
            }
            None => LineRead::Over,
        },
    };
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok((consumed, finish(slimmer, line)));
        }
        let (chunk, done) = match available.iter().position(|byte| *byte == b'\n') {
            Some(end) => (available.get(..=end).unwrap_or(available), true),
            None => (available, false),
        };
        match &mut slimmer {
            Some(slimmer) => slimmer.feed(chunk),
            None if line.len() + chunk.len() > max => {
                let mut started = Slimmer::new(max);
                started.feed(line);
                started.feed(chunk);
                line.clear();
                slimmer = Some(started);
            }
            None => line.extend_from_slice(chunk),
        }
        let length = chunk.len();
        reader.consume(length);
        consumed += length;
        if done {
            return Ok((consumed, finish(slimmer, line)));
        }
    }
}

/// `2024-05-01T10:00:00.000Z {"kind":"Event",...}`: a line of an exported CloudWatch log stream;
/// or a whole line of a container's log as the CRI runtime writes it,
/// `2024-05-01T10:00:00.000000000Z stdout F {"kind":"Event",...}`.
fn exported_log_line(text: &str) -> Option<(i64, &str)> {
    if let Some(found) = cri_log_line(text) {
        return Some(found);
    }
    let (stamp, rest) = text.split_once(' ')?;
    let rest = rest.trim_start();
    if !rest.starts_with('{') {
        return None;
    }
    parse_rfc3339_micros(stamp).map(|micros| (micros, rest))
}

/// A full line of the CRI container log format: `TIMESTAMP STREAM F CONTENT` with JSON content.
/// A partial line (tag `P`, a line the runtime split at 16 KiB) is not one: its JSON is cut, and
/// is refused as such.
fn cri_log_line(text: &str) -> Option<(i64, &str)> {
    let mut parts = text.splitn(4, ' ');
    let stamp = parts.next()?;
    let stream = parts.next()?;
    let tag = parts.next()?;
    let content = parts.next()?.trim_start();
    let full = matches!(stream, "stdout" | "stderr") && tag == "F";
    if !full || !matches!(content.as_bytes().first(), Some(b'{' | b'[')) {
        return None;
    }
    parse_rfc3339_micros(stamp).map(|micros| (micros, content))
}

enum Parsed {
    Done,
    /// The text is the start of a JSON value that goes on in the next lines.
    Incomplete,
}

/// Follows a JSON value over the lines it spans, byte by byte, once: whether it is balanced (so
/// worth parsing), and whether the next line can go on with it. A pretty-printed value is read in
/// one pass this way, not parsed again from its start at every line; a line cut short (log
/// rotation, a runtime's 16 KiB split, a killed shipper) is told apart from the start of a value
/// that goes on, so the good line after it is read as its own.
#[derive(Debug, Default)]
struct ValueScanner {
    /// The open containers, `{` or `[`, innermost last (no deeper than the bytes fed, which the
    /// event size limit bounds).
    open: Vec<u8>,
    string: StringState,
    /// The last byte outside blank space, strings counted as their closing quote.
    last: Option<u8>,
}

impl ValueScanner {
    fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            match self.string.step(byte) {
                StringByte::Outside => {}
                StringByte::Open | StringByte::Content => continue,
                StringByte::Close => {
                    self.last = Some(b'"');
                    continue;
                }
            }
            match byte {
                b'{' | b'[' => self.open.push(byte),
                b'}' | b']' => {
                    self.open.pop();
                }
                _ => {}
            }
            if !byte.is_ascii_whitespace() {
                self.last = Some(byte);
            }
        }
    }

    fn balanced(&self) -> bool {
        self.open.is_empty() && !self.string.inside()
    }

    /// Whether a line starting with `next` can go on with the value so far. JSON strings hold no
    /// raw line break, so a line that ends inside one was cut; after a complete value inside a
    /// container only `,`, `}` or `]` can follow; after `{`, or a `,` in an object, only a key
    /// (or `}`); after `[`, `:` or a `,` in an array, a value.
    fn goes_on_with(&self, next: u8) -> bool {
        if self.string.inside() {
            return false;
        }
        let in_object = self.open.last() == Some(&b'{');
        match self.last {
            Some(b'{') => matches!(next, b'"' | b'}'),
            Some(b',') if in_object => next == b'"',
            Some(b'[' | b',' | b':') => true,
            _ => matches!(next, b',' | b'}' | b']'),
        }
    }
}

fn read_lines<B: BufRead>(
    ingestor: &mut Ingestor,
    mut reader: B,
    compressed: bool,
    out: &mut dyn FnMut(Ingested),
) -> Result<(), Rejection> {
    let max = ingestor.limits().max_event_bytes;
    let mut line = Vec::with_capacity(4096);
    let mut pending: Vec<u8> = Vec::new();
    let mut scanner = ValueScanner::default();
    let mut pending_from = 0u64;
    let mut line_number = 0u64;
    // After a broken multi-line value, lines up to the next one that opens a value belong to it.
    let mut resyncing = false;
    loop {
        line.clear();
        let (consumed, read) = read_line_bounded(&mut reader, &mut line, max)
            .map_err(|error| io_rejection(&error, compressed))?;
        if consumed == 0 {
            break;
        }
        let over = read == LineRead::Over;
        if read == LineRead::Slimmed {
            ingestor.tolerate(Tolerance::OversizedObjectDropped);
        }
        line_number += 1;
        let at = |mut rejection: Rejection, line: u64| {
            rejection.line = Some(line);
            rejection
        };
        if over || pending.len() + line.len() > max {
            let start = if pending.is_empty() {
                line_number
            } else {
                pending_from
            };
            pending.clear();
            let rejection = Rejection::new(
                RejectReason::TooLarge,
                format!("event or line over {max} bytes"),
            );
            ingestor.reject(at(rejection, start), out);
            continue;
        }
        if !pending.is_empty()
            && let Some(&next) = line.trim_ascii().first()
            && !scanner.goes_on_with(next)
        {
            // The value so far was cut short: rejected alone, and this line read as its own.
            pending.clear();
            ingestor.reject(
                at(
                    Rejection::new(
                        RejectReason::InvalidJson,
                        "a JSON value cut short (the line ends inside it and the next does not go on with it)",
                    ),
                    pending_from,
                ),
                out,
            );
        }
        if !pending.is_empty() {
            pending.extend_from_slice(&line);
            scanner.feed(&line);
            if !scanner.balanced() {
                // Not closed yet: nothing to parse, whatever the value's size.
                continue;
            }
            let Ok(text) = std::str::from_utf8(&pending) else {
                pending.clear();
                ingestor.reject(
                    at(
                        Rejection::new(RejectReason::NotUtf8, "input is not UTF-8 text"),
                        pending_from,
                    ),
                    out,
                );
                resyncing = true;
                continue;
            };
            ingestor.multiline_parses += 1;
            match handle_top_level(ingestor, text, None, out, pending_from) {
                Ok(Parsed::Incomplete) => {}
                Ok(Parsed::Done) => pending.clear(),
                Err(rejection) => {
                    pending.clear();
                    ingestor.reject(at(rejection, pending_from), out);
                    resyncing = true;
                }
            }
            continue;
        }
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            continue;
        }
        let opens_value = matches!(trimmed.first(), Some(b'{' | b'['));
        if resyncing && !opens_value {
            continue;
        }
        resyncing = false;
        let Ok(text) = std::str::from_utf8(trimmed) else {
            ingestor.reject(
                at(
                    Rejection::new(RejectReason::NotUtf8, "line is not UTF-8 text"),
                    line_number,
                ),
                out,
            );
            continue;
        };
        let outcome = if opens_value {
            handle_top_level(ingestor, text, None, out, line_number)
        } else if let Some((micros, event)) = exported_log_line(text) {
            handle_top_level(ingestor, event, Some(micros), out, line_number)
        } else {
            let shown: String = text.chars().take(60).collect();
            Err(Rejection::new(
                RejectReason::InvalidJson,
                format!("line is not JSON: {shown:?}"),
            ))
        };
        match outcome {
            Ok(Parsed::Done) => {}
            Ok(Parsed::Incomplete) => {
                pending.extend_from_slice(&line);
                scanner = ValueScanner::default();
                scanner.feed(&line);
                pending_from = line_number;
            }
            Err(rejection) => ingestor.reject(at(rejection, line_number), out),
        }
    }
    if !pending.is_empty() {
        let mut rejection =
            Rejection::new(RejectReason::InvalidJson, "input ends inside a JSON value");
        rejection.line = Some(pending_from);
        ingestor.reject(rejection, out);
    }
    Ok(())
}

/// One line, or several joined: one or more JSON values. Rejections of single events inside are
/// reported directly; an `Err` is a rejection of the whole text.
fn handle_top_level(
    ingestor: &mut Ingestor,
    text: &str,
    fallback_time: Option<i64>,
    out: &mut dyn FnMut(Ingested),
    line: u64,
) -> Result<Parsed, Rejection> {
    // The common case, one object on its own line, takes a single parse; anything else (several
    // values, a value cut short, an error to report) goes the slower way below.
    if text.starts_with('{')
        && let Ok(raw) = serde_json::from_str::<RawObject<'_>>(text)
    {
        dispatch(
            ingestor,
            raw,
            text,
            fallback_time,
            Origin::default(),
            0,
            &mut located(out, line),
        );
        return Ok(Parsed::Done);
    }
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
    let mut values = 0usize;
    loop {
        match stream.next() {
            None => return Ok(Parsed::Done),
            Some(Ok(value)) => {
                values += 1;
                handle_document(
                    ingestor,
                    value.get(),
                    fallback_time,
                    Origin::default(),
                    0,
                    &mut located(out, line),
                );
            }
            // A value that starts here and goes on past the text's end: a pretty-printed object.
            Some(Err(error)) if error.is_eof() && values == 0 => return Ok(Parsed::Incomplete),
            Some(Err(error)) => {
                return Err(Rejection::new(RejectReason::InvalidJson, error.to_string()));
            }
        }
    }
}

/// Passes items on, giving rejections that have no line of their own the line they came from.
fn located(out: &mut dyn FnMut(Ingested), line: u64) -> impl FnMut(Ingested) + '_ {
    move |item| match item {
        Err(mut rejection) => {
            rejection.line.get_or_insert(line);
            out(Err(rejection));
        }
        event => out(event),
    }
}

/// Where a document came from, as its envelopes said: the cluster and the cloud whose log carried it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Origin<'a> {
    pub cluster: Option<&'a str>,
    pub provider: Option<&'static str>,
}

impl<'a> Origin<'a> {
    /// This origin with what an inner envelope says, where it says something.
    pub(crate) fn within(self, cluster: Option<&'a str>, provider: &'static str) -> Self {
        Self {
            cluster: cluster.or(self.cluster),
            provider: Some(provider),
        }
    }
}

/// One complete JSON value: an Event, an EventList, a CloudWatch Logs record, an Azure Monitor
/// record or batch, a Cloud Audit Logs entry or Pub/Sub message, or an array of them.
pub(crate) fn handle_document(
    ingestor: &mut Ingestor,
    text: &str,
    fallback_time: Option<i64>,
    origin: Origin<'_>,
    depth: u8,
    out: &mut dyn FnMut(Ingested),
) {
    if depth > MAX_NESTING {
        ingestor.reject(
            Rejection::new(RejectReason::UnknownShape, "envelopes nested too deep"),
            out,
        );
        return;
    }
    if text.trim_start().starts_with('[') {
        match serde_json::from_str::<Vec<&RawValue>>(text) {
            Ok(elements) => {
                for element in elements {
                    handle_document(
                        ingestor,
                        element.get(),
                        fallback_time,
                        origin,
                        depth + 1,
                        out,
                    );
                }
            }
            Err(error) => ingestor.reject(
                Rejection::new(RejectReason::InvalidJson, error.to_string()),
                out,
            ),
        }
        return;
    }
    let raw = match serde_json::from_str::<RawObject<'_>>(text) {
        Ok(raw) => raw,
        Err(error) => {
            let reason = if error.is_data() {
                RejectReason::InvalidEvent
            } else {
                RejectReason::InvalidJson
            };
            let detail = if error.is_data() {
                format!("not a valid audit event: {error}")
            } else {
                error.to_string()
            };
            ingestor.reject(Rejection::new(reason, detail), out);
            return;
        }
    };
    dispatch(ingestor, raw, text, fallback_time, origin, depth, out);
}

/// The line a log shipper carried as a string (`{"log": "{...}\n", "stream": "stdout"}` from Fluent
/// Bit or Docker's json-file driver, `{"message": "{...}"}` from Vector, `{"event": "{...}"}` from
/// Splunk's HTTP Event Collector), when it holds JSON: the
/// audit log file or a sensor's export tailed without a JSON parser. A CRI log line's prefix
/// (`TIMESTAMP stdout F `), which a shipper reading container logs raw leaves in, is taken off.
/// `None` when the field is not a string; `Err` with the line when it holds no JSON.
fn shipped_line(field: Option<&RawValue>) -> Option<Result<String, String>> {
    let field = field.filter(|value| value.get().starts_with('"'))?;
    let line = serde_json::from_str::<String>(field.get()).ok()?;
    let trimmed = line.trim();
    let json = match trimmed.chars().next() {
        Some('{' | '[') => Some(trimmed),
        _ => cri_log_line(trimmed).map(|(_, json)| json),
    };
    Some(json.map(str::to_owned).ok_or(line))
}

/// The EKS control-plane log group is `/aws/eks/CLUSTER/cluster`.
fn cluster_from_log_group(log_group: &str) -> Option<&str> {
    log_group
        .strip_prefix("/aws/eks/")
        .and_then(|rest| rest.strip_suffix("/cluster"))
        .filter(|name| !name.is_empty() && !name.contains('/'))
}

fn dispatch(
    ingestor: &mut Ingestor,
    raw: RawObject<'_>,
    text: &str,
    fallback_time: Option<i64>,
    origin: Origin<'_>,
    depth: u8,
    out: &mut dyn FnMut(Ingested),
) {
    if raw.log_events.is_some() || raw.message_type.is_some() {
        if raw.message_type.as_deref() == Some("CONTROL_MESSAGE") {
            ingestor.skip(SkipReason::ControlMessage);
            return;
        }
        let inner = origin.within(
            raw.log_group.as_deref().and_then(cluster_from_log_group),
            "aws",
        );
        for log_event in raw.log_events.unwrap_or_default() {
            let time = log_event
                .timestamp
                .and_then(|millis| millis.checked_mul(1000))
                .or(fallback_time);
            handle_document(ingestor, &log_event.message, time, inner, depth + 1, out);
        }
        return;
    }
    if let Some(records) = raw.records {
        for record in records {
            handle_document(
                ingestor,
                record.get(),
                fallback_time,
                origin,
                depth + 1,
                out,
            );
        }
        return;
    }
    if raw.category.is_some() && raw.properties.is_some() {
        cloud::azure_record(ingestor, text, fallback_time, origin, depth, out);
        return;
    }
    if raw.proto_payload.is_some() {
        cloud::gcp_entry(ingestor, text, origin, depth, out);
        return;
    }
    if let Some(messages) = raw.received_messages {
        for message in messages {
            cloud::pubsub_message(ingestor, message.get(), origin, depth, out);
        }
        return;
    }
    if let Some(message) = raw.message.filter(|message| message.get().starts_with('{')) {
        cloud::pubsub_message(ingestor, message.get(), origin, depth, out);
        return;
    }
    if raw.items.is_some() || raw.kind.as_deref() == Some("EventList") {
        for item in raw.items.unwrap_or_default() {
            handle_document(ingestor, item.get(), fallback_time, origin, depth + 1, out);
        }
        return;
    }
    if raw.tetragon_event.is_some() {
        ingestor.finish_runtime(runtime::tetragon::parse(text), origin.cluster, out);
        return;
    }
    if raw.rule.is_some() && (raw.output_fields.is_some() || raw.priority.is_some()) {
        ingestor.finish_runtime(runtime::falco::parse(text), origin.cluster, out);
        return;
    }
    if let Some(schema) = raw.schema.as_deref() {
        if schema == runtime::native::SCHEMA {
            ingestor.finish_runtime(runtime::native::parse(text), origin.cluster, out);
        } else {
            let rejection = Rejection::new(
                RejectReason::UnknownShape,
                format!(
                    "schema {schema:?} is not one Vigil reads (runtime events: {:?})",
                    runtime::native::SCHEMA
                ),
            );
            ingestor.reject(rejection, out);
        }
        return;
    }
    // Shippers' envelopes, never an Event themselves: Splunk's event object, or a line as a string.
    if raw.kind.is_none() && raw.verb.is_none() {
        if let Some(event) = raw.event.filter(|event| event.get().starts_with('{')) {
            handle_document(ingestor, event.get(), fallback_time, origin, depth + 1, out);
            return;
        }
        match shipped_line(raw.log.or(raw.message).or(raw.event)) {
            Some(Ok(json)) => {
                handle_document(ingestor, &json, fallback_time, origin, depth + 1, out);
                return;
            }
            Some(Err(line)) => {
                let shown: String = line.chars().take(80).collect();
                let rejection = Rejection::new(
                    RejectReason::UnknownShape,
                    format!(
                        "a log shipper's record whose line is not a JSON event (nor a full CRI log line holding one): {shown:?}"
                    ),
                );
                ingestor.reject(rejection, out);
                return;
            }
            None => {}
        }
    }
    let audit_api = raw
        .api_version
        .as_deref()
        .is_none_or(|version| version.starts_with("audit.k8s.io/"));
    let is_event = match raw.kind.as_deref() {
        Some("Event") => audit_api,
        Some(_) => false,
        // Exports that keep only the request's own fields drop `kind`, `apiVersion` and sometimes
        // `auditID`: a verb with a request path or an object reference is still an Event.
        None => {
            raw.verb.is_some()
                && (raw.audit_id.is_some() || raw.request_uri.is_some() || raw.object_ref.is_some())
        }
    };
    if !is_event {
        let what = match (raw.kind.as_deref(), raw.api_version.as_deref()) {
            (Some(kind), Some(version)) => format!("kind {kind:?} of {version:?}"),
            (Some(kind), None) => format!("kind {kind:?}"),
            _ => "an object without kind, auditID or logEvents".to_owned(),
        };
        let rejection = Rejection::new(
            RejectReason::UnknownShape,
            format!(
                "{what} is neither an audit.k8s.io Event, an EventList, a CloudWatch Logs record nor a runtime event (Tetragon, Falco, {})",
                runtime::native::SCHEMA
            ),
        );
        ingestor.reject(rejection, out);
        return;
    }
    let mut tolerated = Vec::new();
    let fallback_time = fallback_time.or(ingestor.transport_time());
    match normalize(
        raw,
        text,
        fallback_time,
        origin,
        ingestor.limits(),
        &mut tolerated,
    ) {
        Ok(event) => {
            for kind in tolerated {
                ingestor.tolerate(kind);
            }
            ingestor.accept(event, out);
        }
        Err(rejection) => ingestor.reject(rejection, out),
    }
}
