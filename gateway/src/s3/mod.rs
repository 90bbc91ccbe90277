//! The S3 API: request routing, authentication and the operation handlers.

pub mod access;
pub mod aws_chunked;
pub mod bucket;
pub mod checksum;
pub mod conditions;
pub mod copy;
pub mod cors;
pub mod delete;
pub mod error;
pub mod get_object;
pub mod keepalive;
pub mod list;
pub mod multipart;
pub mod operation;
pub mod pending;
pub mod put_object;
pub mod tagging;
pub mod upload;
pub mod uploads;
pub mod xml;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use cairn_storage_node::control::ClusterState;
use http::{HeaderValue, Method};
use percent_encoding::percent_decode_str;

use crate::auth::{self, Authenticated};
use crate::replication::Replication;
use error::S3Error;
use operation::Operation;

/// Longest object key S3 accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Settings of the S3 API.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// The region Cairn reports and expects in signatures.
    pub region: String,
    /// Base domains of virtual-hosted-style requests: `bucket.<domain>` names a bucket.
    pub domains: Vec<String>,
    /// How long a server-side copy may run before its `200 OK` is sent ahead of its outcome.
    pub keepalive_after: std::time::Duration,
    /// The address clients use when a reverse proxy stands in front of the gateway.
    pub public_endpoint: Option<PublicEndpoint>,
    /// How long a lease on the chunks of a body being written lasts unless renewed.
    pub upload_lease: std::time::Duration,
}

/// The URL clients reach the S3 API at through a reverse proxy or ingress, which may rewrite
/// the `Host` header: signatures are also checked against the host clients signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicEndpoint {
    /// Scheme and authority, without a trailing slash: `https://s3.example.com`.
    pub url: String,
    /// The `Host` value clients sign: the authority without the scheme's default port.
    pub host: String,
    /// The host name alone, a base domain for virtual-hosted-style requests.
    pub domain: String,
}

impl PublicEndpoint {
    /// Parses `http[s]://host[:port][/]`; a path prefix cannot be honoured, so it is refused.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("public endpoint {url:?}: {e}"))?;
        let default_port = match uri.scheme_str() {
            Some("http") => 80,
            Some("https") => 443,
            _ => return Err(format!("public endpoint {url:?}: the scheme must be http or https")),
        };
        let authority = uri.authority().ok_or_else(|| format!("public endpoint {url:?}: no host"))?;
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!(
                "public endpoint {url:?}: a path or query cannot be served; give scheme and host only"
            ));
        }
        let domain = authority.host().to_ascii_lowercase();
        let host = match authority.port_u16() {
            Some(port) if port != default_port => format!("{domain}:{port}"),
            _ => domain.clone(),
        };
        Ok(Self { url: format!("{}://{host}", uri.scheme_str().unwrap_or("http")), host, domain })
    }
}

impl S3Config {
    /// The bucket a `Host` header names in virtual-hosted style, if it is a subdomain of one
    /// of the configured domains.
    pub fn host_bucket(&self, host: &str) -> Option<String> {
        let host = host.trim().to_ascii_lowercase();
        // Strip a port (IPv6 literals are never bucket hosts).
        let host = match host.rsplit_once(':') {
            Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host.as_str(),
        };
        let public = self.public_endpoint.iter().map(|p| &p.domain);
        self.domains.iter().chain(public).find_map(|domain| {
            let domain = domain.trim_matches('.').to_ascii_lowercase();
            host.strip_suffix(&domain)?.strip_suffix('.').filter(|b| !b.is_empty()).map(str::to_owned)
        })
    }
}

/// Shared state of the S3 API.
pub struct Gateway {
    /// Replicated reads and writes.
    pub replication: Replication,
    /// Settings.
    pub config: S3Config,
    request_counter: AtomicU64,
    instance: u32,
}

impl Gateway {
    /// Creates the S3 API state.
    pub fn new(replication: Replication, config: S3Config) -> Arc<Self> {
        Arc::new(Self { replication, config, request_counter: AtomicU64::new(0), instance: rand::random() })
    }

    /// The current cluster state.
    pub fn state(&self) -> Arc<ClusterState> {
        self.replication.cluster().state()
    }

