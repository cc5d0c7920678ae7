//! The connection's I/O as hyper sees it: a write that makes no progress for the write
//! timeout fails (a client that stops reading its answer), and the answers hyper writes by
//! itself for a request head it cannot parse — a status line, `content-length: 0` and a
//! date, no body — are replaced by the same status with a JSON body.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Statuses hyper answers by itself for a head it cannot parse.
const HEAD_ERRORS: [StatusCode; 3] = [
    StatusCode::BAD_REQUEST,
    StatusCode::URI_TOO_LONG,
    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
];

#[derive(Debug)]
pub(super) struct Guarded<T> {
    inner: T,
    write_timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
    head_error_body: fn(StatusCode) -> Vec<u8>,
    /// A replacement answer being written, and how much of it is out.
    replacement: Option<(Vec<u8>, usize)>,
}

impl<T> Guarded<T> {
    pub(super) fn new(
        inner: T,
        write_timeout: Duration,
        head_error_body: fn(StatusCode) -> Vec<u8>,
    ) -> Self {
        Guarded {
            inner,
            write_timeout,
            stalled: None,
            head_error_body,
            replacement: None,
        }
    }
}

/// The status of `buf` when it is exactly one of hyper's bodiless head-error answers.
fn head_error(buf: &[u8]) -> Option<StatusCode> {
    let head = buf.strip_prefix(b"HTTP/1.1 ")?;
    let status = StatusCode::from_bytes(head.get(..3)?).ok()?;
    if !HEAD_ERRORS.contains(&status) || !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let text = std::str::from_utf8(buf).ok()?.to_ascii_lowercase();
    let headers: Vec<&str> = text
        .trim_end()
        .lines()
        .skip(1)
        .map(|l| l.split(':').next().unwrap_or("").trim())
        .collect();
    let only_hypers = headers
        .iter()
        .all(|h| matches!(*h, "content-length" | "date" | "connection"));
    (only_hypers && text.contains("\r\ncontent-length: 0\r\n")).then_some(status)
}

fn replacement(status: StatusCode, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

impl<T: AsyncWrite + Unpin> Guarded<T> {
    /// Turns a pending write into an error once it has been pending for the write timeout.
    fn stall<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Pending => {
                let timeout = self.write_timeout;
                let sleep = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if sleep.as_mut().poll(cx).is_ready() {
                    self.stalled = None;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the client read nothing of the answer for {} s",
                            timeout.as_secs_f64()
                        ),
                    )));
                }
                Poll::Pending
            }
            ready => {
                self.stalled = None;
                ready
            }
        }
    }

    /// Writes out the rest of a replacement answer.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, done)) = self.replacement.as_mut() {
            if *done == bytes.len() {
                self.replacement = None;
                break;
            }
            let polled = Pin::new(&mut self.inner).poll_write(cx, &bytes[*done..]);
            let n = ready!(self.stall(cx, polled))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if let Some((_, done)) = self.replacement.as_mut() {
                *done += n;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.drain(cx))?;
        if let Some(status) = head_error(buf) {
            let body = (this.head_error_body)(status);
            this.replacement = Some((replacement(status, &body), 0));
            // Taken whole: the rest goes out in drain (here, or on flush).
            let _ = this.drain(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.stall(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.drain(cx))?;
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.stall(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.drain(cx))?;
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.stall(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_own_bodiless_head_errors_are_recognised() {
        let hyper414 = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: Sat, 05 Dec 2026 08:00:00 GMT\r\n\r\n";
        assert_eq!(head_error(hyper414), Some(StatusCode::URI_TOO_LONG));
        let hyper431 =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(
            head_error(hyper431),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(head_error(ours), None);
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\ndate: x\r\n\r\n{}";
        assert_eq!(head_error(with_body), None);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(head_error(ok), None);
        let r = replacement(StatusCode::URI_TOO_LONG, b"{\"a\":1}");
        assert!(r.starts_with(
            b"HTTP/1.1 414 URI Too Long\r\ncontent-type: application/json\r\ncontent-length: 7\r\n"
        ));
        assert!(r.ends_with(b"\r\n\r\n{\"a\":1}"));
    }
}
