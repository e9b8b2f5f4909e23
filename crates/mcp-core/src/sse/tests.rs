//! Tests for the incremental SSE parser: every fixture is fed whole, split at every position and
//! (for small fixtures) at every pair of positions, and compared with a reference parser written
//! straight from the WHATWG text.

use super::*;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const MCP_PROGRESS_THEN_RESPONSE: &[u8] = b"event: message\n\
id: 5b2d0c9e-0a4f-4d3c-9a51-2c4f0f7e8a11_1\n\
data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":\"tok-1\",\"progress\":1,\"total\":2,\"message\":\"half way\"}}\n\
\n\
event: message\n\
id: 5b2d0c9e-0a4f-4d3c-9a51-2c4f0f7e8a11_2\n\
data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"done \xE2\x9C\x93\"}],\"isError\":false}}\n\
\n";

fn fixtures() -> Vec<(&'static str, Vec<u8>)> {
    let mut many = Vec::new();
    for i in 0..40 {
        many.extend_from_slice(
            format!("event: message\r\nid: {i}\r\ndata: {{\"n\":{i}}}\r\n\r\n: keepalive\r\n\r\n")
                .as_bytes(),
        );
    }
    vec![
        ("lf", b"data: hello\n\n".to_vec()),
        ("crlf", b"data: hello\r\n\r\n".to_vec()),
        ("cr_only", b"event: a\rdata: x\r\rdata: y\rid: 3\r\r".to_vec()),
        (
            "mixed_line_endings",
            b"data: a\r\ndata: b\rdata: c\n\r\nid: 7\r\n\ndata:z\r\r\ndata: w\n\r".to_vec(),
        ),
        (
            "cr_lf_pairs_and_lone_crs",
            b"data: a\r\r\ndata: b\r\n\r\r\n\r\ndata: c\r\n\n\r".to_vec(),
        ),
        (
            "multi_line_data",
            b"data: line1\ndata: line2\ndata:\ndata: line4\n\n".to_vec(),
        ),
        (
            "comments",
            b": hello\n:\ndata: x\n: mid\n\n: trailing comment\n\n".to_vec(),
        ),
        (
            "event_id_retry_fields",
            b"event: update\nid: 42\nretry: 1500\ndata: {}\n\nevent: one\nevent: two\nid: a\nid: b\ndata: z\n\n"
                .to_vec(),
        ),
        (
            "invalid_retry_values",
            b"retry: 15x\ndata: a\n\nretry:\ndata: b\n\nretry: 99999999999999999999999\ndata: c\n\nretry: -1\ndata:d\n\nretry:  7\ndata: e\n\nretry:7\nretry: x\ndata: f\n\n"
                .to_vec(),
        ),
        (
            "field_without_colon",
            b"data\n\ndata\ndata\n\nevent\ndata: x\n\nid\ndata: y\n\n".to_vec(),
        ),
        (
            "leading_space_variants",
            b"data:nospace\n\ndata: one\n\ndata:  two\n\ndata:\t tab\n\ndata: a: b:c\n\n".to_vec(),
        ),
        (
            "priming_event_then_response",
            b"id: 1\ndata:\n\nevent: message\nid: 2\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n"
                .to_vec(),
        ),
        (
            "priming_with_retry",
            b"id: 0_0\nretry: 3000\ndata: \n\n".to_vec(),
        ),
        (
            "keepalive_between_events",
            b"event: message\ndata: {\"a\":1}\n\n: keepalive\n\n: keepalive\n\nevent: message\ndata: {\"b\":2}\n\n"
                .to_vec(),
        ),
        ("bom_at_start", b"\xEF\xBB\xBFdata: after bom\n\n".to_vec()),
        ("bom_then_blank_line", b"\xEF\xBB\xBF\ndata: x\r\n\r\n".to_vec()),
        ("bom_then_data_crlf", b"\xEF\xBB\xBFdata: a\r\ndata: b\r\n\r\n".to_vec()),
        ("partial_bom", b"\xEF\xBBdata: x\n\ndata: y\n\n".to_vec()),
        ("partial_bom_line", b"\xEF\xBB\ndata: y\n\ndata: z\n\n".to_vec()),
        ("bom_in_later_event", b"data: a\n\n\xEF\xBB\xBFdata: b\n\ndata: c\n\n".to_vec()),
        ("empty_events", b"\n\n\r\n\r\r\n\r\r".to_vec()),
        ("mcp_progress_then_response", MCP_PROGRESS_THEN_RESPONSE.to_vec()),
        ("unterminated_tail", b"data: complete\n\ndata: partial".to_vec()),
        ("unterminated_after_line_end", b"data: a\n\ndata: b\n".to_vec()),
        ("unterminated_after_cr", b"data: a\r\rdata: b\r".to_vec()),
        (
            "unknown_fields_and_nul_id",
            b"foo: bar\ndata: x\n\nid: a\0b\ndata: y\n\nid: keep\nid: a\0\ndata: z\n\nid\ndata: w\n\n".to_vec(),
        ),
        (
            "dataless_blocks",
            b"id: 5\n\nretry: 10\n\nevent: x\n\n: c\nid: 6\n\n".to_vec(),
        ),
        ("unicode", "data: héllo wörld ✓ 日本\n\n".as_bytes().to_vec()),
        ("many_events_crlf", many),
    ]
}

