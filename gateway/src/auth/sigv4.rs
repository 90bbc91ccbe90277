//! Signature Version 4: the `Authorization` header form and the presigned query form.

use http::HeaderMap;
use http::header::{DATE, HOST};
use http::request::Parts;

use super::canonical::{self, QueryParam};
use super::signing::{self, ALGORITHM};
use super::time;
use super::{
    AuthError, Authenticated, MAX_CLOCK_SKEW_SECS, MAX_PRESIGNED_EXPIRES_SECS, PayloadHash, SERVICE, SignatureVersion,
};

const X_AMZ_DATE: &str = "x-amz-date";
const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
const STREAMING_SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
const STREAMING_SIGNED_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
const PRESIGNED_SIGNATURE_PARAM: &str = "X-Amz-Signature";
const PRESIGNED_PARAMS_REQUIRED: &str = "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.";

/// The parts of `Credential=AKID/YYYYMMDD/region/s3/aws4_request`.
struct Credential {
    access_key_id: String,
    date: String,
    region: String,
}

impl Credential {
    fn scope(&self) -> String {
        format!("{}/{}/{SERVICE}/aws4_request", self.date, self.region)
    }
}

/// What `x-amz-content-sha256` (or `X-Amz-Content-Sha256`) claims about the body.
enum PayloadClaim {
    Sha256([u8; 32]),
    Unsigned,
    StreamingSigned { trailer: bool },
    StreamingUnsignedTrailer,
}

fn parse_payload_claim(value: &str) -> Result<PayloadClaim, AuthError> {
    match value {
        UNSIGNED_PAYLOAD => Ok(PayloadClaim::Unsigned),
        STREAMING_UNSIGNED_TRAILER => Ok(PayloadClaim::StreamingUnsignedTrailer),
        STREAMING_SIGNED => Ok(PayloadClaim::StreamingSigned { trailer: false }),
        STREAMING_SIGNED_TRAILER => Ok(PayloadClaim::StreamingSigned { trailer: true }),
        hex_digest => {
            let mut digest = [0u8; 32];
            hex::decode_to_slice(hex_digest, &mut digest).map_err(|_| AuthError::InvalidContentSha256)?;
            Ok(PayloadClaim::Sha256(digest))
        }
    }
}

/// Splits a credential from the right, so the access key id may contain anything but the
/// four scope fields are exact.
fn parse_credential(value: &str) -> Result<Credential, String> {
    let malformed = || {
        format!(
            "the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\", got {value:?}."
        )
    };
    let mut fields = value.rsplitn(5, '/');
    let (Some(terminator), Some(service), Some(region), Some(date), Some(access_key_id)) =
        (fields.next(), fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(malformed());
    };
    let date_ok = date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit());
    if access_key_id.is_empty() || region.is_empty() || !date_ok || terminator != "aws4_request" {
        return Err(malformed());
    }
    if service != SERVICE {
        return Err(format!("incorrect service {service:?}. This endpoint belongs to {SERVICE:?}."));
    }
    Ok(Credential { access_key_id: access_key_id.to_owned(), date: date.to_owned(), region: region.to_owned() })
}

/// Parses `a;b;c`: lowercase, valid, distinct header names, `host` among them.
fn parse_signed_headers(value: &str) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = Vec::new();
    for name in value.split(';') {
        let valid = http::HeaderName::from_bytes(name.as_bytes()).is_ok_and(|parsed| parsed.as_str() == name);
        if !valid {
            return Err(format!("invalid signed header name {name:?}."));
        }
        if names.iter().any(|n| n == name) {
            return Err(format!("signed header {name:?} is listed twice."));
        }
        names.push(name.to_owned());
    }
    if !names.iter().any(|n| n == HOST.as_str()) {
        return Err("the host header must be signed.".to_owned());
    }
    Ok(names)
}

