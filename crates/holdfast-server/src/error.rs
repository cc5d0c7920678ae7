//! The API's error answer: `{"error": {"code", "message", "field"}}` with a 4xx/5xx status.
//!
//! Every error answer is this JSON: handlers return [`ApiError`]; path parameters and query
//! strings are read by [`ApiPath`] and [`query_params`], which name the parameter at fault;
//! [`json_errors`] turns what the framework answers by itself (405, a URI over
//! [`MAX_URI_BYTES`]) into it; the answers hyper writes for a head it cannot parse are
//! replaced in `serve`.

use std::collections::BTreeMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

/// Longest request target (path and query) accepted; a longer one is answered 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// An error as the client sees it. Server-side causes are logged where they are turned into
/// an `ApiError::internal` and never reach the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn bad_request(field: impl Into<Option<String>>, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "bad_request",
            message: message.into(),
            field: field.into(),
        }
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            message: message.into(),
            field: None,
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: message.into(),
            field: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: message.into(),
            field: None,
        }
    }

    /// An error with `status`, its code derived from the status.
    pub fn for_status(status: StatusCode, message: impl Into<String>) -> Self {
        let code = match status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::REQUEST_TIMEOUT => "request_timeout",
            StatusCode::CONFLICT => "conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::URI_TOO_LONG => "uri_too_long",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::TOO_MANY_REQUESTS => "rate_limited",
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "header_too_large",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            s if s.is_server_error() => "internal",
            _ => "bad_request",
        };
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// Logs `cause` once and answers a generic 500.
    pub fn internal(context: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(target: "server::error", context, error = %cause, "internal error");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: format!("internal error while {context}; see the server log"),
            field: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// The body of an answer hyper would send without one (a request head it cannot parse).
pub fn head_error_body(status: StatusCode) -> Vec<u8> {
    let message = match status {
        StatusCode::URI_TOO_LONG => {
            format!("the request target is too long; at most {MAX_URI_BYTES} bytes")
        }
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "the request head is too large".to_owned(),
        _ => "the request head does not parse as HTTP/1.1".to_owned(),
    };
    serde_json::to_vec(&ApiError::for_status(status, message).body()).unwrap_or_default()
}

impl ApiError {
    fn body(&self) -> serde_json::Value {
        let mut body =
            serde_json::json!({ "error": { "code": self.code, "message": self.message } });
        if let Some(f) = &self.field {
            body["error"]["field"] = serde_json::Value::String(f.clone());
        }
        body
    }
}

/// Middleware: refuses a request target over [`MAX_URI_BYTES`] (414) and turns every error
/// answer that is not JSON (the router's 405, a rejection's plain text) into an [`ApiError`].
pub async fn json_errors(req: Request, next: Next) -> Response {
    let target = req.uri().to_string();
    if target.len() > MAX_URI_BYTES {
        return ApiError::for_status(
            StatusCode::URI_TOO_LONG,
            format!(
                "the request target is {} bytes; at most {MAX_URI_BYTES}",
                target.len()
            ),
        )
        .into_response();
    }
    let method = req.method().clone();
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    // JSON errors, and the console's own HTML error pages, pass as they are.
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let allow = resp.headers().get(header::ALLOW).cloned().or_else(|| {
        (status == StatusCode::METHOD_NOT_ALLOWED)
            .then(|| allowed_methods(req_path(&target)))
            .and_then(|a| header::HeaderValue::from_str(&a).ok())
    });
    let text = axum::body::to_bytes(resp.into_body(), 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let path: String = target
        .split('?')
        .next()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    let message = if status == StatusCode::METHOD_NOT_ALLOWED {
        let allowed = allow
            .as_ref()
            .and_then(|a| a.to_str().ok())
            .filter(|a| !a.is_empty())
            .map(|a| format!("; allowed: {a}"))
            .unwrap_or_default();
        format!("method {method} is not allowed on {path}{allowed}")
    } else if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    } else {
        text
    };
    let mut r = ApiError::for_status(status, message).into_response();
    if let Some(a) = allow {
        r.headers_mut().insert(header::ALLOW, a);
    }
    r
}

fn req_path(target: &str) -> &str {
    target.split('?').next().unwrap_or("")
}

/// The methods [`crate::ROUTES`] serves on `path` (`GET,POST`).
fn allowed_methods(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    let mut methods: Vec<String> = crate::ROUTES
        .iter()
        .filter(|(_, pattern)| {
            let p: Vec<&str> = pattern.split('/').collect();
            p.len() == segments.len()
                && p.iter()
                    .zip(&segments)
                    .all(|(p, s)| p.starts_with('{') || p == s)
        })
        .map(|(m, _)| m.to_ascii_uppercase())
        .collect();
    methods.sort();
    methods.dedup();
    methods.join(",")
}

/// Path parameters; a rejection is a 400 naming the parameter.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        use axum::extract::path::ErrorKind;
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                let err = match e.into_kind() {
                    ErrorKind::InvalidUtf8InPathParam { key } => ApiError::bad_request(
                        key.clone(),
                        format!("path parameter {key} is not valid UTF-8 once percent-decoded"),
                    ),
                    ErrorKind::ParseErrorAtKey {
                        key,
                        value,
                        expected_type,
                    } => ApiError::bad_request(
                        key.clone(),
                        format!("path parameter {key} is {value:?}; expected {expected_type}"),
                    ),
                    other => ApiError::bad_request(None, format!("bad path: {other}")),
                };
                Err(err)
            }
            Err(e) => Err(ApiError::bad_request(
                None,
                format!("bad path: {}", e.body_text()),
            )),
        }
    }
}

