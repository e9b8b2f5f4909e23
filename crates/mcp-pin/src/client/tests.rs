#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use super::*;
use crate::fake::{result, Answer, Fake, Req};
use serde_json::json;

fn opts(url: &str, era: EraChoice) -> ClientOptions {
    ClientOptions {
        url: url.to_owned(),
        headers: vec![("Authorization".into(), "Bearer t0k".into())],
        cacert: None,
        timeout: Duration::from_secs(5),
        era,
    }
}

fn tool(name: &str) -> Value {
    json!({"name": name, "description": format!("The {name} tool."), "inputSchema": {"type": "object"}})
}

fn names(l: &Listing) -> Vec<&str> {
    l.tools.iter().map(|t| t.name.as_str()).collect()
}

#[test]
fn sse_reader_collects_messages_split_at_every_byte() {
    let body = "\u{feff}: keepalive\r\n\r\nevent: message\r\nid: 1\r\ndata: {\"jsonrpc\":\"2.0\",\r\ndata: \"id\":1,\"result\":{}}\r\n\r\nid: 2\ndata:\n\nretry: 5\ndata: [{\"a\":1},{\"b\":2}]\n\n";
    let mut whole = SseReader::new();
    whole.push(body.as_bytes(), true).unwrap();
    assert_eq!(
        whole.messages,
        vec![
            b"{\"jsonrpc\":\"2.0\",\n\"id\":1,\"result\":{}}".to_vec(),
            b"{\"a\":1}".to_vec(),
            b"{\"b\":2}".to_vec(),
        ]
    );
    assert!(whole.has_response(1));
    assert!(!whole.has_response(2));
    let mut split = SseReader::new();
    for b in body.as_bytes() {
        split.push(std::slice::from_ref(b), false).unwrap();
    }
    split.push(b"", true).unwrap();
    assert_eq!(split.messages, whole.messages);
}

#[test]
fn sse_reader_drops_an_unterminated_event_and_keeps_nothing_it_cannot_parse() {
    let mut r = SseReader::new();
    r.push(b"data: {\"id\":1,\"result\":{}}\n\ndata: {\"id\":2", true)
        .unwrap();
    assert_eq!(r.messages.len(), 1);
    let mut bad = SseReader::new();
    bad.push(b"data: not json\n\n", true).unwrap();
    assert!(bad.messages.is_empty());
}

