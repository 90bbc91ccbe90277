//! The console's object browser: listing by prefix, upload, download, delete and share links.
//! Object operations run the S3 handlers themselves on the bucket owner's behalf, so they
//! behave exactly as through the S3 API.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use cairn_storage_node::control::BucketInfo;
use http::{HeaderMap, Method, StatusCode};
use serde::Deserialize;

use super::session::CSRF_HEADER;
use super::{Console, Form, Session, pages};
use crate::auth::presign::{MAX_PRESIGN_SECS, Presigner};
use crate::auth::{Authenticated, PayloadHash, SignatureVersion};
use crate::s3::S3Request;
use crate::s3::error::S3Error;
use crate::s3::list::{Entry, list_page};

/// Entries one page of the browser shows.
const PAGE_ENTRIES: usize = 200;

/// Where in a bucket the browser is.
#[derive(Deserialize)]
pub(super) struct Position {
    #[serde(default)]
    prefix: String,
    /// The last key of the previous page.
    #[serde(default)]
    after: Option<String>,
}

/// A bucket the console was asked about that does not exist.
struct NoBucket(String);

impl IntoResponse for NoBucket {
    fn into_response(self) -> Response {
        (StatusCode::NOT_FOUND, format!("no bucket {}", self.0)).into_response()
    }
}

/// The bucket named `name`.
fn bucket(console: &Console, name: &str) -> Result<BucketInfo, NoBucket> {
    console.admin.gateway.replication.cluster().bucket(name).ok_or_else(|| NoBucket(name.to_owned()))
}

pub(super) async fn browse(
    State(console): State<Arc<Console>>,
    axum::Extension(session): axum::Extension<Session>,
    Path(name): Path<String>,
    Query(position): Query<Position>,
) -> Response {
    browse_page(&console, &session, &name, &position.prefix, position.after.as_deref(), None).await
}

async fn browse_page(
    console: &Console,
    session: &Session,
    name: &str,
    prefix: &str,
    after: Option<&str>,
    shared: Option<pages::Shared>,
) -> Response {
    let bucket = match bucket(console, name) {
        Ok(bucket) => bucket,
        Err(missing) => return missing.into_response(),
    };
    let page =
        list_page(&console.admin.gateway, &bucket, prefix, Some("/"), after.map(str::as_bytes), PAGE_ENTRIES).await;
    match page {
        Ok(page) => {
            let next = page.next_after.map(|after| String::from_utf8_lossy(&after).into_owned());
            let entries: Vec<pages::Listed> = page
                .entries
                .into_iter()
                .map(|entry| match entry {
                    Entry::CommonPrefix(prefix) => pages::Listed::Prefix(prefix),
                    Entry::Object { key, version } => {
                        pages::Listed::Object { key, size: version.size, modified_ms: version.last_modified_ms }
                    }
                })
                .collect();
            let view = pages::Browser { bucket: name, prefix, entries: &entries, next: next.as_deref(), shared };
            Html(pages::browser(&session.csrf, &view)).into_response()
        }
        Err(e) => (e.status(), format!("listing failed: {}", e.code())).into_response(),
    }
}

/// An S3 request on `key` of `bucket` signed, in effect, by the bucket's owner; refused as
/// the S3 API refuses a key it does not allow.
fn owner_request(
    console: &Console,
    bucket: &BucketInfo,
    key: &str,
    method: Method,
    headers: HeaderMap,
) -> Result<S3Request, S3Error> {
    crate::s3::check_key(key)?;
    Ok(S3Request {
        method,
        headers,
        query: BTreeMap::new(),
        bucket: Some(bucket.name.clone()),
        key: Some(key.to_owned()),
        auth: Authenticated {
            access_key_id: bucket.owner_key.clone(),
            payload: PayloadHash::Unsigned,
            region: Some(console.admin.gateway.config.region.clone()),
            version: SignatureVersion::V4Header,
        },
        resource: format!("/{}/{key}", bucket.name),
        request_id: console.admin.gateway.next_request_id(),
    })
}

/// The answer to an object request S3 would refuse.
fn refused(e: &S3Error) -> Response {
    (e.status(), format!("{}: {e}", e.code())).into_response()
}