    pub(crate) fn next_request_id(&self) -> String {
        let n = self.request_counter.fetch_add(1, Ordering::Relaxed);
        format!("{:08X}{:08X}", self.instance, n)
    }
}

/// The S3 router: every request goes through one dispatcher.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new().fallback(handle).with_state(gateway)
}

/// A parsed, authenticated S3 request.
pub struct S3Request {
    /// HTTP method.
    pub method: Method,
    /// Request headers.
    pub headers: http::HeaderMap,
    /// Decoded query parameters (first value wins).
    pub query: BTreeMap<String, String>,
    /// Bucket name from the path, if any.
    pub bucket: Option<String>,
    /// Object key from the path, if any.
    pub key: Option<String>,
    /// Who signed the request.
    pub auth: Authenticated,
    /// The request's path as sent, named in error documents.
    pub resource: String,
    /// The id echoed in `x-amz-request-id` and error documents.
    pub request_id: String,
}

impl S3Request {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the query string carries `name`.
    pub fn has_query(&self, name: &str) -> bool {
        self.query.contains_key(name)
    }
}

async fn handle(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    use crate::metrics::{Direction, MeteredBody};
    let request_id = gateway.next_request_id();
    let operation = classify(&gateway.config, request.method(), request.uri(), request.headers());
    let metrics = gateway.replication.metrics().clone();
    let timer = Arc::new(metrics.start(operation));
    let request = request.map(|body| Body::new(MeteredBody::new(body, timer.clone(), Direction::Received)));
    let resource = request.uri().path().to_owned();
    // Browsers send preflights unsigned; they are answered from the bucket's CORS rules.
    let outcome = if request.method() == Method::OPTIONS {
        let bucket = request_bucket(&gateway.config, request.uri(), request.headers());
        cors::preflight(&gateway, bucket.as_deref(), request.headers())
    } else {
        // Only requests from a browser (with an Origin) pay for the CORS lookup.
        let browser = request.headers().get("origin").and_then(|o| o.to_str().ok()).map(|origin| {
            let bucket = request_bucket(&gateway.config, request.uri(), request.headers());
            (origin.to_owned(), request.method().clone(), bucket)
        });
        let span = tracing::info_span!("s3", request_id = %request_id, operation = operation.name());
        let outcome = tracing::Instrument::instrument(dispatch(&gateway, request, &request_id, operation), span).await;
        match browser {
            Some((origin, method, Some(bucket))) => outcome.map(|mut response| {
                if let Some(bucket) = gateway.state().buckets.get(&bucket) {
                    cors::decorate(bucket, &method, &origin, &mut response);
                }
                response
            }),
            _ => outcome,
        }
    };
    let mut response = match outcome {
        Ok(response) => response,
        Err(e) => {
            if e.is_auth_failure() {
                metrics.auth_failure(e.code());
            }
            e.into_response_for(&resource, &request_id)
        }
    };
    tracing::debug!(request_id = %request_id, operation = operation.name(), status = response.status().as_u16(), "answered");
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amz-request-id", id);
    }
    timer.head(response.status().as_u16());
    response.map(|body| Body::new(MeteredBody::new(body, timer, Direction::Sent)))
}

/// The bucket a request names: by its `Host` under a virtual-host domain, else by its path.
fn request_bucket(config: &S3Config, uri: &http::Uri, headers: &http::HeaderMap) -> Option<String> {
    host_bucket(config, headers).or_else(|| split_path(uri.path()).ok().and_then(|(bucket, _)| bucket))
}

fn host_bucket(config: &S3Config, headers: &http::HeaderMap) -> Option<String> {
    headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).and_then(|h| config.host_bucket(h))
}

/// Runs a server-side copy so that its connection outlives the copy (see [`keepalive`]).
async fn keep_alive<F, Fut>(gateway: &Arc<Gateway>, request: S3Request, operation: F) -> Result<Response, S3Error>
where
    F: FnOnce(Arc<Gateway>, S3Request) -> Fut,
    Fut: Future<Output = Result<Response, S3Error>> + Send + 'static,
{
    let (resource, request_id) = (request.resource.clone(), request.request_id.clone());
    let wait = gateway.config.keepalive_after;
    keepalive::respond_while_running(wait, resource, request_id, operation(gateway.clone(), request)).await
}

