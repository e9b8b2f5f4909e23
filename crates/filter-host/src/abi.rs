//! Host calls that never panic.
//!
//! proxy-wasm 0.2.5's `hostcalls` panic on any status they do not expect, and a panic kills the
//! VM: every later request on that worker gets a 503 (FAIL_CLOSED) or skips the filter
//! (FAIL_OPEN). Envoy returns unexpected statuses in ordinary situations (setting a header after
//! headers were released, a buffer offset it does not support, `set_property` outside a stream).
//! So this module declares the ABI imports itself, reads the status as a plain `u32` (a status
//! outside the SDK's enum would be undefined behaviour if read as that enum) and turns every
//! non-Ok status into a [`HostError`] the caller handles.
//!
//! On native targets (unit tests of the glue) the same functions talk to an in-memory
//! [`fake`] host instead, so filter logic wired through these calls is testable with `cargo test`.

pub use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType};
use std::fmt;

/// A host call returned something other than Ok.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError {
    /// The ABI function that failed, e.g. `proxy_set_buffer_bytes`.
    pub call: &'static str,
    /// The raw status (1 NotFound, 2 BadArgument, 3 SerializationFailure, 4 ParseFailure,
    /// 7 Empty, 8 CasMismatch, 10 InternalFailure, 12 Unimplemented).
    pub status: u32,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.status {
            1 => "NotFound",
            2 => "BadArgument",
            3 => "SerializationFailure",
            4 => "ParseFailure",
            7 => "Empty",
            8 => "CasMismatch",
            10 => "InternalFailure",
            12 => "Unimplemented",
            _ => "Unknown",
        };
        write!(f, "{} returned {} ({})", self.call, name, self.status)
    }
}

impl std::error::Error for HostError {}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
const OK: u32 = 0;
const NOT_FOUND: u32 = 1;
/// Status for compare-and-swap conflicts on shared data.
pub const CAS_MISMATCH: u32 = 8;

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn check(call: &'static str, status: u32) -> Result<(), HostError> {
    if status == OK {
        Ok(())
    } else {
        Err(HostError { call, status })
    }
}

/// Serializes header pairs in the proxy-wasm map format: count, then (key len, value len) pairs,
/// then NUL-terminated keys and values.
pub fn serialize_map(pairs: &[(&str, &str)]) -> Vec<u8> {
    let size = 4 + pairs
        .iter()
        .map(|(k, v)| 8 + k.len() + v.len() + 2)
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&u32::try_from(pairs.len()).unwrap_or(0).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&u32::try_from(k.len()).unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&u32::try_from(v.len()).unwrap_or(0).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// The pairs of a map in the proxy-wasm map format, borrowed; malformed input yields the pairs
/// read so far.
pub fn map_pairs(bytes: &[u8]) -> MapPairs<'_> {
    let count = u32_at(bytes, 0).unwrap_or(0);
    MapPairs {
        bytes,
        count,
        n: 0,
        p: count.checked_mul(8).and_then(|n| n.checked_add(4)),
    }
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    let s = b.get(at..at.checked_add(4)?)?;
    let arr: [u8; 4] = s.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(arr)).ok()
}

/// Iterator of [`map_pairs`]: `(name, value)` byte slices.
#[derive(Debug, Clone)]
pub struct MapPairs<'a> {
    bytes: &'a [u8],
    count: usize,
    n: usize,
    /// Where the next name starts; `None` once the input turned out malformed.
    p: Option<usize>,
}

impl<'a> Iterator for MapPairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.n >= self.count {
            return None;
        }
        let p = self.p.take()?;
        let s = 4usize.checked_add(self.n.checked_mul(8)?)?;
        let klen = u32_at(self.bytes, s)?;
        let vlen = u32_at(self.bytes, s.checked_add(4)?)?;
        let k = self.bytes.get(p..p.checked_add(klen)?)?;
        let vp = p.checked_add(klen)?.checked_add(1)?;
        let v = self.bytes.get(vp..vp.checked_add(vlen)?)?;
        self.p = vp.checked_add(vlen)?.checked_add(1);
        self.n += 1;
        Some((k, v))
    }
}

