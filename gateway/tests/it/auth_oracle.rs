//! Requests signed by the `aws-sigv4` crate, an independent implementation, must verify; and
//! a one-byte change anywhere they sign must not.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningParams,
    SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use http::request::Parts;
use sha2::{Digest, Sha256};

use crate::auth::{self, AuthError, PayloadHash, SignatureVersion};

const SEED: u64 = 0x5eed_cafe_f00d_0001;
const CASES: usize = 60;
const SERVICE: &str = "s3";

/// SplitMix64: deterministic, so a failure names its case and replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn string(&mut self, alphabet: &[&str], min: usize, max: usize) -> String {
        let len = min + self.below(max - min + 1);
        (0..len).map(|_| *self.pick(alphabet)).collect()
    }
}

const KEY_CHARS: &[&str] = &[
    "a",
    "b",
    "z",
    "A",
    "Q",
    "0",
    "9",
    " ",
    "  ",
    "-",
    "_",
    ".",
    "~",
    "!",
    "*",
    "'",
    "(",
    ")",
    "+",
    "=",
    "&",
    "$",
    "@",
    ",",
    ";",
    ":",
    "?",
    "#",
    "%",
    "[",
    "]",
    "ü",
    "€",
    "日",
    "\u{1F600}",
];
const WORD_CHARS: &[&str] = &["a", "b", "c", "x", "Y", "1", "7", "-", ".", "=", ";", "/", "+"];
const SECRET_CHARS: &[&str] = &["a", "Z", "0", "9", "/", "+", "=", "!", "%", "~", " ", "\"", "\\", "ü", "é"];