/// Verifies a request's signature; behind a proxy that rewrote `Host`, a request that fails is
/// checked once more against the public endpoint's host, the one the client signed.
fn verify_signature(
    gateway: &Gateway,
    parts: &mut http::request::Parts,
    host_bucket: Option<&str>,
) -> Result<Authenticated, auth::AuthError> {
    let state = gateway.state();
    let secret_of = |key_id: &str| state.access_keys.get(key_id).map(|k| k.secret.clone());
    let now = std::time::SystemTime::now();
    let verified = match host_bucket {
        Some(bucket) => auth::authenticate_virtual_host(parts, bucket, now, secret_of),
        None => auth::authenticate(parts, now, secret_of),
    };
    let public = match (&verified, &gateway.config.public_endpoint, host_bucket) {
        (Err(auth::AuthError::SignatureDoesNotMatch { .. }), Some(public), None) => public,
        _ => return verified,
    };
    let Ok(public_host) = HeaderValue::from_str(&public.host) else { return verified };
    let received = parts.headers.insert(http::header::HOST, public_host.clone());
    if received.as_ref() == Some(&public_host) {
        return verified;
    }
    let retried = auth::authenticate(parts, now, secret_of);
    match received {
        Some(host) => parts.headers.insert(http::header::HOST, host),
        None => parts.headers.remove(http::header::HOST),
    };
    // The first error names what was signed for the host actually received.
    retried.or(verified)
}

async fn dispatch(
    gateway: &Arc<Gateway>,
    request: Request,
    request_id: &str,
    operation: Operation,
) -> Result<Response, S3Error> {
    let (mut parts, body) = request.into_parts();
    let host_bucket = host_bucket(&gateway.config, &parts.headers);
    let verified = verify_signature(gateway, &mut parts, host_bucket.as_deref());
    let auth = match verified {
        Ok(auth) => auth,
        // Unsigned requests go on as anonymous; each operation decides what they may do.
        Err(auth::AuthError::MissingAuth) => Authenticated::anonymous(),
        Err(e) => return Err(e.into()),
    };
    if let Some(region) = auth.region.as_deref()
        && region != gateway.config.region
    {
        let message = format!("the region '{region}' is wrong; expecting '{}'", gateway.config.region);
        return Err(match auth.version {
            auth::SignatureVersion::V4Presigned => S3Error::AuthorizationQueryParametersError(message),
            _ => S3Error::AuthorizationHeaderMalformed(message),
        });
    }
    let (bucket, key) = match host_bucket {
        // Virtual-hosted style: the whole path is the key.
        Some(bucket) => {
            let path = parts.uri.path();
            (Some(bucket), decode_key(path.strip_prefix('/').unwrap_or(path))?)
        }
        None => split_path(parts.uri.path())?,
    };
    let query = parse_query(parts.uri.query().unwrap_or(""));
    if let Some(name) = query.keys().find(|name| !is_known_query_parameter(name)) {
        // An operation Cairn does not implement must not fall through to a data operation
        // (PUT ?tagging must not overwrite the object).
        return Err(S3Error::NotImplemented(format!("the `{name}` subresource")));
    }
    let request = S3Request {
        method: parts.method,
        headers: parts.headers,
        query,
        bucket,
        key,
        auth,
        resource: parts.uri.path().to_owned(),
        request_id: request_id.to_owned(),
    };

    check_subresource_method(&request)?;
    check_unsupported_headers(&request)?;
    use Operation as Op;
    match operation {
        Op::ListBuckets => bucket::list_buckets(gateway, &request),
        Op::PutBucketAcl => access::put_bucket_acl(gateway, &request).await,
        Op::PutBucketCors => cors::put_bucket_cors(gateway, &request, body).await,
        Op::PutBucketTagging => tagging::put_bucket_tagging(gateway, &request, body).await,
        Op::PutBucketVersioning => Err(S3Error::NotImplemented("PutBucketVersioning".into())),
        Op::CreateBucket => bucket::create_bucket(gateway, &request).await,
        Op::HeadBucket => bucket::head_bucket(gateway, &request),
        Op::DeleteBucketCors => cors::delete_bucket_cors(gateway, &request).await,
        Op::DeleteBucketTagging => tagging::delete_bucket_tagging(gateway, &request).await,
        Op::DeleteBucket => bucket::delete_bucket(gateway, &request).await,
        Op::GetBucketLocation => bucket::get_bucket_location(gateway, &request),
        Op::GetBucketAcl => access::get_bucket_acl(gateway, &request),
        Op::GetBucketCors => cors::get_bucket_cors(gateway, &request),
        Op::GetBucketTagging => tagging::get_bucket_tagging(gateway, &request),
        Op::GetBucketVersioning => bucket::get_bucket_versioning(gateway, &request),
        Op::ListObjectVersions => list::list_object_versions(gateway, &request).await,
        Op::ListMultipartUploads => uploads::list_uploads(gateway, &request).await,
        Op::ListObjects | Op::ListObjectsV2 => list::list_objects(gateway, &request).await,
        Op::DeleteObjects => delete::delete_objects(gateway, &request, body).await,
        Op::PutObjectAcl => access::put_object_acl(gateway, &request).await,
        Op::PutObjectTagging => tagging::put_object_tagging(gateway, &request, Some(body)).await,
        Op::UploadPartCopy => {
            keep_alive(gateway, request, |gateway, request| async move {
                multipart::upload_part_copy(&gateway, &request).await
            })
            .await
        }
        Op::UploadPart => multipart::upload_part(gateway, &request, body).await,
        Op::CopyObject => {
            keep_alive(gateway, request, |gateway, request| async move { copy::copy_object(&gateway, &request).await })
                .await
        }
        Op::PutObject => put_object::put_object(gateway, &request, body).await,
        Op::ListParts => multipart::list_parts(gateway, &request).await,
        Op::GetObjectAcl => access::get_object_acl(gateway, &request).await,
        Op::GetObjectTagging => tagging::get_object_tagging(gateway, &request).await,
        Op::DeleteObjectTagging => tagging::put_object_tagging(gateway, &request, None).await,
        Op::GetObject => get_object::get_object(gateway, &request, true).await,
        Op::HeadObject => get_object::get_object(gateway, &request, false).await,
        Op::AbortMultipartUpload => multipart::abort(gateway, &request).await,
        Op::DeleteObject => delete::delete_object(gateway, &request).await,
        Op::CreateMultipartUpload => multipart::create(gateway, &request).await,
        Op::CompleteMultipartUpload => multipart::complete(gateway, &request, body).await,
        Op::Preflight | Op::Unsupported => Err(S3Error::MethodNotAllowed),
    }
}

