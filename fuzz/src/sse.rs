//! `sse`: `mcp_core::sse::SseStream` against a plain reference implementation of the WHATWG
//! "Interpreting an event stream" rules (HTML §9.2.6), fed the same input under several chunk
//! splits (whole, whole-then-empty-eos, byte by byte, and pseudo-random splits with empty
//! chunks): same events, same output bytes, same errors.
//!
//! Each event's fate (keep / drop / replace its data) is a function of its data, so it is the
//! same under every split. The reference output is the stream with dropped blocks removed and
//! replaced blocks re-encoded by `sse::rewrite_event_data`; each re-encoded block is parsed
//! again by the reference and must carry the new data (line endings normalised to LF) and the
//! original `event`/`id`/`retry`. A second pass with a small `max_event_bytes` checks that the
//! size limit fires exactly for the blocks that exceed it.

use std::ops::Range;

use mcp_core::sse::{rewrite_event_data, EventAction, SseError, SseEvent, SseStream};

use crate::util::{fnv, show, Rng};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One block of the reference parse: the bytes up to and including a blank line.
#[derive(Debug, Clone, Default)]
pub struct Block {
    pub range: Range<usize>,
    /// The values of the block's data lines (the event's data is them joined with LF).
    pub data_lines: Vec<Vec<u8>>,
    /// Value of the last `event` field.
    pub event: Option<Vec<u8>>,
    /// Value of the last `id` field without U+0000.
    pub id: Option<Vec<u8>>,
    /// Value of the last `retry` field made of ASCII digits (and fitting u64).
    pub retry: Option<u64>,
}

impl Block {
    /// The event's data, when the block dispatches one (it has a data field).
    pub fn data(&self) -> Option<Vec<u8>> {
        (!self.data_lines.is_empty()).then(|| self.data_lines.join(&b'\n'))
    }

    /// Whether dispatching this event needs text that is not UTF-8 (mcp-core fails closed).
    pub fn bad_utf8(&self) -> bool {
        let bad = |b: &Option<Vec<u8>>| b.as_ref().is_some_and(|b| std::str::from_utf8(b).is_err());
        !self.data_lines.is_empty() && (bad(&self.data()) || bad(&self.event) || bad(&self.id))
    }
}

/// The reference parse of a whole stream: complete blocks, and where the unterminated tail
/// (never dispatched) starts.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub blocks: Vec<Block>,
    pub tail: usize,
}

/// WHATWG event-stream interpretation over a complete byte stream, written for clarity: a
/// leading BOM is skipped; lines end at CRLF, LF or CR; a blank line ends a block; `:` starts a
/// comment; `name: value` loses one leading space; a line without a colon is a field name.
pub fn reference_parse(stream: &[u8]) -> Parsed {
    let mut blocks = Vec::new();
    let mut pos = if stream.starts_with(BOM) {
        BOM.len()
    } else {
        0
    };
    let mut cur = Block::default();
    while let Some(k) = stream[pos..].iter().position(|&c| c == b'\n' || c == b'\r') {
        let line = &stream[pos..pos + k];
        let mut next = pos + k + 1;
        if stream[pos + k] == b'\r' && stream.get(next) == Some(&b'\n') {
            next += 1;
        }
        pos = next;
        if line.is_empty() {
            cur.range.end = pos;
            let start = pos;
            blocks.push(std::mem::take(&mut cur));
            cur.range = start..start;
            continue;
        }
        if line[0] == b':' {
            continue;
        }
        let (name, value) = match line.iter().position(|&c| c == b':') {
            Some(c) => {
                let v = &line[c + 1..];
                (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => cur.data_lines.push(value.to_vec()),
            b"event" => cur.event = Some(value.to_vec()),
            b"id" if !value.contains(&0) => cur.id = Some(value.to_vec()),
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                let parsed = value.iter().try_fold(0u64, |acc, &d| {
                    acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
                });
                if parsed.is_some() {
                    cur.retry = parsed;
                }
            }
            _ => {}
        }
    }
    Parsed {
        blocks,
        tail: cur.range.start,
    }
}

/// The callback's decision for an event, from its data only (so it is split-independent).
pub fn action_for(data: &str) -> EventAction {
    match fnv(data.as_bytes()) % 4 {
        0 => EventAction::Keep,
        1 => EventAction::Drop,
        2 => EventAction::ReplaceData(data.to_uppercase()),
        // A leading space, CRLF and a lone CR: the re-encoding must survive all three.
        _ => EventAction::ReplaceData(format!(" {}\r\nx\r{}", data.len(), data)),
    }
}

/// An event as observed by the callback.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    raw: Vec<u8>,
    data: Option<String>,
    event: Option<String>,
    id: Option<String>,
    retry: Option<u64>,
}

