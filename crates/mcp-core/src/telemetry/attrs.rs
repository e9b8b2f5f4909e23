//! OpenTelemetry MCP semantic-convention attributes of one request and its response, as
//! (filter-state key, value) pairs.
//!
//! Keys are the attribute names; Envoy stores a proxy-wasm property `k` as filter state
//! `wasm.k`, which tracing `custom_tags` and access logs read as `%FILTER_STATE(wasm.k:PLAIN)%`.

use super::response::ResponseKind;
use crate::jsonrpc::Request;
use crate::mcp::{self, methods, Era};
use std::borrow::Cow;

/// Filter-state keys (without Envoy's `wasm.` prefix).
pub mod keys {
    /// `mcp.method.name`.
    pub const METHOD: &str = "mcp.method.name";
    /// `gen_ai.tool.name` (`tools/call`).
    pub const TOOL: &str = "gen_ai.tool.name";
    /// `gen_ai.prompt.name` (`prompts/get`).
    pub const PROMPT: &str = "gen_ai.prompt.name";
    /// `mcp.resource.uri` (`resources/read`, `resources/subscribe`, `resources/unsubscribe`).
    pub const RESOURCE_URI: &str = "mcp.resource.uri";
    /// `jsonrpc.request.id`, string form.
    pub const REQUEST_ID: &str = "jsonrpc.request.id";
    /// Not an OpenTelemetry attribute: the request id as JSON text (`42`, `"c-1"`, escaped as
    /// JSON), `null` for notifications, for Envoy local replies that must echo the id
    /// (`local_reply_config` `body_format`: `"id":%FILTER_STATE(wasm.mcp.jsonrpc.id_json:PLAIN)%`).
    pub const ID_JSON: &str = "mcp.jsonrpc.id_json";
    /// `mcp.session.id` (before 2026-07-28 only).
    pub const SESSION_ID: &str = "mcp.session.id";
    /// `mcp.protocol.version`.
    pub const PROTOCOL_VERSION: &str = "mcp.protocol.version";
    /// `gen_ai.operation.name` (`execute_tool` on tool calls).
    pub const OPERATION: &str = "gen_ai.operation.name";
    /// `error.type`: the JSON-RPC error code, `tool_error`, or the HTTP status of a failed
    /// exchange that carried no JSON-RPC error.
    pub const ERROR_TYPE: &str = "error.type";
    /// `rpc.response.status_code`: the JSON-RPC error code.
    pub const RESPONSE_STATUS_CODE: &str = "rpc.response.status_code";

    /// Every key this filter may publish, in the order of the documentation table.
    pub const ALL: [&str; 11] = [
        METHOD,
        TOOL,
        PROMPT,
        RESOURCE_URI,
        REQUEST_ID,
        ID_JSON,
        SESSION_ID,
        PROTOCOL_VERSION,
        OPERATION,
        ERROR_TYPE,
        RESPONSE_STATUS_CODE,
    ];
}

/// Longest published value; longer ones are cut at a character boundary (a span tag or log
/// field is not the place for a 1 MB resource URI).
pub const MAX_VALUE_BYTES: usize = 1024;

/// `v` cut to at most [`MAX_VALUE_BYTES`] bytes at a character boundary.
pub fn bounded(v: &str) -> &str {
    if v.len() <= MAX_VALUE_BYTES {
        return v;
    }
    let mut end = MAX_VALUE_BYTES;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    v.get(..end).unwrap_or_default()
}

/// What the request headers add to the attributes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeadFacts<'h> {
    /// `MCP-Protocol-Version`.
    pub protocol_version: Option<&'h str>,
    /// `Mcp-Session-Id`.
    pub session_id: Option<&'h str>,
}

