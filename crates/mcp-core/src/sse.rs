//! Incremental `text/event-stream` parser and per-event rewriter.
//!
//! Envoy hands a filter the upstream response body as arbitrary chunks. [`SseStream`] forwards
//! complete events as soon as their terminating blank line arrives, keeps only the incomplete
//! tail of the current event, and lets a callback keep, drop or replace the `data` of each event.
//! Bytes of events that are kept are forwarded unchanged, so a pass-through is byte-identical.
//!
//! Parsing follows WHATWG HTML §9.2.6 "Interpreting an event stream"
//! (<https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation>):
//!
//! ```text
//! stream        = [ bom ] *event
//! event         = *( comment / field ) end-of-line
//! comment       = colon *any-char end-of-line
//! field         = 1*name-char [ colon [ space ] *any-char ] end-of-line
//! end-of-line   = ( cr lf / cr / lf )
//! ```
//!
//! * A field line without a colon is a field name with an empty value; one leading U+0020 after
//!   the colon is stripped; unknown field names are ignored.
//! * `data` lines are joined with LF; an event with no `data` line dispatches nothing, so the
//!   callback is not invoked for it (keep-alive comments, `retry:`-only blocks, bare blank lines)
//!   and its bytes are always forwarded untouched. An empty `data:` line *is* a data field: the
//!   MCP priming event `id: 1\ndata:\n\n` reaches the callback with `data == Some("")`, as it
//!   reaches a browser's `onmessage`.
//! * An `id` value containing U+0000 is ignored; a `retry` value that is not all ASCII digits (or
//!   overflows `u64`) is ignored.
//! * A UTF-8 BOM at the very start of the stream is skipped by the parser but forwarded.
//! * An unterminated event at end of stream is never dispatched; its bytes are forwarded as-is.
//!
//! Fail-closed on encoding: browsers decode with U+FFFD replacement, which would let the client see
//! different text than a filter inspected. So when an event that carries data has a `data`,
//! `event` or `id` value that is not valid UTF-8, [`SseStream::push`] returns
//! [`SseError::InvalidUtf8`] instead of guessing. Comments and data-less events are never decoded.

use std::borrow::Cow;

/// The UTF-8 byte order mark, skipped by parsers only at the very start of a stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Largest tail buffer kept for reuse between events.
const TAIL_KEEP_CAPACITY: usize = 64 * 1024;

/// One complete event as seen in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// Exact bytes of the event block including its terminating blank line (what is forwarded on
    /// Keep). When a chunk ends in the CR of the blank line, the event is emitted at once and a
    /// following LF is forwarded (or dropped with the event) separately, so `raw` ends in `\r`.
    pub raw: &'a [u8],
    /// `data` lines joined with '\n' (borrowed when there is exactly one data line).
    /// `None` when the event had no data field at all.
    pub data: Option<Cow<'a, str>>,
    /// Value of the last `event` field of this block, if any.
    pub event: Option<&'a str>,
    /// Value of the last valid `id` field of this block, if any. This is the id set by this block,
    /// not the stream's inherited last-event-id.
    pub id: Option<&'a str>,
    /// Value of the last valid `retry` field of this block, if any.
    pub retry: Option<u64>,
}

/// What to do with one complete event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventAction {
    /// Forward the event's bytes unchanged.
    Keep,
    /// Remove the event's bytes entirely.
    Drop,
    /// Forward the event with its `data` replaced (see [`rewrite_event_data`]).
    ReplaceData(String),
}

/// Errors of the SSE parser. After an error the stream is unusable: every later
/// [`SseStream::push`] returns the same error, because part of a chunk may already be consumed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// An event (complete or still pending) is larger than the configured limit.
    #[error("SSE event larger than {limit} bytes")]
    EventTooLarge {
        /// The configured `max_event_bytes`.
        limit: usize,
    },
    /// A `data`, `event` or `id` value of an event carrying data is not valid UTF-8.
    #[error("SSE event field is not valid UTF-8")]
    InvalidUtf8,
}

/// Where [`Scanner::find_end`] found the end of an event block.
#[derive(Debug, Clone, Copy)]
struct BlockEnd {
    /// Offset just past the block's terminating blank line.
    at: usize,
    /// The blank line ended in a CR that was the last available byte: an LF arriving next is the
    /// rest of that CRLF, not a new blank line.
    cr_at_end: bool,
}

