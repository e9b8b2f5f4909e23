//! An in-memory host for native unit tests of filter glue.
//!
//! It behaves like Envoy where the glue depends on it: buffer writes accept only `start == 0`
//! (drain and prepend) or `start >= len` (append), header names are lower-case, a header write
//! after [`FakeHost::headers_sent`] fails with BadArgument, and filter state is keyed by the
//! NUL-joined path. Each test thread has its own host; call [`reset`] at the start of a test.

use super::{HostError, CAS_MISMATCH, NOT_FOUND};
use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType};
use std::cell::RefCell;
use std::collections::HashMap;

/// A recorded local reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status.
    pub status: u32,
    /// Response code details.
    pub details: String,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Headers.
    pub headers: Vec<(String, String)>,
}

/// A dispatched HTTP call: cluster, headers, body.
pub type HttpCall = (String, Vec<(String, String)>, Vec<u8>);

/// The fake host's state; tests read and write it through [`with`].
#[derive(Debug, Default)]
pub struct FakeHost {
    /// Request headers.
    pub request_headers: Vec<(String, String)>,
    /// Response headers.
    pub response_headers: Vec<(String, String)>,
    /// Request body buffer as the filter currently sees it.
    pub request_body: Vec<u8>,
    /// Response body buffer as the filter currently sees it.
    pub response_body: Vec<u8>,
    /// Plugin configuration bytes.
    pub plugin_configuration: Vec<u8>,
    /// Properties and filter state (key = NUL-joined path).
    pub properties: HashMap<Vec<u8>, Vec<u8>>,
    /// The local reply, if the filter sent one.
    pub local_reply: Option<LocalReply>,
    /// Metrics by id: (type, name, value).
    pub metrics: Vec<(MetricType, String, i64)>,
    /// Log lines.
    pub logs: Vec<(LogLevel, String)>,
    /// Foreign functions called, by name.
    pub foreign_calls: Vec<String>,
    /// Streams resumed (false = request, true = response).
    pub continued: Vec<bool>,
    /// The context host calls act on, when a callback switched it (`set_effective_context`).
    pub effective_context: Option<u32>,
    /// Shared data with CAS tokens.
    pub shared: HashMap<String, (Vec<u8>, u32)>,
    /// When true, request header writes fail like Envoy's after headers were forwarded.
    pub headers_sent: bool,
    /// Clock, nanoseconds.
    pub now: u64,
    /// HTTP calls dispatched: (cluster, headers, body).
    pub http_calls: Vec<HttpCall>,
    /// Headers of the HTTP call answer being delivered.
    pub http_call_response_headers: Vec<(String, String)>,
    /// Body of the HTTP call answer being delivered.
    pub http_call_response_body: Vec<u8>,
    /// The last tick period set, in milliseconds.
    pub tick_period_ms: Option<u32>,
    /// Host reads that return data, by ABI name, in order: in Envoy each one also calls back
    /// into the VM to allocate, the costliest kind of host call (tests keep budgets of them).
    pub reads: Vec<&'static str>,
}

thread_local! {
    static HOST: RefCell<FakeHost> = RefCell::new(FakeHost::default());
}

impl FakeHost {
    /// Stages an MCP POST to `/mcp` with a JSON content type, `extra` headers and `body`, as
    /// Envoy would present it to the request callbacks.
    pub fn stage_post(&mut self, extra: &[(&str, &str)], body: &[u8]) {
        self.request_headers = vec![
            (":method".into(), "POST".into()),
            (":path".into(), "/mcp".into()),
            ("content-type".into(), "application/json".into()),
        ];
        self.request_headers
            .extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self.request_body = body.to_vec();
    }
}

/// Resets this thread's fake host.
pub fn reset() {
    HOST.with(|h| *h.borrow_mut() = FakeHost::default());
    crate::metrics::forget_definitions();
}

/// Runs `f` with this thread's fake host.
pub fn with<R>(f: impl FnOnce(&mut FakeHost) -> R) -> R {
    HOST.with(|h| f(&mut h.borrow_mut()))
}

