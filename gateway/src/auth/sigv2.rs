//! Signature Version 2: `Authorization: AWS AKID:signature` and presigned `AWSAccessKeyId`,
//! `Expires`, `Signature` query URLs (what `aws s3 presign` still produces).

use std::collections::BTreeMap;

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use http::header::{CONTENT_TYPE, DATE};
use http::request::Parts;
use percent_encoding::percent_decode_str;
use sha1::Sha1;

use super::canonical::QueryParam;
use super::signing::constant_time_eq;
use super::{AuthError, Authenticated, MAX_CLOCK_SKEW_SECS, PayloadHash, SignatureVersion, base64, time};

/// Query parameters that name a sub-resource and so belong to the signed resource, as the
/// SDKs that still sign SigV2 list them.
const SUB_RESOURCES: [&str; 35] = [
    "accelerate",
    "acl",
    "analytics",
    "cors",
    "defaultObjectAcl",
    "delete",
    "inventory",
    "lifecycle",
    "location",
    "logging",
    "metrics",
    "notification",
    "object-lock",
    "partNumber",
    "policy",
    "replication",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "select",
    "select-type",
    "storageClass",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

const PRESIGNED_PARAMS_REQUIRED: &str =
    "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters";

fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    // HMAC accepts keys of every length (long ones are hashed), so this cannot fail.
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key).expect("HMAC-SHA1 accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The first value of a header, trimmed; empty when absent.
fn header_text(headers: &HeaderMap, name: impl http::header::AsHeaderName) -> &[u8] {
    headers.get(name).map_or(&[][..], |v| v.as_bytes().trim_ascii())
}

/// The signed resource: the raw path (behind `/bucket` for virtual-hosted requests) and the
/// sub-resources present, sorted by name, values decoded.
fn canonical_resource(raw_path: &str, host_bucket: Option<&str>, query: &[QueryParam]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw_path.len() + 16);
    if let Some(bucket) = host_bucket {
        out.push(b'/');
        out.extend_from_slice(bucket.as_bytes());
    }
    out.extend_from_slice(if raw_path.is_empty() { "/" } else { raw_path }.as_bytes());
    let mut subs: Vec<&QueryParam> = query.iter().filter(|p| SUB_RESOURCES.contains(&p.raw_name.as_str())).collect();
    // Stable, by name only: repeated names keep the order they were sent in.
    subs.sort_by(|a, b| a.raw_name.cmp(&b.raw_name));
    for (i, param) in subs.iter().enumerate() {
        out.push(if i == 0 { b'?' } else { b'&' });
        out.extend_from_slice(param.raw_name.as_bytes());
        if let Some(value) = &param.raw_value {
            out.push(b'=');
            // Decoded without reading `+` as a space: what the signing clients do.
            out.extend(percent_decode_str(value));
        }
    }
    out
}

/// `METHOD\nContent-MD5\nContent-Type\n{date or expires}\n{x-amz-* headers}{resource}`.
fn string_to_sign(parts: &Parts, query: &[QueryParam], host_bucket: Option<&str>, date_line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(header_text(&parts.headers, "content-md5"));
    out.push(b'\n');
    out.extend_from_slice(header_text(&parts.headers, CONTENT_TYPE));
    out.push(b'\n');
    out.extend_from_slice(date_line);
    out.push(b'\n');
    let mut amz_headers: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    for (name, value) in &parts.headers {
        if name.as_str().starts_with("x-amz-") {
            let joined = amz_headers.entry(name.as_str()).or_default();
            if !joined.is_empty() {
                joined.push(b',');
            }
            joined.extend_from_slice(value.as_bytes().trim_ascii());
        }
    }
    for (name, value) in amz_headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        out.extend_from_slice(&value);
        out.push(b'\n');
    }
    out.extend(canonical_resource(parts.uri.path(), host_bucket, query));
    out
}

