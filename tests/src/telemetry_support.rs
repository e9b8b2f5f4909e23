//! Support for the `mcp_telemetry` integration tests: a Zipkin collector (`POST /api/v2/spans`,
//! Zipkin v2 JSON as Envoy's `HTTP_JSON` exporter sends it), readers for the JSON access log
//! lines and `/stats/prometheus`, and the Envoy config of `envoy/mcp_telemetry.yaml` pointed at
//! both servers.

use crate::{Envoy, EnvoyConfig, TestServer};
use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Request, Response, StatusCode};
use serde_json::Value;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// One span as the collector received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// `traceId`.
    pub trace_id: String,
    /// `name`.
    pub name: String,
    /// `kind` (`SERVER`, `CLIENT`).
    pub kind: String,
    /// `tags`.
    pub tags: BTreeMap<String, String>,
}

impl Span {
    fn from_json(v: &Value) -> Option<Span> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let tags = v
            .get("tags")
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        Some(Span {
            trace_id: s("traceId"),
            name: s("name"),
            kind: s("kind"),
            tags,
        })
    }

    /// A tag's value.
    pub fn tag(&self, k: &str) -> Option<&str> {
        self.tags.get(k).map(String::as_str)
    }
}

/// A Zipkin collector on a background thread; stopped on drop.
#[derive(Debug)]
pub struct ZipkinCollector {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<Span>>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ZipkinCollector {
    /// Starts the collector on a free port.
    pub fn start() -> Result<ZipkinCollector> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding collector")?;
        listener.set_nonblocking(true).context("set_nonblocking")?;
        let addr = listener.local_addr().context("local_addr")?;
        let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
        let (tx, mut rx) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building runtime")?;
        let sink = Arc::clone(&spans);
        let thread = std::thread::Builder::new()
            .name("zipkin-collector".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    loop {
                        tokio::select! {
                            _ = &mut rx => break,
                            accepted = listener.accept() => {
                                let Ok((stream, _)) = accepted else { continue };
                                let sink = Arc::clone(&sink);
                                tokio::spawn(async move {
                                    let svc = hyper::service::service_fn(move |req| {
                                        collect(Arc::clone(&sink), req)
                                    });
                                    let _ = hyper::server::conn::http1::Builder::new()
                                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                                        .await;
                                });
                            }
                        }
                    }
                });
            })
            .context("spawning collector")?;
        Ok(ZipkinCollector {
            addr,
            spans,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The collector's address (for `EnvoyConfig::upstream("zipkin", addr)`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits for a span matching `pred`.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Span) -> bool) -> Option<Span> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.spans().into_iter().find(|s| pred(s)) {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits for the span whose `jsonrpc.request.id` tag is `id` (and `mcp.method.name` is
    /// `method`).
    pub fn span_for(&self, method: &str, id: &str) -> Option<Span> {
        self.wait_for(Duration::from_secs(10), |s| {
            s.tag("mcp.method.name") == Some(method) && s.tag("jsonrpc.request.id") == Some(id)
        })
    }
}

impl Drop for ZipkinCollector {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn collect(
    sink: Arc<Mutex<Vec<Span>>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let post_spans = req.method() == hyper::Method::POST && req.uri().path() == "/api/v2/spans";
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let status = if post_spans {
        if let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(&body) {
            let mut spans = sink.lock().unwrap_or_else(PoisonError::into_inner);
            spans.extend(items.iter().filter_map(Span::from_json));
        }
        StatusCode::ACCEPTED
    } else {
        StatusCode::NOT_FOUND
    };
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    Ok(r)
}

/// `envoy/mcp_telemetry.yaml` in front of `server`, exporting spans to `collector`, with
/// `plugin` as the filter configuration when given. Zipkin's batch size is lowered to one span
/// through a runtime layer and stats are flushed every 200 ms, so a test does not wait for the
/// 5 s flush timers.
pub fn telemetry_config(
    server: &TestServer,
    collector: &ZipkinCollector,
    plugin: Option<&str>,
) -> Result<EnvoyConfig> {
    let mut cfg = EnvoyConfig::load("mcp_telemetry.yaml")?
        .upstream("mcp_upstream", server.addr())
        .upstream("zipkin", collector.addr())
        .modify(|doc| {
            if let Ok(layer) = serde_yaml::from_str::<serde_yaml::Value>(
                "layers: [{name: test, static_layer: {tracing.zipkin.min_flush_spans: 1}}]",
            ) {
                if let Some(m) = doc.as_mapping_mut() {
                    m.insert("layered_runtime".into(), layer);
                    // Histograms reach /stats/prometheus at each stats flush (default 5 s).
                    m.insert("stats_flush_interval".into(), "0.2s".into());
                }
            }
        });
    if let Some(p) = plugin {
        cfg = cfg.plugin_config("mcp_telemetry", p);
    }
    Ok(cfg)
}

/// Starts Envoy with [`telemetry_config`].
pub fn start_envoy(
    server: &TestServer,
    collector: &ZipkinCollector,
    plugin: Option<&str>,
) -> Result<Envoy> {
    Envoy::start(telemetry_config(server, collector, plugin)?)
}

/// The JSON access-log lines Envoy wrote so far (lines of its output that parse as an object
/// with a `status` member).
pub fn access_log(envoy: &Envoy) -> Vec<Value> {
    envoy
        .log()
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("status").is_some())
        .collect()
}

/// Waits for the access-log line whose `jsonrpc.request.id` is `id` and `mcp.method.name` is
/// `method`.
pub fn access_log_for(envoy: &Envoy, method: &str, id: &str) -> Option<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = access_log(envoy).into_iter().find(|v| {
            v.get("mcp.method.name").and_then(Value::as_str) == Some(method)
                && v.get("jsonrpc.request.id").and_then(Value::as_str) == Some(id)
        });
        if found.is_some() || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `/stats/prometheus` lines of metric `name` (`mcp_telemetry_requests_total`), as
/// (labels, value) with labels parsed into a map.
pub fn prometheus(envoy: &Envoy, name: &str) -> Result<Vec<(BTreeMap<String, String>, f64)>> {
    let text = envoy.admin("/stats/prometheus")?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(r) => r.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            let map = labels
                .split("\",")
                .filter(|p| !p.is_empty())
                .filter_map(|p| {
                    let (k, v) = p.split_once("=\"")?;
                    Some((k.to_string(), v.trim_end_matches('"').to_string()))
                })
                .collect();
            Some((map, value.trim().parse().ok()?))
        })
        .collect())
}

/// The value of `name` with exactly `labels` (all of them, no others), if present.
pub fn prometheus_value(envoy: &Envoy, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    prometheus(envoy, name)
        .ok()?
        .into_iter()
        .find(|(l, _)| *l == want)
        .map(|(_, v)| v)
}
