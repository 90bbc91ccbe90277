//! Conditional requests: `If-Match`, `If-None-Match`, `If-Modified-Since` and
//! `If-Unmodified-Since` (and their `x-amz-copy-source-` forms), evaluated as S3 does.

use cairn_storage_node::manifest::ObjectVersion;

use super::S3Request;
use crate::auth::time::parse_http_date;

/// What the conditions of a request decide.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go on with the request.
    Proceed,
    /// 304 Not Modified (reads only).
    NotModified,
    /// 412 Precondition Failed.
    PreconditionFailed,
}

/// Whether an `If-Match` / `If-None-Match` list names `etag` (`*` names any).
fn etag_listed(list: &str, etag: &str) -> bool {
    list.split(',').map(|t| t.trim().trim_start_matches("W/").trim_matches('"')).any(|t| t == "*" || t == etag)
}

/// The conditions a request carries, read from headers with `prefix` (`""`, or
/// `x-amz-copy-source-` for the source of a copy).
pub struct Conditions<'a> {
    if_match: Option<&'a str>,
    if_none_match: Option<&'a str>,
    if_modified_since: Option<i64>,
    if_unmodified_since: Option<i64>,
}

impl<'a> Conditions<'a> {
    /// Reads the conditions of `request` under `prefix`; unparseable dates are ignored, as S3
    /// ignores them.
    pub fn of(request: &'a S3Request, prefix: &str) -> Self {
        let header = |name: &str| request.header(&format!("{prefix}{name}"));
        Self {
            if_match: header("if-match"),
            if_none_match: header("if-none-match"),
            if_modified_since: header("if-modified-since").and_then(parse_http_date),
            if_unmodified_since: header("if-unmodified-since").and_then(parse_http_date),
        }
    }

    /// Evaluates the conditions against the current version (`None`: the key is absent),
    /// with S3's precedence: a true `If-Match` overrides a false `If-Unmodified-Since`, a
    /// false `If-None-Match` overrides a true `If-Modified-Since`.
    pub fn evaluate(&self, current: Option<&ObjectVersion>) -> Verdict {
        let etag = current.map(|v| v.etag.as_str());
        // Last-Modified has one-second precision on the wire.
        let modified = current.map(|v| (v.last_modified_ms / 1000) as i64);
        match self.if_match {
            Some(list) if !etag.is_some_and(|etag| etag_listed(list, etag)) => return Verdict::PreconditionFailed,
            Some(_) => {}
            None => {
                if let (Some(since), Some(modified)) = (self.if_unmodified_since, modified)
                    && modified > since
                {
                    return Verdict::PreconditionFailed;
                }
            }
        }
        match self.if_none_match {
            Some(list) if etag.is_some_and(|etag| etag_listed(list, etag)) => Verdict::NotModified,
            Some(_) => Verdict::Proceed,
            None => match (self.if_modified_since, modified) {
                (Some(since), Some(modified)) if modified <= since => Verdict::NotModified,
                _ => Verdict::Proceed,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(etag: &str, secs: u64) -> ObjectVersion {
        ObjectVersion {
            format: 1,
            version_id: uuid::Uuid::nil(),
            size: 0,
            etag: etag.into(),
            last_modified_ms: secs * 1000 + 400,
            content_type: None,
            headers: vec![],
            user_metadata: vec![],
            chunk_size: 1,
            parts: cairn_storage_node::manifest::PartList::Inline(vec![]),
            checksum: None,
            acl: Default::default(),
            tags: vec![],
        }
    }

    fn conditions(
        if_match: Option<&'static str>,
        if_none_match: Option<&'static str>,
        modified_since: Option<i64>,
        unmodified_since: Option<i64>,
    ) -> Conditions<'static> {
        Conditions { if_match, if_none_match, if_modified_since: modified_since, if_unmodified_since: unmodified_since }
    }

    #[test]
    fn precedence_follows_s3() {
        let v = version("abc", 1000);
        let eval = |c: Conditions| c.evaluate(Some(&v));
        assert_eq!(eval(conditions(Some("\"abc\""), None, None, None)), Verdict::Proceed);
        assert_eq!(eval(conditions(Some("\"other\", \"abc\""), None, None, None)), Verdict::Proceed);
        assert_eq!(eval(conditions(Some("*"), None, None, None)), Verdict::Proceed);
        assert_eq!(eval(conditions(Some("\"x\""), None, None, None)), Verdict::PreconditionFailed);
        // If-Match true wins over If-Unmodified-Since false.
        assert_eq!(eval(conditions(Some("abc"), None, None, Some(500))), Verdict::Proceed);
        assert_eq!(eval(conditions(None, None, None, Some(500))), Verdict::PreconditionFailed);
        assert_eq!(eval(conditions(None, None, None, Some(1000))), Verdict::Proceed);
        assert_eq!(eval(conditions(None, Some("\"abc\""), None, None)), Verdict::NotModified);
        // If-None-Match false wins over If-Modified-Since true.
        assert_eq!(eval(conditions(None, Some("\"x\""), Some(2000), None)), Verdict::Proceed);
        assert_eq!(eval(conditions(None, None, Some(1000), None)), Verdict::NotModified);
        assert_eq!(eval(conditions(None, None, Some(999), None)), Verdict::Proceed);
        // If-Match failing comes before If-None-Match.
        assert_eq!(eval(conditions(Some("x"), Some("abc"), None, None)), Verdict::PreconditionFailed);
    }

    #[test]
    fn absent_keys() {
        assert_eq!(conditions(Some("*"), None, None, None).evaluate(None), Verdict::PreconditionFailed);
        assert_eq!(conditions(None, Some("*"), None, None).evaluate(None), Verdict::Proceed);
        assert_eq!(conditions(None, None, Some(1), Some(1)).evaluate(None), Verdict::Proceed);
    }
}