/// The operation a request asks for, from its raw parts (before authentication, so that
/// refusals are counted by operation too).
fn classify(config: &S3Config, method: &Method, uri: &http::Uri, headers: &http::HeaderMap) -> Operation {
    let path = uri.path().strip_prefix('/').unwrap_or(uri.path());
    let (bucket, key) = match host_bucket(config, headers) {
        Some(_) => (true, !path.is_empty()),
        None => {
            let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
            (!bucket.is_empty(), !key.is_empty())
        }
    };
    let query = parse_query(uri.query().unwrap_or(""));
    Operation::of(method, bucket, key, |name| query.contains_key(name), headers.contains_key("x-amz-copy-source"))
}

/// Subresources and the methods that have an operation on them, on a bucket and on an object.
/// Any other method is refused before routing, so a subresource never reaches the data
/// operation of its method (DELETE `?acl` must not delete the object).
const SUBRESOURCE_METHODS: &[(&str, &[Method], &[Method])] = &[
    ("acl", &[Method::GET, Method::PUT], &[Method::GET, Method::PUT]),
    ("tagging", &[Method::GET, Method::PUT, Method::DELETE], &[Method::GET, Method::PUT, Method::DELETE]),
    ("cors", &[Method::GET, Method::PUT, Method::DELETE], &[]),
    ("location", &[Method::GET], &[]),
    ("uploads", &[Method::GET], &[Method::POST]),
    ("uploadId", &[], &[Method::GET, Method::PUT, Method::POST, Method::DELETE]),
    ("delete", &[Method::POST], &[]),
    ("versioning", &[Method::GET, Method::PUT], &[]),
    ("versions", &[Method::GET], &[]),
];