/// Checks a base64 SigV2 signature against the secret.
fn verify_signature(
    access_key_id: &str,
    provided: &str,
    string_to_sign: Vec<u8>,
    secret_of: &dyn Fn(&str) -> Option<String>,
) -> Result<(), AuthError> {
    let secret = secret_of(access_key_id).ok_or(AuthError::InvalidAccessKeyId)?;
    let expected = hmac_sha1(secret.as_bytes(), &string_to_sign);
    // An unescaped `+` in a query arrives as a space; base64 has no spaces, so undo that.
    let provided = base64::decode(&provided.replace(' ', "+")).unwrap_or_default();
    if constant_time_eq(&expected, &provided) {
        Ok(())
    } else {
        Err(AuthError::SignatureDoesNotMatch {
            string_to_sign: String::from_utf8_lossy(&string_to_sign).into_owned(),
            canonical_request: String::new(),
        })
    }
}

/// Verifies `Authorization: AWS AKID:signature`; `credentials` is the value after `AWS `.
pub(super) fn verify_header(
    parts: &Parts,
    query: &[QueryParam],
    host_bucket: Option<&str>,
    credentials: &str,
    now: i64,
    secret_of: &dyn Fn(&str) -> Option<String>,
) -> Result<Authenticated, AuthError> {
    let (access_key_id, signature) = credentials
        .trim()
        .rsplit_once(':')
        .filter(|(key, sig)| !key.is_empty() && !sig.is_empty())
        .ok_or_else(|| AuthError::AuthorizationHeaderMalformed("expecting \"AWS AKID:signature\".".to_owned()))?;
    // With x-amz-date the Date line is signed empty and the time comes from x-amz-date.
    let amz_date = parts.headers.get("x-amz-date");
    let (time_header, date_line) = match amz_date {
        Some(value) => (value, &[][..]),
        None => {
            let date = parts.headers.get(DATE).ok_or(AuthError::InvalidDate)?;
            (date, header_text(&parts.headers, DATE))
        }
    };
    let time_text = time_header.to_str().map_err(|_| AuthError::InvalidDate)?;
    let signed_at =
        time::parse_http_date(time_text).or_else(|| time::parse_amz_date(time_text)).ok_or(AuthError::InvalidDate)?;
    if now.abs_diff(signed_at) > MAX_CLOCK_SKEW_SECS.unsigned_abs() {
        return Err(AuthError::RequestTimeTooSkewed);
    }
    let sts = string_to_sign(parts, query, host_bucket, date_line);
    verify_signature(access_key_id, signature, sts, secret_of)?;
    Ok(Authenticated {
        access_key_id: access_key_id.to_owned(),
        payload: PayloadHash::Unsigned,
        region: None,
        version: SignatureVersion::V2Header,
    })
}

/// The single UTF-8 value of a presigned parameter.
fn single_param<'a>(query: &'a [QueryParam], name: &str) -> Result<&'a str, AuthError> {
    let mut values = query.iter().filter(|p| p.name == name.as_bytes());
    let (Some(param), None) = (values.next(), values.next()) else {
        return Err(AuthError::AuthorizationQueryParametersError(PRESIGNED_PARAMS_REQUIRED.to_owned()));
    };
    std::str::from_utf8(&param.value)
        .map_err(|_| AuthError::AuthorizationQueryParametersError(format!("{name} must be valid UTF-8.")))
}

