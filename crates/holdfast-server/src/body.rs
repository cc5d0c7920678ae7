//! Reading a request body with a size limit and a deadline (a client that sends its body
//! slowly holds a connection; the header timeout does not cover the body).

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the request body did not arrive within {} s", .0.as_secs_f64())]
    Timeout(Duration),
    #[error("could not read the request body: {0}")]
    Read(String),
}

/// The whole body, at most `limit` bytes, arrived within `timeout`. A `content-length` over
/// the limit is refused before anything is read.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge { limit });
    }
    match tokio::time::timeout(timeout, Limited::new(body, limit).collect()).await {
        Err(_) => Err(BodyError::Timeout(timeout)),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(BodyError::TooLarge { limit })
        }
        Ok(Err(e)) => Err(BodyError::Read(e.to_string())),
    }
}

impl From<BodyError> for crate::error::ApiError {
    fn from(e: BodyError) -> Self {
        use axum::http::StatusCode;
        let (status, code) = match e {
            BodyError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            BodyError::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            BodyError::Read(_) => (StatusCode::BAD_REQUEST, "bad_request"),
        };
        crate::error::ApiError {
            status,
            code,
            message: e.to_string(),
            field: None,
        }
    }
}