/// Percent-encodes everything but the unreserved characters (and `/` when `keep_slash`).
fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for &b in text.as_bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/');
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Like [`encode`] for a query value, but sometimes as loosely as browsers do: `+` for a
/// space and some sub-delimiters left raw. Both sides must read it the same way.
fn encode_query_value(rng: &mut Rng, text: &str) -> String {
    if !rng.chance(3) {
        return encode(text, false);
    }
    let mut out = String::new();
    for ch in text.chars() {
        match ch {
            ' ' => out.push('+'),
            '!' | '*' | '(' | ')' | '\'' | ',' | ':' | '@' => out.push(ch),
            _ => out.push_str(&encode(&ch.to_string(), false)),
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    SignedBody,
    UnsignedPayload,
    StreamingUnsignedTrailer,
    StreamingSignedTrailer,
    Presigned,
}

const MODES: [Mode; 5] = [
    Mode::SignedBody,
    Mode::UnsignedPayload,
    Mode::StreamingUnsignedTrailer,
    Mode::StreamingSignedTrailer,
    Mode::Presigned,
];

/// One generated request and what verifying it must yield.
struct Case {
    label: String,
    access_key: String,
    secret: String,
    region: &'static str,
    method: &'static str,
    uri: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    mode: Mode,
    signed_at: SystemTime,
    expires: Duration,
    session_token: Option<String>,
}

fn generate(rng: &mut Rng, index: usize) -> Case {
    let mode = MODES[index % MODES.len()];
    let access_key = format!("AK{}", rng.string(&["A", "B", "Z", "2", "7", "Q"], 10, 18));
    let secret = rng.string(SECRET_CHARS, 20, 48);
    let region = *rng.pick(&["us-east-1", "eu-west-3", "garage", "cairn-local-1"]);
    let method = if mode == Mode::Presigned {
        *rng.pick(&["GET", "PUT", "HEAD"])
    } else {
        *rng.pick(&["GET", "PUT", "POST", "DELETE", "HEAD"])
    };

    let mut key = rng.string(KEY_CHARS, 1, 24);
    if rng.chance(4) {
        key = format!("{key}//x/./y/../{}", rng.string(KEY_CHARS, 1, 4));
    }
    let mut uri = format!("/bkt-{}/{}", rng.below(100), encode(&key, true));
    let param_count = rng.below(5);
    let mut params = Vec::new();
    for _ in 0..param_count {
        let name = rng
            .pick(&[
                "prefix",
                "list-type",
                "uploads",
                "partNumber",
                "uploadId",
                "x-id",
                "start-after",
                "delimiter",
                "odd name!",
                "ü",
            ])
            .to_string();
        params.push(match rng.below(4) {
            0 => encode(&name, false),
            1 => format!("{}=", encode(&name, false)),
            _ => {
                let value = rng.string(KEY_CHARS, 0, 12);
                format!("{}={}", encode(&name, false), encode_query_value(rng, &value))
            }
        });
    }
    if rng.chance(3) && !params.is_empty() {
        // A repeated parameter: values sort too.
        let again = params[0].clone();
        params.push(again);
    }
    if !params.is_empty() {
        uri = format!("{uri}?{}", params.join("&"));
    }

    let mut headers =
        vec![("host".to_owned(), rng.pick(&["127.0.0.1:9000", "bkt.s3.cairn.test", "localhost"]).to_string())];
    let word = |rng: &mut Rng| rng.string(WORD_CHARS, 1, 6);
    let note = format!(
        "{}{}{}{}{}",
        " ".repeat(rng.below(3)),
        word(rng),
        " ".repeat(1 + rng.below(4)),
        word(rng),
        " ".repeat(rng.below(3))
    );
    headers.push(("x-amz-meta-note".to_owned(), note));
    if rng.chance(2) {
        headers.push(("content-type".to_owned(), "text/plain;  charset=utf-8".to_owned()));
    }
    if rng.chance(2) {
        headers.push(("x-amz-meta-multi".to_owned(), format!(" {} ", word(rng))));
        headers.push(("x-amz-meta-multi".to_owned(), word(rng)));
    }
    if rng.chance(3) {
        headers.push(("range".to_owned(), format!("bytes=0-{}", rng.below(1000))));
    }
    // Proxies rewrite these; signers leave them out.
    headers.push(("user-agent".to_owned(), "oracle/1.0".to_owned()));

    let body_len = rng.below(300);
    let body = (0..body_len).map(|_| rng.next() as u8).collect();
    // Between 2020 and 2031.
    let signed_at = UNIX_EPOCH + Duration::from_secs(1_577_836_800 + rng.next() % 350_000_000);
    let expires = Duration::from_secs(1 + rng.next() % 604_800);
    let session_token = rng.chance(4).then(|| format!("FQoG{}", rng.string(WORD_CHARS, 8, 30)));
    Case {
        label: format!("case {index} ({mode:?}, seed {SEED:#x})"),
        access_key,
        secret,
        region,
        method,
        uri,
        headers,
        body,
        mode,
        signed_at,
        expires,
        session_token,
    }
}

fn settings(mode: Mode, expires: Duration) -> SigningSettings {
    let mut settings = SigningSettings::default();
    // What the S3 clients use: single encoding and no path normalisation.
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    if mode == Mode::Presigned {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expires);
    } else {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    settings
}

/// Signs the case with `aws-sigv4`; returns the request as the server sees it.
fn sign_case(case: &Case) -> Parts {
    let credentials = Credentials::new(&case.access_key, &case.secret, case.session_token.clone(), None, "oracle");
    let identity = credentials.into();
    let params: SigningParams<'_> = v4::SigningParams::builder()
        .identity(&identity)
        .region(case.region)
        .name(SERVICE)
        .time(case.signed_at)
        .settings(settings(case.mode, case.expires))
        .build()
        .expect("signing params")
        .into();
    let body = match case.mode {
        Mode::SignedBody => SignableBody::Bytes(&case.body),
        Mode::UnsignedPayload | Mode::Presigned => SignableBody::UnsignedPayload,
        Mode::StreamingUnsignedTrailer => SignableBody::StreamingUnsignedPayloadTrailer,
        Mode::StreamingSignedTrailer => SignableBody::StreamingSignedPayloadTrailer,
    };
    let signable = SignableRequest::new(
        case.method,
        case.uri.as_str(),
        case.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        body,
    )
    .expect("signable request");
    let (instructions, _signature) =
        sign(signable, &params).unwrap_or_else(|e| panic!("{}: signing failed: {e}", case.label)).into_parts();

    let mut builder = http::Request::builder().method(case.method).uri(case.uri.as_str());
    for (name, value) in &case.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let mut request = builder.body(()).expect("request");
    instructions.apply_to_request_http1x(&mut request);
    request.into_parts().0
}

fn verify(case: &Case, parts: &Parts, now: SystemTime) -> Result<auth::Authenticated, AuthError> {
    auth::authenticate(parts, now, |key| (key == case.access_key).then(|| case.secret.clone()))
}

/// The `aws-sigv4` signature of one chunk, chained to `previous`.
fn oracle_chunk_signature(case: &Case, previous: &str, chunk: &[u8]) -> String {
    let credentials = Credentials::new(&case.access_key, &case.secret, None, None, "oracle");
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(case.region)
        .name(SERVICE)
        .time(case.signed_at)
        .settings(())
        .build()
        .expect("chunk params");
    let chunk = bytes::Bytes::copy_from_slice(chunk);
    v4::sign_chunk(&chunk, previous, &params).expect("chunk signing").into_parts().1
}

/// Replaces one byte of `text` at `index` with a different character that keeps it valid.
fn change_byte(text: &str, index: usize) -> String {
    let mut bytes = text.as_bytes().to_vec();
    bytes[index] = match bytes[index] {
        b'0' => b'1',
        b if b.is_ascii_hexdigit() => b'0',
        b'a'..=b'z' => b'a' + (bytes[index] - b'a' + 1) % 26,
        _ => b'A',
    };
    String::from_utf8(bytes).expect("ASCII change keeps UTF-8")
}

fn rebuild(parts: &Parts, uri: Option<&str>, header: Option<(&str, String)>) -> Parts {
    let mut builder = http::Request::builder().method(parts.method.clone()).uri(uri.unwrap_or(&parts.uri.to_string()));
    for (name, value) in &parts.headers {
        let replaced = header.as_ref().filter(|(n, _)| *n == name.as_str());
        match replaced {
            Some((_, new_value)) => builder = builder.header(name, new_value.as_str()),
            None => builder = builder.header(name, value),
        }
    }
    builder.body(()).expect("rebuilt request").into_parts().0
}

#[track_caller]
fn assert_mismatch(case: &Case, parts: &Parts, now: SystemTime, what: &str) {
    let result = verify(case, parts, now);
    assert!(
        matches!(result, Err(AuthError::SignatureDoesNotMatch { .. })),
        "{} with {what}: {result:?}\nuri {}",
        case.label,
        parts.uri
    );
}

#[test]
fn aws_sigv4_signed_requests_verify_and_tampering_fails() {
    let mut rng = Rng(SEED);
    for index in 0..CASES {
        let case = generate(&mut rng, index);
        let parts = sign_case(&case);
        let now = if case.mode == Mode::Presigned {
            // Anywhere inside the validity window.
            case.signed_at + Duration::from_secs(rng.next() % (case.expires.as_secs() + 1))
        } else {
            case.signed_at + Duration::from_secs(rng.next() % 600)
        };
        let auth = verify(&case, &parts, now)
            .unwrap_or_else(|e| panic!("{}: {e:?}\nuri {}\nheaders {:?}", case.label, parts.uri, parts.headers));
        assert_eq!(auth.access_key_id, case.access_key, "{}", case.label);
        assert_eq!(auth.region.as_deref(), Some(case.region), "{}", case.label);
        match (case.mode, &auth.payload) {
            (Mode::SignedBody, PayloadHash::Sha256(digest)) => {
                assert_eq!(digest[..], Sha256::digest(&case.body)[..], "{}", case.label);
            }
            (Mode::UnsignedPayload | Mode::Presigned, PayloadHash::Unsigned)
            | (Mode::StreamingUnsignedTrailer, PayloadHash::StreamingUnsignedTrailer) => {}
            (
                Mode::StreamingSignedTrailer,
                PayloadHash::StreamingSigned { seed_signature, signing_key, scope, timestamp, trailer },
            ) => {
                assert!(trailer, "{}", case.label);
                // Chain two chunks and the final empty one with the helpers and the oracle.
                let mut previous = seed_signature.clone();
                for chunk in [&case.body[..], b"second chunk", b""] {
                    let digest: [u8; 32] = Sha256::digest(chunk).into();
                    let sts = auth::chunk_string_to_sign(timestamp, scope, &previous, &digest);
                    let ours = auth::sign_hex(signing_key, &sts);
                    assert_eq!(ours, oracle_chunk_signature(&case, &previous, chunk));
                    previous = ours;
                }
            }
            (mode, payload) => panic!("{}: {mode:?} gave {payload:?}", case.label),
        }
        let expected_version =
            if case.mode == Mode::Presigned { SignatureVersion::V4Presigned } else { SignatureVersion::V4Header };
        assert_eq!(auth.version, expected_version, "{}", case.label);

        let uri = parts.uri.to_string();
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (uri.as_str(), None),
        };

        // One byte of the path.
        let at = 1 + rng.below(path.len() - 1);
        let changed = format!("{}{}", change_byte(path, at), query.map(|q| format!("?{q}")).unwrap_or_default());
        assert_mismatch(&case, &rebuild(&parts, Some(&changed), None), now, "the path changed");

        // One byte of a signed header value.
        let note = parts.headers["x-amz-meta-note"].to_str().expect("ascii");
        let at = note.find(|c: char| c != ' ').expect("a word");
        let changed = change_byte(note, at);
        let changed = rebuild(&parts, None, Some(("x-amz-meta-note", changed)));
        assert_mismatch(&case, &changed, now, "a header changed");

        // One byte of the signature.
        if case.mode == Mode::Presigned {
            let query = query.expect("presigned");
            let at = query.find("X-Amz-Signature=").expect("signature") + 20;
            let changed = format!("{path}?{}", change_byte(query, at));
            assert_mismatch(&case, &rebuild(&parts, Some(&changed), None), now, "signature");
        } else {
            let header = parts.headers["authorization"].to_str().expect("ascii");
            let changed = change_byte(header, header.len() - 1);
            let changed = rebuild(&parts, None, Some(("authorization", changed)));
            assert_mismatch(&case, &changed, now, "the signature changed");
        }

        // One byte of the query, where there is one beyond the presigned parameters.
        if let Some(query) = query.filter(|q| !q.starts_with("X-Amz-")) {
            let changed = format!("{path}?{}", change_byte(query, 0));
            assert_mismatch(&case, &rebuild(&parts, Some(&changed), None), now, "the query");
        }

        // The wrong secret.
        let result = auth::authenticate(&parts, now, |_| Some(format!("{}x", case.secret)));
        assert!(matches!(result, Err(AuthError::SignatureDoesNotMatch { .. })), "{}: {result:?}", case.label);
    }
}

/// Applies one random corruption to a signed request; `None` when the result is not even a
/// valid HTTP request (and so never reaches the verifier).
fn corrupt(rng: &mut Rng, parts: &Parts) -> Option<Parts> {
    let uri = parts.uri.to_string();
    let names: Vec<&http::HeaderName> = parts.headers.keys().collect();
    let name = (*rng.pick(&names)).clone();
    let value = parts.headers[&name].as_bytes().to_vec();
    let noise = [b'%', b'+', b'&', b'=', b'/', b';', b',', b' ', b'\t', b'Z', 0x80, 0xff];
    let mut request = http::Request::builder().method(parts.method.clone());
    let mut headers = parts.headers.clone();
    match rng.below(4) {
        0 => {
            let mut bytes = uri.into_bytes();
            let at = rng.below(bytes.len());
            bytes[at] = *rng.pick(&noise);
            request = request.uri(http::Uri::try_from(bytes).ok()?);
        }
        1 => {
            let mut bytes = value;
            if bytes.is_empty() {
                return None;
            }
            let at = rng.below(bytes.len());
            bytes[at] = *rng.pick(&noise);
            headers.insert(&name, http::HeaderValue::from_bytes(&bytes).ok()?);
            request = request.uri(parts.uri.clone());
        }
        2 => {
            let cut = rng.below(value.len() + 1);
            headers.insert(&name, http::HeaderValue::from_bytes(&value[..cut]).ok()?);
            request = request.uri(parts.uri.clone());
        }
        _ => {
            headers.append(&name, http::HeaderValue::from_bytes(&value).ok()?);
            request = request.uri(parts.uri.clone());
        }
    }
    let mut parts = request.body(()).ok()?.into_parts().0;
    parts.headers = headers;
    Some(parts)
}

#[test]
fn corrupted_requests_are_refused_without_panicking() {
    const CORRUPTIONS_PER_CASE: usize = 40;
    let mut rng = Rng(SEED ^ 0xbad);
    let (mut tried, mut refused) = (0, 0);
    for index in 0..CASES {
        let case = generate(&mut rng, index);
        let parts = sign_case(&case);
        for _ in 0..CORRUPTIONS_PER_CASE {
            let Some(corrupted) = corrupt(&mut rng, &parts) else {
                continue;
            };
            tried += 1;
            if verify(&case, &corrupted, case.signed_at).is_err() {
                refused += 1;
            }
        }
    }
    // Some corruptions are harmless (an unsigned header, a blank folded away); most are not.
    assert!(tried > CASES * CORRUPTIONS_PER_CASE / 2, "only {tried} tried");
    assert!(refused * 10 > tried * 8, "{refused} of {tried} refused");
}