fn bad(call: &'static str) -> HostError {
    HostError { call, status: 2 }
}

fn headers_mut(h: &mut FakeHost, t: MapType) -> Option<&mut Vec<(String, String)>> {
    match t {
        MapType::HttpRequestHeaders => Some(&mut h.request_headers),
        MapType::HttpResponseHeaders => Some(&mut h.response_headers),
        MapType::HttpCallResponseHeaders => Some(&mut h.http_call_response_headers),
        _ => None,
    }
}

fn buffer_mut(h: &mut FakeHost, t: BufferType) -> Option<&mut Vec<u8>> {
    match t {
        BufferType::HttpRequestBody => Some(&mut h.request_body),
        BufferType::HttpResponseBody => Some(&mut h.response_body),
        BufferType::PluginConfiguration => Some(&mut h.plugin_configuration),
        BufferType::HttpCallResponseBody => Some(&mut h.http_call_response_body),
        _ => None,
    }
}

pub(super) fn log(level: LogLevel, msg: &str) {
    with(|h| h.logs.push((level, msg.to_owned())))
}

pub(super) fn log_level() -> LogLevel {
    LogLevel::Trace
}

pub(super) fn now_nanos() -> u64 {
    with(|h| h.now)
}

pub(super) fn set_tick_period_ms(ms: u32) -> Result<(), HostError> {
    with(|h| h.tick_period_ms = Some(ms));
    Ok(())
}

pub(super) fn get_buffer(t: BufferType, start: usize, max: usize) -> Result<Vec<u8>, HostError> {
    with(|h| {
        h.reads.push("proxy_get_buffer_bytes");
        let b = buffer_mut(h, t).ok_or(HostError {
            call: "proxy_get_buffer_bytes",
            status: NOT_FOUND,
        })?;
        let end = start.saturating_add(max).min(b.len());
        Ok(b.get(start..end).map(<[u8]>::to_vec).unwrap_or_default())
    })
}

pub(super) fn set_buffer(
    t: BufferType,
    start: usize,
    size: usize,
    data: &[u8],
) -> Result<(), HostError> {
    with(|h| {
        let b = buffer_mut(h, t).ok_or(bad("proxy_set_buffer_bytes"))?;
        if start == 0 {
            let n = size.min(b.len());
            b.drain(..n);
            b.splice(0..0, data.iter().copied());
            Ok(())
        } else if start >= b.len() {
            b.extend_from_slice(data);
            Ok(())
        } else {
            Err(bad("proxy_set_buffer_bytes"))
        }
    })
}

pub(super) fn get_headers(t: MapType) -> Result<Vec<u8>, HostError> {
    with(|h| {
        h.reads.push("proxy_get_header_map_pairs");
        let m = headers_mut(h, t).ok_or(bad("proxy_get_header_map_pairs"))?;
        let pairs: Vec<(&str, &str)> = m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Ok(super::serialize_map(&pairs))
    })
}

pub(super) fn get_header(t: MapType, key: &str) -> Result<Option<Vec<u8>>, HostError> {
    with(|h| {
        h.reads.push("proxy_get_header_map_value");
        let m = headers_mut(h, t).ok_or(bad("proxy_get_header_map_value"))?;
        Ok(m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone().into_bytes()))
    })
}

fn writable(h: &FakeHost, t: MapType) -> bool {
    !(h.headers_sent && t == MapType::HttpRequestHeaders)
}

pub(super) fn set_header(t: MapType, key: &str, value: &str) -> Result<(), HostError> {
    with(|h| {
        if !writable(h, t) {
            return Err(bad("proxy_replace_header_map_value"));
        }
        let m = headers_mut(h, t).ok_or(bad("proxy_replace_header_map_value"))?;
        m.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        m.push((key.to_ascii_lowercase(), value.to_owned()));
        Ok(())
    })
}

pub(super) fn add_header(t: MapType, key: &str, value: &str) -> Result<(), HostError> {
    with(|h| {
        if !writable(h, t) {
            return Err(bad("proxy_add_header_map_value"));
        }
        let m = headers_mut(h, t).ok_or(bad("proxy_add_header_map_value"))?;
        m.push((key.to_ascii_lowercase(), value.to_owned()));
        Ok(())
    })
}