impl Seen {
    fn of(e: &SseEvent<'_>) -> Self {
        Seen {
            raw: e.raw.to_vec(),
            data: e.data.as_deref().map(str::to_owned),
            event: e.event.map(str::to_owned),
            id: e.id.map(str::to_owned),
            retry: e.retry,
        }
    }
}

/// What one run over a split produced.
#[derive(Debug)]
struct Run {
    seen: Vec<Seen>,
    out: Vec<u8>,
    result: Result<(), SseError>,
}

/// Feeds `data` in the chunks delimited by `cuts` (offsets, ascending; empty chunks allowed),
/// the last with `eos`. Checks `pending_len` against the reference after each chunk.
fn feed(data: &[u8], cuts: &[usize], limit: usize, parsed: &Parsed) -> Run {
    let mut s = SseStream::new(limit);
    let mut seen = Vec::new();
    let mut out = Vec::new();
    let mut from = 0;
    let n = cuts.len();
    for (i, &to) in cuts.iter().enumerate() {
        let eos = i + 1 == n;
        let r = s.push(&data[from..to], eos, |e| {
            seen.push(Seen::of(e));
            action_for(e.data.as_deref().unwrap_or_default())
        });
        match r {
            Ok(bytes) => out.extend_from_slice(&bytes),
            Err(e) => {
                // The stream stays failed.
                assert_eq!(
                    s.push(b"data: x\n\n", true, |_| EventAction::Keep),
                    Err(e.clone())
                );
                return Run {
                    seen,
                    out,
                    result: Err(e),
                };
            }
        }
        let expected = if eos {
            0
        } else {
            expected_pending(data, to, parsed)
        };
        assert_eq!(
            s.pending_len(),
            expected,
            "pending_len after {to} bytes (cuts {cuts:?}): {}",
            show(data)
        );
        from = to;
    }
    Run {
        seen,
        out,
        result: Ok(()),
    }
}

/// Bytes an incremental parser must hold after receiving `received` bytes: those of the block
/// still open. A block whose blank line ended in a CR that was the last byte received is
/// already complete (the LF that may follow belongs to it but is not held).
fn expected_pending(data: &[u8], received: usize, parsed: &Parsed) -> usize {
    // The first block not complete yet (block ends ascend).
    let k = parsed.blocks.partition_point(|b| b.range.end <= received);
    if let Some(b) = parsed.blocks.get(k) {
        if received + 1 == b.range.end
            && data[received] == b'\n'
            && received > 0
            && data[received - 1] == b'\r'
        {
            return 0;
        }
        return received.saturating_sub(b.range.start);
    }
    received.saturating_sub(parsed.tail)
}

/// Splits to try: whole, whole + empty eos chunk, byte by byte, two pseudo-random ones.
fn splits(data: &[u8]) -> Vec<Vec<usize>> {
    let n = data.len();
    let mut v = vec![vec![n], vec![n, n], (1..=n).collect::<Vec<_>>()];
    if n == 0 {
        v.pop();
    }
    let mut rng = Rng::new(fnv(data));
    for _ in 0..2 {
        let mut cuts = Vec::new();
        let mut at = 0;
        while at < n {
            // Empty chunks (Envoy sends them) and runs of 1..=16 bytes.
            at = (at + rng.below(17) as usize).min(n);
            cuts.push(at);
        }
        cuts.push(n);
        v.push(cuts);
    }
    v
}

/// Replaces the data of `raw` as the stream does: a BOM at the start of a block that is not
/// the stream's first is content, not the stream BOM that `rewrite_event_data` would skip.
fn rewrite(raw: &[u8], first: bool, new_data: &str) -> Vec<u8> {
    if first || !raw.starts_with(BOM) {
        return rewrite_event_data(raw, new_data);
    }
    let mut prefixed = BOM.to_vec();
    prefixed.extend_from_slice(raw);
    rewrite_event_data(&prefixed, new_data)[BOM.len()..].to_vec()
}

fn text(b: &Option<Vec<u8>>) -> Option<String> {
    b.as_ref()
        .map(|b| String::from_utf8(b.clone()).expect("checked UTF-8"))
}

