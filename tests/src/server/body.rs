//! Response bodies: fixed, or streamed from a channel so tests control chunk boundaries and timing.

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt as _, Empty, Full};
use hyper::body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;

/// The one body type every handler returns.
pub type RespBody = BoxBody<Bytes, Infallible>;

/// An empty body.
pub fn empty() -> RespBody {
    Empty::new().boxed()
}

/// A fixed body.
pub fn full(b: impl Into<Bytes>) -> RespBody {
    Full::new(b.into()).boxed()
}

/// A body fed by a channel; ends when the sender is dropped.
struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
    exact_len: Option<u64>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .rx
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(Frame::data(b))))
    }

    fn size_hint(&self) -> SizeHint {
        self.exact_len
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

/// A channel-fed body plus its sender.
pub fn channel(exact_len: Option<u64>) -> (mpsc::Sender<Bytes>, RespBody) {
    let (tx, rx) = mpsc::channel(4);
    (tx, ChannelBody { rx, exact_len }.boxed())
}

/// Streams `units` with `delay` between consecutive ones; stops early if the client went away.
pub fn stream_units(units: Vec<Bytes>, delay: Duration, exact_len: Option<u64>) -> RespBody {
    let (tx, body) = channel(exact_len);
    tokio::spawn(async move {
        for (i, unit) in units.into_iter().enumerate() {
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if tx.send(unit).await.is_err() {
                break;
            }
        }
    });
    body
}

/// Splits `data` into pieces of at most `size` bytes (`size` 0 means one piece).
pub fn split_chunks(data: &[u8], size: usize) -> Vec<Bytes> {
    if size == 0 || data.is_empty() {
        return vec![Bytes::copy_from_slice(data)];
    }
    data.chunks(size).map(Bytes::copy_from_slice).collect()
}

/// Test-only: `units` then a trailers frame (HTTP/1.1 sends trailers only when the request
/// said `te: trailers`).
pub fn with_trailers(units: Vec<Bytes>, trailers: hyper::HeaderMap) -> RespBody {
    struct Trailing {
        units: std::collections::VecDeque<Bytes>,
        trailers: Option<hyper::HeaderMap>,
    }
    impl Body for Trailing {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            let this = self.get_mut();
            if let Some(u) = this.units.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(u))));
            }
            Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))))
        }
    }
    Trailing {
        units: units.into(),
        trailers: Some(trailers),
    }
    .boxed()
}