pub(super) fn remove_header(t: MapType, key: &str) -> Result<(), HostError> {
    with(|h| {
        if !writable(h, t) {
            return Err(bad("proxy_remove_header_map_value"));
        }
        let m = headers_mut(h, t).ok_or(bad("proxy_remove_header_map_value"))?;
        m.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        Ok(())
    })
}

pub(super) fn get_property(path: &[u8]) -> Result<Option<Vec<u8>>, HostError> {
    with(|h| {
        h.reads.push("proxy_get_property");
        Ok(h.properties.get(path).cloned())
    })
}

pub(super) fn set_property(path: &[u8], value: &[u8]) -> Result<(), HostError> {
    with(|h| {
        h.properties.insert(path.to_vec(), value.to_vec());
        Ok(())
    })
}

pub(super) fn send_local_response(
    status: u32,
    details: &str,
    body: &[u8],
    headers: &[u8],
) -> Result<(), HostError> {
    with(|h| {
        h.local_reply = Some(LocalReply {
            status,
            details: details.to_owned(),
            body: body.to_vec(),
            headers: super::deserialize_map(headers),
        });
        Ok(())
    })
}

pub(super) fn define_metric(t: MetricType, name: &str) -> Result<u32, HostError> {
    with(|h| {
        h.metrics.push((t, name.to_owned(), 0));
        u32::try_from(h.metrics.len() - 1).map_err(|_| bad("proxy_define_metric"))
    })
}

pub(super) fn increment_metric(id: u32, by: i64) -> Result<(), HostError> {
    with(|h| {
        let m = h
            .metrics
            .get_mut(id as usize)
            .ok_or(bad("proxy_increment_metric"))?;
        m.2 += by;
        Ok(())
    })
}

pub(super) fn record_metric(id: u32, value: u64) -> Result<(), HostError> {
    with(|h| {
        let m = h
            .metrics
            .get_mut(id as usize)
            .ok_or(bad("proxy_record_metric"))?;
        m.2 = i64::try_from(value).unwrap_or(i64::MAX);
        Ok(())
    })
}

pub(super) fn get_metric(id: u32) -> Result<u64, HostError> {
    with(|h| {
        let m = h.metrics.get(id as usize).ok_or(bad("proxy_get_metric"))?;
        Ok(u64::try_from(m.2).unwrap_or(0))
    })
}

pub(super) fn call_foreign_function(name: &str, _args: &[u8]) -> Result<Vec<u8>, HostError> {
    with(|h| {
        h.foreign_calls.push(name.to_owned());
        Ok(Vec::new())
    })
}

pub(super) fn set_effective_context(context_id: u32) -> Result<(), HostError> {
    with(|h| {
        h.effective_context = Some(context_id);
        Ok(())
    })
}

pub(super) fn continue_stream(stream: u32) -> Result<(), HostError> {
    with(|h| {
        h.continued.push(stream == 1);
        Ok(())
    })
}

pub(super) fn http_call(
    upstream: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    _timeout_ms: u32,
) -> Result<u32, HostError> {
    with(|h| {
        h.http_calls.push((
            upstream.to_owned(),
            headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body.to_vec(),
        ));
        u32::try_from(h.http_calls.len()).map_err(|_| bad("proxy_http_call"))
    })
}

pub(super) fn get_shared_data(key: &str) -> Result<(Option<Vec<u8>>, u32), HostError> {
    with(|h| {
        Ok(match h.shared.get(key) {
            Some((v, cas)) => (Some(v.clone()), *cas),
            None => (None, 0),
        })
    })
}

pub(super) fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<(), HostError> {
    with(|h| {
        let current = h.shared.get(key).map(|(_, c)| *c).unwrap_or(0);
        if cas != 0 && cas != current {
            return Err(HostError {
                call: "proxy_set_shared_data",
                status: CAS_MISMATCH,
            });
        }
        h.shared
            .insert(key.to_owned(), (value.to_vec(), current + 1));
        Ok(())
    })
}
