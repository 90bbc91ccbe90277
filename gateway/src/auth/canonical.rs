//! The canonical forms of the request target and headers that signatures cover.

use http::HeaderMap;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, percent_encode};

/// Everything but the unreserved characters of RFC 3986 is percent-encoded.
const ENCODE_ALL_BUT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// One query parameter, percent-decoded (`+` read as a space, as form decoding does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueryParam {
    /// The decoded name.
    pub name: Vec<u8>,
    /// The decoded value; empty both for `name=` and for a bare `name`.
    pub value: Vec<u8>,
    /// The name exactly as it was sent.
    pub raw_name: String,
    /// The value exactly as it was sent, `None` for a bare `name` without `=`.
    pub raw_value: Option<String>,
}

/// Percent-encodes bytes the SigV4 way: all but `A-Za-z0-9-._~`, uppercase hex.
pub(crate) fn uri_encode(bytes: &[u8]) -> String {
    percent_encode(bytes, ENCODE_ALL_BUT_UNRESERVED).to_string()
}

/// Decodes `%XX` escapes; malformed escapes stay literal.
fn uri_decode(text: &str) -> Vec<u8> {
    percent_decode(text.as_bytes()).collect()
}

/// Decodes a query component: `+` is a space, then `%XX` escapes.
fn form_decode(text: &str) -> Vec<u8> {
    let plus_as_space: Vec<u8> = text.bytes().map(|b| if b == b'+' { b' ' } else { b }).collect();
    percent_decode(&plus_as_space).collect()
}

/// The canonical URI of a raw (still encoded) request path: each `/`-separated segment is
/// decoded and re-encoded, so clients that escape more or fewer characters agree, without
/// double encoding and without resolving `.`, `..` or empty segments as S3 does not either.
pub(crate) fn canonical_uri(raw_path: &str) -> String {
    if raw_path.is_empty() {
        return "/".to_owned();
    }
    raw_path.split('/').map(|segment| uri_encode(&uri_decode(segment))).collect::<Vec<_>>().join("/")
}

/// Splits a raw query string into decoded parameters, skipping empty `&&` pieces.
pub(crate) fn parse_query(raw_query: &str) -> Vec<QueryParam> {
    raw_query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (raw_name, raw_value) = match piece.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (piece, None),
            };
            QueryParam {
                name: form_decode(raw_name),
                value: raw_value.map(form_decode).unwrap_or_default(),
                raw_name: raw_name.to_owned(),
                raw_value: raw_value.map(str::to_owned),
            }
        })
        .collect()
}

/// The canonical query string: every parameter but those named `exclude`, each name and value
/// re-encoded, sorted by encoded name then encoded value, joined as `name=value&...`.
pub(crate) fn canonical_query(params: &[QueryParam], exclude: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .filter(|p| exclude.is_none_or(|name| p.name != name.as_bytes()))
        .map(|p| (uri_encode(&p.name), uri_encode(&p.value)))
        .collect();
    pairs.sort_unstable();
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// Appends a header value with leading and trailing whitespace removed and every inner run of
/// spaces and tabs folded to one space, as the AWS SDKs canonicalise it before signing.
fn push_folded(value: &[u8], out: &mut Vec<u8>) {
    let mut words = value.split(|&b| b == b' ' || b == b'\t').filter(|word| !word.is_empty());
    if let Some(first) = words.next() {
        out.extend_from_slice(first);
    }
    for word in words {
        out.push(b' ');
        out.extend_from_slice(word);
    }
}

/// The canonical value of a header: all its values folded and joined with `,`, in the order
/// received; empty when the header is absent.
pub(crate) fn canonical_header_value(headers: &HeaderMap, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, value) in headers.get_all(name).iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_folded(value.as_bytes(), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn canonical_uri_reencodes_without_double_encoding() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(
            canonical_uri("/bkt/docs/a%20b/%C3%BCn%C3%AF%20%E2%82%AC%2Bx%3Dy%26z%21%27%28%29%2A.txt"),
            "/bkt/docs/a%20b/%C3%BCn%C3%AF%20%E2%82%AC%2Bx%3Dy%26z%21%27%28%29%2A.txt"
        );
        // Under-escaped and lowercase escapes end up in the one canonical spelling.
        assert_eq!(canonical_uri("/bkt/a!b%2a+c%7e"), "/bkt/a%21b%2A%2Bc~");
        assert_eq!(canonical_uri("/bkt/a%25b"), "/bkt/a%25b");
        // No path normalisation, and an escaped slash stays escaped.
        assert_eq!(canonical_uri("/bkt/a//b/./c/../d"), "/bkt/a//b/./c/../d");
        assert_eq!(canonical_uri("/bkt/a%2Fb"), "/bkt/a%2Fb");
        // A malformed escape is data, not an error.
        assert_eq!(canonical_uri("/bkt/%zz%4"), "/bkt/%25zz%254");
    }

    #[test]
    fn canonical_query_sorts_and_reencodes() {
        let params = parse_query("prefix=a%2Bb&list-type=2&&uploads&b=2&b=1&x=a+b&sp=%7e%20");
        assert_eq!(canonical_query(&params, None), "b=1&b=2&list-type=2&prefix=a%2Bb&sp=~%20&uploads=&x=a%20b");
        let params = parse_query("X-Amz-Signature=abc&a=1");
        assert_eq!(canonical_query(&params, Some("X-Amz-Signature")), "a=1");
        assert_eq!(canonical_query(&parse_query(""), None), "");
    }

    #[test]
    fn parse_query_keeps_raw_forms() {
        let params = parse_query("uploads&partNumber=1&k=a%2Fb");
        assert_eq!(params.len(), 3);
        assert_eq!(params[0].raw_value, None);
        assert_eq!(params[0].value, b"");
        assert_eq!(params[1].raw_value.as_deref(), Some("1"));
        assert_eq!(params[2].value, b"a/b");
        assert_eq!(params[2].raw_value.as_deref(), Some("a%2Fb"));
    }

    #[test]
    fn header_values_fold_whitespace_and_join() {
        let mut headers = HeaderMap::new();
        headers.append("x-amz-meta-a", HeaderValue::from_static("  a  b \t c  "));
        headers.append("x-amz-meta-a", HeaderValue::from_static("d\te"));
        headers.append("x-amz-meta-b", HeaderValue::from_static(""));
        assert_eq!(canonical_header_value(&headers, "x-amz-meta-a"), b"a b c,d e");
        assert_eq!(canonical_header_value(&headers, "x-amz-meta-b"), b"");
        assert_eq!(canonical_header_value(&headers, "absent"), b"");
    }
}