// ---------------------------------------------------------------------------------------------
// Reference parser, written from the WHATWG text independently of the implementation:
// decode, strip BOM, split into lines, interpret each line, dispatch on blank lines.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    data: String,
    event: Option<String>,
    id: Option<String>,
    retry: Option<u64>,
}

fn reference_events(input: &[u8], strip_bom: bool) -> Vec<Seen> {
    let decoded = String::from_utf8_lossy(input);
    let mut text: &str = &decoded;
    if strip_bom {
        text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    }
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                lines.push(std::mem::take(&mut current));
            }
            '\n' => lines.push(std::mem::take(&mut current)),
            other => current.push(other),
        }
    }
    // `current` is an incomplete line at EOF: discarded, as is any pending event.

    let mut events = Vec::new();
    let mut data = String::new();
    let mut event = None;
    let mut id = None;
    let mut retry = None;
    for line in lines {
        if line.is_empty() {
            if !data.is_empty() {
                data.pop();
                events.push(Seen {
                    data: std::mem::take(&mut data),
                    event: event.take(),
                    id: id.take(),
                    retry: retry.take(),
                });
            }
            data.clear();
            event = None;
            id = None;
            retry = None;
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line.as_str(), ""),
        };
        match field {
            "event" => event = Some(value.to_string()),
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            // "If the field value does not contain U+0000 NULL, then set the last event ID
            // buffer to the field value. Otherwise, ignore the field."
            "id" if !value.contains('\0') => id = Some(value.to_string()),
            // "If the field value consists of only ASCII digits, then interpret the field value
            // as an integer in base ten [...]. Otherwise, ignore the field."
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse::<u64>() {
                    retry = Some(ms);
                }
            }
            _ => {}
        }
    }
    events
}

/// Splits a whole stream into raw event blocks (each ending after its blank line) plus the
/// unterminated remainder, with a byte loop independent of the implementation's scanner.
fn reference_blocks(input: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut blocks = Vec::new();
    let mut start = 0;
    let mut line_start = 0;
    let mut i = 0;
    if input.starts_with(BOM) {
        i = 3;
        line_start = 3;
    }
    while i < input.len() {
        let b = input[i];
        if b == b'\r' || b == b'\n' {
            let mut next = i + 1;
            if b == b'\r' && input.get(next) == Some(&b'\n') {
                next += 1;
            }
            if i == line_start {
                blocks.push(&input[start..next]);
                start = next;
            }
            line_start = next;
            i = next;
        } else {
            i += 1;
        }
    }
    (blocks, &input[start..])
}

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Mode {
    KeepAll,
    ReplaceAll,
    DropOdd,
}

fn replacement(data: &str) -> String {
    format!(
        "R[{}]\r\nsecond line\n {}",
        data.len(),
        data.replace('\n', "|")
    )
}

fn seen(ev: &SseEvent<'_>) -> Seen {
    Seen {
        data: ev.data.as_deref().unwrap().to_string(),
        event: ev.event.map(str::to_string),
        id: ev.id.map(str::to_string),
        retry: ev.retry,
    }
}

