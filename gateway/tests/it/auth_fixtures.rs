//! Every captured real-client request in `tests/data/client-requests` verifies, and any change
//! to what it signed makes it fail.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::request::Parts;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::{self, AuthError, Authenticated, PayloadHash, SignatureVersion};

const ACCESS_KEY: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const FIXTURE_COUNT: usize = 71;
const SIXTEEN_MINUTES: Duration = Duration::from_secs(16 * 60);

fn secret_of(key: &str) -> Option<String> {
    (key == ACCESS_KEY).then(|| SECRET.to_owned())
}

/// One captured request.
#[derive(Clone)]
struct Fixture {
    name: String,
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    body_sha256: Option<[u8; 32]>,
}

impl Fixture {
    fn load(path: &Path) -> Fixture {
        let text = std::fs::read_to_string(path).expect("fixture readable");
        let json: Value = serde_json::from_str(&text).expect("fixture is JSON");
        let field = |name: &str| json[name].as_str().expect(name).to_owned();
        let headers = json["headers"]
            .as_array()
            .expect("headers array")
            .iter()
            .map(|pair| {
                let name = pair[0].as_str().expect("header name").to_owned();
                let value = pair[1].as_str().expect("header value").to_owned();
                (name, value)
            })
            .collect();
        let body_sha256 = if let Some(b64) = json["body_b64"].as_str() {
            let body = auth::base64::decode(b64).expect("body_b64 is base64");
            let len = json["body_len"].as_u64().expect("body_len");
            assert_eq!(body.len() as u64, len, "{}", path.display());
            Some(Sha256::digest(&body).into())
        } else {
            json["body_sha256"].as_str().map(|h| {
                let mut digest = [0u8; 32];
                hex::decode_to_slice(h, &mut digest).expect("body_sha256 is hex");
                digest
            })
        };
        let name = path.strip_prefix(fixture_dir()).expect("under fixture dir").display().to_string();
        Fixture { name, method: field("method"), uri: field("uri"), headers, body_sha256 }
    }