/// Headers that make a download a download: saved under the key's last segment, never shown
/// inline nor sniffed, and sandboxed should a browser render it anyway (an object's content
/// type is whatever its writer chose, and the console's origin holds an admin session).
fn as_attachment(response: &mut Response, key: &str) {
    let name = key.rsplit('/').next().unwrap_or_default();
    let plain: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let plain = if plain.trim().is_empty() { "download".to_owned() } else { plain };
    let encoded = super::super::url_component(name);
    let headers = response.headers_mut();
    let disposition = format!("attachment; filename=\"{plain}\"; filename*=UTF-8''{encoded}");
    let safe = [
        (http::header::CONTENT_DISPOSITION, disposition.as_str()),
        (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (http::header::CONTENT_SECURITY_POLICY, "sandbox"),
    ];
    for (name, value) in safe {
        match http::HeaderValue::from_str(value) {
            Ok(value) => headers.insert(name, value),
            Err(_) => headers.insert(name, http::HeaderValue::from_static("attachment")),
        };
    }
}

/// Which object a request is about.
#[derive(Deserialize)]
pub(super) struct ObjectKey {
    key: String,
}

pub(super) async fn download(
    State(console): State<Arc<Console>>,
    Path(name): Path<String>,
    Query(object): Query<ObjectKey>,
) -> Response {
    let bucket = match bucket(&console, &name) {
        Ok(bucket) => bucket,
        Err(missing) => return missing.into_response(),
    };
    let request = match owner_request(&console, &bucket, &object.key, Method::GET, HeaderMap::new()) {
        Ok(request) => request,
        Err(e) => return refused(&e),
    };
    match crate::s3::get_object::get_object(&console.admin.gateway, &request, true).await {
        Ok(mut response) => {
            as_attachment(&mut response, &object.key);
            response
        }
        Err(e) => (e.status(), format!("download failed: {}", e.code())).into_response(),
    }
}

/// `PUT /console/buckets/{name}/object?key=K`: the page's script sends each chosen file as the
/// body, with the CSRF token in a header (a form cannot stream a large file).
pub(super) async fn upload(
    State(console): State<Arc<Console>>,
    axum::Extension(session): axum::Extension<Session>,
    Path(name): Path<String>,
    Query(object): Query<ObjectKey>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let given = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !crate::auth::constant_time_eq(session.csrf.as_bytes(), given.as_bytes()) {
        return (StatusCode::FORBIDDEN, "the upload's CSRF token does not match the session").into_response();
    }
    let bucket = match bucket(&console, &name) {
        Ok(bucket) => bucket,
        Err(missing) => return missing.into_response(),
    };
    let mut headers = HeaderMap::new();
    for name in [http::header::CONTENT_LENGTH, http::header::CONTENT_TYPE] {
        if let Some(value) = parts.headers.get(&name) {
            headers.insert(name, value.clone());
        }
    }
    let request = match owner_request(&console, &bucket, &object.key, Method::PUT, headers) {
        Ok(request) => request,
        Err(e) => return refused(&e),
    };
    match crate::s3::put_object::put_object(&console.admin.gateway, &request, Body::new(body)).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (e.status(), format!("upload failed: {} ({e})", e.code())).into_response(),
    }
}

pub(super) async fn delete(State(console): State<Arc<Console>>, Path(name): Path<String>, form: Form) -> Response {
    let bucket = match bucket(&console, &name) {
        Ok(bucket) => bucket,
        Err(missing) => return missing.into_response(),
    };
    let key = form.get("key");
    let request = match owner_request(&console, &bucket, key, Method::DELETE, HeaderMap::new()) {
        Ok(request) => request,
        Err(e) => return refused(&e),
    };
    match crate::s3::delete::delete_object(&console.admin.gateway, &request).await {
        Ok(_) => Redirect::to(&back_to(&name, form.get("prefix"))).into_response(),
        Err(e) => (e.status(), format!("delete failed: {}", e.code())).into_response(),
    }
}

/// The browser page of `prefix` in bucket `name`.
fn back_to(name: &str, prefix: &str) -> String {
    let encode = super::super::url_component;
    format!("/console/buckets/{}?prefix={}", encode(name), encode(prefix))
}

pub(super) async fn share(
    State(console): State<Arc<Console>>,
    axum::Extension(session): axum::Extension<Session>,
    Path(name): Path<String>,
    headers: HeaderMap,
    form: Form,
) -> Response {
    let bucket = match bucket(&console, &name) {
        Ok(bucket) => bucket,
        Err(missing) => return missing.into_response(),
    };
    let state = console.admin.gateway.state();
    let Some(owner) = state.access_keys.get(&bucket.owner_key) else {
        return (StatusCode::CONFLICT, "the bucket's owner key is gone: nothing can sign a link").into_response();
    };
    let expires_secs = form.get("expires_secs").parse::<u64>().unwrap_or(3600).clamp(1, MAX_PRESIGN_SECS);
    let endpoint = super::s3_endpoint(&console, &headers);
    let presigner = Presigner {
        endpoint: &endpoint,
        region: &console.admin.gateway.config.region,
        access_key_id: &owner.key_id,
        secret: &owner.secret,
    };
    let now_secs = i64::try_from(crate::timefmt::now_ms() / 1000).unwrap_or(i64::MAX);
    let key = form.get("key");
    let url = presigner.get_object(&bucket.name, key, expires_secs, now_secs);
    let shared = pages::Shared { key: key.to_owned(), url, expires_secs };
    browse_page(&console, &session, &name, form.get("prefix"), None, Some(shared)).await
}
