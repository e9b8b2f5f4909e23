//! Native tests of the shared request/response driver against the fake host: each test drives
//! the proxy-wasm callbacks the way Envoy does and checks the host calls that come out.
//! (The same paths run through the real Envoy in `tests/tests/gate.rs`.)

use filter_host::abi::fake;
use filter_host::metrics::Registry;
use filter_host::{
    Inspected, LocalReply, McpFilter, McpRoot, MessageAction, RequestAction, ResponseHead,
    ResponseInterest,
};
use mcp_core::config::{ConfigError, Loaded, Validate};
use mcp_core::jsonrpc::Message;
use proxy_wasm::traits::{HttpContext, RootContext};
use proxy_wasm::types::Action;
use serde::Deserialize;
use std::rc::Rc;

/// A test filter: refuses `tools/call` of `secret`, rewrites `tools/call` of `rewrite`, and
/// replaces response messages containing `"hide"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cfg {
    #[serde(default)]
    refuse: Vec<String>,
    /// Read responses under `ResponseInterest::Observe` instead of `Messages`.
    #[serde(default)]
    observe: bool,
}

thread_local! {
    /// What the test filter was handed: head decisions (`head <path>`), response messages,
    /// `unread`.
    static SEEN: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn seen() -> Vec<String> {
    SEEN.with(|s| s.borrow().clone())
}

impl Validate for Cfg {
    fn validate(&self) -> Result<(), ConfigError> {
        mcp_core::config::patterns_at("refuse", &self.refuse).map(|_| ())
    }
}

struct TestFilter {
    cfg: Rc<Loaded<Cfg>>,
}

impl McpFilter for TestFilter {
    const NAME: &'static str = "mcp_test";
    type Config = Cfg;
    type Shared = ();

    fn shared(_c: &Loaded<Cfg>, _m: &mut Registry) -> Result<(), String> {
        Ok(())
    }

    fn new(_s: Rc<()>, cfg: Rc<Loaded<Cfg>>) -> Self {
        TestFilter { cfg }
    }

    /// Answers 401 at the head for the path `/refuse-at-head`.
    fn on_request_head(&mut self, head: &filter_host::RequestHead) -> filter_host::HeadAction {
        SEEN.with(|s| s.borrow_mut().push(format!("head {}", head.path)));
        if head.path == "/refuse-at-head" {
            return filter_host::HeadAction::Reply(LocalReply::json(
                401,
                "mcp_test_head",
                b"{}".to_vec(),
            ));
        }
        filter_host::HeadAction::Inspect
    }

    fn on_request(&mut self, req: &Inspected<'_>) -> RequestAction {
        let Message::Request(r) = req.message else {
            return RequestAction::Continue;
        };
        let name = r.name.as_deref().unwrap_or("");
        if self.cfg.filter.refuse.iter().any(|n| n == name) {
            return RequestAction::Reply(LocalReply::json(200, "mcp_test_refused", b"{}".to_vec()));
        }
        if name == "rewrite" {
            return RequestAction::Rewrite(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#.to_vec());
        }
        RequestAction::Continue
    }

    fn on_response_head(&mut self, _h: &ResponseHead) -> ResponseInterest {
        if self.cfg.filter.observe {
            ResponseInterest::Observe
        } else {
            ResponseInterest::Messages
        }
    }

    fn on_response_unread(&mut self) {
        SEEN.with(|s| s.borrow_mut().push("unread".into()));
    }

    fn on_response_message(&mut self, data: &[u8]) -> MessageAction {
        SEEN.with(|s| {
            s.borrow_mut()
                .push(String::from_utf8_lossy(data).into_owned())
        });
        if data.windows(6).any(|w| w == b"\"hide\"") {
            MessageAction::Replace(br#"{"hidden":true}"#.to_vec())
        } else {
            MessageAction::Keep
        }
    }
}

fn root(config: &str) -> (McpRoot<TestFilter>, bool) {
    fake::reset();
    SEEN.with(|s| s.borrow_mut().clear());
    fake::with(|h| h.plugin_configuration = config.as_bytes().to_vec());
    let mut r = McpRoot::<TestFilter>::new();
    let ok = r.on_configure(config.len());
    fake::with(|h| h.reads.clear());
    (r, ok)
}

fn post(headers: &[(&str, &str)], body: &[u8]) {
    fake::with(|h| h.stage_post(headers, body));
}

fn metric(name: &str) -> i64 {
    fake::with(|h| {
        h.metrics
            .iter()
            .find(|m| m.1 == name)
            .map(|m| m.2)
            .unwrap_or(-1)
    })
}

fn reply() -> Option<LocalReplyView> {
    fake::with(|h| {
        h.local_reply.as_ref().map(|r| LocalReplyView {
            status: r.status,
            details: r.details.clone(),
            body: String::from_utf8_lossy(&r.body).into_owned(),
        })
    })
}

#[derive(Debug)]
struct LocalReplyView {
    status: u32,
    details: String,
    body: String,
}

/// Drives headers + one body chunk (end of stream) and returns the body callback's action.
fn send(ctx: &mut dyn HttpContext, body_len: usize) -> Action {
    assert_eq!(ctx.on_http_request_headers(3, false), Action::Pause);
    ctx.on_http_request_body(body_len, true)
}

#[test]
fn a_bad_configuration_is_refused_naming_the_key() {
    let (_r, ok) = root(r#"{"refuse": ["ok", ""]}"#);
    assert!(!ok);
    let logged = fake::with(|h| h.logs.iter().any(|(_, m)| m.contains("refuse[1]")));
    assert!(logged, "the Critical log names refuse[1]");
    let (_r, ok) = root(r#"{"refuse": [], "colour": 1}"#);
    assert!(!ok);
}

#[test]
fn an_unconfigured_filter_fails_closed() {
    let (r, ok) = root(r#"{"nope": 1}"#);
    assert!(!ok);
    let mut ctx = r.create_http_context(2).unwrap();
    post(&[], b"{}");
    assert_eq!(ctx.on_http_request_headers(3, false), Action::Pause);
    assert_eq!(reply().unwrap().status, 503);
}

#[test]
fn a_valid_request_continues_untouched() {
    let (r, ok) = root("");
    assert!(ok);
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
    post(&[], body);
    let mut ctx = r.create_http_context(2).unwrap();
    assert_eq!(send(ctx.as_mut(), body.len()), Action::Continue);
    assert!(reply().is_none());
    assert_eq!(fake::with(|h| h.request_body.clone()), body.to_vec());
    assert_eq!(metric("mcp_test.requests_inspected"), 1);
}

#[test]
fn request_headers_wait_unread_for_the_first_body_chunk() {
    let (r, _) = root("");
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
    post(&[], body);
    let mut ctx = r.create_http_context(2).unwrap();
    // Held without a single host read: the decision comes with the body.
    assert_eq!(ctx.on_http_request_headers(3, false), Action::Pause);
    assert!(fake::with(|h| h.reads.is_empty()));
    assert!(seen().is_empty(), "no head decision yet");
    assert_eq!(ctx.on_http_request_body(10, false), Action::Pause);
    assert_eq!(seen(), ["head /mcp"], "decided on the first chunk");
    assert_eq!(ctx.on_http_request_body(body.len(), true), Action::Continue);
    assert_eq!(seen(), ["head /mcp"], "and only once");
    assert_eq!(
        fake::with(|h| h.reads.clone()),
        ["proxy_get_header_map_pairs", "proxy_get_buffer_bytes"]
    );
    assert_eq!(metric("mcp_test.requests_inspected"), 1);
}

#[test]
fn a_head_refusal_comes_with_the_first_body_chunk_and_reads_no_body() {
    let (r, _) = root("");
    let body = vec![b'x'; 4096];
    fake::with(|h| {
        h.stage_post(&[], &body);
        h.request_headers[1].1 = "/refuse-at-head".into();
    });
    let mut ctx = r.create_http_context(2).unwrap();
    assert_eq!(ctx.on_http_request_headers(3, false), Action::Pause);
    assert!(reply().is_none());
    assert_eq!(ctx.on_http_request_body(100, false), Action::Pause);
    assert_eq!(reply().unwrap().status, 401);
    // The rest of the body is swallowed, never read.
    assert_eq!(ctx.on_http_request_body(body.len(), true), Action::Pause);
    assert_eq!(
        fake::with(|h| h.reads.clone()),
        ["proxy_get_header_map_pairs"]
    );
    // Without a body the head is decided at once.
    let (r, _) = root("");
    fake::with(|h| {
        h.stage_post(&[], b"");
        h.request_headers[0].1 = "GET".into();
        h.request_headers[1].1 = "/refuse-at-head".into();
    });
    let mut ctx = r.create_http_context(3).unwrap();
    assert_eq!(ctx.on_http_request_headers(3, true), Action::Pause);
    assert_eq!(reply().unwrap().status, 401);
}

#[test]
fn a_body_ending_in_trailers_is_decided_at_the_trailers() {
    let (r, _) = root(r#"{"refuse": ["secret"]}"#);
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"secret"}}"#;
    post(&[], body);
    let mut ctx = r.create_http_context(2).unwrap();
    assert_eq!(ctx.on_http_request_headers(3, false), Action::Pause);
    assert_eq!(ctx.on_http_request_body(body.len(), false), Action::Pause);
    assert_eq!(ctx.on_http_request_trailers(1), Action::Pause);
    assert_eq!(reply().unwrap().details, "mcp_test_refused");
}

#[test]
fn a_duplicate_key_smuggle_is_refused_with_the_original_id() {
    let (r, _) = root("");
    let body = br#"{"jsonrpc":"2.0","id":"a-1","method":"tools/call","params":{"name":"echo","na\u006de":"secret"}}"#;
    post(&[], body);
    let mut ctx = r.create_http_context(2).unwrap();
    assert_eq!(send(ctx.as_mut(), body.len()), Action::Pause);
    let rep = reply().unwrap();
    assert_eq!(rep.status, 400);
    assert_eq!(rep.details, "mcp_test_invalid_request");
    let v: serde_json::Value = serde_json::from_str(&rep.body).unwrap();
    assert_eq!(v["id"], "a-1");
    assert_eq!(v["error"]["code"], -32600);
    assert_eq!(metric("mcp_test.invalid_request"), 1);
}

#[test]
fn non_json_and_non_utf8_bodies_get_parse_errors() {
    for body in [
        &b"not json"[..],
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}",
    ] {
        let (r, _) = root("");
        post(&[], body);
        let mut ctx = r.create_http_context(2).unwrap();
        assert_eq!(send(ctx.as_mut(), body.len()), Action::Pause);
        let rep = reply().unwrap();
        assert_eq!(rep.status, 400);
        assert!(rep.body.contains("-32700"), "{}", rep.body);
        assert_eq!(metric("mcp_test.invalid_json"), 1);
    }
}

#[test]
fn batches_are_refused_by_default_and_examined_under_each() {
    let body = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}},
                    {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"secret"}}]"#;
    let (r, _) = root(r#"{"refuse": ["secret"]}"#);
    post(&[], body);
    let mut ctx = r.create_http_context(2).unwrap();
    assert_eq!(send(ctx.as_mut(), body.len()), Action::Pause);
    assert_eq!(reply().unwrap().details, "mcp_test_batch_rejected");

    let (r, _) = root(r#"{"refuse": ["secret"], "batch": "each"}"#);
    post(&[], body);
    let mut ctx = r.create_http_context(2).unwrap();
    assert_eq!(send(ctx.as_mut(), body.len()), Action::Pause);
    assert_eq!(reply().unwrap().details, "mcp_test_refused");

    let ok = br#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#;
    let (r, _) = root(r#"{"batch": "each"}"#);
    post(&[], ok);
    let mut ctx = r.create_http_context(2).unwrap();
    assert_eq!(send(ctx.as_mut(), ok.len()), Action::Continue);
}

#[test]
fn a_body_over_the_limit_is_refused_or_passed_by_failure_mode() {
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(5000)
    );
    let (r, _) = root(r#"{"max_body_bytes": 1024}"#);
    post(&[], big.as_bytes());
    let mut ctx = r.create_http_context(2).unwrap();
    assert_eq!(send(ctx.as_mut(), big.len()), Action::Pause);
    assert_eq!(reply().unwrap().status, 413);
    assert_eq!(metric("mcp_test.body_too_large"), 1);

    let (r, _) = root(r#"{"max_body_bytes": 1024, "failure_mode": "open"}"#);
    post(&[], big.as_bytes());
    let mut ctx = r.create_http_context(2).unwrap();
    assert_eq!(send(ctx.as_mut(), big.len()), Action::Continue);
    assert!(reply().is_none());
    assert_eq!(metric("mcp_test.failure_open_passes"), 1);
}

#[test]
fn the_body_is_buffered_until_end_of_stream() {
    let (r, _) = root("");
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"secret"}}"#;
    post(&[], body);
    let mut ctx = r.create_http_context(2).unwrap();
    assert_eq!(ctx.on_http_request_headers(3, false), Action::Pause);
    assert_eq!(ctx.on_http_request_body(10, false), Action::Pause);
    assert_eq!(ctx.on_http_request_body(body.len(), true), Action::Continue);
}

#[test]
fn a_rewrite_replaces_the_body_and_fixes_content_length() {
    let (r, _) = root("");
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rewrite","arguments":{}}}"#;
    post(&[("content-length", "88")], body);
    let mut ctx = r.create_http_context(2).unwrap();
    assert_eq!(send(ctx.as_mut(), body.len()), Action::Continue);
    let (b, cl) = fake::with(|h| {
        (
            h.request_body.clone(),
            h.request_headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map(|(_, v)| v.clone()),
        )
    });
    assert_eq!(b, br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#.to_vec());
    assert_eq!(cl.as_deref(), Some("40"));
}

#[test]
fn a_2026_header_that_disagrees_with_the_body_is_refused() {
    let (r, _) = root("");
    let body = br#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"delete_repo","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
    post(
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ],
        body,
    );
    let mut ctx = r.create_http_context(2).unwrap();
    assert_eq!(send(ctx.as_mut(), body.len()), Action::Pause);
    let rep = reply().unwrap();
    assert_eq!(rep.status, 400);
    assert!(rep.body.contains("-32020"), "{}", rep.body);
    assert!(rep.body.contains("\"id\":5"), "{}", rep.body);
    assert_eq!(metric("mcp_test.header_mismatch"), 1);
}

#[test]
fn a_json_response_rewrite_sets_content_length_while_headers_are_held() {
    let (r, _) = root("");
    let mut ctx = r.create_http_context(2).unwrap();
    let body = br#"{"jsonrpc":"2.0","id":1,"result":{"x":"hide"}}"#;
    fake::with(|h| {
        h.response_headers = vec![
            (":status".into(), "200".into()),
            ("content-type".into(), "application/json".into()),
            ("content-length".into(), body.len().to_string()),
        ];
        h.response_body = body.to_vec();
    });
    assert_eq!(ctx.on_http_response_headers(3, false), Action::Pause);
    assert_eq!(
        ctx.on_http_response_body(body.len(), true),
        Action::Continue
    );
    let (b, cl) = fake::with(|h| {
        (
            h.response_body.clone(),
            h.response_headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map(|(_, v)| v.clone()),
        )
    });
    assert_eq!(b, br#"{"hidden":true}"#.to_vec());
    assert_eq!(cl.as_deref(), Some("15"));
}

#[test]
fn sse_events_are_rewritten_as_they_complete_across_chunks() {
    let (r, _) = root("");
    let mut ctx = r.create_http_context(2).unwrap();
    fake::with(|h| {
        h.response_headers = vec![
            (":status".into(), "200".into()),
            ("content-type".into(), "text/event-stream".into()),
        ]
    });
    assert_eq!(ctx.on_http_response_headers(2, false), Action::Continue);
    let stream = b": keepalive\n\nevent: message\ndata: {\"a\":\"hide\"}\n\ndata: {\"b\":1}\n\n";
    let mut out = Vec::new();
    // Feed in 7-byte chunks; each callback sees only the new chunk (the previous one returned
    // Continue), exactly like Envoy.
    for (i, chunk) in stream.chunks(7).enumerate() {
        let eos = (i + 1) * 7 >= stream.len();
        fake::with(|h| h.response_body = chunk.to_vec());
        assert_eq!(
            ctx.on_http_response_body(chunk.len(), eos),
            Action::Continue
        );
        out.extend(fake::with(|h| h.response_body.clone()));
    }
    assert_eq!(
        String::from_utf8(out).unwrap(),
        ": keepalive\n\nevent: message\ndata: {\"hidden\":true}\n\ndata: {\"b\":1}\n\n"
    );
}

/// The priming event MCP 2025-11-25 servers send first on an SSE response (an `id`, often a
/// `retry`, and empty `data`; SEP-1699) carries no message: it passes unchanged and unseen, in
/// both reading modes, and the messages after it are handled as usual.
#[test]
fn an_sse_event_without_data_content_passes_unseen() {
    let stream = b"id: 1::a\nretry: 5000\ndata: \n\nid: 1::b\ndata:\ndata:  \n\nevent: message\ndata: {\"a\":\"hide\"}\n\n";
    for (config, rewritten) in [("", true), (r#"{"observe": true}"#, false)] {
        let (r, _) = root(config);
        let mut ctx = r.create_http_context(2).unwrap();
        fake::with(|h| {
            h.response_headers = vec![
                (":status".into(), "200".into()),
                ("content-type".into(), "text/event-stream".into()),
            ]
        });
        assert_eq!(ctx.on_http_response_headers(2, false), Action::Continue);
        fake::with(|h| h.response_body = stream.to_vec());
        assert_eq!(
            ctx.on_http_response_body(stream.len(), true),
            Action::Continue
        );
        let out = String::from_utf8(fake::with(|h| h.response_body.clone())).unwrap();
        let last = if rewritten {
            "data: {\"hidden\":true}"
        } else {
            "data: {\"a\":\"hide\"}"
        };
        assert_eq!(
            out,
            format!("id: 1::a\nretry: 5000\ndata: \n\nid: 1::b\ndata:\ndata:  \n\nevent: message\n{last}\n\n"),
            "{config}"
        );
        assert_eq!(seen(), [r#"{"a":"hide"}"#], "{config}");
        assert!(reply().is_none());
    }
}

fn json_response(body: &[u8]) {
    fake::with(|h| {
        h.response_headers = vec![
            (":status".into(), "200".into()),
            ("content-type".into(), "application/json".into()),
            ("content-length".into(), body.len().to_string()),
        ];
    });
}

fn response_header(name: &str) -> Option<String> {
    fake::with(|h| {
        h.response_headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
}

#[test]
fn an_observed_json_response_is_never_held_or_changed() {
    let (r, ok) = root(r#"{"observe": true}"#);
    assert!(ok);
    let mut ctx = r.create_http_context(2).unwrap();
    let body = br#"{"jsonrpc":"2.0","id":1,"result":{"x":"hide"}}"#;
    json_response(body);
    assert_eq!(ctx.on_http_response_headers(3, false), Action::Continue);
    // Each chunk passes as it comes (Continue); the message is handed over whole at the end.
    let (a, b) = body.split_at(20);
    for (chunk, eos) in [(a, false), (b, true)] {
        fake::with(|h| h.response_body = chunk.to_vec());
        assert_eq!(
            ctx.on_http_response_body(chunk.len(), eos),
            Action::Continue
        );
        assert_eq!(
            fake::with(|h| h.response_body.clone()),
            chunk.to_vec(),
            "the filter's Replace is ignored"
        );
    }
    assert_eq!(seen(), [String::from_utf8_lossy(body).into_owned()]);
    assert_eq!(
        response_header("content-length"),
        Some(body.len().to_string())
    );
}

#[test]
fn an_observed_json_body_over_the_limit_passes_unread() {
    let (r, _) = root(r#"{"observe": true, "max_body_bytes": 1024}"#);
    let mut ctx = r.create_http_context(2).unwrap();
    let body = vec![b' '; 1500];
    json_response(&body);
    assert_eq!(ctx.on_http_response_headers(3, false), Action::Continue);
    for (i, chunk) in body.chunks(600).enumerate() {
        fake::with(|h| h.response_body = chunk.to_vec());
        let eos = (i + 1) * 600 >= body.len();
        assert_eq!(
            ctx.on_http_response_body(chunk.len(), eos),
            Action::Continue
        );
    }
    assert_eq!(seen(), ["unread"]);
    assert!(reply().is_none());
    assert_eq!(
        metric("mcp_test.failures"),
        0,
        "not a failure: nothing was owed"
    );
}

#[test]
fn observed_sse_events_are_seen_as_they_complete_and_never_changed() {
    let (r, _) = root(r#"{"observe": true}"#);
    let mut ctx = r.create_http_context(2).unwrap();
    let stream = b"event: message\ndata: {\"a\":\"hide\"}\n\ndata: {\"b\":1}\n\n";
    fake::with(|h| {
        h.response_headers = vec![
            (":status".into(), "200".into()),
            ("content-type".into(), "text/event-stream".into()),
            ("content-length".into(), stream.len().to_string()),
        ]
    });
    assert_eq!(ctx.on_http_response_headers(3, false), Action::Continue);
    let mut out = Vec::new();
    for (i, chunk) in stream.chunks(5).enumerate() {
        let eos = (i + 1) * 5 >= stream.len();
        fake::with(|h| h.response_body = chunk.to_vec());
        assert_eq!(
            ctx.on_http_response_body(chunk.len(), eos),
            Action::Continue
        );
        out.extend(fake::with(|h| h.response_body.clone()));
        // The first event's last byte (its blank line) is byte 34, in chunk 6.
        if i == 5 {
            assert!(seen().is_empty());
        }
        if i == 6 {
            assert_eq!(
                seen(),
                [r#"{"a":"hide"}"#],
                "the first event as soon as it completes"
            );
        }
    }
    assert_eq!(out, stream.to_vec());
    assert_eq!(seen(), [r#"{"a":"hide"}"#, r#"{"b":1}"#]);
    assert_eq!(
        response_header("content-length"),
        Some(stream.len().to_string()),
        "nothing is rewritten, so the length stands"
    );
}

#[test]
fn responses_the_filter_ignores_are_never_touched() {
    struct Quiet;
    impl McpFilter for Quiet {
        const NAME: &'static str = "mcp_quiet";
        type Config = mcp_core::config::NoOwnKeys;
        type Shared = ();
        fn shared(_: &Loaded<Self::Config>, _: &mut Registry) -> Result<(), String> {
            Ok(())
        }
        fn new(_: Rc<()>, _: Rc<Loaded<Self::Config>>) -> Self {
            Quiet
        }
    }
    fake::reset();
    let mut r = McpRoot::<Quiet>::new();
    assert!(r.on_configure(0));
    let mut ctx = r.create_http_context(2).unwrap();
    fake::with(|h| {
        h.response_headers = vec![("content-type".into(), "application/json".into())];
        h.response_body = b"{}".to_vec();
    });
    assert_eq!(ctx.on_http_response_headers(1, false), Action::Continue);
    assert_eq!(ctx.on_http_response_body(2, true), Action::Continue);
    assert_eq!(fake::with(|h| h.response_body.clone()), b"{}".to_vec());
}

thread_local! {
    /// What `HoldFilter` answers on request headers (as a test switch).
    static HOLDING: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

/// Holds every request while `HOLDING` is set; then behaves like `TestFilter` with
/// `refuse: ["secret"]` (refuses tools/call of `secret`).
struct HoldFilter;

impl McpFilter for HoldFilter {
    const NAME: &'static str = "mcp_hold";
    type Config = Cfg;
    type Shared = ();

    fn shared(_c: &Loaded<Cfg>, _m: &mut Registry) -> Result<(), String> {
        Ok(())
    }

    fn new(_s: Rc<()>, _cfg: Rc<Loaded<Cfg>>) -> Self {
        HoldFilter
    }

    fn on_request_head(&mut self, _head: &filter_host::RequestHead) -> filter_host::HeadAction {
        if HOLDING.with(std::cell::Cell::get) {
            filter_host::HeadAction::Hold
        } else {
            filter_host::HeadAction::Inspect
        }
    }

    fn on_request(&mut self, req: &Inspected<'_>) -> RequestAction {
        match req.message {
            Message::Request(r) if r.name.as_deref() == Some("secret") => {
                RequestAction::Reply(LocalReply::json(200, "mcp_hold_refused", b"{}".to_vec()))
            }
            _ => RequestAction::Continue,
        }
    }
}

fn hold_root() -> McpRoot<HoldFilter> {
    fake::reset();
    HOLDING.with(|h| h.set(true));
    let mut r = McpRoot::<HoldFilter>::new();
    assert!(r.on_configure(0));
    r
}

const CALL_OK: &[u8] =
    br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","arguments":{}}}"#;

#[test]
fn a_held_request_waits_with_its_body_buffered_and_resumes_when_woken() {
    let r = hold_root();
    let mut ctx = r.create_http_context(7).unwrap();
    post(&[], CALL_OK);
    assert_eq!(ctx.on_http_request_headers(3, false), Action::Pause);
    assert_eq!(
        ctx.on_http_request_body(CALL_OK.len(), true),
        Action::Pause,
        "the body is buffered, not inspected, while the request is held"
    );
    // Woken while the filter still wants to wait: it is held again, nothing moves.
    assert!(filter_host::wake(7));
    assert!(fake::with(|h| h.continued.is_empty()));
    HOLDING.with(|h| h.set(false));
    assert!(filter_host::wake(7));
    fake::with(|h| {
        assert_eq!(
            h.effective_context,
            Some(7),
            "host calls act on the held request"
        );
        assert_eq!(h.continued, vec![false], "the request stream is resumed");
        assert!(h.local_reply.is_none());
    });
    assert!(!filter_host::wake(7), "a resumed request is no longer held");
}

#[test]
fn a_held_request_can_be_refused_when_woken_and_is_never_resumed() {
    let r = hold_root();
    let mut ctx = r.create_http_context(8).unwrap();
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"secret"}}"#;
    post(&[], body);
    assert_eq!(ctx.on_http_request_headers(3, false), Action::Pause);
    // The head is decided with the first body chunk: held.
    assert_eq!(ctx.on_http_request_body(10, false), Action::Pause);
    // Woken before the body is complete: the gate buffers it as usual and decides at the end.
    HOLDING.with(|h| h.set(false));
    assert!(filter_host::wake(8));
    assert!(fake::with(|h| h.continued.is_empty()));
    assert_eq!(ctx.on_http_request_body(body.len(), true), Action::Pause);
    assert_eq!(reply().unwrap().details, "mcp_hold_refused");
    assert!(
        fake::with(|h| h.continued.is_empty()),
        "a refused request never resumes"
    );
}

#[test]
fn a_held_request_that_ended_cannot_be_woken() {
    let r = hold_root();
    let mut ctx = r.create_http_context(9).unwrap();
    post(&[], CALL_OK);
    assert_eq!(ctx.on_http_request_headers(3, false), Action::Pause);
    drop(ctx);
    HOLDING.with(|h| h.set(false));
    assert!(!filter_host::wake(9));
    assert!(fake::with(
        |h| h.continued.is_empty() && h.local_reply.is_none()
    ));
}

#[test]
fn a_request_head_never_prints_its_credential() {
    let head = filter_host::RequestHead {
        method: "POST".into(),
        authorization: Some("Bearer secret-token".into()),
        ..Default::default()
    };
    let shown = format!("{head:?}");
    assert!(shown.contains("<redacted>"), "{shown}");
    assert!(!shown.contains("secret-token"), "{shown}");
}

#[test]
fn a_body_framing_comes_from_its_media_type_whatever_the_case_or_parameters() {
    use filter_host::Framing;
    assert_eq!(Framing::of(Some("application/json")), Framing::Json);
    assert_eq!(
        Framing::of(Some("Application/JSON; charset=utf-8")),
        Framing::Json
    );
    assert_eq!(Framing::of(Some("text/event-stream")), Framing::Sse);
    assert_eq!(Framing::of(Some("TEXT/Event-Stream;x=1")), Framing::Sse);
    assert_eq!(Framing::of(Some("text/plain")), Framing::Other);
    assert_eq!(Framing::of(None), Framing::Other);
}

#[test]
fn framing_is_read_the_way_clients_read_it_and_ambiguity_is_named() {
    use filter_host::Framing;
    // The TypeScript SDK looks for the media type anywhere in the value.
    assert_eq!(
        Framing::of(Some("x/y; profile=text/event-stream")),
        Framing::Sse
    );
    assert_eq!(Framing::of(Some("application/json-seq")), Framing::Json);
    assert_eq!(
        Framing::of(Some("application/json; x=text/event-stream")),
        Framing::Ambiguous
    );
}

fn request(method: &str, extra: &[(&str, &str)], body: &[u8]) {
    fake::with(|h| {
        h.stage_post(extra, body);
        if let Some(m) = h.request_headers.iter_mut().find(|(k, _)| k == ":method") {
            m.1 = method.into();
        }
    });
}

#[test]
fn a_body_on_any_method_but_post_is_refused_with_405() {
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"secret"}}"#;
    for method in ["GET", "PUT", "PATCH", "DELETE", "OPTIONS", "post", "FOO"] {
        let (r, _) = root("");
        request(method, &[], body);
        let mut ctx = r.create_http_context(2).unwrap();
        assert_eq!(send(ctx.as_mut(), body.len()), Action::Pause, "{method}");
        let rep = reply().unwrap();
        assert_eq!(rep.status, 405, "{method}");
        assert_eq!(rep.details, "mcp_test_method_not_allowed");
        let v: serde_json::Value = serde_json::from_str(&rep.body).unwrap();
        assert_eq!(v["error"]["code"], -32600);
        assert!(v["id"].is_null());
        assert!(fake::with(|h| h
            .local_reply
            .as_ref()
            .unwrap()
            .headers
            .iter()
            .any(|(k, v)| k == "allow" && v == "GET, POST, DELETE")));
        assert_eq!(metric("mcp_test.method_not_allowed"), 1);
        assert!(seen().is_empty(), "the filter never decides on it");
    }
    // Without a body GET (listen stream) and DELETE (session end) go through.
    for method in ["GET", "DELETE"] {
        let (r, _) = root("");
        request(method, &[], b"");
        let mut ctx = r.create_http_context(2).unwrap();
        assert_eq!(ctx.on_http_request_headers(3, true), Action::Continue);
        assert!(reply().is_none());
    }
}

#[test]
fn an_empty_post_is_a_parse_error() {
    let (r, _) = root("");
    post(&[], b"");
    let mut ctx = r.create_http_context(2).unwrap();
    assert_eq!(ctx.on_http_request_headers(3, true), Action::Pause);
    let rep = reply().unwrap();
    assert_eq!(rep.status, 400);
    assert!(rep.body.contains("-32700"), "{}", rep.body);
    assert_eq!(metric("mcp_test.invalid_json"), 1);
}

#[test]
fn a_repeated_singleton_header_is_refused_with_the_request_id() {
    let body = br#"{"jsonrpc":"2.0","id":"r-9","method":"tools/call","params":{"name":"echo"}}"#;
    for name in [
        "mcp-method",
        "mcp-name",
        "mcp-protocol-version",
        "mcp-session-id",
        "authorization",
    ] {
        let (r, _) = root("");
        post(&[(name, "a"), ("x-other", "1"), (name, "b")], body);
        let mut ctx = r.create_http_context(2).unwrap();
        assert_eq!(send(ctx.as_mut(), body.len()), Action::Pause, "{name}");
        let rep = reply().unwrap();
        assert_eq!(rep.status, 400, "{name}");
        assert_eq!(rep.details, "mcp_test_repeated_header");
        let v: serde_json::Value = serde_json::from_str(&rep.body).unwrap();
        assert_eq!(v["id"], "r-9");
        assert_eq!(v["error"]["code"], -32600);
        assert!(v["error"]["message"].as_str().unwrap().contains(name));
        assert_eq!(metric("mcp_test.repeated_header"), 1);
    }
    // Without a body (a GET listen stream with two session ids) it is refused at once.
    let (r, _) = root("");
    request(
        "GET",
        &[("mcp-session-id", "a"), ("mcp-session-id", "b")],
        b"",
    );
    let mut ctx = r.create_http_context(2).unwrap();
    assert_eq!(ctx.on_http_request_headers(3, true), Action::Pause);
    assert_eq!(reply().unwrap().status, 400);
    // Other headers may repeat.
    let (r, _) = root("");
    post(&[("x-forwarded-for", "a"), ("x-forwarded-for", "b")], body);
    let mut ctx = r.create_http_context(2).unwrap();
    assert_eq!(send(ctx.as_mut(), body.len()), Action::Continue);
}

fn request_header(name: &str) -> Vec<String> {
    fake::with(|h| {
        h.request_headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    })
}

#[test]
fn a_filter_that_reads_the_response_asks_for_it_unencoded() {
    let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#;
    let (r, _) = root("");
    post(&[("accept-encoding", "gzip, br")], body);
    let mut ctx = r.create_http_context(2).unwrap();
    assert_eq!(send(ctx.as_mut(), body.len()), Action::Continue);
    assert_eq!(request_header("accept-encoding"), ["identity"]);
    // No accept-encoding means any coding is acceptable (RFC 9110 12.5.3): set it too.
    let (r, _) = root("");
    post(&[], body);
    let mut ctx = r.create_http_context(2).unwrap();
    assert_eq!(send(ctx.as_mut(), body.len()), Action::Continue);
    assert_eq!(request_header("accept-encoding"), ["identity"]);
}

fn response(headers: &[(&str, &str)]) {
    fake::with(|h| {
        h.response_headers = headers
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
    });
}

#[test]
fn an_encoded_response_the_filter_must_read_is_never_forwarded() {
    for ct in ["application/json", "text/event-stream"] {
        for enc in ["gzip", "br", "identity, gzip", "x-custom"] {
            let (r, _) = root("");
            let mut ctx = r.create_http_context(2).unwrap();
            response(&[
                (":status", "200"),
                ("content-type", ct),
                ("content-encoding", enc),
            ]);
            assert_eq!(ctx.on_http_response_headers(3, false), Action::Pause);
            let rep = reply().unwrap();
            assert_eq!(rep.status, 502, "{ct} {enc}");
            assert_eq!(rep.details, "mcp_test_encoded_response");
            assert!(rep.body.contains("-32603"));
            assert_eq!(metric("mcp_test.unreadable_response"), 1);
            // Whatever follows is swallowed.
            fake::with(|h| h.response_body = b"\x1f\x8b garbage".to_vec());
            assert_eq!(ctx.on_http_response_body(11, true), Action::Continue);
            assert!(fake::with(|h| h.response_body.is_empty()));
            assert!(
                seen().is_empty(),
                "{ct} {enc}: nothing handed to the filter"
            );
        }
    }
    // identity is readable.
    let (r, _) = root("");
    let mut ctx = r.create_http_context(2).unwrap();
    response(&[
        (":status", "200"),
        ("content-type", "text/event-stream"),
        ("content-encoding", "Identity"),
    ]);
    assert_eq!(ctx.on_http_response_headers(3, false), Action::Continue);
    assert!(reply().is_none());
}

#[test]
fn an_encoded_response_under_open_passes_counted_and_an_observer_stops_reading() {
    let (r, _) = root(r#"{"failure_mode": "open"}"#);
    let mut ctx = r.create_http_context(2).unwrap();
    response(&[
        (":status", "200"),
        ("content-type", "application/json"),
        ("content-encoding", "gzip"),
    ]);
    assert_eq!(ctx.on_http_response_headers(3, false), Action::Continue);
    assert!(reply().is_none());
    assert_eq!(metric("mcp_test.failure_open_passes"), 1);

    let (r, _) = root(r#"{"observe": true}"#);
    let mut ctx = r.create_http_context(2).unwrap();
    response(&[
        (":status", "200"),
        ("content-type", "application/json"),
        ("content-encoding", "gzip"),
    ]);
    assert_eq!(ctx.on_http_response_headers(3, false), Action::Continue);
    assert!(reply().is_none());
    assert_eq!(seen(), ["unread"]);
}

#[test]
fn a_success_of_an_unknown_or_ambiguous_media_type_is_refused_when_it_has_a_body() {
    // Ambiguous: refused at the headers.
    for headers in [
        vec![
            (":status", "200"),
            ("content-type", "application/json; a=text/event-stream"),
        ],
        vec![
            (":status", "200"),
            ("content-type", "application/json"),
            ("content-type", "text/event-stream"),
        ],
    ] {
        let (r, _) = root("");
        let mut ctx = r.create_http_context(2).unwrap();
        response(&headers);
        assert_eq!(ctx.on_http_response_headers(3, false), Action::Pause);
        assert_eq!(reply().unwrap().details, "mcp_test_unreadable_response");
    }
    // Unknown media type: held, refused once a body shows up.
    let (r, _) = root("");
    let mut ctx = r.create_http_context(2).unwrap();
    response(&[(":status", "200"), ("content-type", "text/plain")]);
    assert_eq!(ctx.on_http_response_headers(2, false), Action::Pause);
    assert!(reply().is_none());
    fake::with(|h| h.response_body = br#"{"result":{"tools":[]}}"#.to_vec());
    assert_eq!(ctx.on_http_response_body(23, false), Action::Pause);
    assert_eq!(reply().unwrap().status, 502);
    // ... and passes when it turns out empty.
    let (r, _) = root("");
    let mut ctx = r.create_http_context(2).unwrap();
    response(&[(":status", "202")]);
    assert_eq!(ctx.on_http_response_headers(1, false), Action::Pause);
    assert_eq!(ctx.on_http_response_body(0, true), Action::Continue);
    assert!(reply().is_none());
    // Not a success: clients show its text, so it is held and handed over whole.
    let (r, _) = root("");
    let mut ctx = r.create_http_context(2).unwrap();
    response(&[(":status", "503"), ("content-type", "text/plain")]);
    assert_eq!(ctx.on_http_response_headers(2, false), Action::Pause);
    fake::with(|h| h.response_body = b"upstream said hide".to_vec());
    assert_eq!(ctx.on_http_response_body(18, true), Action::Continue);
    assert_eq!(seen(), ["upstream said hide"]);
}

#[test]
fn a_held_json_response_that_ends_in_trailers_is_read_not_released() {
    let (r, _) = root("");
    let mut ctx = r.create_http_context(2).unwrap();
    let body = br#"{"jsonrpc":"2.0","id":1,"result":{"x":"hide"}}"#;
    json_response(body);
    assert_eq!(ctx.on_http_response_headers(3, false), Action::Pause);
    fake::with(|h| h.response_body = body.to_vec());
    assert_eq!(ctx.on_http_response_body(body.len(), false), Action::Pause);
    // Trailers end the stream: the body is read and rewritten now.
    assert_eq!(ctx.on_http_response_trailers(1), Action::Continue);
    assert_eq!(
        fake::with(|h| h.response_body.clone()),
        br#"{"hidden":true}"#.to_vec()
    );
    assert_eq!(response_header("content-length").as_deref(), Some("15"));
}

#[test]
fn an_underscore_twin_or_a_joined_authorization_counts_as_a_repeat() {
    let body = br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo"}}"#;
    for extra in [
        vec![("mcp-name", "echo"), ("mcp_name", "admin_reset")],
        vec![("mcp_method", "tools/call")],
        // Envoy joins two Authorization headers with a comma.
        vec![("authorization", "Bearer a,Bearer b")],
    ] {
        let (r, _) = root("");
        post(&extra, body);
        let mut ctx = r.create_http_context(2).unwrap();
        assert_eq!(send(ctx.as_mut(), body.len()), Action::Pause, "{extra:?}");
        let rep = reply().unwrap();
        assert_eq!(rep.details, "mcp_test_repeated_header", "{extra:?}");
        assert!(rep.body.contains("\"id\":3"), "{}", rep.body);
    }
    // Refused even when the body does not parse (id null then).
    let (r, _) = root("");
    post(&[("mcp-method", "a"), ("mcp-method", "b")], b"not json");
    let mut ctx = r.create_http_context(2).unwrap();
    assert_eq!(send(ctx.as_mut(), 8), Action::Pause);
    assert_eq!(reply().unwrap().details, "mcp_test_repeated_header");
}

/// Holds every request before it is forwarded until the answer to an HTTP call it makes
/// arrives; then sets `authorization` from the answer's body, or refuses when it is empty.
struct ForwardFilter {
    call: Option<u32>,
    answer: Option<Vec<u8>>,
}

impl McpFilter for ForwardFilter {
    const NAME: &'static str = "mcp_fwd";
    type Config = Cfg;
    type Shared = ();

    fn shared(_c: &Loaded<Cfg>, _m: &mut Registry) -> Result<(), String> {
        Ok(())
    }

    fn new(_s: Rc<()>, _cfg: Rc<Loaded<Cfg>>) -> Self {
        ForwardFilter {
            call: None,
            answer: None,
        }
    }

    fn before_forward(&mut self, head: &filter_host::RequestHead) -> filter_host::ForwardAction {
        use filter_host::abi::{self, MapType};
        match &self.answer {
            None if self.call.is_some() => filter_host::ForwardAction::Hold,
            None => match filter_host::request_call(head.context_id, "idp", &[], b"x", 1000) {
                Ok(t) => {
                    self.call = Some(t);
                    filter_host::ForwardAction::Hold
                }
                Err(_) => filter_host::ForwardAction::Continue,
            },
            Some(b) if b.is_empty() => filter_host::ForwardAction::Reply(LocalReply::json(
                503,
                "mcp_fwd_unavailable",
                b"{}".to_vec(),
            )),
            Some(b) => {
                let v = String::from_utf8_lossy(b).into_owned();
                let _ = abi::set_header(MapType::HttpRequestHeaders, "authorization", &v);
                filter_host::ForwardAction::Continue
            }
        }
    }

    fn on_call_response(&mut self, token: u32, _num_headers: usize, body_size: usize) {
        use filter_host::abi::{self, BufferType};
        if Some(token) == self.call {
            self.answer = Some(
                abi::get_buffer(BufferType::HttpCallResponseBody, 0, body_size).unwrap_or_default(),
            );
        }
    }
}

fn forward_root() -> McpRoot<ForwardFilter> {
    fake::reset();
    let mut r = McpRoot::<ForwardFilter>::new();
    assert!(r.on_configure(0));
    r
}

fn answer(body: &[u8]) {
    fake::with(|h| h.http_call_response_body = body.to_vec());
}

#[test]
fn a_request_held_before_forwarding_resumes_with_the_answer_to_its_call() {
    use proxy_wasm::traits::Context;
    let mut r = forward_root();
    let mut ctx = r.create_http_context(9).unwrap();
    post(&[], CALL_OK);
    assert_eq!(ctx.on_http_request_headers(3, false), Action::Pause);
    assert_eq!(
        ctx.on_http_request_body(CALL_OK.len(), true),
        Action::Pause,
        "held after every decision allowed it"
    );
    assert_eq!(fake::with(|h| h.http_calls.len()), 1);
    assert!(fake::with(|h| h.continued.is_empty()));
    // A wake while the call is pending asks again; the filter keeps waiting.
    assert!(filter_host::wake(9));
    assert!(fake::with(|h| h.continued.is_empty()));
    assert_eq!(fake::with(|h| h.http_calls.len()), 1, "no second call");
    // Delivered to the root (the host may route it there): reaches the request anyway.
    answer(b"Bearer issued");
    r.on_http_call_response(1, 1, 13, 0);
    fake::with(|h| {
        assert_eq!(h.effective_context, Some(9));
        assert_eq!(h.continued, vec![false], "resumed");
        assert!(h
            .request_headers
            .contains(&("authorization".into(), "Bearer issued".into())));
        assert!(h.local_reply.is_none());
    });
    assert!(!filter_host::wake(9), "no longer held");
}

#[test]
fn a_request_held_before_forwarding_can_be_refused_and_is_never_resumed() {
    let r = forward_root();
    let mut ctx = r.create_http_context(10).unwrap();
    post(&[], CALL_OK);
    assert_eq!(ctx.on_http_request_headers(3, false), Action::Pause);
    assert_eq!(ctx.on_http_request_body(CALL_OK.len(), true), Action::Pause);
    answer(b"");
    // Delivered to the request's own context, as the SDK does for a call it made.
    ctx.on_http_call_response(1, 0, 0, 0);
    assert_eq!(reply().unwrap().details, "mcp_fwd_unavailable");
    assert!(fake::with(|h| h.continued.is_empty()));
}

#[test]
fn a_body_less_request_is_held_before_forwarding_too_and_an_ended_one_gets_nothing() {
    use proxy_wasm::traits::Context;
    let mut r = forward_root();
    let mut ctx = r.create_http_context(11).unwrap();
    fake::with(|h| {
        h.request_headers = vec![
            (":method".into(), "GET".into()),
            (":path".into(), "/mcp".into()),
        ];
    });
    assert_eq!(ctx.on_http_request_headers(2, true), Action::Pause);
    assert_eq!(fake::with(|h| h.http_calls.len()), 1);
    drop(ctx);
    answer(b"Bearer issued");
    r.on_http_call_response(1, 1, 13, 0);
    assert!(fake::with(|h| h.continued.is_empty()));
    assert!(reply().is_none());
}
