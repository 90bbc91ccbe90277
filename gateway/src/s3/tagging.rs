//! Object tagging: up to ten key/value tags per object, set at upload (`x-amz-tagging`) or with
//! PutObjectTagging, read with GetObjectTagging, counted on GET (`x-amz-tagging-count`).

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use cairn_storage_node::control::BucketChange;
use http::StatusCode;
use serde::Deserialize;

use super::access::{Access, resolve_bucket};
use super::bucket::update_bucket;
use super::error::S3Error;
use super::get_object::read_version;
use super::put_object::rewrite_current_version;
use super::upload::{BodyChecksums, read_small_body};
use super::xml::{MAX_XML_BODY_BYTES, XmlWriter};
use super::{Gateway, S3Request, xml_response};

/// Most tags on one object.
pub const MAX_OBJECT_TAGS: usize = 10;
/// Most tags on one bucket.
pub const MAX_BUCKET_TAGS: usize = 50;
/// Longest tag key, in characters.
pub const MAX_TAG_KEY_CHARS: usize = 128;
/// Longest tag value, in characters.
pub const MAX_TAG_VALUE_CHARS: usize = 256;

/// Checks an object's tag set against S3's rules.
pub fn validate(tags: &[(String, String)]) -> Result<(), S3Error> {
    if tags.len() > MAX_OBJECT_TAGS {
        return Err(S3Error::InvalidTag("Object tags cannot be greater than 10".into()));
    }
    validate_pairs(tags)
}

fn validate_pairs(tags: &[(String, String)]) -> Result<(), S3Error> {
    for (i, (key, value)) in tags.iter().enumerate() {
        if key.is_empty() || key.chars().count() > MAX_TAG_KEY_CHARS {
            return Err(S3Error::InvalidTag("The TagKey you have provided is invalid".into()));
        }
        if value.chars().count() > MAX_TAG_VALUE_CHARS {
            return Err(S3Error::InvalidTag("The TagValue you have provided is invalid".into()));
        }
        if tags[..i].iter().any(|(other, _)| other == key) {
            return Err(S3Error::InvalidTag("Cannot provide multiple Tags with the same key".into()));
        }
    }
    Ok(())
}

/// The tags of an `x-amz-tagging` header (`k1=v1&k2=v2`, URL-encoded).
pub fn tags_from_header(request: &S3Request) -> Result<Vec<(String, String)>, S3Error> {
    let Some(header) = request.header("x-amz-tagging") else { return Ok(Vec::new()) };
    let tags: Vec<(String, String)> = super::form_pairs(header).collect();
    validate(&tags)?;
    Ok(tags)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TaggingDocument {
    tag_set: TagSet,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagSet {
    #[serde(default)]
    tag: Vec<TagElement>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagElement {
    key: String,
    #[serde(default)]
    value: String,
}

/// Parses a `Tagging` request document.
async fn tags_from_body(request: &S3Request, body: Body) -> Result<Vec<(String, String)>, S3Error> {
    let body = read_small_body(request, body, MAX_XML_BODY_BYTES, BodyChecksums::All).await?;
    let document: TaggingDocument = super::xml::parse(&body)?;
    Ok(document.tag_set.tag.into_iter().map(|t| (t.key, t.value)).collect())
}

/// The `Tagging` response document of a tag set.
fn tagging_xml(tags: &[(String, String)]) -> Response {
    let mut xml = XmlWriter::new("Tagging");
    xml.open("TagSet");
    for (key, value) in tags {
        xml.open("Tag").element("Key", key).element("Value", value).close("Tag");
    }
    xml.close("TagSet");
    xml_response(xml.finish("Tagging"))
}

/// GetBucketTagging.
pub fn get_bucket_tagging(gateway: &Gateway, request: &S3Request) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request, Access::Owner)?;
    if bucket.tags.is_empty() {
        return Err(S3Error::NoSuchTagSet);
    }
    Ok(tagging_xml(&bucket.tags))
}

/// PutBucketTagging.
pub async fn put_bucket_tagging(gateway: &Gateway, request: &S3Request, body: Body) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request, Access::Owner)?;
    let tags = tags_from_body(request, body).await?;
    if tags.len() > MAX_BUCKET_TAGS {
        return Err(S3Error::InvalidTag("Bucket tag count cannot be greater than 50".into()));
    }
    validate_pairs(&tags)?;
    update_bucket(gateway, &bucket, BucketChange::Tags(tags)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// DeleteBucketTagging.
pub async fn delete_bucket_tagging(gateway: &Gateway, request: &S3Request) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request, Access::Owner)?;
    update_bucket(gateway, &bucket, BucketChange::Tags(Vec::new())).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// GetObjectTagging.
pub async fn get_object_tagging(gateway: &Gateway, request: &S3Request) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request, Access::Owner)?;
    let key = request.key.as_deref().ok_or(S3Error::NoSuchKey)?;
    let version = read_version(gateway, &bucket, key).await?.ok_or(S3Error::NoSuchKey)?;
    Ok(tagging_xml(&version.tags))
}

/// PutObjectTagging (`body`) and DeleteObjectTagging (`None`): rewrites the current
/// version's row with the new tags.
pub async fn put_object_tagging(
    gateway: &Gateway,
    request: &S3Request,
    body: Option<Body>,
) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request, Access::Owner)?;
    let key = request.key.as_deref().ok_or(S3Error::NoSuchKey)?;
    let tags = match body {
        Some(body) => {
            let tags = tags_from_body(request, body).await?;
            validate(&tags)?;
            tags
        }
        None => Vec::new(),
    };
    rewrite_current_version(gateway, &bucket, key, |version| version.tags = tags).await?;
    Ok(if request.method == http::Method::DELETE {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::OK.into_response()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn tag_sets_follow_s3_rules() {
        assert!(validate(&tags(&[("a", ""), ("b", "x")])).is_ok());
        assert!(validate(&tags(&[("a", "1"), ("a", "2")])).is_err());
        assert!(validate(&tags(&[("", "1")])).is_err());
        assert!(validate(&[("k".repeat(129), String::new())]).is_err());
        assert!(validate(&[("k".into(), "v".repeat(257))]).is_err());
        let eleven: Vec<(String, String)> = (0..11).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(validate(&eleven).is_err());
    }
}