/// Line-level scanning state, carried across chunks for the current (incomplete) block.
#[derive(Debug, Clone, Default)]
struct Scanner {
    /// The current line has at least one content byte (so its end is not a blank line).
    line_nonempty: bool,
    /// The last consumed byte was a CR ending a non-blank line; an LF next belongs to it.
    after_cr: bool,
    /// Bytes of the leading BOM matched so far; `None` once the BOM check is over.
    bom_matched: Option<usize>,
}

impl Scanner {
    fn new() -> Self {
        Self {
            line_nonempty: false,
            after_cr: false,
            bom_matched: Some(0),
        }
    }

    /// Scans `bytes` (the continuation of the current block) for the blank line ending it.
    /// On `None` every byte has been absorbed into the state; on `Some` the state is reset for
    /// the next block.
    fn find_end(&mut self, bytes: &[u8]) -> Option<BlockEnd> {
        let mut i = 0;
        // The BOM is invisible to the line parser: a BOM followed by LF is a blank line.
        while let Some(matched) = self.bom_matched {
            let byte = *bytes.get(i)?;
            if BOM.get(matched) == Some(&byte) {
                i += 1;
                self.bom_matched = if matched + 1 == BOM.len() {
                    None
                } else {
                    Some(matched + 1)
                };
            } else {
                self.bom_matched = None;
                // A partial BOM is ordinary (if undecodable) content of the first line.
                self.line_nonempty |= matched > 0;
            }
        }
        loop {
            if self.after_cr {
                match bytes.get(i) {
                    None => return None,
                    Some(b'\n') => i += 1,
                    Some(_) => {}
                }
                self.after_cr = false;
            }
            let rest = bytes.get(i..).unwrap_or_default();
            let Some(k) = find_eol(rest) else {
                self.line_nonempty |= !rest.is_empty();
                return None;
            };
            let blank = k == 0 && !self.line_nonempty;
            let is_cr = rest.get(k) == Some(&b'\r');
            i += k + 1;
            self.line_nonempty = false;
            if blank {
                let mut end = BlockEnd {
                    at: i,
                    cr_at_end: false,
                };
                if is_cr {
                    match bytes.get(i) {
                        Some(b'\n') => end.at += 1,
                        Some(_) => {}
                        None => end.cr_at_end = true,
                    }
                }
                return Some(end);
            }
            self.after_cr = is_cr;
        }
    }
}

/// Per-stream state. Bounded: `max_event_bytes` caps the pending tail and the size of any single
/// event; exceeding it is an error.
#[derive(Debug, Clone)]
pub struct SseStream {
    max_event_bytes: usize,
    /// Bytes of the current incomplete block, from its first byte.
    tail: Vec<u8>,
    scanner: Scanner,
    /// The previous chunk ended with the CR of a blank line and its event was already emitted.
    /// `Some(forward)`: if the next byte is LF, it is the rest of that CRLF and is forwarded only
    /// if the event was not dropped, so the output does not depend on where chunks split.
    lf_after_cr: Option<bool>,
    /// No block has been completed yet (only the first block may start with the stream's BOM).
    first_block: bool,
    failed: Option<SseError>,
}

/// The outcome of one complete block, as far as output bytes are concerned.
enum Decision {
    Keep,
    Drop,
    Replace(Vec<u8>),
}

