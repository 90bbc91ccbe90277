//! The web console at `/console` on the admin port: pages rendered here (maud) over the same
//! functions as the admin API, a session cookie from the admin token, CSRF tokens on every
//! change, and a little plain JavaScript (live refresh, uploads).

mod objects;
mod pages;
pub mod session;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequest, Path, Request, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use cairn_storage_node::control::{BucketChange, Permissions};
use http::{HeaderMap, StatusCode};

use super::AdminState;
use super::buckets::CreateBucketRequest;
use session::{CSRF_FIELD, Sessions, cookie_of, set_cookie};

use crate::timefmt::now_ms;

/// Largest console form body (uploads do not go through forms).
const MAX_FORM_BYTES: usize = 64 * 1024;

/// What console handlers see.
pub(crate) struct Console {
    admin: Arc<AdminState>,
    sessions: Sessions,
    /// Port of the S3 listener, for share links when no public endpoint is configured.
    s3_port: u16,
}

/// The console router, nested under `/console`.
pub(crate) fn router(admin: Arc<AdminState>, admin_token: &str, s3_port: u16) -> Router {
    let console = Arc::new(Console { admin, sessions: Sessions::new(admin_token), s3_port });
    let pages = Router::new()
        .route("/", get(overview))
        .route("/buckets", get(buckets).post(create_bucket))
        .route("/buckets/{name}", get(objects::browse))
        .route("/buckets/{name}/delete", post(delete_bucket))
        .route("/buckets/{name}/consistency", post(set_consistency))
        .route("/buckets/{name}/object", get(objects::download).put(objects::upload))
        .route("/buckets/{name}/delete-object", post(objects::delete))
        .route("/buckets/{name}/share", post(objects::share))
        .route("/keys", get(keys).post(create_key))
        .route("/keys/grant", post(grant))
        .route("/keys/{id}/delete", post(delete_key))
        .route("/background", get(background))
        .route("/logout", post(logout))
        .route_layer(axum::middleware::from_fn_with_state(console.clone(), require_session));
    Router::new().route("/login", get(login_page).post(login)).merge(pages).with_state(console)
}

/// The session of a request that passed [`require_session`].
#[derive(Clone)]
pub(crate) struct Session {
    /// The CSRF token its forms carry.
    csrf: String,
}

/// Sends a request without a valid session to the login page.
async fn require_session(
    State(console): State<Arc<Console>>,
    mut request: Request,
    next: axum::middleware::Next,
) -> Response {
    match cookie_of(request.headers()).filter(|c| console.sessions.verify(c, now_ms())) {
        Some(cookie) => {
            request.extensions_mut().insert(Session { csrf: console.sessions.csrf(&cookie) });
            next.run(request).await
        }
        // A page or a form goes to the login page; an upload (a script's PUT, which would
        // follow the redirect and see the login page as success) is told plainly.
        None if request.method() == http::Method::PUT => {
            (StatusCode::UNAUTHORIZED, "the console session ended: log in again").into_response()
        }
        None => Redirect::to("/console/login").into_response(),
    }
}

/// A urlencoded form whose CSRF token matched its session's.
pub(crate) struct Form(HashMap<String, String>);

impl Form {
    fn get(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }
}

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = Response;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        let session = request.extensions().get::<Session>().cloned();
        let body = axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES)
            .await
            .map_err(|_| (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response())?;
        let fields: HashMap<String, String> = crate::s3::form_pairs(&String::from_utf8_lossy(&body)).collect();
        let given = fields.get(CSRF_FIELD).map_or("", String::as_str);
        match session {
            Some(session) if crate::auth::constant_time_eq(session.csrf.as_bytes(), given.as_bytes()) => {
                Ok(Form(fields))
            }
            _ => Err((StatusCode::FORBIDDEN, "the form's CSRF token does not match the session; reload the page")
                .into_response()),
        }
    }
}

async fn login_page() -> Html<String> {
    Html(pages::login(None))
}

async fn login(State(console): State<Arc<Console>>, body: axum::body::Bytes) -> Response {
    let fields: HashMap<String, String> = crate::s3::form_pairs(&String::from_utf8_lossy(&body)).collect();
    let given = fields.get("token").map_or("", |t| t.trim());
    let expected = console.admin.token.as_str();
    if !crate::auth::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return (StatusCode::UNAUTHORIZED, Html(pages::login(Some("That is not the admin token.")))).into_response();
    }
    let cookie = console.sessions.issue(now_ms());
    ([(http::header::SET_COOKIE, set_cookie(&cookie))], Redirect::to("/console")).into_response()
}

async fn logout(_: Form) -> Response {
    ([(http::header::SET_COOKIE, set_cookie(""))], Redirect::to("/console/login")).into_response()
}

async fn overview(
    State(console): State<Arc<Console>>,
    axum::Extension(session): axum::Extension<Session>,
) -> Html<String> {
    let status = super::cluster::cluster_status(&console.admin).await;
    let nodes = super::cluster::node_views(&console.admin.gateway.state(), &status.nodes);
    Html(pages::overview(
        &session.csrf,
        &status.health,
        &status.usage,
        status.layout_version,
        status.moving_from,
        &nodes,
    ))
}