/// Refuses `x-amz-*` headers the signature does not cover, as S3 does, so that nobody can add
/// e.g. `x-amz-copy-source` or `x-amz-tagging` to a captured or presigned request.
fn check_amz_headers_signed(headers: &HeaderMap, signed: &[String]) -> Result<(), AuthError> {
    let mut unsigned: Vec<&str> = headers
        .keys()
        .map(http::HeaderName::as_str)
        .filter(|name| name.starts_with("x-amz-") && *name != X_AMZ_CONTENT_SHA256)
        .filter(|name| !signed.iter().any(|s| s == name))
        .collect();
    if unsigned.is_empty() {
        return Ok(());
    }
    unsigned.sort_unstable();
    Err(AuthError::HeadersNotSigned(unsigned.join(", ")))
}

/// The SigV4 canonical request as bytes (header values need not be UTF-8).
fn canonical_request(
    parts: &Parts,
    query: &[QueryParam],
    exclude_param: Option<&str>,
    signed_headers: &[String],
    payload: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical::canonical_uri(parts.uri.path()).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical::canonical_query(query, exclude_param).as_bytes());
    out.push(b'\n');
    for name in signed_headers {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        out.extend_from_slice(&canonical::canonical_header_value(&parts.headers, name));
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(signed_headers.join(";").as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload.as_bytes());
    out
}

/// Everything needed to check one SigV4 signature.
struct SignedRequest<'a> {
    credential: &'a Credential,
    timestamp: &'a str,
    canonical_request: Vec<u8>,
    provided_signature: &'a str,
}

/// Looks the secret up and checks the signature; returns the signing key for chunk chains.
fn verify_signature(
    request: SignedRequest<'_>,
    secret_of: &dyn Fn(&str) -> Option<String>,
) -> Result<[u8; 32], AuthError> {
    let secret = secret_of(&request.credential.access_key_id).ok_or(AuthError::InvalidAccessKeyId)?;
    let scope = request.credential.scope();
    let string_to_sign =
        format!("{ALGORITHM}\n{}\n{scope}\n{}", request.timestamp, signing::sha256_hex(&request.canonical_request));
    let key = signing::derive_signing_key(&secret, &request.credential.date, &request.credential.region, SERVICE);
    let expected = signing::sign_hex(&key, &string_to_sign);
    if signing::constant_time_eq(expected.as_bytes(), request.provided_signature.as_bytes()) {
        Ok(key)
    } else {
        Err(AuthError::SignatureDoesNotMatch {
            string_to_sign,
            canonical_request: String::from_utf8_lossy(&request.canonical_request).into_owned(),
        })
    }
}

/// The `Credential`, `SignedHeaders` and `Signature` of a SigV4 `Authorization` header.
struct AuthorizationFields<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

/// Parses what follows the algorithm name; clients differ in spaces and commas between fields.
fn parse_authorization(fields: &str) -> Result<AuthorizationFields<'_>, AuthError> {
    let malformed = |msg: &str| AuthError::AuthorizationHeaderMalformed(msg.to_owned());
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for field in fields.split([',', ' ', '\t']).filter(|field| !field.is_empty()) {
        let (key, value) = field.split_once('=').ok_or_else(|| malformed("a field is not of the form key=value."))?;
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return Err(malformed("it has an unknown field.")),
        };
        if slot.replace(value).is_some() {
            return Err(malformed("a field is repeated."));
        }
    }
    match (credential, signed_headers, signature) {
        (Some(credential), Some(signed_headers), Some(signature)) => {
            Ok(AuthorizationFields { credential, signed_headers, signature })
        }
        _ => Err(malformed("it must contain Credential, SignedHeaders and Signature.")),
    }
}

/// The signing time of a header-signed request: `x-amz-date`, else `Date`; returned as seconds
/// and as the `YYYYMMDDTHHMMSSZ` text the string-to-sign carries.
fn header_signing_time(headers: &HeaderMap) -> Result<(i64, String), AuthError> {
    if let Some(value) = headers.get(X_AMZ_DATE) {
        let text = value.to_str().map_err(|_| AuthError::InvalidDate)?;
        let secs = time::parse_amz_date(text).ok_or(AuthError::InvalidDate)?;
        return Ok((secs, text.to_owned()));
    }
    let value = headers.get(DATE).ok_or(AuthError::InvalidDate)?;
    let text = value.to_str().map_err(|_| AuthError::InvalidDate)?;
    let secs = time::parse_http_date(text).ok_or(AuthError::InvalidDate)?;
    Ok((secs, time::format_amz_date(secs)))
}