impl SseStream {
    /// Creates the state for one response stream.
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            max_event_bytes,
            tail: Vec::new(),
            scanner: Scanner::new(),
            lf_after_cr: None,
            first_block: true,
            failed: None,
        }
    }

    /// Number of bytes held back because their event is not complete yet.
    pub fn pending_len(&self) -> usize {
        self.tail.len()
    }

    /// Feed one upstream chunk. Returns the bytes to forward now (complete events, possibly
    /// rewritten), keeping any incomplete tail inside. At `eos` the tail is dropped: an
    /// unterminated event is not dispatched, per spec, and nothing uninspected is forwarded.
    ///
    /// `on_event` is called, in stream order, for each complete event that has a data field.
    /// Fast path: when no complete event is in the chunk, returns an empty, unallocated `Vec` and
    /// copies the chunk into the tail. When every action is Keep, the chunk is copied once.
    pub fn push<F>(&mut self, chunk: &[u8], eos: bool, mut on_event: F) -> Result<Vec<u8>, SseError>
    where
        F: FnMut(&SseEvent<'_>) -> EventAction,
    {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.push_inner(chunk, eos, &mut on_event);
        if let Err(err) = &result {
            self.failed = Some(err.clone());
            self.tail = Vec::new();
        }
        result
    }

    fn push_inner(
        &mut self,
        chunk: &[u8],
        eos: bool,
        on_event: &mut dyn FnMut(&SseEvent<'_>) -> EventAction,
    ) -> Result<Vec<u8>, SseError> {
        let mut out = Vec::new();
        let mut pos = 0;

        // An empty chunk (Envoy sends them) must not clear the pending CR decision.
        if let (Some(forward), Some(&first)) = (self.lf_after_cr, chunk.first()) {
            self.lf_after_cr = None;
            if first == b'\n' {
                pos = 1;
                if forward {
                    out.push(b'\n');
                }
            }
        }

        // Finish the block whose start is already buffered in the tail.
        if !self.tail.is_empty() {
            let rest = chunk.get(pos..).unwrap_or_default();
            match self.scanner.find_end(rest) {
                None => {
                    if !eos {
                        self.check_size(self.tail.len().saturating_add(rest.len()))?;
                    }
                    self.tail.extend_from_slice(rest);
                    pos = chunk.len();
                }
                Some(end) => {
                    let head = rest.get(..end.at).unwrap_or_default();
                    self.check_size(self.tail.len().saturating_add(head.len()))?;
                    self.tail.extend_from_slice(head);
                    let raw = std::mem::take(&mut self.tail);
                    let decision = self.decide(&raw, on_event)?;
                    out.reserve(raw.len() + chunk.len().saturating_sub(pos));
                    match &decision {
                        Decision::Keep => out.extend_from_slice(&raw),
                        Decision::Drop => {}
                        Decision::Replace(bytes) => out.extend_from_slice(bytes),
                    }
                    self.note_cr_end(end, &decision);
                    // Reuse the allocation for the next tail, unless one huge event would pin it
                    // for the rest of a long-lived stream.
                    if raw.capacity() <= TAIL_KEEP_CAPACITY {
                        self.tail = raw;
                        self.tail.clear();
                    }
                    pos += end.at;
                }
            }
        }

        // Blocks entirely inside this chunk are borrowed straight from it; consecutive kept
        // blocks are copied to the output in one go.
        let mut keep_from = pos;
        while let Some(rest) = chunk.get(pos..).filter(|r| !r.is_empty()) {
            let Some(end) = self.scanner.find_end(rest) else {
                if !eos {
                    self.check_size(rest.len())?;
                }
                self.tail.extend_from_slice(rest);
                break;
            };
            let raw = rest.get(..end.at).unwrap_or_default();
            self.check_size(raw.len())?;
            let decision = self.decide(raw, on_event)?;
            if !matches!(decision, Decision::Keep) {
                out.extend_from_slice(chunk.get(keep_from..pos).unwrap_or_default());
                keep_from = pos + end.at;
                if let Decision::Replace(bytes) = &decision {
                    out.extend_from_slice(bytes);
                }
            }
            self.note_cr_end(end, &decision);
            pos += end.at;
        }
        out.extend_from_slice(chunk.get(keep_from..pos).unwrap_or_default());

        if eos {
            // An event the stream ends inside of is not dispatched by a client that follows
            // the spec, and was never shown to `on_event`: it is dropped, not forwarded
            // uninspected to a client that might dispatch it anyway.
            self.tail.clear();
            self.scanner = Scanner::new();
            self.lf_after_cr = None;
            self.first_block = true;
        }
        Ok(out)
    }

    fn check_size(&self, len: usize) -> Result<(), SseError> {
        if len > self.max_event_bytes {
            return Err(SseError::EventTooLarge {
                limit: self.max_event_bytes,
            });
        }
        Ok(())
    }

    fn note_cr_end(&mut self, end: BlockEnd, decision: &Decision) {
        if end.cr_at_end {
            self.lf_after_cr = Some(!matches!(decision, Decision::Drop));
        }
    }

    /// Parses one complete block and asks the callback about it (only if it carries data).
    fn decide(
        &mut self,
        raw: &[u8],
        on_event: &mut dyn FnMut(&SseEvent<'_>) -> EventAction,
    ) -> Result<Decision, SseError> {
        let has_bom = std::mem::replace(&mut self.first_block, false) && raw.starts_with(BOM);
        let body = if has_bom {
            raw.get(BOM.len()..).unwrap_or_default()
        } else {
            raw
        };
        let fields = RawFields::scan(body);
        if fields.data_lines == 0 {
            return Ok(Decision::Keep);
        }
        let event = fields.decode(raw, body)?;
        Ok(match on_event(&event) {
            EventAction::Keep => Decision::Keep,
            EventAction::Drop => Decision::Drop,
            EventAction::ReplaceData(data) => Decision::Replace(rewrite_body(raw, body, &data)),
        })
    }
}

/// Parses one complete event block (for callers that already hold whole events, e.g. a buffered
/// body). A leading BOM is treated as the stream's BOM and skipped; pass later blocks of a stream
/// as they are. Returns [`SseError::InvalidUtf8`] if a `data`, `event` or `id` value is not UTF-8.
pub fn parse_event(raw: &[u8]) -> Result<SseEvent<'_>, SseError> {
    let body = raw.strip_prefix(BOM).unwrap_or(raw);
    RawFields::scan(body).decode(raw, body)
}

/// Re-encode an event with new data: keeps the original `event`, `id`, `retry` fields and comment
/// lines in their original order and line-ending style, replaces all `data` lines with the new
/// data split on '\n' (and on '\r\n'/'\r' — they cannot appear raw inside one data line),
/// terminated like the original.
///
/// The new `data` lines take the place of the first original one and use its line ending and its
/// `data:` / `data: ` spelling (a space is always written when the new line itself starts with a
/// space, so it survives the parser's space stripping). If `raw` has no `data` line, the new lines
/// go just before the terminating blank line. A leading BOM is treated as the stream's BOM and
/// kept in front. The client will see `new_data` with its line endings normalised to '\n'.
pub fn rewrite_event_data(raw: &[u8], new_data: &str) -> Vec<u8> {
    let body = raw.strip_prefix(BOM).unwrap_or(raw);
    rewrite_body(raw, body, new_data)
}

/// `body` is `raw` without the stream BOM (if any); the BOM is copied to the output unchanged.
fn rewrite_body(raw: &[u8], body: &[u8], new_data: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + new_data.len() + 16);
    out.extend_from_slice(
        raw.get(..raw.len().saturating_sub(body.len()))
            .unwrap_or_default(),
    );
    let mut written = false;
    for (content, term) in Lines::new(body) {
        match classify(content) {
            Line::Field { name: b"data", .. } => {
                if !written {
                    let spaced = content.starts_with(b"data: ");
                    write_data_lines(&mut out, new_data, spaced, term);
                    written = true;
                }
            }
            Line::Blank if !written => {
                write_data_lines(&mut out, new_data, true, term);
                written = true;
                out.extend_from_slice(term);
            }
            _ => {
                // The new data lines end like the first original one; if that was a lone CR and
                // the next kept line starts with LF (the original's later data lines, now gone,
                // sat between), the two would read as one CRLF: the event would lose its
                // closing blank line and merge with the next. The CR is completed instead.
                let next = content.first().or(term.first());
                if out.last() == Some(&b'\r') && next == Some(&b'\n') {
                    out.push(b'\n');
                }
                out.extend_from_slice(content);
                out.extend_from_slice(term);
            }
        }
    }
    if !written {
        // Not a complete block (no blank line): append rather than glue onto an open line.
        if !matches!(out.last(), None | Some(b'\n' | b'\r')) {
            out.push(b'\n');
        }
        write_data_lines(&mut out, new_data, true, b"\n");
    }
    out
}