async fn buckets(
    State(console): State<Arc<Console>>,
    axum::Extension(session): axum::Extension<Session>,
) -> Html<String> {
    Html(buckets_page(&console, &session, None).await)
}

async fn buckets_page(console: &Console, session: &Session, notice: Option<pages::Notice>) -> String {
    let state = console.admin.gateway.state();
    let views = super::buckets::bucket_views(&console.admin, state.buckets.values().cloned().collect()).await;
    let keys: Vec<(String, String)> = state.access_keys.values().map(|k| (k.key_id.clone(), k.name.clone())).collect();
    pages::buckets(&session.csrf, &views, &keys, notice)
}

/// Answers a change: back to `to` when it worked, else the page again with the error.
async fn after_change(
    console: &Console,
    session: &Session,
    result: Result<(), super::AdminError>,
    to: &str,
) -> Response {
    match result {
        Ok(()) => Redirect::to(to).into_response(),
        Err(e) => {
            let (status, _) = e.status_and_code();
            let notice = Some(pages::Notice::Error(e.to_string()));
            let page = if to.starts_with("/console/keys") {
                keys_page(console, session, notice)
            } else {
                buckets_page(console, session, notice).await
            };
            (status, Html(page)).into_response()
        }
    }
}

async fn create_bucket(
    State(console): State<Arc<Console>>,
    axum::Extension(session): axum::Extension<Session>,
    form: Form,
) -> Response {
    let request = CreateBucketRequest {
        name: form.get("name").trim().to_owned(),
        owner: form.get("owner").to_owned(),
        consistency: Some(form.get("consistency").to_owned()),
    };
    let result = super::buckets::create_bucket(&console.admin, &request).await;
    after_change(&console, &session, result, "/console/buckets").await
}

async fn delete_bucket(
    State(console): State<Arc<Console>>,
    axum::Extension(session): axum::Extension<Session>,
    Path(name): Path<String>,
    _: Form,
) -> Response {
    let result = super::buckets::delete_bucket(&console.admin, &name).await;
    after_change(&console, &session, result, "/console/buckets").await
}

async fn set_consistency(
    State(console): State<Arc<Console>>,
    axum::Extension(session): axum::Extension<Session>,
    Path(name): Path<String>,
    form: Form,
) -> Response {
    let result = match cairn_storage_node::control::Consistency::parse(form.get("level")) {
        Some(level) => super::buckets::change(&console.admin, &name, BucketChange::Consistency(level)).await,
        None => Err(super::AdminError::BadRequest("the level must be one, quorum or all".into())),
    };
    after_change(&console, &session, result, "/console/buckets").await
}

async fn keys(State(console): State<Arc<Console>>, axum::Extension(session): axum::Extension<Session>) -> Html<String> {
    Html(keys_page(&console, &session, None))
}

fn keys_page(console: &Console, session: &Session, notice: Option<pages::Notice>) -> String {
    let state = console.admin.gateway.state();
    let keys = super::keys::key_views(&state);
    let buckets: Vec<String> = state.buckets.keys().cloned().collect();
    pages::keys(&session.csrf, &keys, &buckets, notice)
}

async fn create_key(
    State(console): State<Arc<Console>>,
    axum::Extension(session): axum::Extension<Session>,
    form: Form,
) -> Response {
    match super::keys::create_key(&console.admin, form.get("name").trim()).await {
        // The secret is shown on this page only.
        Ok(created) => Html(keys_page(&console, &session, Some(pages::Notice::NewKey(created)))).into_response(),
        Err(e) => after_change(&console, &session, Err(e), "/console/keys").await,
    }
}

async fn delete_key(
    State(console): State<Arc<Console>>,
    axum::Extension(session): axum::Extension<Session>,
    Path(id): Path<String>,
    _: Form,
) -> Response {
    let result = super::keys::delete_key(&console.admin, &id).await;
    after_change(&console, &session, result, "/console/keys").await
}

async fn grant(
    State(console): State<Arc<Console>>,
    axum::Extension(session): axum::Extension<Session>,
    form: Form,
) -> Response {
    let permissions = Permissions {
        read: !form.get("read").is_empty(),
        write: !form.get("write").is_empty(),
        owner: !form.get("owner").is_empty(),
    };
    let change = BucketChange::Grant { key_id: form.get("key").to_owned(), permissions };
    let result = super::buckets::change(&console.admin, form.get("bucket"), change).await;
    after_change(&console, &session, result, "/console/keys").await
}

async fn background(
    State(console): State<Arc<Console>>,
    axum::Extension(session): axum::Extension<Session>,
) -> Html<String> {
    let nodes = console.admin.gateway.replication.detector().snapshot();
    let layout = &console.admin.gateway.state().layout;
    Html(pages::background(&session.csrf, &nodes, layout.version))
}

/// The S3 endpoint share links point at: the public endpoint when one is configured, else the
/// host the browser reached the console by, on the S3 port.
fn s3_endpoint(console: &Console, headers: &HeaderMap) -> String {
    if let Some(public) = &console.admin.gateway.config.public_endpoint {
        return public.url.clone();
    }
    let host = headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    // Strip the admin port (an IPv6 literal keeps its brackets).
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) && !name.ends_with(':') => name,
        _ => host,
    };
    format!("http://{name}:{}", console.s3_port)
}