/// Feeds `chunks` (the last with eos) and returns the concatenated output and the events seen.
fn feed(chunks: &[&[u8]], mode: Mode) -> (Vec<u8>, Vec<Seen>) {
    let mut stream = SseStream::new(1 << 20);
    let mut out = Vec::new();
    let mut events = Vec::new();
    for (n, chunk) in chunks.iter().enumerate() {
        let eos = n + 1 == chunks.len();
        let bytes = stream
            .push(chunk, eos, |ev| {
                events.push(seen(ev));
                match mode {
                    Mode::KeepAll => EventAction::Keep,
                    Mode::ReplaceAll => EventAction::ReplaceData(replacement(&seen(ev).data)),
                    Mode::DropOdd if events.len() % 2 == 1 => EventAction::Drop,
                    Mode::DropOdd => EventAction::Keep,
                }
            })
            .unwrap();
        out.extend_from_slice(&bytes);
    }
    assert_eq!(stream.pending_len(), 0, "eos must flush the tail");
    (out, events)
}

/// Expected output of a whole stream when every data event is rewritten, built from the reference
/// block splitter and `rewrite_event_data`.
fn expected_rewrite(input: &[u8]) -> Vec<u8> {
    let (blocks, rest) = reference_blocks(input);
    let mut out = Vec::new();
    for (n, block) in blocks.iter().enumerate() {
        match reference_events(block, n == 0).first() {
            Some(ev) => out.extend_from_slice(&rewrite_event_data(block, &replacement(&ev.data))),
            None => out.extend_from_slice(block),
        }
    }
    // An unterminated remainder at the end of the stream is dropped.
    let _ = rest;
    out
}

/// Expected output of a whole stream when every odd-numbered data event is dropped.
fn expected_drop_odd(input: &[u8]) -> Vec<u8> {
    let (blocks, rest) = reference_blocks(input);
    let mut out = Vec::new();
    let mut n = 0;
    for (i, block) in blocks.iter().enumerate() {
        if !reference_events(block, i == 0).is_empty() {
            n += 1;
            if n % 2 == 1 {
                continue;
            }
        }
        out.extend_from_slice(block);
    }
    // An unterminated remainder at the end of the stream is dropped.
    let _ = rest;
    out
}

fn check_chunks(name: &str, chunks: &[&[u8]], whole: &[(Vec<u8>, Vec<Seen>)]) {
    for (mode, expected) in [Mode::KeepAll, Mode::ReplaceAll, Mode::DropOdd]
        .iter()
        .zip(whole)
    {
        let got = feed(chunks, *mode);
        assert_eq!(
            &got,
            expected,
            "{name}: mode {mode:?}, chunks {:?}",
            chunks
                .iter()
                .map(|c| String::from_utf8_lossy(c))
                .collect::<Vec<_>>()
        );
    }
}