fn write_data_lines(out: &mut Vec<u8>, new_data: &str, spaced: bool, term: &[u8]) {
    let term: &[u8] = if term.is_empty() { b"\n" } else { term };
    for (piece, _) in Lines::new(new_data.as_bytes()).with_trailing_empty() {
        out.extend_from_slice(b"data:");
        if spaced || piece.first() == Some(&b' ') {
            out.push(b' ');
        }
        out.extend_from_slice(piece);
        out.extend_from_slice(term);
    }
}

/// Splits bytes into `(content, terminator)` pairs on CRLF, LF or CR. The last line has an empty
/// terminator if the input does not end in a line break.
struct Lines<'a> {
    rest: &'a [u8],
    /// Also yield a final empty line when the input is empty or ends in a line break, so that
    /// splitting a data value and re-joining with LF round-trips.
    trailing_empty: bool,
    done: bool,
}

impl<'a> Lines<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            rest: bytes,
            trailing_empty: false,
            done: false,
        }
    }

    fn with_trailing_empty(mut self) -> Self {
        self.trailing_empty = true;
        self
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.rest.is_empty() {
            self.done = true;
            return self.trailing_empty.then_some((&[][..], &[][..]));
        }
        let Some(k) = find_eol(self.rest) else {
            self.done = true;
            return Some((self.rest, &[]));
        };
        let (content, after) = self.rest.split_at_checked(k)?;
        let term_len = if after.starts_with(b"\r\n") { 2 } else { 1 };
        let (term, rest) = after.split_at_checked(term_len)?;
        self.rest = rest;
        Some((content, term))
    }
}

