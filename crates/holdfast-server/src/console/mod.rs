//! The web console (`/` and `/console/...`): server-rendered pages for the people who
//! approve, cancel, freeze and investigate (docs/CONSOLE.md).
//!
//! - [`html`]: the only way pages are written; data is always escaped text.
//! - [`session`]: sign-in with an API token into a server-side session; CSRF and origin
//!   checks on every state change; [`throttle`]: failed sign-ins bounded per client.
//! - [`pages`]: sign-in, the request queue; [`request`]: one request; [`act`]: cancel and
//!   freeze forms; [`alerts`]: the watch's alerts, live, and their acknowledgement;
//!   [`alert`]: one alert, what its transaction did, links to a trace;
//!   [`audit`]: the audit log, its verification and export (admins); [`screen`]: screening
//!   an address; [`trace`]: tracing stolen funds (the graph: [`trace_graph`]); [`unfreeze`]: lifting a freeze with a quorum's signed approvals. Approvals are signed in the browser (`assets/approve.js`, EIP-1193) and
//!   posted to the API's own approve route with the session.
//!
//! Every console answer carries [`CSP`]: scripts, styles and images only from this origin
//! (the assets are embedded in the binary), no inline script or style, no framing, forms
//! only to this origin. The console makes no request to any third party.

pub mod act;
pub mod alert;
pub mod alerts;
pub mod audit;
pub mod filter;
pub mod html;
pub mod pages;
pub mod request;
pub mod screen;
pub mod session;
pub mod throttle;
pub mod trace;
pub mod trace_graph;
pub mod unfreeze;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use holdfast_gate::Principal;

use crate::AppState;
use crate::error::ApiError;
use html::Html;
pub use session::{Session, Sessions};

/// The Content-Security-Policy of every console answer.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The assets, embedded: (path under /console/assets/, content type, bytes).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/console.js"),
    ),
    (
        "alerts.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/alerts.js"),
    ),
    (
        "unfreeze.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/unfreeze.js"),
    ),
    (
        "trace.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/trace.js"),
    ),
    (
        "approve.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/approve.js"),
    ),
];

/// The console's routes (merged into [`crate::router`], which wraps every answer whose path
/// is the console's in [`headers`], errors made by outer layers included).
///
/// Pages, assets and exports are gzip-compressed when the browser accepts it
/// ([`compression`]); the API's JSON (`/v1/...`) is not.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/requests") }))
        .route(
            "/console",
            get(|| async { Redirect::to("/console/requests") }),
        )
        .route(
            "/console/sign-in",
            get(pages::sign_in_page).post(pages::sign_in),
        )
        .route("/console/sign-out", post(pages::sign_out))
        .route("/console/requests", get(pages::queue))
        .route("/console/requests/{id}", get(request::show))
        .route("/console/requests/{id}/cancel", post(act::cancel))
        .route("/console/freeze", post(act::freeze))
        .route(
            "/console/unfreeze",
            get(unfreeze::show).post(unfreeze::lift),
        )
        .route("/console/alerts", get(alerts::feed))
        .route("/console/alerts/{id}", get(alert::show))
        .route("/console/audit", get(audit::show))
        .route("/console/screen", get(screen::show))
        .route("/console/trace", get(trace::show))
        .route("/console/trace/export", get(trace::export))
        .route("/console/audit/export", get(audit::export))
        .route("/console/alerts/{id}/ack", post(alerts::acknowledge))
        .route("/console/assets/{name}", get(asset))
        .layer(compression())
}

/// Gzip for the console's answers: HTML, CSS, JavaScript, the trace and audit exports —
/// not JSON (the console's refusals), not server-sent events, not bodies under 32 bytes.
///
/// BREACH: a compressed answer that carries a secret next to text an attacker chose (a
/// query reflected in the page) leaks the secret through its length. A console page's only
/// secret is the session's CSRF token, and each rendering carries it masked with a fresh
/// one-time pad ([`Session::csrf_token`]), so no two answers carry it alike; the session id
/// is only in the cookie, a header, which HTTP/1.1 does not compress.
pub(crate) fn compression()
-> tower_http::compression::CompressionLayer<impl tower_http::compression::Predicate> {
    use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
    tower_http::compression::CompressionLayer::new()
        .gzip(true)
        .compress_when(
            DefaultPredicate::new().and(NotForContentType::const_new("application/json")),
        )
}

/// Middleware: the security headers on every answer to a console path (`/`, `/console...`).
pub async fn headers(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let console = path == "/" || path == "/console" || path.starts_with("/console/");
    let mut resp = next.run(req).await;
    if !console {
        return resp;
    }
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Not `no-referrer`: browsers then send `Origin: null` with the console's own form
    // posts, and the origin check would refuse them.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, ct, body)) => (
            [
                (header::CONTENT_TYPE, *ct),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        // JSON, as every error of the API: the error middleware passes it untouched, with the
        // console's headers.
        None => ApiError::not_found(format!("no console asset {name:?}")).into_response(),
    }
}