/// Verifies a SigV2 presigned URL.
pub(super) fn verify_presigned(
    parts: &Parts,
    query: &[QueryParam],
    host_bucket: Option<&str>,
    now: i64,
    secret_of: &dyn Fn(&str) -> Option<String>,
) -> Result<Authenticated, AuthError> {
    let access_key_id = single_param(query, "AWSAccessKeyId")?;
    let signature = single_param(query, "Signature")?;
    let expires = single_param(query, "Expires")?;
    let expires_at =
        expires.parse::<i64>().ok().filter(|_| expires.bytes().all(|b| b.is_ascii_digit())).ok_or_else(|| {
            AuthError::AuthorizationQueryParametersError("Invalid date (should be seconds since epoch)".to_owned())
        })?;
    if now > expires_at {
        return Err(AuthError::ExpiredPresignedUrl);
    }
    let sts = string_to_sign(parts, query, host_bucket, expires.as_bytes());
    verify_signature(access_key_id, signature, sts, secret_of)?;
    Ok(Authenticated {
        access_key_id: access_key_id.to_owned(),
        payload: PayloadHash::Unsigned,
        region: None,
        version: SignatureVersion::V2Presigned,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{authenticate, authenticate_virtual_host};
    use super::*;
    use crate::auth::canonical::parse_query;
    use std::time::{Duration, UNIX_EPOCH};

    const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn secret(key: &str) -> Option<String> {
        (key == ACCESS_KEY).then(|| SECRET.to_owned())
    }

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).expect("valid request").into_parts().0
    }

    #[test]
    fn hmac_sha1_matches_rfc2202() {
        // RFC 2202 test case 2.
        assert_eq!(
            hex::encode(hmac_sha1(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }

    #[test]
    fn resource_keeps_sub_resources_only_sorted_and_decoded() {
        let query = parse_query(
            "uploadId=a%2Bb&prefix=x&partNumber=2&response-content-type=text%2Fplain&uploads&x-id=GetObject",
        );
        assert_eq!(
            String::from_utf8(canonical_resource("/b/k%20y", None, &query)).expect("utf-8"),
            "/b/k%20y?partNumber=2&response-content-type=text/plain&uploadId=a+b&uploads"
        );
        assert_eq!(canonical_resource("/", Some("bkt"), &[]), b"/bkt/");
        assert_eq!(canonical_resource("", None, &[]), b"/");
    }

    #[test]
    fn header_auth_with_date_and_amz_headers() {
        // Expected signature computed independently (Python hmac + base64) over:
        // "PUT\n\ntext/plain\nTue, 27 Mar 2007 21:15:45 +0000\nx-amz-meta-a:1,2\n/bkt/photos/puppy.jpg?acl"
        let headers = [
            ("host", "h"),
            ("content-type", "text/plain"),
            ("date", "Tue, 27 Mar 2007 21:15:45 +0000"),
            ("x-amz-meta-a", " 1 "),
            ("x-amz-meta-a", "2"),
            ("authorization", "AWS AKIAIOSFODNN7EXAMPLE:DqFiZNGNCbxr3NdX0cjNVEUcaKk="),
        ];
        let now = UNIX_EPOCH + Duration::from_secs(1_175_030_145);
        let request = parts("PUT", "/bkt/photos/puppy.jpg?acl&foo=bar", &headers);
        let auth = authenticate(&request, now, secret).expect("verifies");
        assert_eq!(auth.version, SignatureVersion::V2Header);
        assert_eq!(auth.payload, PayloadHash::Unsigned);

        let late = now + Duration::from_secs(901);
        assert_eq!(authenticate(&request, late, secret), Err(AuthError::RequestTimeTooSkewed));
        let vhost = parts("PUT", "/photos/puppy.jpg?acl", &headers);
        assert!(authenticate_virtual_host(&vhost, "bkt", now, secret).is_ok());
        assert!(matches!(authenticate(&vhost, now, secret), Err(AuthError::SignatureDoesNotMatch { .. })));
    }

    #[test]
    fn presigned_with_raw_plus_in_signature() {
        // Expected signature computed independently (Python hmac + base64) over:
        // "GET\n\n\n1175139622\n/bkt/k"; the signature has a `+`, sent unescaped.
        let signature = "UAoRJl4UcM+pGtowN5WZnB/MDRw=";
        let raw = signature.replace('/', "%2F").replace('=', "%3D");
        let uri = format!("/bkt/k?AWSAccessKeyId={ACCESS_KEY}&Expires=1175139622&Signature={raw}");
        let request = parts("GET", &uri, &[("host", "h")]);
        let now = UNIX_EPOCH + Duration::from_secs(1_175_139_622);
        assert!(authenticate(&request, now, secret).is_ok());
        assert_eq!(authenticate(&request, now + Duration::from_secs(1), secret), Err(AuthError::ExpiredPresignedUrl));
    }

    #[test]
    fn presigned_parameters_are_required_once() {
        let now = UNIX_EPOCH;
        for query in [
            "AWSAccessKeyId=A&Expires=1",
            "AWSAccessKeyId=A&Signature=x",
            "Signature=x&Expires=1",
            "AWSAccessKeyId=A&Signature=x&Expires=1&Expires=2",
            "AWSAccessKeyId=A&Signature=x&Expires=soon",
        ] {
            let request = parts("GET", &format!("/b/k?{query}"), &[("host", "h")]);
            assert!(
                matches!(authenticate(&request, now, secret), Err(AuthError::AuthorizationQueryParametersError(_))),
                "{query}"
            );
        }
    }
}