/// The attributes of a request or notification.
pub fn request_attributes<'a>(
    req: &'a Request<'a>,
    era: Era,
    head: HeadFacts<'a>,
) -> Vec<(&'static str, Cow<'a, str>)> {
    let mut out: Vec<(&'static str, Cow<'a, str>)> = Vec::with_capacity(7);
    out.push((keys::METHOD, Cow::Borrowed(bounded(&req.method))));
    let name = req.name.as_deref().map(bounded);
    match req.method.as_ref() {
        methods::TOOLS_CALL => {
            if let Some(n) = name {
                out.push((keys::TOOL, Cow::Borrowed(n)));
            }
            out.push((keys::OPERATION, Cow::Borrowed("execute_tool")));
        }
        methods::PROMPTS_GET => {
            if let Some(n) = name {
                out.push((keys::PROMPT, Cow::Borrowed(n)));
            }
        }
        methods::RESOURCES_READ
        | methods::RESOURCES_SUBSCRIBE
        | methods::RESOURCES_UNSUBSCRIBE
        | methods::NOTIFICATIONS_RESOURCES_UPDATED => {
            if let Some(u) = req.uri.as_deref() {
                out.push((keys::RESOURCE_URI, Cow::Borrowed(bounded(u))));
            }
        }
        _ => {}
    }
    if let Some(id) = &req.id {
        out.push((
            keys::REQUEST_ID,
            Cow::Owned(bounded(&id.to_attr_string()).to_owned()),
        ));
    }
    out.push((keys::ID_JSON, id_json(req)));
    // The 2026-07-28 semconv: the session id "MUST NOT be set" for stateless peers.
    if era == Era::Legacy {
        if let Some(s) = head.session_id {
            out.push((keys::SESSION_ID, Cow::Borrowed(bounded(s))));
        }
    }
    let version = mcp::effective_version(head.protocol_version, req);
    let version = match version {
        Cow::Borrowed(v) => Cow::Borrowed(bounded(v)),
        Cow::Owned(v) => Cow::Owned(bounded(&v).to_owned()),
    };
    out.push((keys::PROTOCOL_VERSION, version));
    out
}

/// The request id as JSON text for a reply to echo: the exact number text, the string re-escaped,
/// `null` for a notification. An id longer than [`MAX_VALUE_BYTES`] is `null` too: cutting it
/// would make the reply invalid JSON, and JSON-RPC answers `null` when the id cannot be given.
fn id_json<'a>(req: &Request<'a>) -> Cow<'a, str> {
    let Some(id) = &req.id else {
        return Cow::Borrowed("null");
    };
    match id.raw_json() {
        Cow::Borrowed(b) if b.len() <= MAX_VALUE_BYTES => {
            std::str::from_utf8(b).map_or(Cow::Borrowed("null"), Cow::Borrowed)
        }
        Cow::Owned(b) if b.len() <= MAX_VALUE_BYTES => {
            String::from_utf8(b).map_or(Cow::Borrowed("null"), Cow::Owned)
        }
        _ => Cow::Borrowed("null"),
    }
}