fn whole_results(input: &[u8]) -> Vec<(Vec<u8>, Vec<Seen>)> {
    [Mode::KeepAll, Mode::ReplaceAll, Mode::DropOdd]
        .iter()
        .map(|m| feed(&[input], *m))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Fixture-wide properties
// ---------------------------------------------------------------------------------------------

#[test]
fn whole_fixture_passes_through_byte_identical_and_matches_reference_events() {
    for (name, input) in fixtures() {
        let (out, events) = feed(&[&input], Mode::KeepAll);
        // Every complete block byte-identical; an unterminated remainder is dropped at eos.
        let (blocks, _) = reference_blocks(&input);
        assert_eq!(
            out,
            blocks.concat(),
            "{name}: keep-all output must equal input"
        );
        assert_eq!(events, reference_events(&input, true), "{name}: events");
    }
}

#[test]
fn whole_fixture_rewrite_matches_rewrite_event_data_per_block_and_reparses_to_new_data() {
    for (name, input) in fixtures() {
        let (out, events) = feed(&[&input], Mode::ReplaceAll);
        assert_eq!(out, expected_rewrite(&input), "{name}: rewritten stream");
        let reparsed: Vec<String> = reference_events(&out, true)
            .into_iter()
            .map(|e| e.data)
            .collect();
        let wanted: Vec<String> = events
            .iter()
            .map(|e| replacement(&e.data).replace("\r\n", "\n"))
            .collect();
        assert_eq!(reparsed, wanted, "{name}: client sees the replaced data");
        let kept_meta: Vec<_> = reference_events(&out, true)
            .into_iter()
            .map(|e| (e.event, e.id, e.retry))
            .collect();
        let orig_meta: Vec<_> = events
            .into_iter()
            .map(|e| (e.event, e.id, e.retry))
            .collect();
        assert_eq!(
            kept_meta, orig_meta,
            "{name}: event/id/retry survive the rewrite"
        );
    }
}

#[test]
fn whole_fixture_drop_removes_exactly_the_dropped_events() {
    for (name, input) in fixtures() {
        let (out, events) = feed(&[&input], Mode::DropOdd);
        assert_eq!(out, expected_drop_odd(&input), "{name}: dropped stream");
        let survivors: Vec<Seen> = events.into_iter().skip(1).step_by(2).collect();
        // Dropping the first event can move a mid-stream BOM to the front; only a BOM that
        // started the input is the stream's BOM.
        let strip_bom = input.starts_with(BOM);
        assert_eq!(reference_events(&out, strip_bom), survivors, "{name}");
    }
}

#[test]
fn every_single_split_gives_same_output_and_events_as_whole() {
    for (name, input) in fixtures() {
        let whole = whole_results(&input);
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            check_chunks(name, &[a, b], &whole);
        }
    }
}

#[test]
fn every_two_split_of_small_fixtures_gives_same_output_and_events_as_whole() {
    let mut checked = 0;
    for (name, input) in fixtures() {
        if input.len() >= 200 {
            continue;
        }
        checked += 1;
        let whole = whole_results(&input);
        for i in 0..=input.len() {
            for j in i..=input.len() {
                check_chunks(name, &[&input[..i], &input[i..j], &input[j..]], &whole);
            }
        }
    }
    assert!(
        checked >= 20,
        "most fixtures are small enough for two-split checks"
    );
}

#[test]
fn byte_by_byte_feeding_with_empty_chunks_in_between_matches_whole() {
    for (name, input) in fixtures() {
        let whole = whole_results(&input);
        let mut chunks: Vec<&[u8]> = Vec::new();
        for i in 0..input.len() {
            chunks.push(&input[i..i + 1]);
            chunks.push(&[]);
        }
        chunks.push(&[]);
        check_chunks(name, &chunks, &whole);
    }
}