/// Parses the proxy-wasm map format into owned pairs (lossy UTF-8); malformed input yields the
/// pairs read so far.
pub fn deserialize_map(bytes: &[u8]) -> Vec<(String, String)> {
    map_pairs(bytes)
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

/// Joins a property path the way the host expects (NUL-separated).
fn property_path(path: &[&str]) -> Vec<u8> {
    path.join("\0").into_bytes()
}

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // The ABI boundary: the only unsafe code in the project.
mod sys {
    use super::{check, HostError, NOT_FOUND, OK};
    use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType};
    use std::ptr::{null, null_mut};

    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_log(level: u32, data: *const u8, size: usize) -> u32;
        fn proxy_get_log_level(level: *mut u32) -> u32;
        fn proxy_get_current_time_nanoseconds(t: *mut u64) -> u32;
        fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
        fn proxy_get_buffer_bytes(
            t: u32,
            start: usize,
            max: usize,
            data: *mut *mut u8,
            size: *mut usize,
        ) -> u32;
        fn proxy_set_buffer_bytes(
            t: u32,
            start: usize,
            size: usize,
            data: *const u8,
            data_size: usize,
        ) -> u32;
        fn proxy_get_header_map_pairs(t: u32, data: *mut *mut u8, size: *mut usize) -> u32;
        fn proxy_get_header_map_value(
            t: u32,
            key: *const u8,
            key_size: usize,
            data: *mut *mut u8,
            size: *mut usize,
        ) -> u32;
        fn proxy_replace_header_map_value(
            t: u32,
            key: *const u8,
            key_size: usize,
            value: *const u8,
            value_size: usize,
        ) -> u32;
        fn proxy_add_header_map_value(
            t: u32,
            key: *const u8,
            key_size: usize,
            value: *const u8,
            value_size: usize,
        ) -> u32;
        fn proxy_remove_header_map_value(t: u32, key: *const u8, key_size: usize) -> u32;
        fn proxy_get_property(
            path: *const u8,
            path_size: usize,
            data: *mut *mut u8,
            size: *mut usize,
        ) -> u32;
        fn proxy_set_property(
            path: *const u8,
            path_size: usize,
            value: *const u8,
            value_size: usize,
        ) -> u32;
        fn proxy_send_local_response(
            status: u32,
            details: *const u8,
            details_size: usize,
            body: *const u8,
            body_size: usize,
            headers: *const u8,
            headers_size: usize,
            grpc_status: i32,
        ) -> u32;
        fn proxy_define_metric(t: u32, name: *const u8, name_size: usize, id: *mut u32) -> u32;
        fn proxy_increment_metric(id: u32, offset: i64) -> u32;
        fn proxy_record_metric(id: u32, value: u64) -> u32;
        fn proxy_get_metric(id: u32, value: *mut u64) -> u32;
        fn proxy_call_foreign_function(
            name: *const u8,
            name_size: usize,
            args: *const u8,
            args_size: usize,
            data: *mut *mut u8,
            size: *mut usize,
        ) -> u32;
        fn proxy_continue_stream(stream: u32) -> u32;
        fn proxy_set_effective_context(context_id: u32) -> u32;
        fn proxy_get_shared_data(
            key: *const u8,
            key_size: usize,
            data: *mut *mut u8,
            size: *mut usize,
            cas: *mut u32,
        ) -> u32;
        fn proxy_set_shared_data(
            key: *const u8,
            key_size: usize,
            value: *const u8,
            value_size: usize,
            cas: u32,
        ) -> u32;
    }

    /// Takes ownership of a host-returned buffer. The host allocated it through the SDK's
    /// exported `proxy_on_memory_allocate`, which hands out a boxed slice of exactly `size`
    /// bytes, so rebuilding a Vec with capacity == len is the matching deallocation.
    unsafe fn owned(data: *mut u8, size: usize) -> Vec<u8> {
        if data.is_null() || size == 0 {
            if !data.is_null() {
                drop(Vec::from_raw_parts(data, 0, 0));
            }
            return Vec::new();
        }
        Vec::from_raw_parts(data, size, size)
    }

    /// What a getter returned: the host's buffer on Ok (None when it handed back no buffer),
    /// None on NotFound, an error otherwise. `data`/`size` must come from that same call.
    unsafe fn returned(
        call: &'static str,
        status: u32,
        data: *mut u8,
        size: usize,
    ) -> Result<Option<Vec<u8>>, HostError> {
        match status {
            OK if data.is_null() => Ok(None),
            OK => Ok(Some(owned(data, size))),
            NOT_FOUND => Ok(None),
            status => Err(HostError { call, status }),
        }
    }

    /// The host reads no bytes for an empty slice; pass null rather than a dangling pointer.
    fn ptr_or_null(b: &[u8]) -> *const u8 {
        if b.is_empty() {
            null()
        } else {
            b.as_ptr()
        }
    }

    pub fn log(level: LogLevel, msg: &str) {
        // A failed log line is not worth an error path.
        let _ = unsafe { proxy_log(level as u32, msg.as_ptr(), msg.len()) };
    }

    pub fn log_level() -> LogLevel {
        let mut l = 0u32;
        let st = unsafe { proxy_get_log_level(&mut l) };
        if st != OK {
            return LogLevel::Info;
        }
        match l {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            _ => LogLevel::Critical,
        }
    }

    pub fn now_nanos() -> u64 {
        let mut t = 0u64;
        let st = unsafe { proxy_get_current_time_nanoseconds(&mut t) };
        if st == OK {
            t
        } else {
            0
        }
    }

    pub fn set_tick_period_ms(ms: u32) -> Result<(), HostError> {
        check("proxy_set_tick_period_milliseconds", unsafe {
            proxy_set_tick_period_milliseconds(ms)
        })
    }

    pub fn get_buffer(t: BufferType, start: usize, max: usize) -> Result<Vec<u8>, HostError> {
        let (mut data, mut size) = (null_mut(), 0usize);
        let st = unsafe { proxy_get_buffer_bytes(t as u32, start, max, &mut data, &mut size) };
        Ok(unsafe { returned("proxy_get_buffer_bytes", st, data, size) }?.unwrap_or_default())
    }

    pub fn set_buffer(
        t: BufferType,
        start: usize,
        size: usize,
        data: &[u8],
    ) -> Result<(), HostError> {
        check("proxy_set_buffer_bytes", unsafe {
            proxy_set_buffer_bytes(t as u32, start, size, data.as_ptr(), data.len())
        })
    }

    pub fn get_headers(t: MapType) -> Result<Vec<u8>, HostError> {
        let (mut data, mut size) = (null_mut(), 0usize);
        let st = unsafe { proxy_get_header_map_pairs(t as u32, &mut data, &mut size) };
        Ok(unsafe { returned("proxy_get_header_map_pairs", st, data, size) }?.unwrap_or_default())
    }

    pub fn get_header(t: MapType, key: &str) -> Result<Option<Vec<u8>>, HostError> {
        let (mut data, mut size) = (null_mut(), 0usize);
        let st = unsafe {
            proxy_get_header_map_value(t as u32, key.as_ptr(), key.len(), &mut data, &mut size)
        };
        unsafe { returned("proxy_get_header_map_value", st, data, size) }
    }

    pub fn set_header(t: MapType, key: &str, value: &str) -> Result<(), HostError> {
        check("proxy_replace_header_map_value", unsafe {
            proxy_replace_header_map_value(
                t as u32,
                key.as_ptr(),
                key.len(),
                value.as_ptr(),
                value.len(),
            )
        })
    }

    pub fn add_header(t: MapType, key: &str, value: &str) -> Result<(), HostError> {
        check("proxy_add_header_map_value", unsafe {
            proxy_add_header_map_value(
                t as u32,
                key.as_ptr(),
                key.len(),
                value.as_ptr(),
                value.len(),
            )
        })
    }

    pub fn remove_header(t: MapType, key: &str) -> Result<(), HostError> {
        check("proxy_remove_header_map_value", unsafe {
            proxy_remove_header_map_value(t as u32, key.as_ptr(), key.len())
        })
    }

    pub fn get_property(path: &[u8]) -> Result<Option<Vec<u8>>, HostError> {
        let (mut data, mut size) = (null_mut(), 0usize);
        let st = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
        unsafe { returned("proxy_get_property", st, data, size) }
    }

    pub fn set_property(path: &[u8], value: &[u8]) -> Result<(), HostError> {
        check("proxy_set_property", unsafe {
            proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len())
        })
    }

    pub fn send_local_response(
        status: u32,
        details: &str,
        body: &[u8],
        headers: &[u8],
    ) -> Result<(), HostError> {
        check("proxy_send_local_response", unsafe {
            proxy_send_local_response(
                status,
                details.as_ptr(),
                details.len(),
                ptr_or_null(body),
                body.len(),
                headers.as_ptr(),
                headers.len(),
                -1,
            )
        })
    }

    pub fn define_metric(t: MetricType, name: &str) -> Result<u32, HostError> {
        let mut id = 0u32;
        check("proxy_define_metric", unsafe {
            proxy_define_metric(t as u32, name.as_ptr(), name.len(), &mut id)
        })?;
        Ok(id)
    }

    pub fn increment_metric(id: u32, by: i64) -> Result<(), HostError> {
        check("proxy_increment_metric", unsafe {
            proxy_increment_metric(id, by)
        })
    }

    pub fn record_metric(id: u32, value: u64) -> Result<(), HostError> {
        check("proxy_record_metric", unsafe {
            proxy_record_metric(id, value)
        })
    }

    pub fn get_metric(id: u32) -> Result<u64, HostError> {
        let mut value = 0u64;
        check("proxy_get_metric", unsafe {
            proxy_get_metric(id, &mut value)
        })?;
        Ok(value)
    }

    pub fn call_foreign_function(name: &str, args: &[u8]) -> Result<Vec<u8>, HostError> {
        let (mut data, mut size) = (null_mut(), 0usize);
        let st = unsafe {
            proxy_call_foreign_function(
                name.as_ptr(),
                name.len(),
                ptr_or_null(args),
                args.len(),
                &mut data,
                &mut size,
            )
        };
        check("proxy_call_foreign_function", st)?;
        Ok(unsafe { owned(data, size) })
    }

    pub fn continue_stream(stream: u32) -> Result<(), HostError> {
        check("proxy_continue_stream", unsafe {
            proxy_continue_stream(stream)
        })
    }

    pub fn set_effective_context(context_id: u32) -> Result<(), HostError> {
        check("proxy_set_effective_context", unsafe {
            proxy_set_effective_context(context_id)
        })
    }

    pub fn http_call(
        upstream: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u32,
    ) -> Result<u32, HostError> {
        // Through the SDK, not the raw import: the SDK's dispatcher must know the token, or it
        // panics ("invalid token_id") when the answer arrives. The SDK panics only on statuses
        // Envoy's proxy_http_call never returns (it returns Ok, BadArgument or InternalFailure).
        proxy_wasm::hostcalls::dispatch_http_call(
            upstream,
            headers.to_vec(),
            if body.is_empty() { None } else { Some(body) },
            Vec::new(),
            std::time::Duration::from_millis(u64::from(timeout_ms)),
        )
        .map_err(|status| HostError {
            call: "proxy_http_call",
            status: status as u32,
        })
    }

    pub fn get_shared_data(key: &str) -> Result<(Option<Vec<u8>>, u32), HostError> {
        let (mut data, mut size, mut cas) = (null_mut(), 0usize, 0u32);
        let st = unsafe {
            proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas)
        };
        match st {
            OK => Ok((Some(unsafe { owned(data, size) }), cas)),
            NOT_FOUND => Ok((None, 0)),
            status => Err(HostError {
                call: "proxy_get_shared_data",
                status,
            }),
        }
    }

    pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<(), HostError> {
        check("proxy_set_shared_data", unsafe {
            proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
        })
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub mod fake;
#[cfg(not(target_arch = "wasm32"))]
mod native_stubs;
#[cfg(not(target_arch = "wasm32"))]
use fake as sys;

/// Writes a log line (no-op when the host log level filters it out; callers check
/// [`log_enabled`] first to avoid formatting).
pub fn log(level: LogLevel, msg: &str) {
    sys::log(level, msg)
}

/// The host's current log level.
pub fn log_level() -> LogLevel {
    sys::log_level()
}

/// Host clock, nanoseconds since the Unix epoch (0 if unavailable).
pub fn now_nanos() -> u64 {
    sys::now_nanos()
}

/// Sets the root context's tick period.
pub fn set_tick_period_ms(ms: u32) -> Result<(), HostError> {
    sys::set_tick_period_ms(ms)
}

/// Reads `max` bytes from `start` of a buffer; a missing buffer reads as empty.
pub fn get_buffer(t: BufferType, start: usize, max: usize) -> Result<Vec<u8>, HostError> {
    sys::get_buffer(t, start, max)
}

/// Replaces `size` bytes at `start` of a buffer with `data`. Envoy supports only `start == 0`
/// (drain `size`, prepend) and `start >= buffer length` (append).
pub fn set_buffer(t: BufferType, start: usize, size: usize, data: &[u8]) -> Result<(), HostError> {
    sys::set_buffer(t, start, size, data)
}

/// All headers of a map.
pub fn get_headers(t: MapType) -> Result<Vec<(String, String)>, HostError> {
    Ok(deserialize_map(&sys::get_headers(t)?))
}

/// All headers of a map in the proxy-wasm map format, to read with [`map_pairs`] without copying
/// every name and value.
pub fn get_headers_raw(t: MapType) -> Result<Vec<u8>, HostError> {
    sys::get_headers(t)
}

/// One header value (the first if repeated), lossily decoded as UTF-8.
pub fn get_header(t: MapType, key: &str) -> Result<Option<String>, HostError> {
    Ok(sys::get_header(t, key)?.map(|v| String::from_utf8_lossy(&v).into_owned()))
}

/// Sets (replaces) a header.
pub fn set_header(t: MapType, key: &str, value: &str) -> Result<(), HostError> {
    sys::set_header(t, key, value)
}

/// Adds a header value, keeping existing ones.
pub fn add_header(t: MapType, key: &str, value: &str) -> Result<(), HostError> {
    sys::add_header(t, key, value)
}

/// Removes every value of a header.
pub fn remove_header(t: MapType, key: &str) -> Result<(), HostError> {
    sys::remove_header(t, key)
}

/// Reads a host property (request attributes, metadata, filter state).
pub fn get_property(path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
    sys::get_property(&property_path(path))
}

/// Writes filter state. A one-element path `["k"]` becomes Envoy filter state `wasm.k`, readable
/// by access logs and tracing custom tags as `%FILTER_STATE(wasm.k:PLAIN)%`.
pub fn set_property(path: &[&str], value: &[u8]) -> Result<(), HostError> {
    sys::set_property(&property_path(path), value)
}

/// Answers the request locally. `details` becomes `%RESPONSE_CODE_DETAILS%` in access logs (the
/// SDK passes none, so without this the log cannot say why a request was refused).
pub fn send_local_response(
    status: u32,
    details: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> Result<(), HostError> {
    sys::send_local_response(status, details, body, &serialize_map(headers))
}

/// Defines a metric; the name appears in Envoy stats as `wasmcustom.<name>`.
pub fn define_metric(t: MetricType, name: &str) -> Result<u32, HostError> {
    sys::define_metric(t, name)
}

/// Adds to a counter or gauge.
pub fn increment_metric(id: u32, by: i64) -> Result<(), HostError> {
    sys::increment_metric(id, by)
}

/// Records a histogram value (or sets a gauge).
pub fn record_metric(id: u32, value: u64) -> Result<(), HostError> {
    sys::record_metric(id, value)
}

/// Reads a counter or gauge: Envoy's process-wide value, the same for every worker's VM.
pub fn get_metric(id: u32) -> Result<u64, HostError> {
    sys::get_metric(id)
}

/// Calls an Envoy foreign function such as `clear_route_cache`.
pub fn call_foreign_function(name: &str, args: &[u8]) -> Result<Vec<u8>, HostError> {
    sys::call_foreign_function(name, args)
}

/// Resumes a paused request (0) or response (1) stream of the effective context.
pub fn continue_stream(response: bool) -> Result<(), HostError> {
    sys::continue_stream(u32::from(response))
}

/// Makes the following host calls act on another context (an HTTP request this VM holds)
/// until the current callback returns. Envoy defers the stream actions such calls take (local
/// replies, resuming) until the VM call returns, so nothing re-enters the VM meanwhile.
pub fn set_effective_context(context_id: u32) -> Result<(), HostError> {
    sys::set_effective_context(context_id)
}

/// Dispatches an HTTP call to an Envoy cluster; returns the token the answer will carry. The
/// answer goes to the context that made the call (`McpFilter::on_http_call_response` for the
/// root context). `headers` must include `:method`, `:path` and `:authority`.
pub fn http_call(
    cluster: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout_ms: u32,
) -> Result<u32, HostError> {
    sys::http_call(cluster, headers, body, timeout_ms)
}

/// Reads VM-wide shared data and its CAS token.
pub fn get_shared_data(key: &str) -> Result<(Option<Vec<u8>>, u32), HostError> {
    sys::get_shared_data(key)
}

/// Writes VM-wide shared data (cas 0 = unconditional).
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<(), HostError> {
    sys::set_shared_data(key, value, cas)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_maps_round_trip() {
        let pairs = [
            (":status", "200"),
            ("content-type", "text/event-stream"),
            ("x", ""),
        ];
        let back = deserialize_map(&serialize_map(&pairs));
        let want: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(back, want);
    }

    #[test]
    fn malformed_header_maps_never_panic() {
        let good = serialize_map(&[("a", "b"), ("cc", "dd")]);
        for cut in 0..good.len() {
            let pairs = deserialize_map(&good[..cut]);
            // Whatever comes out is a prefix of the real pairs.
            let want = [("a", "b"), ("cc", "dd")];
            for (got, want) in pairs.iter().zip(want) {
                assert_eq!((got.0.as_str(), got.1.as_str()), want);
            }
        }
        // The first pair is there once its value is (its closing NUL is not needed).
        let first_end = 4 + 2 * 8 + 2 + 1;
        assert_eq!(map_pairs(&good[..first_end]).count(), 1);
        assert_eq!(map_pairs(&good[..first_end - 1]).count(), 0);
        let borrowed: Vec<_> = map_pairs(&good).collect();
        assert_eq!(borrowed, [(&b"a"[..], &b"b"[..]), (&b"cc"[..], &b"dd"[..])]);
        assert!(deserialize_map(&[0xff, 0xff, 0xff, 0xff]).is_empty());
        assert!(deserialize_map(&[]).is_empty());
    }

    #[test]
    fn host_errors_name_the_call_and_status() {
        let e = HostError {
            call: "proxy_set_buffer_bytes",
            status: 2,
        };
        assert_eq!(
            e.to_string(),
            "proxy_set_buffer_bytes returned BadArgument (2)"
        );
    }
}
