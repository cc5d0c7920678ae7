//! The HTTP transport: alloy's reqwest transport with the node's answer bounded. alloy's
//! own reads the whole body whatever its size, so a hostile or broken node could make
//! Holdfast allocate without limit; this one reads the body in chunks and stops at
//! `max_bytes` with [`ResponseTooLarge`]. (WebSocket messages are bounded by tungstenite's
//! frame and message limits, which `ChainSource::connect` sets to the same figure.)

use std::task;
use std::time::Duration;

use alloy::rpc::json_rpc::{RequestPacket, ResponsePacket};
use alloy::transports::http::reqwest::{self, Client, Url};
use alloy::transports::{TransportError, TransportErrorKind, TransportFut, TransportResult};

/// The node's answer was larger than the configured bound. Not retried, and not transient:
/// the same request would get the same answer.
#[derive(Debug, thiserror::Error)]
#[error("the node's answer is larger than {limit} bytes (--max-response-mb)")]
pub struct ResponseTooLarge {
    pub limit: usize,
}

/// HTTP JSON-RPC with the answer's size bounded.
#[derive(Debug, Clone)]
pub(crate) struct BoundedHttp {
    client: Client,
    url: Url,
    max_bytes: usize,
}

impl BoundedHttp {
    pub(crate) fn new(url: Url, max_bytes: usize) -> Self {
        BoundedHttp {
            client: Client::new(),
            url,
            max_bytes,
        }
    }

    async fn send(self, req: RequestPacket) -> TransportResult<ResponsePacket> {
        let mut resp = self
            .client
            .post(self.url)
            .json(&req)
            .headers(req.headers())
            .send()
            .await
            .map_err(TransportErrorKind::custom)?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .map(Duration::from_secs);
        let too_large = || {
            TransportErrorKind::custom(ResponseTooLarge {
                limit: self.max_bytes,
            })
        };
        if resp
            .content_length()
            .is_some_and(|n| n > self.max_bytes as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > self.max_bytes {
                        return Err(too_large());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if !status.is_success() => {
                    return Err(TransportErrorKind::http_error_with_retry_after(
                        status.as_u16(),
                        format!("<failed to read response body: {e}>"),
                        retry_after,
                    ));
                }
                Err(e) => return Err(TransportErrorKind::custom(e)),
            }
        }
        if !status.is_success() {
            // Some nodes answer a JSON-RPC error with an HTTP error status.
            if let Ok(r) = serde_json::from_slice::<ResponsePacket>(&body)
                && r.is_error()
            {
                return Ok(r);
            }
            return Err(TransportErrorKind::http_error_with_retry_after(
                status.as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
                retry_after,
            ));
        }
        serde_json::from_slice(&body)
            .map_err(|e| TransportError::deser_err(e, String::from_utf8_lossy(&body)))
    }
}

impl tower::Service<RequestPacket> for BoundedHttp {
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, _cx: &mut task::Context<'_>) -> task::Poll<Result<(), Self::Error>> {
        task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: RequestPacket) -> Self::Future {
        Box::pin(self.clone().send(req))
    }
}

/// Whether `e` is a [`ResponseTooLarge`].
pub(crate) fn is_too_large(e: &TransportError) -> bool {
    matches!(e, alloy::transports::RpcError::Transport(TransportErrorKind::Custom(c)) if c.is::<ResponseTooLarge>())
}