#[test]
fn complete_events_are_emitted_in_the_push_that_completes_them() {
    for (name, input) in fixtures() {
        let (blocks, _) = reference_blocks(&input);
        let mut ends = Vec::new();
        let mut pos = 0;
        for b in &blocks {
            pos += b.len();
            ends.push(pos);
        }
        // Feeding up to each block end must forward exactly the bytes up to there.
        for &end in &ends {
            let mut stream = SseStream::new(1 << 20);
            let out = stream
                .push(&input[..end], false, |_| EventAction::Keep)
                .unwrap();
            assert_eq!(out, &input[..end], "{name}: through byte {end}");
            assert_eq!(stream.pending_len(), 0, "{name}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Targeted behaviour
// ---------------------------------------------------------------------------------------------

fn collect(stream: &mut SseStream, chunk: &[u8], eos: bool) -> (Vec<u8>, Vec<Seen>) {
    let mut events = Vec::new();
    let out = stream
        .push(chunk, eos, |ev| {
            events.push(seen(ev));
            EventAction::Keep
        })
        .unwrap();
    (out, events)
}

#[test]
fn push_ending_exactly_at_blank_line_returns_the_event_immediately() {
    let mut s = SseStream::new(1024);
    let (out, events) = collect(&mut s, b"event: message\ndata: {\"id\":1}\n\n", false);
    assert_eq!(out, b"event: message\ndata: {\"id\":1}\n\n");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data, "{\"id\":1}");
    assert_eq!(s.pending_len(), 0);
}

#[test]
fn chunk_without_complete_event_returns_nothing_and_keeps_the_tail() {
    let mut s = SseStream::new(1024);
    let (out, events) = collect(&mut s, b"data: {\"partial\":", false);
    assert!(out.is_empty());
    assert_eq!(out.capacity(), 0, "fast path does not allocate");
    assert!(events.is_empty());
    assert_eq!(s.pending_len(), 17);
    let (out, events) = collect(&mut s, b"true}\n\ndata: next", false);
    assert_eq!(out, b"data: {\"partial\":true}\n\n");
    assert_eq!(events[0].data, "{\"partial\":true}");
    assert_eq!(s.pending_len(), 10);
}

#[test]
fn lone_cr_completing_blank_line_emits_event_and_following_lf_is_not_a_second_blank_line() {
    let mut s = SseStream::new(1024);
    let (out, events) = collect(&mut s, b"data: a\r\n\r", false);
    assert_eq!(out, b"data: a\r\n\r");
    assert_eq!(events.len(), 1, "the CR completes the blank line");
    let (out, events) = collect(&mut s, b"\ndata: b\r\n\r\n", false);
    assert_eq!(
        out, b"\ndata: b\r\n\r\n",
        "the LF is forwarded as the rest of the CRLF"
    );
    assert_eq!(events.len(), 1, "no extra empty event from the LF");
    assert_eq!(events[0].data, "b");
}

#[test]
fn lone_cr_ending_a_field_line_is_not_a_blank_line_when_lf_follows() {
    let mut s = SseStream::new(1024);
    let (out, events) = collect(&mut s, b"data: a\r", false);
    assert!(out.is_empty() && events.is_empty());
    let (out, events) = collect(&mut s, b"\n", false);
    assert!(out.is_empty() && events.is_empty(), "CR LF is one line end");
    let (out, events) = collect(&mut s, b"\r", false);
    assert_eq!(out, b"data: a\r\n\r");
    assert_eq!(events.len(), 1);
}

#[test]
fn lone_cr_followed_by_cr_is_two_line_ends() {
    let mut s = SseStream::new(1024);
    let (_, events) = collect(&mut s, b"data: a\r", false);
    assert!(events.is_empty());
    let (out, events) = collect(&mut s, b"\rdata: b", false);
    assert_eq!(out, b"data: a\r\r");
    assert_eq!(events.len(), 1);
    assert_eq!(s.pending_len(), 7);
}

#[test]
fn empty_chunk_between_cr_and_lf_does_not_lose_the_crlf_pairing() {
    let mut s = SseStream::new(1024);
    let mut n = 0;
    let mut out = Vec::new();
    for chunk in [&b"data: a\r\n\r"[..], b"", b"", b"\n", b"\n"] {
        out.extend(
            s.push(chunk, false, |_| {
                n += 1;
                EventAction::Drop
            })
            .unwrap(),
        );
    }
    assert_eq!(n, 1);
    assert_eq!(
        out, b"\n",
        "dropped event's CRLF is dropped whole; the last LF is a blank line"
    );
}

#[test]
fn dropped_event_split_after_blank_cr_also_drops_its_lf() {
    let mut s = SseStream::new(1024);
    let out1 = s
        .push(b"data: a\r\n\r", false, |_| EventAction::Drop)
        .unwrap();
    let out2 = s
        .push(b"\ndata: b\n\n", false, |_| EventAction::Keep)
        .unwrap();
    assert!(out1.is_empty());
    assert_eq!(out2, b"data: b\n\n");
}

#[test]
fn callback_is_not_invoked_for_events_without_data_and_their_bytes_pass() {
    let input = b": keepalive\n\nid: 9\n\nretry: 100\n\n\n\xEF\xBB\xBFdata: late-bom\n\n";
    let mut s = SseStream::new(1024);
    let out = s
        .push(input, false, |_| -> EventAction {
            panic!("no data event expected")
        })
        .unwrap();
    assert_eq!(out, input);
}

#[test]
fn priming_event_reaches_callback_with_empty_data_and_can_be_kept() {
    let mut s = SseStream::new(1024);
    let (out, events) = collect(&mut s, b"id: 1\ndata:\n\n", false);
    assert_eq!(out, b"id: 1\ndata:\n\n");
    assert_eq!(
        events,
        vec![Seen {
            data: String::new(),
            event: None,
            id: Some("1".into()),
            retry: None
        }]
    );
}

#[test]
fn single_data_line_is_borrowed_and_multiple_lines_are_joined_with_lf() {
    let mut s = SseStream::new(1024);
    let mut kinds = Vec::new();
    s.push(b"data: one\n\ndata: a\r\ndata: b\r\n\r\n", false, |ev| {
        kinds.push(match ev.data.as_ref().unwrap() {
            Cow::Borrowed(d) => format!("borrowed:{d}"),
            Cow::Owned(d) => format!("owned:{d}"),
        });
        EventAction::Keep
    })
    .unwrap();
    assert_eq!(kinds, ["borrowed:one", "owned:a\nb"]);
}

#[test]
fn event_exposes_raw_bytes_event_id_and_retry() {
    let mut s = SseStream::new(1024);
    let input = b"event: message\r\nid: 3\r\nretry: 2500\r\ndata: x\r\n\r\n";
    let mut raws = Vec::new();
    s.push(input, false, |ev| {
        raws.push((
            ev.raw.to_vec(),
            ev.event.map(String::from),
            ev.id.map(String::from),
            ev.retry,
        ));
        EventAction::Keep
    })
    .unwrap();
    assert_eq!(
        raws,
        vec![(
            input.to_vec(),
            Some("message".into()),
            Some("3".into()),
            Some(2500)
        )]
    );
}

#[test]
fn unterminated_event_at_eos_is_dropped_and_not_dispatched() {
    // Clients that follow the spec never dispatch it; it was never inspected, so no client
    // gets its bytes.
    let mut s = SseStream::new(1024);
    let (out, events) = collect(&mut s, b"data: done\n\ndata: never", false);
    assert_eq!(out, b"data: done\n\n");
    assert_eq!(events.len(), 1);
    let (out, events) = collect(&mut s, b" finished\n", true);
    assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
    assert!(events.is_empty());
    assert_eq!(s.pending_len(), 0);
}

#[test]
fn empty_final_chunk_with_eos_drops_the_tail() {
    let mut s = SseStream::new(1024);
    collect(&mut s, b"data: x\n", false);
    let (out, events) = collect(&mut s, b"", true);
    assert!(out.is_empty());
    assert!(events.is_empty());
}

#[test]
fn pending_tail_larger_than_limit_is_event_too_large_and_error_is_sticky() {
    let mut s = SseStream::new(16);
    let (out, _) = collect(&mut s, b"data: 0123456789", false);
    assert!(out.is_empty());
    let err = s.push(b"X", false, |_| EventAction::Keep).unwrap_err();
    assert_eq!(err, SseError::EventTooLarge { limit: 16 });
    let again = s.push(b"\n\n", false, |_| EventAction::Keep).unwrap_err();
    assert_eq!(again, err);
}

#[test]
fn complete_event_larger_than_limit_in_one_chunk_is_event_too_large() {
    let mut s = SseStream::new(8);
    let err = s
        .push(b"data: 0123456789\n\n", false, |_| EventAction::Keep)
        .unwrap_err();
    assert_eq!(err, SseError::EventTooLarge { limit: 8 });
}

#[test]
fn event_exactly_at_limit_is_accepted() {
    let mut s = SseStream::new(9);
    let err = s
        .push(b"data: ab\n\n", false, |_| EventAction::Keep)
        .unwrap_err();
    assert_eq!(err, SseError::EventTooLarge { limit: 9 });
    let mut s = SseStream::new(10);
    let (out, events) = collect(&mut s, b"data: ab\n\n", false);
    assert_eq!(out, b"data: ab\n\n");
    assert_eq!(events.len(), 1);
}

#[test]
fn unterminated_remainder_at_eos_is_not_limited_because_nothing_is_buffered() {
    let mut s = SseStream::new(10);
    let (out, _) = collect(&mut s, b"data: a\n\ndata: 0123456789", true);
    assert_eq!(out, b"data: a\n\n");
}

#[test]
fn invalid_utf8_in_data_is_an_error() {
    let mut s = SseStream::new(1024);
    let err = s
        .push(b"data: \xFF\xFE\n\n", false, |_| EventAction::Keep)
        .unwrap_err();
    assert_eq!(err, SseError::InvalidUtf8);
    let mut s = SseStream::new(1024);
    let err = s
        .push(b"data: ok\ndata: \xC3\n\n", false, |_| EventAction::Keep)
        .unwrap_err();
    assert_eq!(err, SseError::InvalidUtf8);
}

#[test]
fn invalid_utf8_in_event_or_id_of_a_data_event_is_an_error() {
    for input in [&b"event: \xFF\ndata: x\n\n"[..], b"id: \xFF\ndata: x\n\n"] {
        let mut s = SseStream::new(1024);
        assert_eq!(
            s.push(input, false, |_| EventAction::Keep).unwrap_err(),
            SseError::InvalidUtf8
        );
    }
}

#[test]
fn invalid_utf8_in_comments_unknown_fields_or_dataless_events_passes_through() {
    let input = b": \xFF\xFF\n\nid: \xFF\n\nx-\xFF: y\ndata: fine\n\n";
    let mut s = SseStream::new(1024);
    let (out, events) = collect(&mut s, input, false);
    assert_eq!(out, input);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data, "fine");
}

#[test]
fn replace_uses_rewrite_event_data_and_keeps_other_fields() {
    let mut s = SseStream::new(1024);
    let input = b"event: message\r\n: note\r\nid: 4\r\ndata: {\"secret\":1}\r\n\r\n";
    let out = s
        .push(input, false, |_| {
            EventAction::ReplaceData("{\"secret\":\"***\"}".into())
        })
        .unwrap();
    assert_eq!(
        out,
        b"event: message\r\n: note\r\nid: 4\r\ndata: {\"secret\":\"***\"}\r\n\r\n"
    );
    assert_eq!(out, rewrite_event_data(input, "{\"secret\":\"***\"}"));
}

#[test]
fn replace_of_event_split_after_blank_cr_forwards_the_lf() {
    let input = b"data: a\r\n\r\ndata: b\r\n\r\n";
    let whole = feed(&[input], Mode::ReplaceAll);
    let split = feed(&[&input[..11], &input[11..]], Mode::ReplaceAll);
    assert_eq!(whole, split);
    assert!(split
        .0
        .starts_with(b"data: R[1]\r\ndata: second line\r\ndata:  a\r\n\r\n"));
}

#[test]
fn stream_is_reusable_after_eos() {
    let mut s = SseStream::new(1024);
    collect(&mut s, b"data: a\n\ndata: b", true);
    let (out, events) = collect(&mut s, b"\xEF\xBB\xBFdata: c\n\n", false);
    assert_eq!(out, b"\xEF\xBB\xBFdata: c\n\n");
    assert_eq!(
        events[0].data, "c",
        "a new stream may start with a BOM again"
    );
}

// ---------------------------------------------------------------------------------------------
// parse_event and rewrite_event_data
// ---------------------------------------------------------------------------------------------

#[test]
fn parse_event_reads_all_fields_of_a_block() {
    let ev = parse_event(b"\xEF\xBB\xBFevent: e\nid: 1\nretry: 5\ndata: a\ndata: b\n\n").unwrap();
    assert_eq!(ev.data.as_deref(), Some("a\nb"));
    assert_eq!(ev.event, Some("e"));
    assert_eq!(ev.id, Some("1"));
    assert_eq!(ev.retry, Some(5));
}

#[test]
fn parse_event_of_comment_block_has_no_data() {
    let ev = parse_event(b": keepalive\n\n").unwrap();
    assert_eq!(ev.data, None);
    assert_eq!(ev.event, None);
}

#[test]
fn rewrite_replaces_all_data_lines_in_place_of_the_first() {
    let raw = b"event: message\ndata: old1\n: c\ndata: old2\nid: 9\n\n";
    assert_eq!(
        rewrite_event_data(raw, "new"),
        b"event: message\ndata: new\n: c\nid: 9\n\n"
    );
}

#[test]
fn rewrite_splits_new_data_on_every_line_ending_kind() {
    assert_eq!(
        rewrite_event_data(b"data: x\r\n\r\n", "a\nb\r\nc\rd"),
        b"data: a\r\ndata: b\r\ndata: c\r\ndata: d\r\n\r\n"
    );
}

#[test]
fn rewrite_keeps_trailing_newline_of_new_data() {
    let out = rewrite_event_data(b"data: x\n\n", "a\n");
    assert_eq!(out, b"data: a\ndata: \n\n");
    assert_eq!(parse_event(&out).unwrap().data.as_deref(), Some("a\n"));
}

#[test]
fn rewrite_keeps_no_space_style_but_protects_leading_spaces() {
    assert_eq!(
        rewrite_event_data(b"data:x\n\n", "y\n z"),
        b"data:y\ndata:  z\n\n"
    );
    let out = rewrite_event_data(b"data:x\n\n", "  two");
    assert_eq!(parse_event(&out).unwrap().data.as_deref(), Some("  two"));
}

#[test]
fn rewrite_of_cr_only_event_keeps_cr_endings() {
    assert_eq!(
        rewrite_event_data(b"id: 1\rdata: x\r\r", "y"),
        b"id: 1\rdata: y\r\r"
    );
}

#[test]
fn rewrite_of_event_without_data_inserts_data_before_blank_line() {
    assert_eq!(
        rewrite_event_data(b"id: 1\r\n\r\n", "x"),
        b"id: 1\r\ndata: x\r\n\r\n"
    );
    assert_eq!(rewrite_event_data(b"id: 1", "x"), b"id: 1\ndata: x\n");
}

#[test]
fn rewrite_keeps_leading_bom() {
    assert_eq!(
        rewrite_event_data(b"\xEF\xBB\xBFdata: x\n\n", "y"),
        b"\xEF\xBB\xBFdata: y\n\n"
    );
}

#[test]
fn rewrite_with_empty_data_gives_an_empty_data_line() {
    let out = rewrite_event_data(b"event: m\ndata: x\n\n", "");
    assert_eq!(out, b"event: m\ndata: \n\n");
    assert_eq!(parse_event(&out).unwrap().data.as_deref(), Some(""));
}

#[test]
fn reference_block_splitter_agrees_with_fixture_round_trip() {
    // Guards the test oracle itself: blocks plus remainder reassemble the input.
    for (name, input) in fixtures() {
        let (blocks, rest) = reference_blocks(&input);
        let joined: Vec<u8> = blocks
            .concat()
            .into_iter()
            .chain(rest.iter().copied())
            .collect();
        assert_eq!(joined, input, "{name}");
    }
}

#[test]
fn find_eol_agrees_with_a_byte_loop_at_every_position_and_length() {
    let naive = |b: &[u8]| b.iter().position(|&c| c == b'\n' || c == b'\r');
    for len in 0..40 {
        for at in 0..=len {
            for eol in [b'\n', b'\r'] {
                // Bytes that differ from CR/LF by one bit, and high bytes, around the target.
                let mut b: Vec<u8> = (0..len)
                    .map(|k| [b'\x0b', b'\x0c', 0x8a, 0x8d, b'a'][k % 5])
                    .collect();
                if at < len {
                    b[at] = eol;
                }
                assert_eq!(super::find_eol(&b), naive(&b), "len {len} at {at}");
            }
        }
    }
}

#[test]
fn a_rewrite_never_joins_a_lone_cr_with_the_next_lines_lf() {
    // Found by fuzzing: the second data line (LF-terminated) is dropped by the rewrite, and the
    // first one's CR met the blank line's LF as one CRLF, merging the event with the next.
    let mut s = SseStream::new(1024);
    let (out, _) = collect_with(&mut s, b"data: x\rdata: y\n\ndata: next\n\n", |d| {
        (d == "x\ny").then(|| "X\nY".to_string())
    });
    let events = reference_events(&out, true);
    let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(
        data,
        ["X\nY", "next"],
        "{:?}",
        String::from_utf8_lossy(&out)
    );
}

/// Pushes `input` whole (eos) replacing the data of events for which `f` returns new data.
fn collect_with(
    stream: &mut SseStream,
    input: &[u8],
    f: impl Fn(&str) -> Option<String>,
) -> (Vec<u8>, ()) {
    let out = stream
        .push(input, true, |ev| match ev.data.as_deref().and_then(&f) {
            Some(new) => EventAction::ReplaceData(new),
            None => EventAction::Keep,
        })
        .unwrap();
    (out, ())
}