    fn parts(&self) -> Parts {
        let mut builder = http::Request::builder().method(self.method.as_str()).uri(self.uri.as_str());
        for (name, value) in &self.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder.body(()).expect("fixture is a valid request").into_parts().0
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn query_param(&self, name: &str) -> Option<String> {
        let query = self.uri.split_once('?')?.1;
        query.split('&').find_map(|piece| {
            let (n, v) = piece.split_once('=')?;
            (n == name).then(|| v.to_owned())
        })
    }

    fn kind(&self) -> Kind {
        if self.header("authorization").is_some() {
            Kind::V4Header
        } else if self.query_param("X-Amz-Algorithm").is_some() {
            Kind::V4Presigned
        } else {
            assert!(self.query_param("AWSAccessKeyId").is_some(), "{}", self.name);
            Kind::V2Presigned
        }
    }

    /// The instant the request was made: its signing time, or for SigV2 a minute before expiry.
    fn now(&self) -> SystemTime {
        match self.kind() {
            Kind::V4Header => amz_time(self.header("x-amz-date").expect("x-amz-date")),
            Kind::V4Presigned => amz_time(&self.query_param("X-Amz-Date").expect("X-Amz-Date")),
            Kind::V2Presigned => self.v2_expires() - Duration::from_secs(60),
        }
    }

    fn v2_expires(&self) -> SystemTime {
        let secs: u64 = self.query_param("Expires").expect("Expires").parse().expect("numeric Expires");
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn signed_headers(&self) -> Vec<String> {
        let list = match self.kind() {
            Kind::V4Header => {
                let auth = self.header("authorization").expect("authorization");
                let start = auth.find("SignedHeaders=").expect("SignedHeaders") + 14;
                auth[start..].split([',', ' ']).next().expect("list").to_owned()
            }
            Kind::V4Presigned => {
                self.query_param("X-Amz-SignedHeaders").expect("X-Amz-SignedHeaders").replace("%3B", ";")
            }
            Kind::V2Presigned => return Vec::new(),
        };
        list.split(';').map(str::to_owned).collect()
    }

    fn with_uri(&self, uri: String) -> Fixture {
        Fixture { uri, ..self.clone() }
    }

    fn with_header(&self, name: &str, value: String) -> Fixture {
        let mut changed = self.clone();
        for (n, v) in &mut changed.headers {
            if n == name {
                *v = value.clone();
            }
        }
        changed
    }

    fn path_and_query(&self) -> (&str, Option<&str>) {
        match self.uri.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (self.uri.as_str(), None),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    V4Header,
    V4Presigned,
    V2Presigned,
}

fn amz_time(text: &str) -> SystemTime {
    // Round-trips through the verifier's formats would hide a bug; compute it independently.
    let num = |range: std::ops::Range<usize>| -> u64 { text[range].parse().expect("digits") };
    let (year, month, day) = (num(0..4), num(4..6), num(6..8));
    let (hour, minute, second) = (num(9..11), num(11..13), num(13..15));
    assert_eq!((year, month), (2026, 11), "fixtures are from November 2026");
    // 2026-11-01T00:00:00Z is 1793491200 (`date -u -d 2026-11-01 +%s`).
    let secs = 1_793_491_200 + (day - 1) * 86_400 + hour * 3600 + minute * 60 + second;
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/client-requests")
}

fn load_all() -> Vec<Fixture> {
    let mut paths = Vec::new();
    for client in std::fs::read_dir(fixture_dir()).expect("fixture dir") {
        let client = client.expect("dir entry").path();
        if !client.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&client).expect("client dir") {
            let file = file.expect("dir entry").path();
            if file.extension().is_some_and(|e| e == "json") {
                paths.push(file);
            }
        }
    }
    paths.sort();
    assert_eq!(paths.len(), FIXTURE_COUNT, "all fixtures found");
    paths.iter().map(|p| Fixture::load(p)).collect()
}

fn verify(fixture: &Fixture, now: SystemTime) -> Result<Authenticated, AuthError> {
    auth::authenticate(&fixture.parts(), now, secret_of)
}

#[track_caller]
fn assert_mismatch(fixture: &Fixture, what: &str) {
    let result = verify(fixture, fixture.now());
    assert!(matches!(result, Err(AuthError::SignatureDoesNotMatch { .. })), "{} with {what}: {result:?}", fixture.name);
}

#[test]
fn every_fixture_verifies_with_the_right_payload() {
    let mut seen = [0usize; 4];
    for fixture in load_all() {
        let auth =
            verify(&fixture, fixture.now()).unwrap_or_else(|e| panic!("{} does not verify: {e:?}", fixture.name));
        assert_eq!(auth.access_key_id, ACCESS_KEY, "{}", fixture.name);
        let content_sha256 = fixture.header("x-amz-content-sha256");
        match fixture.kind() {
            Kind::V4Header => {
                assert_eq!(auth.version, SignatureVersion::V4Header);
                assert_eq!(auth.region.as_deref(), Some("us-east-1"));
                match (content_sha256.expect("header-signed"), &auth.payload) {
                    ("STREAMING-UNSIGNED-PAYLOAD-TRAILER", PayloadHash::StreamingUnsignedTrailer) => {
                        seen[1] += 1;
                    }
                    ("UNSIGNED-PAYLOAD", PayloadHash::Unsigned) => seen[2] += 1,
                    (claimed, PayloadHash::Sha256(digest)) => {
                        assert_eq!(claimed, hex::encode(digest), "{}", fixture.name);
                        let body = fixture.body_sha256.expect("body or its hash recorded");
                        assert_eq!(*digest, body, "{}: body hash", fixture.name);
                        seen[0] += 1;
                    }
                    (claimed, other) => panic!("{}: {claimed} gave {other:?}", fixture.name),
                }
            }
            Kind::V4Presigned => {
                assert_eq!(auth.version, SignatureVersion::V4Presigned);
                assert_eq!(auth.payload, PayloadHash::Unsigned, "{}", fixture.name);
                seen[3] += 1;
            }
            Kind::V2Presigned => {
                assert_eq!(auth.version, SignatureVersion::V2Presigned);
                assert_eq!(auth.payload, PayloadHash::Unsigned, "{}", fixture.name);
                assert_eq!(auth.region, None);
                seen[3] += 1;
            }
        }
    }
    // Signed bodies, streaming bodies, and presigned URLs are all represented.
    assert!(seen[0] >= 40 && seen[1] >= 5 && seen[3] >= 8, "{seen:?}");
}

#[test]
fn changing_the_path_breaks_every_signature() {
    for fixture in load_all() {
        let (path, query) = fixture.path_and_query();
        let rest = query.map(|q| format!("?{q}")).unwrap_or_default();
        assert_mismatch(&fixture.with_uri(format!("{path}x{rest}")), "a longer path");
        // A path that decodes differently: a `+` where a space was.
        if path.contains("%20") {
            let changed = path.replacen("%20", "%2B", 1);
            assert_mismatch(&fixture.with_uri(format!("{changed}{rest}")), "a changed key");
        }
    }
}

#[test]
fn changing_any_signed_header_breaks_the_signature() {
    for fixture in load_all() {
        for name in fixture.signed_headers() {
            let value = fixture.header(&name).unwrap_or_else(|| {
                panic!("{}: signed header {name} missing", fixture.name);
            });
            let changed = match name.as_str() {
                "x-amz-date" => {
                    // One second later, still within the skew and the credential's day.
                    let mut text = value.to_owned();
                    let last = text.pop().expect("Z");
                    let second = text.pop().expect("digit");
                    let bumped = if second == '9' { '8' } else { '9' };
                    format!("{text}{bumped}{last}")
                }
                "x-amz-content-sha256" if value.len() == 64 => {
                    let flipped = if value.ends_with('0') { "1" } else { "0" };
                    format!("{}{flipped}", &value[..63])
                }
                "x-amz-content-sha256" => continue,
                _ => format!("{value}0"),
            };
            assert_mismatch(&fixture.with_header(&name, changed), &format!("{name} changed"));
        }
    }
}

#[test]
fn changing_the_query_breaks_presigned_signatures() {
    for fixture in load_all() {
        let (path, query) = fixture.path_and_query();
        match fixture.kind() {
            Kind::V4Header => {
                if let Some(query) = query {
                    let added = format!("{path}?{query}&acl");
                    assert_mismatch(&fixture.with_uri(added), "a parameter added");
                }
            }
            Kind::V4Presigned => {
                let query = query.expect("presigned");
                let expires = fixture.query_param("X-Amz-Expires").expect("expires");
                let shorter = format!("X-Amz-Expires={}", expires.parse::<u64>().expect("n") - 1);
                let changed = query.replace(&format!("X-Amz-Expires={expires}"), &shorter);
                assert_mismatch(&fixture.with_uri(format!("{path}?{changed}")), "expires");
                let added = format!("{path}?{query}&response-content-type=text%2Fhtml");
                assert_mismatch(&fixture.with_uri(added), "a response override added");
            }
            Kind::V2Presigned => {
                let query = query.expect("presigned");
                let added = format!("{path}?{query}&response-content-type=text%2Fhtml");
                assert_mismatch(&fixture.with_uri(added), "a sub-resource added");
                let expires = fixture.query_param("Expires").expect("Expires");
                let later = (expires.parse::<u64>().expect("n") + 1).to_string();
                let changed = query.replace(&format!("Expires={expires}"), &format!("Expires={later}"));
                assert_mismatch(&fixture.with_uri(format!("{path}?{changed}")), "Expires");
            }
        }
    }
}

#[test]
fn equivalent_spellings_still_verify() {
    let mut respelled = 0;
    for fixture in load_all() {
        // Whitespace runs, tabs and surrounding blanks in signed headers fold away.
        for name in fixture.signed_headers() {
            let value = fixture.header(&name).expect("signed header present");
            if value.contains(' ') && name != "host" {
                let spaced = format!("  {}\t", value.replace(' ', " \t  "));
                let changed = fixture.with_header(&name, spaced);
                verify(&changed, changed.now())
                    .unwrap_or_else(|e| panic!("{} with {name} respaced: {e:?}", fixture.name));
                respelled += 1;
            }
        }
        // For SigV4, escaping is canonicalised: `!'()*` unescaped and lowercase hex verify too.
        if fixture.kind() != Kind::V2Presigned && fixture.uri.contains("%21") {
            let (path, query) = fixture.path_and_query();
            let mut loose = path.to_owned();
            for (escaped, raw) in [("%21", "!"), ("%27", "'"), ("%28", "("), ("%29", ")"), ("%2A", "*")] {
                loose = loose.replace(escaped, raw);
            }
            let loose = loose.replace("%C3%BC", "%c3%bc");
            let rest = query.map(|q| format!("?{q}")).unwrap_or_default();
            let changed = fixture.with_uri(format!("{loose}{rest}"));
            verify(&changed, changed.now())
                .unwrap_or_else(|e| panic!("{} with the path respelled: {e:?}", fixture.name));
            respelled += 1;
        }
    }
    assert!(respelled >= 20, "only {respelled} respellings tried");
}

#[test]
fn unknown_access_key_is_refused() {
    for fixture in load_all() {
        let result = auth::authenticate(&fixture.parts(), fixture.now(), |_| None);
        assert_eq!(result, Err(AuthError::InvalidAccessKeyId), "{}", fixture.name);
    }
}

#[test]
fn wrong_secret_is_refused() {
    for fixture in load_all() {
        let other = |_: &str| Some(SECRET.replace('+', "/"));
        let result = auth::authenticate(&fixture.parts(), fixture.now(), other);
        assert!(matches!(result, Err(AuthError::SignatureDoesNotMatch { .. })), "{}: {result:?}", fixture.name);
    }
}

#[test]
fn time_limits_are_enforced() {
    for fixture in load_all() {
        let now = fixture.now();
        let (late, early) = (now + SIXTEEN_MINUTES, now - SIXTEEN_MINUTES);
        match fixture.kind() {
            Kind::V4Header => {
                assert_eq!(verify(&fixture, late), Err(AuthError::RequestTimeTooSkewed));
                assert_eq!(verify(&fixture, early), Err(AuthError::RequestTimeTooSkewed));
                // Fourteen minutes either way is fine.
                let margin = Duration::from_secs(14 * 60);
                assert!(verify(&fixture, now + margin).is_ok(), "{}", fixture.name);
                assert!(verify(&fixture, now - margin).is_ok(), "{}", fixture.name);
            }
            Kind::V4Presigned => {
                let expires: u64 =
                    fixture.query_param("X-Amz-Expires").expect("X-Amz-Expires").parse().expect("numeric");
                let last_valid = now + Duration::from_secs(expires);
                assert!(verify(&fixture, last_valid).is_ok(), "{}", fixture.name);
                assert_eq!(
                    verify(&fixture, last_valid + Duration::from_secs(1)),
                    Err(AuthError::ExpiredPresignedUrl),
                    "{}",
                    fixture.name
                );
                assert_eq!(verify(&fixture, early), Err(AuthError::NotYetValid));
            }
            Kind::V2Presigned => {
                let expires = fixture.v2_expires();
                assert!(verify(&fixture, expires).is_ok(), "{}", fixture.name);
                assert_eq!(
                    verify(&fixture, expires + Duration::from_secs(1)),
                    Err(AuthError::ExpiredPresignedUrl),
                    "{}",
                    fixture.name
                );
            }
        }
    }
}

#[test]
fn signature_stripped_is_anonymous_and_mixed_is_refused() {
    for fixture in load_all() {
        let (path, query) = fixture.path_and_query();
        match fixture.kind() {
            Kind::V4Header => {
                let mut anonymous = fixture.clone();
                anonymous.headers.retain(|(n, _)| n != "authorization");
                assert_eq!(verify(&anonymous, fixture.now()), Err(AuthError::MissingAuth));
                let sep = if query.is_some() { '&' } else { '?' };
                let mixed = fixture.with_uri(format!("{}{sep}X-Amz-Signature=00", fixture.uri));
                assert_eq!(verify(&mixed, fixture.now()), Err(AuthError::ConflictingAuth));
            }
            Kind::V4Presigned | Kind::V2Presigned => {
                let kept: Vec<&str> = query
                    .expect("presigned")
                    .split('&')
                    .filter(|p| {
                        !p.starts_with("X-Amz-")
                            && !p.starts_with("AWSAccessKeyId=")
                            && !p.starts_with("Signature=")
                            && !p.starts_with("Expires=")
                    })
                    .collect();
                let anonymous = fixture.with_uri(format!("{path}?{}", kept.join("&")));
                assert_eq!(verify(&anonymous, fixture.now()), Err(AuthError::MissingAuth));
            }
        }
    }
}