/// One line of an event block, without its terminator.
enum Line<'a> {
    Blank,
    Comment,
    Field { name: &'a [u8], value: &'a [u8] },
}

fn classify(content: &[u8]) -> Line<'_> {
    match content.iter().position(|&b| b == b':') {
        _ if content.is_empty() => Line::Blank,
        Some(0) => Line::Comment,
        Some(colon) => {
            let (name, rest) = content.split_at_checked(colon).unwrap_or((content, &[]));
            let value = rest.get(1..).unwrap_or_default();
            Line::Field {
                name,
                value: value.strip_prefix(b" ").unwrap_or(value),
            }
        }
        None => Line::Field {
            name: content,
            value: &[],
        },
    }
}

/// Field values of one block as bytes, before any UTF-8 decoding.
struct RawFields<'a> {
    data_lines: usize,
    first_data: &'a [u8],
    data_len: usize,
    event: Option<&'a [u8]>,
    id: Option<&'a [u8]>,
    retry: Option<u64>,
}

impl<'a> RawFields<'a> {
    fn scan(body: &'a [u8]) -> Self {
        let mut fields = RawFields {
            data_lines: 0,
            first_data: &[],
            data_len: 0,
            event: None,
            id: None,
            retry: None,
        };
        for (content, _) in Lines::new(body) {
            let Line::Field { name, value } = classify(content) else {
                continue;
            };
            match name {
                b"data" => {
                    if fields.data_lines == 0 {
                        fields.first_data = value;
                    }
                    fields.data_lines += 1;
                    fields.data_len += value.len() + 1;
                }
                b"event" => fields.event = Some(value),
                b"id" if !value.contains(&0) => fields.id = Some(value),
                b"retry" => {
                    if let Some(ms) = parse_retry(value) {
                        fields.retry = Some(ms);
                    }
                }
                _ => {}
            }
        }
        fields
    }

    fn decode(self, raw: &'a [u8], body: &'a [u8]) -> Result<SseEvent<'a>, SseError> {
        let text = |bytes: &'a [u8]| std::str::from_utf8(bytes).map_err(|_| SseError::InvalidUtf8);
        let data = match self.data_lines {
            0 => None,
            1 => Some(Cow::Borrowed(text(self.first_data)?)),
            _ => {
                let mut joined = String::with_capacity(self.data_len);
                for (content, _) in Lines::new(body) {
                    if let Line::Field {
                        name: b"data",
                        value,
                    } = classify(content)
                    {
                        joined.push_str(text(value)?);
                        joined.push('\n');
                    }
                }
                joined.pop();
                Some(Cow::Owned(joined))
            }
        };
        Ok(SseEvent {
            raw,
            data,
            event: self.event.map(text).transpose()?,
            id: self.id.map(text).transpose()?,
            retry: self.retry,
        })
    }
}

/// `retry` must be ASCII digits only; anything else (including empty or overflowing) is ignored.
fn parse_retry(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The first CR or LF in `b`. Eight bytes at a time (SWAR on u64, native in wasm32 too): an
/// MCP event is usually one `data:` line holding a whole JSON-RPC message, so this loop runs
/// over every byte of every event, 100 KB and more for a large `tools/list`.
fn find_eol(b: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let Ok(arr) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(arr);
        let n = w ^ (LO * u64::from(b'\n'));
        let r = w ^ (LO * u64::from(b'\r'));
        // Lowest flagged byte is exact for each mask (borrows only pollute higher bytes).
        let m = (n.wrapping_sub(LO) & !n & HI) | (r.wrapping_sub(LO) & !r & HI);
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?
        .iter()
        .position(|&c| c == b'\n' || c == b'\r')
        .map(|k| i + k)
}

#[cfg(test)]
mod tests;