/// The attributes a response adds: `error.type` and `rpc.response.status_code` for a JSON-RPC
/// error, `error.type = tool_error` for a failed tool call, nothing for a success.
pub fn response_attributes(kind: &ResponseKind) -> Vec<(&'static str, &str)> {
    match kind {
        ResponseKind::Error { code } => {
            vec![(keys::ERROR_TYPE, code), (keys::RESPONSE_STATUS_CODE, code)]
        }
        ResponseKind::Result { tool_error: true } => vec![(keys::ERROR_TYPE, "tool_error")],
        ResponseKind::Result { tool_error: false } => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Limits;
    use crate::jsonrpc::{parse_body, Body, Message};

    fn attrs(body: &str, era: Era, head: HeadFacts<'_>) -> Vec<(String, String)> {
        let Body::Single(Message::Request(req)) =
            parse_body(body.as_bytes(), &Limits::default()).unwrap()
        else {
            panic!("not a request");
        };
        request_attributes(&req, era, head)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_owned()))
            .collect()
    }

    fn get<'a>(a: &'a [(String, String)], k: &str) -> Option<&'a str> {
        a.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_tool_call_gets_tool_operation_id_session_and_version() {
        let a = attrs(
            r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"get_weather"}}"#,
            Era::Legacy,
            HeadFacts {
                protocol_version: Some("2025-06-18"),
                session_id: Some("s-1"),
            },
        );
        assert_eq!(get(&a, keys::METHOD), Some("tools/call"));
        assert_eq!(get(&a, keys::TOOL), Some("get_weather"));
        assert_eq!(get(&a, keys::OPERATION), Some("execute_tool"));
        assert_eq!(get(&a, keys::REQUEST_ID), Some("42"));
        assert_eq!(get(&a, keys::SESSION_ID), Some("s-1"));
        assert_eq!(get(&a, keys::PROTOCOL_VERSION), Some("2025-06-18"));
        assert_eq!(get(&a, keys::PROMPT), None);
    }

    #[test]
    fn string_ids_are_published_unescaped_and_notifications_have_none() {
        let a = attrs(
            r#"{"jsonrpc":"2.0","id":"a\"b","method":"ping"}"#,
            Era::Legacy,
            HeadFacts::default(),
        );
        assert_eq!(get(&a, keys::REQUEST_ID), Some("a\"b"));
        assert_eq!(get(&a, keys::ID_JSON), Some(r#""a\"b""#));
        let n = attrs(
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            Era::Legacy,
            HeadFacts::default(),
        );
        assert_eq!(get(&n, keys::REQUEST_ID), None);
        assert_eq!(get(&n, keys::ID_JSON), Some("null"));
        assert_eq!(get(&n, keys::OPERATION), None);
    }

    #[test]
    fn the_json_id_keeps_number_text_escapes_strings_and_never_cuts() {
        let one = |body: &str| {
            let a = attrs(body, Era::Legacy, HeadFacts::default());
            get(&a, keys::ID_JSON).map(str::to_owned)
        };
        assert_eq!(
            one(r#"{"jsonrpc":"2.0","id":1e3,"method":"ping"}"#).as_deref(),
            Some("1e3")
        );
        assert_eq!(
            one(r#"{"jsonrpc":"2.0","id":"x\u00e9<\/","method":"ping"}"#).as_deref(),
            Some("\"xé</\"")
        );
        let long = format!(
            r#"{{"jsonrpc":"2.0","id":"{}","method":"ping"}}"#,
            "a".repeat(MAX_VALUE_BYTES)
        );
        assert_eq!(one(&long).as_deref(), Some("null"));
    }

    #[test]
    fn prompts_and_resources_get_their_own_attributes() {
        let p = attrs(
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"review"}}"#,
            Era::Legacy,
            HeadFacts::default(),
        );
        assert_eq!(get(&p, keys::PROMPT), Some("review"));
        assert_eq!(get(&p, keys::TOOL), None);
        let r = attrs(
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a.txt"}}"#,
            Era::Legacy,
            HeadFacts::default(),
        );
        assert_eq!(get(&r, keys::RESOURCE_URI), Some("file:///a.txt"));
    }

    #[test]
    fn stateless_requests_never_publish_a_session_id() {
        let a = attrs(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
            Era::Stateless,
            HeadFacts {
                protocol_version: Some("2026-07-28"),
                session_id: Some("leftover"),
            },
        );
        assert_eq!(get(&a, keys::SESSION_ID), None);
        assert_eq!(get(&a, keys::PROTOCOL_VERSION), Some("2026-07-28"));
    }

    #[test]
    fn the_version_falls_back_to_initialize_params_then_the_spec_default() {
        let i = attrs(
            r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}"#,
            Era::Legacy,
            HeadFacts::default(),
        );
        assert_eq!(get(&i, keys::PROTOCOL_VERSION), Some("2025-11-25"));
        let d = attrs(
            r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#,
            Era::Legacy,
            HeadFacts::default(),
        );
        assert_eq!(get(&d, keys::PROTOCOL_VERSION), Some("2025-03-26"));
    }

    #[test]
    fn long_values_are_cut_at_a_character_boundary() {
        let long = format!("{}é", "a".repeat(MAX_VALUE_BYTES - 1));
        assert_eq!(bounded(&long).len(), MAX_VALUE_BYTES - 1);
        assert_eq!(bounded("short"), "short");
    }

    #[test]
    fn responses_add_error_type_and_status_code() {
        let e = ResponseKind::Error {
            code: "-32602".into(),
        };
        assert_eq!(
            response_attributes(&e),
            vec![
                (keys::ERROR_TYPE, "-32602"),
                (keys::RESPONSE_STATUS_CODE, "-32602")
            ]
        );
        assert_eq!(
            response_attributes(&ResponseKind::Result { tool_error: true }),
            vec![(keys::ERROR_TYPE, "tool_error")]
        );
        assert!(response_attributes(&ResponseKind::Result { tool_error: false }).is_empty());
    }
}
