//! Support for the `mcp_pii` integration tests: a canned upstream that answers every POST with
//! a scripted JSON body or SSE stream (split into chunks with delays), and records every request
//! it receives (headers and body), so tests can put PII exactly where MCP servers put it
//! (`structuredContent`, progress notifications, server → client sampling requests) and prove
//! what did or did not reach the server.

use anyhow::{Context as _, Result};
use serde_json::Value;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// One request the canned upstream received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Request headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Received {
    /// First value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as (lossy) text.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Canned {
    sse: bool,
    payload: Vec<u8>,
    chunk: usize,
    delay: Duration,
}

impl Canned {
    /// An `application/json` body.
    pub fn json(v: &Value) -> Self {
        Canned {
            sse: false,
            payload: v.to_string().into_bytes(),
            chunk: 0,
            delay: Duration::ZERO,
        }
    }

    /// A `text/event-stream` body, one `event: message` per JSON-RPC message.
    pub fn sse(messages: &[Value]) -> Self {
        let mut payload = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            payload.extend_from_slice(
                format!("event: message\nid: {}\ndata: {m}\n\n", i + 1).as_bytes(),
            );
        }
        Canned {
            sse: true,
            payload,
            chunk: 0,
            delay: Duration::ZERO,
        }
    }

    /// Sends the body in pieces of `size` bytes, `delay` apart (events split across chunks).
    pub fn chunked(mut self, size: usize, delay: Duration) -> Self {
        self.chunk = size;
        self.delay = delay;
        self
    }

    fn units(&self) -> Vec<&[u8]> {
        if self.chunk == 0 {
            vec![self.payload.as_slice()]
        } else {
            self.payload.chunks(self.chunk).collect()
        }
    }
}

#[derive(Debug)]
struct Shared {
    reply: Mutex<Canned>,
    record: Mutex<Vec<Received>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The canned upstream (its threads end with the test process).
#[derive(Debug)]
pub struct CannedServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl CannedServer {
    /// Starts on a free local port, answering every POST with `reply`.
    pub fn start(reply: Canned) -> Result<CannedServer> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the canned server")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            reply: Mutex::new(reply),
            record: Mutex::new(Vec::new()),
        });
        let s = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    let _ = serve(stream, &s);
                });
            }
        });
        Ok(CannedServer { addr, shared })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the scripted answer.
    pub fn set_reply(&self, reply: Canned) {
        *lock(&self.shared.reply) = reply;
    }

    /// Everything received so far.
    pub fn record(&self) -> Vec<Received> {
        lock(&self.shared.record).clone()
    }
}

fn serve(stream: TcpStream, shared: &Shared) -> Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        if let Some(len) = find("content-length").and_then(|l| l.parse::<usize>().ok()) {
            body.resize(len, 0);
            reader.read_exact(&mut body)?;
        } else if find("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
            loop {
                let mut size_line = String::new();
                reader.read_line(&mut size_line)?;
                let size = usize::from_str_radix(size_line.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0; size + 2];
                reader.read_exact(&mut chunk)?;
                chunk.truncate(size);
                body.extend_from_slice(&chunk);
                if size == 0 {
                    break;
                }
            }
        }
        lock(&shared.record).push(Received { headers, body });
        let reply = lock(&shared.reply).clone();
        if reply.sse {
            out.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n",
            )?;
            out.flush()?;
            for unit in reply.units() {
                std::thread::sleep(reply.delay);
                out.write_all(format!("{:x}\r\n", unit.len()).as_bytes())?;
                out.write_all(unit)?;
                out.write_all(b"\r\n")?;
                out.flush()?;
            }
            out.write_all(b"0\r\n\r\n")?;
        } else {
            out.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                    reply.payload.len()
                )
                .as_bytes(),
            )?;
            out.flush()?;
            for unit in reply.units() {
                std::thread::sleep(reply.delay);
                out.write_all(unit)?;
                out.flush()?;
            }
        }
        out.flush()?;
    }
}
