//! Cross-origin resource sharing: Put/Get/DeleteBucketCors, preflight `OPTIONS` requests
//! (answered before authentication, as browsers send them unsigned), and the CORS headers on
//! actual responses.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use cairn_storage_node::control::{BucketChange, BucketInfo, CorsRule};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde::Deserialize;

use super::access::{Access, resolve_bucket};
use super::bucket::update_bucket;
use super::error::S3Error;
use super::upload::{BodyChecksums, read_small_body};
use super::xml::{MAX_XML_BODY_BYTES, XmlWriter};
use super::{Gateway, S3Request, xml_response};

/// Most rules one CORS configuration may hold.
pub const MAX_CORS_RULES: usize = 100;
/// The methods a CORS rule may allow.
const CORS_METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CorsConfiguration {
    #[serde(rename = "CORSRule", default)]
    rules: Vec<CorsRuleXml>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CorsRuleXml {
    #[serde(rename = "ID")]
    id: Option<String>,
    #[serde(default)]
    allowed_origin: Vec<String>,
    #[serde(default)]
    allowed_method: Vec<String>,
    #[serde(default)]
    allowed_header: Vec<String>,
    #[serde(default)]
    expose_header: Vec<String>,
    max_age_seconds: Option<u32>,
}

/// Whether `value` matches `pattern`, which may hold one `*` wildcard.
fn wildcard_match(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((head, tail)) => {
            value.len() >= head.len() + tail.len() && value.starts_with(head) && value.ends_with(tail)
        }
    }
}

/// The first rule that allows `origin` to use `method` (and, for a preflight, to send
/// `headers`).
fn matching_rule<'a>(rules: &'a [CorsRule], origin: &str, method: &str, headers: &[String]) -> Option<&'a CorsRule> {
    rules.iter().find(|rule| {
        rule.allowed_origins.iter().any(|o| wildcard_match(o, origin))
            && rule.allowed_methods.iter().any(|m| m == method)
            && headers.iter().all(|h| rule.allowed_headers.iter().any(|a| wildcard_match(&a.to_ascii_lowercase(), h)))
    })
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// Adds the `Access-Control-*` headers a matching rule grants.
fn grant(headers: &mut HeaderMap, rule: &CorsRule, origin: &str) {
    let any_origin = rule.allowed_origins.iter().any(|o| o == "*");
    set(headers, "access-control-allow-origin", if any_origin { "*" } else { origin });
    if !any_origin {
        set(headers, "access-control-allow-credentials", "true");
    }
    set(headers, "access-control-allow-methods", &rule.allowed_methods.join(", "));
    if !rule.expose_headers.is_empty() {
        set(headers, "access-control-expose-headers", &rule.expose_headers.join(", "));
    }
    if let Some(max_age) = rule.max_age_seconds {
        set(headers, "access-control-max-age", &max_age.to_string());
    }
    headers.append(http::header::VARY, HeaderValue::from_static("Origin"));
}

/// Answers a preflight `OPTIONS` request for `bucket` (unsigned, as browsers send it).
pub fn preflight(gateway: &Gateway, bucket: Option<&str>, headers: &HeaderMap) -> Result<Response, S3Error> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let bucket = bucket.ok_or(S3Error::MethodNotAllowed)?;
    let bucket = gateway.replication.cluster().bucket(bucket).ok_or(S3Error::NoSuchBucket)?;
    let origin = header("origin")
        .ok_or_else(|| S3Error::InvalidRequest("Insufficient information. Origin request header needed.".into()))?;
    let method = header("access-control-request-method")
        .ok_or_else(|| S3Error::InvalidRequest("Invalid Access-Control-Request-Method: null".into()))?;
    let requested: Vec<String> = header("access-control-request-headers")
        .map(|h| h.split(',').map(|n| n.trim().to_ascii_lowercase()).filter(|n| !n.is_empty()).collect())
        .unwrap_or_default();
    let rule = matching_rule(&bucket.cors, origin, method, &requested)
        .ok_or_else(|| S3Error::CorsForbidden("CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.".into()))?;
    let mut response = StatusCode::OK.into_response();
    grant(response.headers_mut(), rule, origin);
    if !requested.is_empty() {
        set(response.headers_mut(), "access-control-allow-headers", &requested.join(", "));
    }
    Ok(response)
}

