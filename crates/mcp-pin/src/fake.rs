#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

//! Test-only: a tiny scripted HTTP/1.1 server on a thread (no async runtime), answering each
//! request with whatever the test's handler says and recording what it received.

use serde_json::Value;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One received request.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The JSON-RPC method of the body.
    pub fn rpc(&self) -> &str {
        self.body
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    pub fn id(&self) -> Value {
        self.body.get("id").cloned().unwrap_or(Value::Null)
    }
}

/// One answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Keep the connection open this long after the body (no content-length): an SSE stream a
    /// server does not close.
    pub hold: Duration,
}

impl Answer {
    pub fn json(v: &Value) -> Self {
        Answer {
            status: 200,
            content_type: "application/json",
            body: v.to_string().into_bytes(),
            hold: Duration::ZERO,
        }
    }

    pub fn sse(events: &[Value]) -> Self {
        let mut body = b": keepalive\r\n\r\n".to_vec();
        for (i, e) in events.iter().enumerate() {
            body.extend_from_slice(
                format!("event: message\r\nid: {i}\r\ndata: {e}\r\n\r\n").as_bytes(),
            );
        }
        Answer {
            status: 200,
            content_type: "text/event-stream",
            body,
            hold: Duration::ZERO,
        }
    }

    pub fn status(status: u16, content_type: &'static str, body: &str) -> Self {
        Answer {
            status,
            content_type,
            body: body.as_bytes().to_vec(),
            hold: Duration::ZERO,
        }
    }

    pub fn hold(mut self, d: Duration) -> Self {
        self.hold = d;
        self
    }
}

/// The JSON-RPC result answer to `req`.
pub fn result(req: &Req, result: Value) -> Value {
    serde_json::json!({"jsonrpc": "2.0", "id": req.id(), "result": result})
}

type Handler = dyn Fn(&Req) -> Answer + Send + Sync;

/// A running fake server (threads leak until the test process ends).
pub struct Fake {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Req>>>,
}

impl Fake {
    pub fn start(handler: impl Fn(&Req) -> Answer + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen2 = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (handler, seen) = (Arc::clone(&handler), Arc::clone(&seen2));
                std::thread::spawn(move || serve(stream, &*handler, &seen));
            }
        });
        Fake { url, seen }
    }

    pub fn seen(&self) -> Vec<Req> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(stream: std::net::TcpStream, handler: &Handler, seen: &Mutex<Vec<Req>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let method = line
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    let req = Req {
        method,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    seen.lock().unwrap().push(req.clone());
    let a = handler(&req);
    let mut out = stream;
    let mut head = format!(
        "HTTP/1.1 {} X\r\ncontent-type: {}\r\nconnection: close\r\nmcp-session-id: s-1\r\n",
        a.status, a.content_type
    );
    if a.hold.is_zero() {
        head.push_str(&format!("content-length: {}\r\n", a.body.len()));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(&a.body);
    let _ = out.flush();
    std::thread::sleep(a.hold);
}