/// Verifies `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`;
/// `fields` is the header value after the algorithm name.
pub(super) fn verify_header(
    parts: &Parts,
    query: &[QueryParam],
    fields: &str,
    now: i64,
    secret_of: &dyn Fn(&str) -> Option<String>,
) -> Result<Authenticated, AuthError> {
    let fields = parse_authorization(fields)?;
    let credential = parse_credential(fields.credential).map_err(AuthError::AuthorizationHeaderMalformed)?;
    let signed_headers =
        parse_signed_headers(fields.signed_headers).map_err(AuthError::AuthorizationHeaderMalformed)?;

    let (signed_at, timestamp) = header_signing_time(&parts.headers)?;
    if !timestamp.starts_with(&credential.date) {
        return Err(AuthError::AuthorizationHeaderMalformed(
            "Invalid credential date. Date is not the same as X-Amz-Date.".to_owned(),
        ));
    }
    if now.abs_diff(signed_at) > MAX_CLOCK_SKEW_SECS.unsigned_abs() {
        return Err(AuthError::RequestTimeTooSkewed);
    }

    let payload_text = parts
        .headers
        .get(X_AMZ_CONTENT_SHA256)
        .ok_or(AuthError::MissingContentSha256)?
        .to_str()
        .map_err(|_| AuthError::InvalidContentSha256)?;
    let claim = parse_payload_claim(payload_text)?;
    check_amz_headers_signed(&parts.headers, &signed_headers)?;

    let canonical_request = canonical_request(parts, query, None, &signed_headers, payload_text);
    let signing_key = verify_signature(
        SignedRequest {
            credential: &credential,
            timestamp: &timestamp,
            canonical_request,
            provided_signature: fields.signature,
        },
        secret_of,
    )?;

    let payload = match claim {
        PayloadClaim::Sha256(digest) => PayloadHash::Sha256(digest),
        PayloadClaim::Unsigned => PayloadHash::Unsigned,
        PayloadClaim::StreamingUnsignedTrailer => PayloadHash::StreamingUnsignedTrailer,
        PayloadClaim::StreamingSigned { trailer } => PayloadHash::StreamingSigned {
            seed_signature: fields.signature.to_owned(),
            signing_key,
            scope: credential.scope(),
            timestamp,
            trailer,
        },
    };
    Ok(Authenticated {
        access_key_id: credential.access_key_id,
        payload,
        region: Some(credential.region),
        version: SignatureVersion::V4Header,
    })
}

/// The single value of a presigned parameter; repeated or non-UTF-8 ones are refused.
fn presigned_param<'a>(query: &'a [QueryParam], name: &str) -> Result<Option<&'a str>, AuthError> {
    let mut values = query.iter().filter(|p| p.name == name.as_bytes());
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::AuthorizationQueryParametersError(format!("{name} must be given once.")));
    }
    std::str::from_utf8(&first.value)
        .map(Some)
        .map_err(|_| AuthError::AuthorizationQueryParametersError(format!("{name} must be valid UTF-8.")))
}

