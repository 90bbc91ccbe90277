//! Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use cairn_storage_node::control::{
    BucketChange, BucketInfo, CannedAcl, ClusterState, Command, CommandResult, Consistency,
};
use cairn_storage_node::manifest::DEFAULT_INDEX_SHARDS;
use http::StatusCode;
use uuid::Uuid;

use super::access::{Access, check_signed, requested_acl, resolve_bucket};
use super::error::S3Error;
use super::list::list_page;
use super::xml::{DECLARATION, NAMESPACE, XmlWriter};
use super::{Gateway, S3Request, set_header, xml_response};
use crate::timefmt::{iso8601, now_ms};

/// The region whose CreateBucket answers 200 for a bucket the caller already owns.
const LEGACY_REGION: &str = "us-east-1";

/// Whether `name` follows S3's bucket naming rules.
pub fn is_valid_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
        && !name.contains(".-")
        && !name.contains("-.")
        && name.parse::<std::net::Ipv4Addr>().is_err()
        && !name.starts_with("xn--")
        && !name.ends_with("-s3alias")
}

/// Most buckets one ListBuckets page returns when `max-buckets` is given.
pub const MAX_LIST_BUCKETS: usize = 10_000;

/// ListBuckets: the buckets the requester owns or was granted rights on, optionally by prefix
/// and in pages.
pub fn list_buckets(gateway: &Gateway, request: &S3Request) -> Result<Response, S3Error> {
    check_signed(request)?;
    let query = |name: &str| request.query.get(name).map(String::as_str);
    let prefix = query("prefix").unwrap_or("");
    let max = match query("max-buckets") {
        None => usize::MAX,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIST_BUCKETS).contains(n))
            .ok_or_else(|| S3Error::InvalidArgument(format!("max-buckets must be 1..={MAX_LIST_BUCKETS}")))?,
    };
    // The token is the hex of the last name listed.
    let after = query("continuation-token")
        .map(|t| {
            hex::decode(t)
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok())
                .ok_or_else(|| S3Error::InvalidArgument("The continuation token provided is incorrect".into()))
        })
        .transpose()?;
    // Every bucket lives in this cluster's one region.
    let in_region = query("bucket-region").is_none_or(|r| r == gateway.config.region);
    let state = gateway.state();
    let owner = &request.auth.access_key_id;
    let mut buckets = state
        .buckets
        .values()
        .filter(|b| in_region && !b.permissions_of(owner).is_empty() && b.name.starts_with(prefix))
        .filter(|b| after.as_ref().is_none_or(|after| b.name > *after));
    let page: Vec<_> = buckets.by_ref().take(max).collect();
    let more = buckets.next().is_some();
    let mut xml = XmlWriter::new("ListAllMyBucketsResult");
    xml.principal("Owner", owner);
    xml.open("Buckets");
    for bucket in &page {
        xml.open("Bucket")
            .element("Name", &bucket.name)
            .element("CreationDate", &iso8601(bucket.created_ms))
            .element("BucketRegion", &gateway.config.region)
            .close("Bucket");
    }
    xml.close("Buckets");
    if let (true, Some(last)) = (more, page.last()) {
        xml.element("ContinuationToken", &hex::encode(&last.name));
    }
    if !prefix.is_empty() {
        xml.element("Prefix", prefix);
    }
    Ok(xml_response(xml.finish("ListAllMyBucketsResult")))
}

/// The header that chooses a bucket's consistency level at creation and reports it on HEAD.
pub const CONSISTENCY_HEADER: &str = "x-cairn-consistency";

/// CreateBucket: one replicated command, so concurrent creates yield one bucket.
pub async fn create_bucket(gateway: &Arc<Gateway>, request: &S3Request) -> Result<Response, S3Error> {
    let name = request.bucket.clone().unwrap_or_default();
    if !is_valid_bucket_name(&name) {
        return Err(S3Error::InvalidBucketName);
    }
    check_signed(request)?;
    let acl = requested_acl(request)?;
    let consistency = match request.header(CONSISTENCY_HEADER) {
        None => Consistency::default(),
        Some(name) => Consistency::parse(name).ok_or_else(|| {
            S3Error::InvalidArgument(format!("{CONSISTENCY_HEADER} must be one, quorum or all, not {name:?}"))
        })?,
    };
    match create(gateway, &name, &request.auth.access_key_id, consistency, acl).await {
        // Only us-east-1 lets an owner create its bucket again.
        Err(S3Error::BucketAlreadyOwnedByYou) if gateway.config.region == LEGACY_REGION => {}
        outcome => outcome?,
    }
    let mut response = StatusCode::OK.into_response();
    set_header(&mut response, "location", &format!("/{name}"));
    Ok(response)
}