/// A query string's parameters, each at most once and each one of `allowed`; errors name
/// the parameter. Percent-decoding that is not UTF-8 is an error too.
pub fn query_params(
    query: Option<&str>,
    allowed: &[&str],
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut out = BTreeMap::new();
    let expected = || {
        allowed
            .iter()
            .map(|a| format!("{a}="))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        // A name that cannot be named is reported as the query's problem.
        let key = decode(k).map_err(|_| {
            ApiError::bad_request(
                "query".to_owned(),
                "a query parameter's name is not valid UTF-8 once percent-decoded",
            )
        })?;
        // Empty or only blanks (`?+` decodes to " "): no name a caller could fix.
        if key.trim().is_empty() {
            return Err(ApiError::bad_request(
                "query".to_owned(),
                format!(
                    "a query parameter has an empty name ({pair:?}); accepted: {}",
                    expected()
                ),
            ));
        }
        if !allowed.contains(&key.as_str()) {
            return Err(ApiError::bad_request(
                key.clone(),
                format!("unknown query parameter {key:?}; accepted: {}", expected()),
            ));
        }
        let value = decode(v).map_err(|_| {
            ApiError::bad_request(
                key.clone(),
                format!("query parameter {key} is not valid UTF-8 once percent-decoded"),
            )
        })?;
        if out.contains_key(&key) {
            return Err(ApiError::bad_request(
                key.clone(),
                format!("query parameter {key} is given more than once; give it once"),
            ));
        }
        out.insert(key, value);
    }
    Ok(out)
}

/// Percent-decodes `s` (`+` is a space, as in forms); invalid escapes stay as they are.
fn decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out)
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_decoded_once_each_and_named_in_errors() {
        let q = query_params(Some("as_of=2025-03-01"), &["as_of"]).expect("ok");
        assert_eq!(q.get("as_of").map(String::as_str), Some("2025-03-01"));
        let q = query_params(Some("as%5Fof=2025%2D03%2D01&"), &["as_of"]).expect("ok");
        assert_eq!(q.get("as_of").map(String::as_str), Some("2025-03-01"));
        let e = query_params(Some("as_of=2025-03-01&as_of=2026-01-01"), &["as_of"])
            .expect_err("repeated");
        assert_eq!(e.field.as_deref(), Some("as_of"));
        assert!(e.message.contains("more than once"), "{}", e.message);
        let e = query_params(Some("asof=1"), &["as_of"]).expect_err("unknown");
        assert_eq!(e.field.as_deref(), Some("asof"));
        let e = query_params(Some("as_of=%FF"), &["as_of"]).expect_err("utf-8");
        assert_eq!(e.field.as_deref(), Some("as_of"));
        assert_eq!(decode("a%2").expect("kept"), "a%2");
        assert_eq!(decode("%zz+%41").expect("kept"), "%zz A");
    }

    #[test]
    fn head_error_bodies_are_the_documented_json() {
        let v: serde_json::Value =
            serde_json::from_slice(&head_error_body(StatusCode::URI_TOO_LONG)).expect("json");
        assert_eq!(v["error"]["code"], "uri_too_long");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("8192"))
        );
    }
}