/// Adds CORS headers to the response of an actual (non-preflight) request from a browser.
pub fn decorate(bucket: &BucketInfo, method: &Method, origin: &str, response: &mut Response) {
    if let Some(rule) = matching_rule(&bucket.cors, origin, method.as_str(), &[]) {
        grant(response.headers_mut(), rule, origin);
    }
}

/// PutBucketCors.
pub async fn put_bucket_cors(gateway: &Gateway, request: &S3Request, body: Body) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request, Access::Owner)?;
    let body = read_small_body(request, body, MAX_XML_BODY_BYTES, BodyChecksums::All).await?;
    let config: CorsConfiguration = super::xml::parse(&body)?;
    if config.rules.is_empty() || config.rules.len() > MAX_CORS_RULES {
        return Err(S3Error::MalformedXml);
    }
    let mut rules = Vec::with_capacity(config.rules.len());
    for rule in config.rules {
        if rule.allowed_origin.is_empty() || rule.allowed_method.is_empty() {
            return Err(S3Error::MalformedXml);
        }
        if let Some(method) = rule.allowed_method.iter().find(|m| !CORS_METHODS.contains(&m.as_str())) {
            return Err(S3Error::InvalidRequest(format!(
                "Found unsupported HTTP method in CORS config. Unsupported method is {method}"
            )));
        }
        if rule.allowed_origin.iter().chain(&rule.allowed_header).any(|p| p.matches('*').count() > 1) {
            return Err(S3Error::InvalidRequest("An origin or header may contain at most one wildcard".into()));
        }
        rules.push(CorsRule {
            id: rule.id,
            allowed_origins: rule.allowed_origin,
            allowed_methods: rule.allowed_method,
            allowed_headers: rule.allowed_header,
            expose_headers: rule.expose_header,
            max_age_seconds: rule.max_age_seconds,
        });
    }
    update_bucket(gateway, &bucket, BucketChange::Cors(rules)).await?;
    Ok(StatusCode::OK.into_response())
}

/// GetBucketCors.
pub fn get_bucket_cors(gateway: &Gateway, request: &S3Request) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request, Access::Owner)?;
    if bucket.cors.is_empty() {
        return Err(S3Error::NoSuchCorsConfiguration);
    }
    let mut xml = XmlWriter::new("CORSConfiguration");
    for rule in &bucket.cors {
        xml.open("CORSRule");
        if let Some(id) = &rule.id {
            xml.element("ID", id);
        }
        for (element, values) in [
            ("AllowedOrigin", &rule.allowed_origins),
            ("AllowedMethod", &rule.allowed_methods),
            ("AllowedHeader", &rule.allowed_headers),
            ("ExposeHeader", &rule.expose_headers),
        ] {
            for value in values {
                xml.element(element, value);
            }
        }
        if let Some(max_age) = rule.max_age_seconds {
            xml.element("MaxAgeSeconds", &max_age.to_string());
        }
        xml.close("CORSRule");
    }
    Ok(xml_response(xml.finish("CORSConfiguration")))
}

/// DeleteBucketCors.
pub async fn delete_bucket_cors(gateway: &Gateway, request: &S3Request) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request, Access::Owner)?;
    update_bucket(gateway, &bucket, BucketChange::Cors(Vec::new())).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        CorsRule {
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
            allowed_headers: headers.iter().map(|s| s.to_string()).collect(),
            ..CorsRule::default()
        }
    }

    #[test]
    fn rules_match_origins_methods_and_headers() {
        let rules = [rule(&["https://*.example.com"], &["GET"], &["x-amz-*"]), rule(&["*"], &["PUT"], &["*"])];
        assert!(matching_rule(&rules, "https://app.example.com", "GET", &["x-amz-date".into()]).is_some());
        assert!(matching_rule(&rules, "https://app.example.com", "GET", &["authorization".into()]).is_none());
        assert!(matching_rule(&rules, "http://app.example.com", "GET", &[]).is_none());
        assert_eq!(matching_rule(&rules, "http://anything", "PUT", &["content-type".into()]), Some(&rules[1]));
        assert!(matching_rule(&rules, "http://anything", "DELETE", &[]).is_none());
        assert!(wildcard_match("*", "") && !wildcard_match("a*b", "ab-") && wildcard_match("a*b", "a-b"));
    }
}