/// Verifies a SigV4 presigned URL (`X-Amz-Algorithm`, `X-Amz-Credential`, ... in the query).
pub(super) fn verify_presigned(
    parts: &Parts,
    query: &[QueryParam],
    now: i64,
    secret_of: &dyn Fn(&str) -> Option<String>,
) -> Result<Authenticated, AuthError> {
    let query_error = |msg: &str| AuthError::AuthorizationQueryParametersError(msg.to_owned());
    let required = |name: &str| presigned_param(query, name)?.ok_or_else(|| query_error(PRESIGNED_PARAMS_REQUIRED));
    let algorithm = required("X-Amz-Algorithm")?;
    let credential = required("X-Amz-Credential")?;
    let timestamp = required("X-Amz-Date")?;
    let expires = required("X-Amz-Expires")?;
    let signed_headers = required("X-Amz-SignedHeaders")?;
    let signature = required(PRESIGNED_SIGNATURE_PARAM)?;

    if algorithm != ALGORITHM {
        return Err(query_error("X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\""));
    }
    let credential = parse_credential(credential).map_err(|msg| {
        AuthError::AuthorizationQueryParametersError(format!("Error parsing the X-Amz-Credential parameter; {msg}"))
    })?;
    let signed_headers = parse_signed_headers(signed_headers).map_err(|msg| {
        AuthError::AuthorizationQueryParametersError(format!("Error parsing the X-Amz-SignedHeaders parameter; {msg}"))
    })?;
    let signed_at = time::parse_amz_date(timestamp)
        .ok_or_else(|| query_error("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""))?;
    if !expires.bytes().all(|b| b.is_ascii_digit()) {
        return Err(query_error("X-Amz-Expires should be a non-negative number of seconds"));
    }
    let expires_secs = expires
        .parse::<i64>()
        .ok()
        .filter(|secs| *secs <= MAX_PRESIGNED_EXPIRES_SECS)
        .ok_or_else(|| query_error("X-Amz-Expires must be less than a week (in seconds) that is; 604800"))?;
    if !timestamp.starts_with(&credential.date) {
        return Err(query_error("Invalid credential date. Date is not the same as X-Amz-Date."));
    }
    if signed_at.saturating_sub(now) > MAX_CLOCK_SKEW_SECS {
        return Err(AuthError::NotYetValid);
    }
    if now.saturating_sub(signed_at) > expires_secs {
        return Err(AuthError::ExpiredPresignedUrl);
    }

    let payload_text = presigned_param(query, "X-Amz-Content-Sha256")?.unwrap_or(UNSIGNED_PAYLOAD);
    let payload = match parse_payload_claim(payload_text)? {
        PayloadClaim::Sha256(digest) => PayloadHash::Sha256(digest),
        PayloadClaim::Unsigned => PayloadHash::Unsigned,
        // A URL handed to someone else cannot also carry the chain of chunk signatures.
        PayloadClaim::StreamingSigned { .. } | PayloadClaim::StreamingUnsignedTrailer => {
            return Err(AuthError::InvalidContentSha256);
        }
    };
    check_amz_headers_signed(&parts.headers, &signed_headers)?;

    let canonical_request =
        canonical_request(parts, query, Some(PRESIGNED_SIGNATURE_PARAM), &signed_headers, payload_text);
    verify_signature(
        SignedRequest { credential: &credential, timestamp, canonical_request, provided_signature: signature },
        secret_of,
    )?;
    Ok(Authenticated {
        access_key_id: credential.access_key_id,
        payload,
        region: Some(credential.region),
        version: SignatureVersion::V4Presigned,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{authenticate, signing::sign_hex};
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    const DOC_ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
    const DOC_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    /// 2013-05-24T00:00:00Z, the time of the S3 API reference examples.
    const DOC_TIME_SECS: u64 = 1_369_353_600;

    fn doc_secret(key: &str) -> Option<String> {
        (key == DOC_ACCESS_KEY).then(|| DOC_SECRET.to_owned())
    }

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).expect("valid request").into_parts().0
    }

    fn doc_get_object(signature: &str) -> Parts {
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={DOC_ACCESS_KEY}/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature={signature}"
        );
        parts(
            "GET",
            "/test.txt",
            &[
                ("host", "examplebucket.s3.amazonaws.com"),
                ("range", "bytes=0-9"),
                ("x-amz-content-sha256", signing::EMPTY_SHA256_HEX),
                ("x-amz-date", "20130524T000000Z"),
                ("authorization", &authorization),
            ],
        )
    }

    #[test]
    fn header_example_of_the_s3_api_reference() {
        let now = UNIX_EPOCH + Duration::from_secs(DOC_TIME_SECS);
        let request = doc_get_object("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
        let auth = authenticate(&request, now, doc_secret).expect("documented request verifies");
        assert_eq!(auth.access_key_id, DOC_ACCESS_KEY);
        assert_eq!(auth.region.as_deref(), Some("us-east-1"));
        assert_eq!(auth.payload, PayloadHash::Sha256(hex_digest(signing::EMPTY_SHA256_HEX)));

        let tampered = doc_get_object("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb42");
        let err = authenticate(&tampered, now, doc_secret).expect_err("wrong signature");
        let AuthError::SignatureDoesNotMatch { string_to_sign, canonical_request } = err else {
            panic!("unexpected {err:?}");
        };
        assert_eq!(
            canonical_request,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\nx-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\nx-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
    }

    #[test]
    fn presigned_example_of_the_s3_api_reference() {
        let uri = "/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
        let request = parts("GET", uri, &[("host", "examplebucket.s3.amazonaws.com")]);
        let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
        let auth = authenticate(&request, at(DOC_TIME_SECS + 3600), doc_secret).expect("documented URL verifies");
        assert_eq!(auth.payload, PayloadHash::Unsigned);
        assert_eq!(auth.version, SignatureVersion::V4Presigned);
        // Valid through the last second of its day, expired one second later.
        assert!(authenticate(&request, at(DOC_TIME_SECS + 86_400), doc_secret).is_ok());
        assert_eq!(authenticate(&request, at(DOC_TIME_SECS + 86_401), doc_secret), Err(AuthError::ExpiredPresignedUrl));
        // Signed further in the future than the skew allows.
        assert_eq!(authenticate(&request, at(DOC_TIME_SECS - 901), doc_secret), Err(AuthError::NotYetValid));
        assert!(authenticate(&request, at(DOC_TIME_SECS - 900), doc_secret).is_ok());
    }

    fn hex_digest(text: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).expect("test digest is hex");
        out
    }

    /// Signs a header-auth request the way a client would, reusing the verifier's own pieces.
    fn signed_header_request(extra: &[(&str, &str)], payload: &str, path: &str) -> Parts {
        let mut headers: Vec<(&str, &str)> =
            vec![("host", "h"), ("x-amz-date", "20130524T000000Z"), ("x-amz-content-sha256", payload)];
        headers.extend_from_slice(extra);
        let unsigned = parts("PUT", path, &headers);
        let mut signed: Vec<String> = headers.iter().map(|(n, _)| (*n).to_owned()).collect();
        signed.sort();
        let creq = canonical_request(&unsigned, &[], None, &signed, payload);
        let sts = format!(
            "{ALGORITHM}\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n{}",
            signing::sha256_hex(&creq)
        );
        let key = signing::derive_signing_key(DOC_SECRET, "20130524", "us-east-1", "s3");
        let authorization = format!(
            "AWS4-HMAC-SHA256  Credential={DOC_ACCESS_KEY}/20130524/us-east-1/s3/aws4_request ,SignedHeaders={},Signature={}",
            signed.join(";"),
            sign_hex(&key, &sts)
        );
        headers.push(("authorization", &authorization));
        parts("PUT", path, &headers)
    }

    #[test]
    fn streaming_payloads_carry_the_chunk_chain_seed() {
        let now = UNIX_EPOCH + Duration::from_secs(DOC_TIME_SECS);
        let request = signed_header_request(&[], STREAMING_SIGNED_TRAILER, "/b/k");
        let auth = authenticate(&request, now, doc_secret).expect("verifies");
        let PayloadHash::StreamingSigned { seed_signature, signing_key, scope, timestamp, trailer } = auth.payload
        else {
            panic!("unexpected {:?}", auth.payload);
        };
        assert!(trailer);
        assert_eq!(scope, "20130524/us-east-1/s3/aws4_request");
        assert_eq!(timestamp, "20130524T000000Z");
        assert_eq!(signing_key, signing::derive_signing_key(DOC_SECRET, "20130524", "us-east-1", "s3"));
        let header = request.headers["authorization"].to_str().expect("ascii");
        assert!(header.ends_with(&format!("Signature={seed_signature}")));

        let request = signed_header_request(&[], STREAMING_UNSIGNED_TRAILER, "/b/k");
        let auth = authenticate(&request, now, doc_secret).expect("verifies");
        assert_eq!(auth.payload, PayloadHash::StreamingUnsignedTrailer);
        let request = signed_header_request(&[], UNSIGNED_PAYLOAD, "/b/k");
        let auth = authenticate(&request, now, doc_secret).expect("verifies");
        assert_eq!(auth.payload, PayloadHash::Unsigned);
    }

    #[test]
    fn content_sha256_must_be_present_and_well_formed() {
        let now = UNIX_EPOCH + Duration::from_secs(DOC_TIME_SECS);
        for bad in ["unsigned-payload", "abc", &"g".repeat(64), "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"] {
            let request = signed_header_request(&[], bad, "/b/k");
            assert_eq!(authenticate(&request, now, doc_secret), Err(AuthError::InvalidContentSha256), "{bad}");
        }
        let mut request = signed_header_request(&[], UNSIGNED_PAYLOAD, "/b/k");
        request.headers.remove("x-amz-content-sha256");
        assert_eq!(authenticate(&request, now, doc_secret), Err(AuthError::MissingContentSha256));
    }

    #[test]
    fn unsigned_amz_headers_are_refused() {
        let now = UNIX_EPOCH + Duration::from_secs(DOC_TIME_SECS);
        let mut request = signed_header_request(&[("x-amz-meta-a", "1")], UNSIGNED_PAYLOAD, "/b/k");
        assert!(authenticate(&request, now, doc_secret).is_ok());
        request.headers.insert("x-amz-copy-source", http::HeaderValue::from_static("/b/secret"));
        request.headers.insert("x-amz-acl", http::HeaderValue::from_static("public-read"));
        // Headers outside the x-amz- space may be added freely (proxies do).
        request.headers.insert("x-amzn-trace-id", http::HeaderValue::from_static("t"));
        assert_eq!(
            authenticate(&request, now, doc_secret),
            Err(AuthError::HeadersNotSigned("x-amz-acl, x-amz-copy-source".to_owned()))
        );
    }

    #[test]
    fn date_header_stands_in_for_x_amz_date() {
        let now = UNIX_EPOCH + Duration::from_secs(DOC_TIME_SECS);
        let payload = UNSIGNED_PAYLOAD;
        let headers = [("host", "h"), ("date", "Fri, 24 May 2013 00:00:00 GMT"), ("x-amz-content-sha256", payload)];
        let unsigned = parts("GET", "/b", &headers);
        let signed = vec!["date".to_owned(), "host".to_owned(), "x-amz-content-sha256".to_owned()];
        let creq = canonical_request(&unsigned, &[], None, &signed, payload);
        let sts = format!(
            "{ALGORITHM}\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n{}",
            signing::sha256_hex(&creq)
        );
        let key = signing::derive_signing_key(DOC_SECRET, "20130524", "us-east-1", "s3");
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={DOC_ACCESS_KEY}/20130524/us-east-1/s3/aws4_request, SignedHeaders=date;host;x-amz-content-sha256, Signature={}",
            sign_hex(&key, &sts)
        );
        let mut all = headers.to_vec();
        all.push(("authorization", &authorization));
        assert!(authenticate(&parts("GET", "/b", &all), now, doc_secret).is_ok());

        all[1] = ("date", "yesterday");
        assert_eq!(authenticate(&parts("GET", "/b", &all), now, doc_secret), Err(AuthError::InvalidDate));
    }

    #[test]
    fn malformed_authorization_headers() {
        let now = UNIX_EPOCH + Duration::from_secs(DOC_TIME_SECS);
        let sig = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
        let cases = [
            format!("AWS4-HMAC-SHA256 Credential={DOC_ACCESS_KEY}/20130524/us-east-1/s3/aws4_request, Signature={sig}"),
            format!(
                "AWS4-HMAC-SHA256 Credential={DOC_ACCESS_KEY}/20130524/us-east-1/s3, SignedHeaders=host, Signature={sig}"
            ),
            format!(
                "AWS4-HMAC-SHA256 Credential={DOC_ACCESS_KEY}/20130524/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature={sig}"
            ),
            format!(
                "AWS4-HMAC-SHA256 Credential={DOC_ACCESS_KEY}/20130525/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date;range;x-amz-content-sha256, Signature={sig}"
            ),
            format!(
                "AWS4-HMAC-SHA256 Credential={DOC_ACCESS_KEY}/20130524/us-east-1/s3/aws4_request, SignedHeaders=range;x-amz-date;x-amz-content-sha256, Signature={sig}"
            ),
            format!(
                "AWS4-HMAC-SHA256 Credential={DOC_ACCESS_KEY}/20130524/us-east-1/s3/aws4_request, SignedHeaders=Host;range, Signature={sig}"
            ),
            format!(
                "AWS4-HMAC-SHA256 Credential={DOC_ACCESS_KEY}/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;;range, Signature={sig}"
            ),
            format!(
                "AWS4-HMAC-SHA256 Credential={DOC_ACCESS_KEY}/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature={sig}, Signature={sig}"
            ),
            format!(
                "AWS4-HMAC-SHA256 Credential={DOC_ACCESS_KEY}/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature={sig}, Extra=1"
            ),
            format!(
                "AWS4-HMAC-SHA256 Credential={DOC_ACCESS_KEY}/20130524/us-east-1/s3/aws4_request, SignedHeaders=host, Signature"
            ),
        ];
        for case in cases {
            let request = parts(
                "GET",
                "/test.txt",
                &[
                    ("host", "examplebucket.s3.amazonaws.com"),
                    ("x-amz-content-sha256", signing::EMPTY_SHA256_HEX),
                    ("x-amz-date", "20130524T000000Z"),
                    ("authorization", &case),
                ],
            );
            let err = authenticate(&request, now, doc_secret).expect_err(&case);
            assert!(matches!(err, AuthError::AuthorizationHeaderMalformed(_)), "{case}: {err:?}");
        }
    }

    #[test]
    fn presigned_parameter_errors() {
        let now = UNIX_EPOCH + Duration::from_secs(DOC_TIME_SECS);
        let base = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-SignedHeaders=host&X-Amz-Signature=aeee";
        let cases = [
            format!("{base}&X-Amz-Date=20130524T000000Z"),
            format!("{base}&X-Amz-Date=20130524T000000Z&X-Amz-Expires=604801"),
            format!("{base}&X-Amz-Date=20130524T000000Z&X-Amz-Expires=-1"),
            format!("{base}&X-Amz-Date=20130524T000000Z&X-Amz-Expires=1e3"),
            format!("{base}&X-Amz-Date=2013-05-24T00:00:00Z&X-Amz-Expires=60"),
            format!("{base}&X-Amz-Date=20130525T000000Z&X-Amz-Expires=60"),
            format!("{base}&X-Amz-Date=20130524T000000Z&X-Amz-Expires=60&X-Amz-Expires=60"),
            format!(
                "{}&X-Amz-Date=20130524T000000Z&X-Amz-Expires=60",
                base.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256")
            ),
            format!("{}&X-Amz-Date=20130524T000000Z&X-Amz-Expires=60", base.replace("%2Fs3%2F", "%2Fs4%2F")),
        ];
        for case in cases {
            let request = parts("GET", &format!("/k?{case}"), &[("host", "h")]);
            let err = authenticate(&request, now, doc_secret).expect_err(&case);
            assert!(matches!(err, AuthError::AuthorizationQueryParametersError(_)), "{case}: {err:?}");
        }
    }
}