fn check_subresource_method(request: &S3Request) -> Result<(), S3Error> {
    if request.bucket.is_none() {
        return Ok(());
    }
    for (name, on_bucket, on_object) in SUBRESOURCE_METHODS {
        if !request.has_query(name) {
            continue;
        }
        let (allowed, level) = if request.key.is_some() { (on_object, "object") } else { (on_bucket, "bucket") };
        if allowed.is_empty() {
            return Err(S3Error::NotImplemented(format!("the `{name}` subresource of a {level}")));
        }
        if !allowed.contains(&request.method) {
            return Err(S3Error::MethodNotAllowed);
        }
    }
    Ok(())
}

/// Headers that ask for something Cairn does not do; accepting them silently would let the
/// client believe its data is encrypted or locked.
const UNSUPPORTED_HEADER_PREFIXES: [&str; 4] = [
    "x-amz-server-side-encryption",
    "x-amz-object-lock-",
    "x-amz-website-redirect-location",
    "x-amz-bucket-object-lock-enabled",
];

fn check_unsupported_headers(request: &S3Request) -> Result<(), S3Error> {
    for name in request.headers.keys().map(|n| n.as_str()) {
        if UNSUPPORTED_HEADER_PREFIXES.iter().any(|p| name.starts_with(p)) {
            // `x-amz-bucket-object-lock-enabled: false` asks for nothing.
            let off = name == "x-amz-bucket-object-lock-enabled"
                && request.header(name).is_some_and(|v| v.trim().eq_ignore_ascii_case("false"));
            if !off {
                return Err(S3Error::NotImplemented(format!("the {name} header")));
            }
        }
    }
    match request.header("x-amz-storage-class").map(str::trim) {
        None | Some("STANDARD") => Ok(()),
        Some(class) => Err(S3Error::NotImplemented(format!("the {class} storage class"))),
    }
}

/// Query parameters of the operations Cairn implements (and those every client may add).
const KNOWN_QUERY_PARAMETERS: &[&str] = &[
    "list-type",
    "prefix",
    "delimiter",
    "max-keys",
    "marker",
    "continuation-token",
    "start-after",
    "encoding-type",
    "fetch-owner",
    "x-id",
    "uploads",
    "uploadId",
    "partNumber",
    "max-parts",
    "max-uploads",
    "key-marker",
    "upload-id-marker",
    "part-number-marker",
    "location",
    "max-buckets",
    "bucket-region",
    "delete",
    "acl",
    "tagging",
    "cors",
    "versioning",
    "versions",
    "version-id-marker",
    "versionId",
    "AWSAccessKeyId",
    "Signature",
    "Expires",
];

fn is_known_query_parameter(name: &str) -> bool {
    KNOWN_QUERY_PARAMETERS.contains(&name)
        || name.starts_with("X-Amz-")
        || name.starts_with("x-amz-")
        || name.starts_with("response-")
}

fn decode_path_part(s: &str) -> Result<String, S3Error> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| S3Error::InvalidArgument("the path is not valid UTF-8".into()))
}

/// The object key of a raw path remainder, percent-decoded (`None` when empty).
fn decode_key(raw: &str) -> Result<Option<String>, S3Error> {
    if raw.is_empty() {
        return Ok(None);
    }
    let key = decode_path_part(raw)?;
    check_key(&key)?;
    Ok(Some(key))
}

/// Refuses an object key S3 does not allow: empty, longer than `MAX_KEY_BYTES`, or holding a
/// character XML 1.0 cannot carry.
pub fn check_key(key: &str) -> Result<(), S3Error> {
    if key.is_empty() {
        return Err(S3Error::InvalidArgument("Object keys may not be empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(S3Error::KeyTooLongError);
    }
    if !xml::can_carry(key) {
        // Such a key could never be listed in an XML 1.0 document; it is refused on every
        // operation alike rather than stored and then mangled.
        return Err(S3Error::InvalidArgument("Object keys may not contain characters XML 1.0 cannot carry".into()));
    }
    Ok(())
}

/// Splits a path-style request path into bucket and key, percent-decoded.
fn split_path(raw_path: &str) -> Result<(Option<String>, Option<String>), S3Error> {
    let path = raw_path.strip_prefix('/').unwrap_or(raw_path);
    let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
    let bucket = if bucket.is_empty() { None } else { Some(decode_path_part(bucket)?) };
    Ok((bucket, decode_key(key)?))
}

/// Decodes a query string into name → value (the first occurrence wins); a raw `+` is a
/// space, as in the signature's canonical query.
fn parse_query(raw: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (name, value) in form_pairs(raw) {
        out.entry(name).or_insert(value);
    }
    out
}

/// The decoded `name=value` pairs of form-encoded text (a query string, `x-amz-tagging`), in
/// order and with repeats; a raw `+` is a space.
pub fn form_pairs(raw: &str) -> impl Iterator<Item = (String, String)> + '_ {
    let decode = |s: &str| percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
    raw.split('&').filter(|p| !p.is_empty()).map(move |pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(name), decode(value))
    })
}