#[test]
fn json_messages_splits_batches() {
    assert_eq!(json_messages(br#"[{"id":1}, {"id":2}]"#).len(), 2);
    assert_eq!(
        json_messages(br#" {"id":1} "#),
        vec![br#"{"id":1}"#.to_vec()]
    );
    assert!(json_messages(b"<html>").is_empty());
}

/// A 2026-07-28 server answering in SSE, two pages, the stream held open after each answer.
#[test]
fn auto_speaks_2026_with_sse_pages_and_stops_reading_at_the_answer() {
    let fake = Fake::start(|r: &Req| match r.rpc() {
        "server/discover" => Answer::json(&result(
            r,
            json!({"supportedVersions": ["2025-11-25", "2026-07-28"], "capabilities": {},
                   "serverInfo": {"name": "fake", "version": "9"}}),
        )),
        "tools/list" => {
            let page = match r.body["params"]["cursor"].as_str() {
                None => json!({"tools": [tool("a"), tool("b")], "nextCursor": "p2"}),
                Some("p2") => json!({"tools": [tool("c")]}),
                Some(other) => panic!("cursor {other}"),
            };
            let note = json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {}});
            Answer::sse(&[note, result(r, page)]).hold(Duration::from_secs(20))
        }
        other => panic!("unexpected {other}"),
    });
    let started = std::time::Instant::now();
    let l = list_tools(&opts(&fake.url, EraChoice::Auto)).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "did not wait for the stream to end"
    );
    assert_eq!(names(&l), ["a", "b", "c"]);
    assert!(l.stateless);
    assert_eq!(l.protocol_version, "2026-07-28");
    assert_eq!(l.server.as_deref(), Some("fake 9"));
    assert_eq!(l.pages, 2);
    // The exact bytes listed.
    assert_eq!(l.tools[0].raw, tool("a").to_string().into_bytes());
    let seen = fake.seen();
    assert_eq!(seen.len(), 3);
    for r in &seen {
        assert_eq!(r.header("mcp-protocol-version"), Some("2026-07-28"));
        assert_eq!(r.header("mcp-method"), Some(r.rpc()));
        assert_eq!(r.header("authorization"), Some("Bearer t0k"));
        assert_eq!(
            r.header("accept"),
            Some("application/json, text/event-stream")
        );
        assert_eq!(
            r.body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
            "2026-07-28"
        );
        assert!(r.header("mcp-session-id").is_none());
    }
}

/// A legacy server: `server/discover` with the 2026 header is a 400; auto falls back to an
/// `initialize` session, acknowledges it, pages in JSON and deletes the session.
#[test]
fn auto_falls_back_to_a_legacy_session_and_deletes_it() {
    let fake = Fake::start(|r: &Req| {
        if r.method == "DELETE" {
            return Answer::status(200, "text/plain", "");
        }
        if r.header("mcp-protocol-version") == Some("2026-07-28") {
            return Answer::status(
                400,
                "application/json",
                r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request: Unsupported protocol version: 2026-07-28"}}"#,
            );
        }
        match r.rpc() {
            "initialize" => Answer::sse(&[result(
                r,
                json!({"protocolVersion": "2025-06-18", "capabilities": {}, "serverInfo": {"name": "old"}}),
            )]),
            "notifications/initialized" => Answer::status(202, "text/plain", ""),
            "tools/list" => match r.body["params"]["cursor"].as_str() {
                None => Answer::json(&result(r, json!({"tools": [tool("x")], "nextCursor": "2"}))),
                Some(_) => {
                    Answer::json(&result(r, json!({"tools": [tool("y")], "nextCursor": ""})))
                }
            },
            other => panic!("unexpected {other}"),
        }
    });
    let l = list_tools(&opts(&fake.url, EraChoice::Auto)).unwrap();
    assert_eq!(names(&l), ["x", "y"]);
    assert!(!l.stateless);
    assert_eq!(l.protocol_version, "2025-06-18");
    let seen = fake.seen();
    let steps: Vec<String> = seen
        .iter()
        .map(|r| format!("{} {}", r.method, r.rpc()))
        .collect();
    assert_eq!(
        steps,
        [
            "POST server/discover",
            "POST initialize",
            "POST notifications/initialized",
            "POST tools/list",
            "POST tools/list",
            "DELETE ",
        ]
    );
    for r in &seen[2..] {
        assert_eq!(r.header("mcp-session-id"), Some("s-1"));
        assert_eq!(r.header("mcp-protocol-version"), Some("2025-06-18"));
        assert_eq!(r.header("authorization"), Some("Bearer t0k"));
    }
}

#[test]
fn errors_say_what_came_back() {
    // Not MCP: an HTML page.
    let html = Fake::start(|_: &Req| Answer::status(200, "text/html", "<html>hi</html>"));
    let e = list_tools(&opts(&html.url, EraChoice::Auto)).unwrap_err();
    assert!(
        e.0.contains("initialize") && e.0.contains("not an MCP endpoint"),
        "{e}"
    );
    // 2026 forced on a server that refuses it.
    let e = list_tools(&opts(&html.url, EraChoice::Modern)).unwrap_err();
    assert!(e.0.contains("server/discover"), "{e}");
    // A JSON-RPC error to tools/list.
    let denied = Fake::start(|r: &Req| match r.rpc() {
        "server/discover" => Answer::json(&result(r, json!({"supportedVersions": ["2026-07-28"]}))),
        _ => Answer::json(
            &json!({"jsonrpc": "2.0", "id": r.id(), "error": {"code": -32601, "message": "nope"}}),
        ),
    });
    let e = list_tools(&opts(&denied.url, EraChoice::Auto)).unwrap_err();
    assert!(e.0.contains("tools/list") && e.0.contains("nope"), "{e}");
    // A paging loop.
    let looping = Fake::start(|r: &Req| match r.rpc() {
        "server/discover" => Answer::json(&result(r, json!({"supportedVersions": ["2026-07-28"]}))),
        _ => Answer::json(&result(r, json!({"tools": [], "nextCursor": "again"}))),
    });
    let e = list_tools(&opts(&looping.url, EraChoice::Modern)).unwrap_err();
    assert!(e.0.contains("repeated the cursor"), "{e}");
    // Nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = list_tools(&opts(
        &format!("http://127.0.0.1:{port}/mcp"),
        EraChoice::Auto,
    ))
    .unwrap_err();
    assert!(e.0.contains("server/discover failed"), "{e}");
    // A CA file without certificates.
    let dir = std::env::temp_dir().join(format!("mcp-pin-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("empty.pem");
    std::fs::write(&pem, "not a certificate\n").unwrap();
    let mut o = opts("https://127.0.0.1:1/mcp", EraChoice::Auto);
    o.cacert = Some(pem);
    let e = list_tools(&o).unwrap_err();
    assert!(
        e.0.contains("--cacert") && e.0.contains("no PEM certificate"),
        "{e}"
    );
}

#[test]
fn server_name_comes_from_server_info_or_the_2026_meta() {
    assert_eq!(
        server_name(&json!({"serverInfo": {"name": "a", "version": "1"}})).as_deref(),
        Some("a 1")
    );
    assert_eq!(
        server_name(&json!({"_meta": {"io.modelcontextprotocol/serverInfo": {"name": "b"}}}))
            .as_deref(),
        Some("b")
    );
    assert_eq!(server_name(&json!({"capabilities": {}})), None);
}