pub fn run(data: &[u8]) {
    let parsed = reference_parse(data);

    // The expected events, output and outcome (unlimited event size).
    let mut expected_seen = Vec::new();
    let mut expected_out = Vec::new();
    let mut expected_err = None;
    for (i, b) in parsed.blocks.iter().enumerate() {
        let raw = &data[b.range.clone()];
        if b.data_lines.is_empty() {
            expected_out.extend_from_slice(raw);
            continue;
        }
        if b.bad_utf8() {
            expected_err = Some(SseError::InvalidUtf8);
            break;
        }
        let d = text(&b.data()).unwrap_or_default();
        expected_seen.push(Seen {
            raw: raw.to_vec(),
            data: Some(d.clone()),
            event: text(&b.event),
            id: text(&b.id),
            retry: b.retry,
        });
        match action_for(&d) {
            EventAction::Keep => expected_out.extend_from_slice(raw),
            EventAction::Drop => {}
            EventAction::ReplaceData(new) => {
                let rewritten = rewrite(raw, i == 0, &new);
                check_rewritten(data, b, i == 0, &rewritten, &new);
                expected_out.extend_from_slice(&rewritten);
            }
        }
    }
    // An unterminated tail is dropped at eos (never forwarded uninspected).

    for cuts in splits(data) {
        let run = feed(data, &cuts, usize::MAX, &parsed);
        let ctx = || format!("cuts {cuts:?}: {}", show(data));
        assert_eq!(
            run.seen.len(),
            expected_seen.len(),
            "event count, {}",
            ctx()
        );
        for (got, want) in run.seen.iter().zip(&expected_seen) {
            // A chunk that ends in the CR of a blank line completes the event at once; the LF
            // that follows is forwarded on its own.
            let cr_cut = got.raw.len() + 1 == want.raw.len()
                && want.raw.ends_with(b"\r\n")
                && want.raw.starts_with(&got.raw);
            assert!(
                got.raw == want.raw || cr_cut,
                "event raw {got:?} vs {want:?}, {}",
                ctx()
            );
            assert_eq!(
                (&got.data, &got.event, &got.id, got.retry),
                (&want.data, &want.event, &want.id, want.retry),
                "event fields, {}",
                ctx()
            );
        }
        match &expected_err {
            Some(e) => assert_eq!(run.result.as_ref().err(), Some(e), "error, {}", ctx()),
            None => {
                assert_eq!(run.result, Ok(()), "outcome, {}", ctx());
                assert_eq!(
                    show(&run.out),
                    show(&expected_out),
                    "output bytes, {}",
                    ctx()
                );
                assert_eq!(run.out, expected_out);
            }
        }
    }

    check_size_limit(data, &parsed);
}

/// A replaced block parses back to one block with the new data and the original fields.
fn check_rewritten(data: &[u8], b: &Block, first: bool, rewritten: &[u8], new: &str) {
    let mut stream = Vec::new();
    if !first && rewritten.starts_with(BOM) {
        stream.extend_from_slice(BOM);
    }
    stream.extend_from_slice(rewritten);
    let again = reference_parse(&stream);
    let ctx = || format!("rewritten {} from {}", show(rewritten), show(data));
    assert_eq!(again.blocks.len(), 1, "{}", ctx());
    assert_eq!(again.tail, stream.len(), "{}", ctx());
    let nb = &again.blocks[0];
    let normalised = new.replace("\r\n", "\n").replace('\r', "\n");
    assert_eq!(
        nb.data(),
        Some(normalised.into_bytes()),
        "new data, {}",
        ctx()
    );
    assert_eq!(
        (&nb.event, &nb.id, nb.retry),
        (&b.event, &b.id, b.retry),
        "fields, {}",
        ctx()
    );
}

/// With a small `max_event_bytes`: a block over the limit is refused under every split, and
/// nothing is refused when every block (and the unterminated tail) fits.
fn check_size_limit(data: &[u8], parsed: &Parsed) {
    let limit = 16 + (fnv(data) % 48) as usize;
    // What must happen, block by block, until something decides it.
    enum Expect {
        Ok,
        Err(SseError),
        Either,
    }
    let mut expect = Expect::Ok;
    for b in &parsed.blocks {
        let len = b.range.len();
        // The LF of a final CRLF is not counted when a chunk ends at the CR.
        let min_len = if data[b.range.clone()].ends_with(b"\r\n") {
            len - 1
        } else {
            len
        };
        if min_len > limit {
            expect = Expect::Err(SseError::EventTooLarge { limit });
            break;
        }
        if len > limit {
            expect = Expect::Either;
            break;
        }
        if b.bad_utf8() {
            expect = Expect::Err(SseError::InvalidUtf8);
            break;
        }
    }
    if matches!(expect, Expect::Ok) && data.len() - parsed.tail > limit {
        // An unterminated tail over the limit is refused unless it arrives with eos.
        expect = Expect::Either;
    }
    let mut rng = Rng::new(fnv(data) ^ 0x5555);
    let mut cuts: Vec<usize> = Vec::new();
    let mut at = 0;
    while at < data.len() {
        at = (at + 1 + rng.below(24) as usize).min(data.len());
        cuts.push(at);
    }
    cuts.push(data.len());
    let run = feed(data, &cuts, limit, parsed);
    match expect {
        Expect::Ok => assert_eq!(
            run.result,
            Ok(()),
            "limit {limit}, cuts {cuts:?}: {}",
            show(data)
        ),
        Expect::Err(e) => assert_eq!(
            run.result,
            Err(e),
            "limit {limit}, cuts {cuts:?}: {}",
            show(data)
        ),
        Expect::Either => {}
    }
}