/// Adds a header, skipping values that are not valid header text.
pub fn set_header(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

/// An XML response with status 200.
pub fn xml_response(body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_bucket_and_key_without_normalising() {
        assert_eq!(split_path("/").unwrap(), (None, None));
        assert_eq!(split_path("/bkt").unwrap(), (Some("bkt".into()), None));
        assert_eq!(split_path("/bkt/").unwrap(), (Some("bkt".into()), None));
        assert_eq!(split_path("/bkt/a//b/./c/../d").unwrap(), (Some("bkt".into()), Some("a//b/./c/../d".into())));
        assert_eq!(
            split_path("/bkt/docs/a%20b/%C3%BCn%2Bx").unwrap(),
            (Some("bkt".into()), Some("docs/a b/ün+x".into()))
        );
        assert!(matches!(split_path(&format!("/b/{}", "k".repeat(1025))), Err(S3Error::KeyTooLongError)));
        assert!(matches!(split_path("/b/a%01b"), Err(S3Error::InvalidArgument(_))));
        assert!(matches!(split_path("/b/a%EF%BF%BEb"), Err(S3Error::InvalidArgument(_))));
        assert_eq!(split_path("/b/tab%09cr%0Dlf%0A").unwrap().1.as_deref(), Some("tab\tcr\rlf\n"));
    }

    #[test]
    fn unknown_subresources_are_not_data_operations() {
        for name in ["policy", "retention", "lifecycle", "website"] {
            assert!(!is_known_query_parameter(name), "{name}");
        }
        for name in ["uploadId", "partNumber", "list-type", "X-Amz-Signature", "x-id", "response-content-type"] {
            assert!(is_known_query_parameter(name), "{name}");
        }
    }

    #[test]
    fn public_endpoints_name_the_host_clients_sign() {
        let public = PublicEndpoint::parse("https://S3.Example.com:443/").unwrap();
        assert_eq!((public.url.as_str(), public.host.as_str()), ("https://s3.example.com", "s3.example.com"));
        let public = PublicEndpoint::parse("http://s3.example.com:8080").unwrap();
        assert_eq!((public.host.as_str(), public.domain.as_str()), ("s3.example.com:8080", "s3.example.com"));
        for bad in ["s3.example.com", "ftp://s3.example.com", "https://s3.example.com/prefix", "https://h/?q=1"] {
            assert!(PublicEndpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn virtual_hosts_name_buckets_under_configured_domains() {
        let config = S3Config {
            region: "r".into(),
            domains: vec!["s3.example.com".into(), ".local.test".into()],
            public_endpoint: None,
            keepalive_after: std::time::Duration::ZERO,
            upload_lease: std::time::Duration::from_secs(1),
        };
        assert_eq!(config.host_bucket("photos.s3.example.com"), Some("photos".into()));
        assert_eq!(config.host_bucket("Photos.S3.Example.com:9000"), Some("photos".into()));
        assert_eq!(config.host_bucket("a.b.local.test"), Some("a.b".into()));
        assert_eq!(config.host_bucket("s3.example.com"), None);
        assert_eq!(config.host_bucket("xs3.example.com"), None);
        assert_eq!(config.host_bucket("127.0.0.1:9000"), None);
        assert_eq!(config.host_bucket("[::1]:9000"), None);
    }

    #[test]
    fn query_values_are_decoded() {
        let q = parse_query("list-type=2&prefix=a%2Bb&delimiter=%2F&uploads&start-after=x+y");
        assert_eq!(q["prefix"], "a+b");
        assert_eq!(q["start-after"], "x y");
        assert_eq!(q["delimiter"], "/");
        assert_eq!(q["uploads"], "");
    }
}