/// A page answered instead of what was asked (sign-in, a refusal); boxed, as a `Result`'s
/// error.
pub(crate) type Answer = Box<Response>;

/// The signed-in user, or a redirect to sign-in (no session, or it expired), or an error
/// page when the session store cannot be read.
pub(crate) async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Session, Answer> {
    match state.sessions.get(headers, state.token_book()).await {
        Ok(Some((_, s))) => Ok(s),
        Ok(None) => Err(Box::new(Redirect::to("/console/sign-in").into_response())),
        Err(e) => Err(Box::new(error_page(None, &e))),
    }
}

/// The shell of every console page: the signed-in user (else a redirect to sign-in), the
/// page `render` makes for them, or what went wrong as a page.
pub(crate) async fn signed_in_page(
    state: &AppState,
    headers: &HeaderMap,
    render: impl AsyncFnOnce(&Session) -> Result<Response, ApiError>,
) -> Response {
    let session = match signed_in(state, headers).await {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match render(&session).await {
        Ok(r) => r,
        Err(e) => error_page(Some(&session), &e),
    }
}

/// A page: the shell around `body`, with the navigation for `session`'s roles.
pub(crate) fn page(title: &str, session: Option<&Session>, body: Html) -> Response {
    let mut h = Html::new();
    h.open("html", &[("lang", "en")]).open("head", &[]);
    h.void("meta", &[("charset", "utf-8")]);
    h.void(
        "meta",
        &[
            ("name", "viewport"),
            ("content", "width=device-width, initial-scale=1"),
        ],
    );
    if let Some(s) = session {
        h.void(
            "meta",
            &[("name", "csrf-token"), ("content", &s.csrf_token())],
        );
    }
    h.el("title", &[], &format!("{title} · Holdfast console"));
    h.void(
        "link",
        &[
            ("rel", "stylesheet"),
            ("href", "/console/assets/console.css"),
        ],
    );
    h.el(
        "script",
        &[("type", "module"), ("src", "/console/assets/console.js")],
        "",
    );
    h.close("head").open("body", &[]);
    h.open("header", &[]);
    h.el(
        "a",
        &[("href", "/console/requests"), ("class", "brand")],
        "Holdfast",
    );
    if let Some(s) = session {
        h.open("nav", &[("aria-label", "main")]);
        h.link("/console/requests?view=held", "Holds");
        h.link("/console/requests?view=awaiting", "Awaiting approvals");
        h.link("/console/requests?view=decided", "Decided");
        h.link("/console/alerts", "Alerts");
        h.link("/console/screen", "Screen");
        h.link("/console/trace", "Trace");
        if s.principal.has(holdfast_gate::Role::Admin) {
            h.link("/console/audit", "Audit log");
        }
        h.close("nav");
        h.open("div", &[("class", "who")]);
        h.text(&format!("{} ({})", s.principal.name, roles(&s.principal)));
        h.open(
            "form",
            &[("method", "post"), ("action", "/console/sign-out")],
        );
        h.void(
            "input",
            &[
                ("type", "hidden"),
                ("name", "csrf"),
                ("value", &s.csrf_token()),
            ],
        );
        h.el("button", &[("type", "submit")], "Sign out");
        h.close("form").close("div");
    }
    h.close("header");
    h.open("main", &[]);
    h.el("h1", &[], title);
    let mut out = h.into_string();
    out.push_str(&body.into_string());
    out.push_str("</main></body></html>");
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!("<!doctype html>{out}"),
    )
        .into_response()
}

/// A page saying what went wrong (an action refused, a request not found).
pub(crate) fn error_page(session: Option<&Session>, e: &ApiError) -> Response {
    let mut h = Html::new();
    h.el("p", &[("class", "refused"), ("role", "alert")], &e.message);
    h.link("/console/requests", "Back to the requests");
    let mut resp = page("Refused", session, h);
    *resp.status_mut() = e.status;
    resp
}

pub(crate) fn roles(p: &Principal) -> String {
    p.roles
        .iter()
        .map(|r| r.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The caller of an API route made from the console: the session's principal, when the
/// request carries no bearer token. A state change (`changes`) also needs the session's
/// CSRF token in `X-CSRF-Token` and this console's origin. `None`: no session cookie.
pub(crate) async fn api_caller(
    state: &AppState,
    headers: &HeaderMap,
    changes: bool,
) -> Option<Result<Principal, ApiError>> {
    let (_, s) = match state.sessions.get(headers, state.token_book()).await {
        Ok(found) => found?,
        Err(e) => return Some(Err(e)),
    };
    if changes && let Err(e) = session::check_csrf(&s, headers, session::csrf_header(headers)) {
        return Some(Err(e));
    }
    Some(Ok(s.principal))
}