/// Creates bucket `name` owned by key `owner` (S3's CreateBucket and the admin API).
pub async fn create(
    gateway: &Gateway,
    name: &str,
    owner: &str,
    consistency: Consistency,
    acl: CannedAcl,
) -> Result<(), S3Error> {
    if !is_valid_bucket_name(name) {
        return Err(S3Error::InvalidBucketName);
    }
    let command = Command::CreateBucket {
        name: name.to_owned(),
        bucket_id: Uuid::now_v7(),
        owner_key: owner.to_owned(),
        consistency,
        index_shards: DEFAULT_INDEX_SHARDS,
        created_ms: now_ms(),
        acl,
    };
    let result =
        gateway.replication.cluster().command(&command, |s| s.buckets.contains_key(name)).await.map_err(|e| {
            tracing::warn!(error = %e, "create bucket failed");
            S3Error::ServiceUnavailable
        })?;
    match result {
        CommandResult::Ok => Ok(()),
        CommandResult::BucketAlreadyExists { owner_key } if owner_key == owner => Err(S3Error::BucketAlreadyOwnedByYou),
        CommandResult::BucketAlreadyExists { .. } => Err(S3Error::BucketAlreadyExists),
        other => {
            tracing::warn!(?other, "unexpected create bucket result");
            Err(S3Error::InternalError)
        }
    }
}

/// HeadBucket.
pub fn head_bucket(gateway: &Gateway, request: &S3Request) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request, Access::Read)?;
    let mut response = StatusCode::OK.into_response();
    set_header(&mut response, "x-amz-bucket-region", &gateway.config.region);
    set_header(&mut response, CONSISTENCY_HEADER, bucket.consistency.name());
    Ok(response)
}

/// GetBucketLocation.
pub fn get_bucket_location(gateway: &Gateway, request: &S3Request) -> Result<Response, S3Error> {
    resolve_bucket(gateway, request, Access::Read)?;
    let region = &gateway.config.region;
    // S3 answers an empty constraint for us-east-1.
    let constraint = if region == LEGACY_REGION { String::new() } else { region.clone() };
    let mut body = String::from(DECLARATION);
    body.push_str(&format!("<LocationConstraint xmlns=\"{NAMESPACE}\">"));
    super::xml::escape_into(&mut body, &constraint);
    body.push_str("</LocationConstraint>");
    Ok(xml_response(body))
}

/// Changes one setting of a bucket through the control plane and waits until this gateway
/// sees it applied.
pub async fn update_bucket(gateway: &Gateway, bucket: &BucketInfo, change: BucketChange) -> Result<(), S3Error> {
    let command =
        Command::UpdateBucket { name: bucket.name.clone(), bucket_id: bucket.bucket_id, change: change.clone() };
    let settled = |s: &ClusterState| {
        s.buckets.get(&bucket.name).is_none_or(|b| {
            let mut expected = b.clone();
            change.apply_to(&mut expected);
            b.bucket_id != bucket.bucket_id || *b == expected
        })
    };
    let result = gateway.replication.cluster().command(&command, settled).await.map_err(|e| {
        tracing::warn!(error = %e, "bucket update failed");
        S3Error::ServiceUnavailable
    })?;
    match result {
        CommandResult::Ok => Ok(()),
        CommandResult::NoSuchBucket => Err(S3Error::NoSuchBucket),
        CommandResult::Rejected(reason) => Err(S3Error::InvalidArgument(reason)),
        other => {
            tracing::warn!(?other, "unexpected bucket update result");
            Err(S3Error::InternalError)
        }
    }
}

/// GetBucketVersioning: versioning was never enabled, which S3 answers with an empty
/// configuration.
pub fn get_bucket_versioning(gateway: &Gateway, request: &S3Request) -> Result<Response, S3Error> {
    resolve_bucket(gateway, request, Access::Owner)?;
    Ok(xml_response(XmlWriter::new("VersioningConfiguration").finish("VersioningConfiguration")))
}

/// DeleteBucket: only an empty bucket.
pub async fn delete_bucket(gateway: &Arc<Gateway>, request: &S3Request) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request, Access::Owner)?;
    delete_empty(gateway, &bucket).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Deletes `bucket` if it holds no object (S3's DeleteBucket and the admin API).
pub async fn delete_empty(gateway: &Gateway, bucket: &BucketInfo) -> Result<(), S3Error> {
    let page = list_page(gateway, bucket, "", None, None, 1).await?;
    if !page.entries.is_empty() {
        return Err(S3Error::BucketNotEmpty);
    }
    let command = Command::DeleteBucket { name: bucket.name.clone(), bucket_id: bucket.bucket_id };
    let settled = |s: &ClusterState| s.buckets.get(&bucket.name).is_none_or(|b| b.bucket_id != bucket.bucket_id);
    let result = gateway.replication.cluster().command(&command, settled).await.map_err(|e| {
        tracing::warn!(error = %e, "delete bucket failed");
        S3Error::ServiceUnavailable
    })?;
    match result {
        CommandResult::Ok => Ok(()),
        CommandResult::NoSuchBucket => Err(S3Error::NoSuchBucket),
        other => {
            tracing::warn!(?other, "unexpected delete bucket result");
            Err(S3Error::InternalError)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        for ok in ["abc", "my-bucket.2", "a".repeat(63).as_str()] {
            assert!(is_valid_bucket_name(ok), "{ok}");
        }
        for bad in ["ab", "Abc", "-abc", "abc-", "a..b", "a.-b", "192.168.1.1", "xn--abc", "a_b", &"a".repeat(64)] {
            assert!(!is_valid_bucket_name(bad), "{bad}");
        }
    }
}
