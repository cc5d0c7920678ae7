//! The console's forms that change state: cancel a request, freeze signing. Each checks the
//! session, its CSRF token and the origin, then calls the guard service as the session's
//! user (whose roles the service checks again), and answers with a redirect or a page
//! saying why it was refused.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use holdfast_guard::request::parse_address;

use super::pages::{form, gate};
use super::session::check_csrf;
use super::{error_page, signed_in};
use crate::AppState;
use crate::error::{ApiError, ApiPath};

/// The session and form of a state change, checked; or the page to answer.
async fn checked(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(super::Session, std::collections::HashMap<String, String>), super::Answer> {
    let session = signed_in(state, headers).await?;
    let fields = form(state, headers, body)
        .await
        .map_err(|e| Box::new(error_page(Some(&session), &e)))?;
    let given = fields.get("csrf").map(String::as_str).unwrap_or("");
    check_csrf(&session, headers, given).map_err(|e| Box::new(error_page(Some(&session), &e)))?;
    Ok((session, fields))
}

pub async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    body: Body,
) -> Response {
    let (session, fields) = match checked(&state, &headers, body).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let reason = fields.get("reason").map(String::as_str).unwrap_or("");
    let result = async {
        let g = gate(&state)?;
        g.cancel(&id, reason, &session.principal)
            .await
            .map_err(ApiError::from)
    }
    .await;
    match result {
        Ok(_) => Redirect::to(&format!(
            "/console/requests/{}",
            super::html::url_component(&id)
        ))
        .into_response(),
        Err(e) => error_page(Some(&session), &e),
    }
}

pub async fn freeze(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let (session, fields) = match checked(&state, &headers, body).await {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let reason = fields.get("reason").map(String::as_str).unwrap_or("");
    let result = async {
        let wallet = match fields.get("wallet").map(|w| w.trim()).filter(|w| !w.is_empty()) {
            None => None,
            Some(w) => Some(parse_address(w).ok_or_else(|| {
                ApiError::bad_request(
                    "wallet".to_owned(),
                    format!("wallet is {w:?}; expected an address (0x and 40 hex digits) or nothing for all wallets"),
                )
            })?),
        };
        let g = gate(&state)?;
        g.freeze(wallet, reason, &session.principal)
            .await
            .map_err(ApiError::from)
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/console/requests?done=frozen").into_response(),
        Err(e) => error_page(Some(&session), &e),
    }
}
