//! Who may do what: a bucket's owner (and keys granted `owner` through the admin API) may do
//! anything with it and its objects; keys granted `read` or `write` may list and read, or
//! write and delete; canned ACLs open reading (and, for `public-read-write` buckets, writing)
//! to other keys or to anonymous requests. Also GetBucketAcl / PutBucketAcl / GetObjectAcl /
//! PutObjectAcl.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use cairn_storage_node::control::{BucketChange, BucketInfo, CannedAcl, Permissions};
use cairn_storage_node::manifest::ObjectVersion;
use http::StatusCode;

use super::bucket::update_bucket;
use super::error::S3Error;
use super::get_object::read_version;
use super::put_object::rewrite_current_version;
use super::xml::XmlWriter;
use super::{Gateway, S3Request, xml_response};

/// What a request needs of a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Only the owner (delete the bucket, change its ACL).
    Owner,
    /// List the bucket.
    Read,
    /// Create, overwrite and delete objects.
    Write,
    /// Read an object: decided by the object's own ACL once it is read.
    ReadObject,
}

/// What the requester's key was granted on the bucket (nothing for anonymous requests).
fn permissions(bucket: &BucketInfo, request: &S3Request) -> Permissions {
    if request.auth.is_anonymous() {
        Permissions::default()
    } else {
        bucket.permissions_of(&request.auth.access_key_id)
    }
}

fn denied() -> S3Error {
    S3Error::AccessDenied("Access Denied".into())
}

/// The bucket a request names, which must exist and allow `access` to the requester.
pub fn resolve_bucket(gateway: &Gateway, request: &S3Request, access: Access) -> Result<BucketInfo, S3Error> {
    let name = request.bucket.as_deref().ok_or(S3Error::NoSuchBucket)?;
    let bucket = gateway.replication.cluster().bucket(name).ok_or(S3Error::NoSuchBucket)?;
    if request.header("x-amz-expected-bucket-owner").is_some_and(|owner| owner != bucket.owner_key) {
        return Err(denied());
    }
    let anonymous = request.auth.is_anonymous();
    let granted = permissions(&bucket, request);
    let allowed = match access {
        Access::Owner => granted.owner,
        Access::Read => granted.read || bucket.acl.grants_read(anonymous),
        Access::Write => granted.write || bucket.acl.grants_write(),
        Access::ReadObject => true,
    };
    if allowed { Ok(bucket) } else { Err(denied()) }
}

/// The version a read returns, if the requester may read it. Whether a key exists is told
/// only to those who may list the bucket: others get AccessDenied either way.
pub fn readable_version(
    bucket: &BucketInfo,
    version: Option<ObjectVersion>,
    request: &S3Request,
) -> Result<ObjectVersion, S3Error> {
    let anonymous = request.auth.is_anonymous();
    let reader = permissions(bucket, request).read;
    match version {
        Some(version) if reader || version.acl.grants_read(anonymous) => Ok(version),
        None if reader || bucket.acl.grants_read(anonymous) => Err(S3Error::NoSuchKey),
        _ => Err(denied()),
    }
}

/// Refuses an object write that asks for an ACL other than `private` from a requester that
/// does not own the bucket: a key granted `write` (or a `public-read-write` bucket) may store
/// objects, not publish them.
pub fn check_object_acl(bucket: &BucketInfo, request: &S3Request, acl: CannedAcl) -> Result<(), S3Error> {
    if acl == CannedAcl::Private || permissions(bucket, request).owner { Ok(()) } else { Err(denied()) }
}

/// Checks that the request is signed (anonymous requests may not create buckets or list them).
pub fn check_signed(request: &S3Request) -> Result<(), S3Error> {
    if request.auth.is_anonymous() { Err(denied()) } else { Ok(()) }
}

/// The canned ACL a request asks for (`x-amz-acl`, default `private`). Explicit grants
/// (`x-amz-grant-*`) are refused rather than ignored.
pub fn requested_acl(request: &S3Request) -> Result<CannedAcl, S3Error> {
    if let Some(name) = request.headers.keys().map(|n| n.as_str()).find(|n| n.starts_with("x-amz-grant-")) {
        return Err(S3Error::NotImplemented(format!("the {name} header (use a canned x-amz-acl)")));
    }
    match request.header("x-amz-acl").map(str::trim) {
        None => Ok(CannedAcl::Private),
        // The bucket owner always has full control of every object in Cairn.
        Some("bucket-owner-full-control" | "bucket-owner-read") => Ok(CannedAcl::Private),
        Some(name @ ("aws-exec-read" | "log-delivery-write")) => {
            Err(S3Error::NotImplemented(format!("the {name} canned ACL")))
        }
        Some(name) => {
            CannedAcl::from_name(name).ok_or_else(|| S3Error::InvalidArgument(format!("{name} is not a canned ACL")))
        }
    }
}

/// The `AccessControlPolicy` document of a canned ACL.
fn policy_xml(owner: &str, acl: CannedAcl) -> String {
    const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
    const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";
    let mut xml = XmlWriter::new("AccessControlPolicy");
    xml.principal("Owner", owner);
    xml.open("AccessControlList");
    let grant = |xml: &mut XmlWriter, grantee_type: &str, grantee: (&str, &str), permission: &str| {
        xml.open("Grant")
            .raw(&format!(
                "<Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"{grantee_type}\">"
            ))
            .element(grantee.0, grantee.1);
        if grantee_type == "CanonicalUser" {
            xml.element("DisplayName", grantee.1);
        }
        xml.close("Grantee").element("Permission", permission).close("Grant");
    };
    grant(&mut xml, "CanonicalUser", ("ID", owner), "FULL_CONTROL");
    match acl {
        CannedAcl::Private => {}
        CannedAcl::PublicRead => grant(&mut xml, "Group", ("URI", ALL_USERS), "READ"),
        CannedAcl::PublicReadWrite => {
            grant(&mut xml, "Group", ("URI", ALL_USERS), "READ");
            grant(&mut xml, "Group", ("URI", ALL_USERS), "WRITE");
        }
        CannedAcl::AuthenticatedRead => grant(&mut xml, "Group", ("URI", AUTHENTICATED_USERS), "READ"),
    }
    xml.close("AccessControlList");
    xml.finish("AccessControlPolicy")
}

/// A PutBucketAcl / PutObjectAcl must say its ACL with `x-amz-acl`; grant documents in the
/// body are not supported.
fn acl_of_put(request: &S3Request) -> Result<CannedAcl, S3Error> {
    if request.header("x-amz-acl").is_none() {
        return Err(S3Error::NotImplemented("an ACL given as grants in the request body (use x-amz-acl)".into()));
    }
    requested_acl(request)
}

/// GetBucketAcl.
pub fn get_bucket_acl(gateway: &Gateway, request: &S3Request) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request, Access::Owner)?;
    Ok(xml_response(policy_xml(&bucket.owner_key, bucket.acl)))
}

/// PutBucketAcl.
pub async fn put_bucket_acl(gateway: &Arc<Gateway>, request: &S3Request) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request, Access::Owner)?;
    let acl = acl_of_put(request)?;
    update_bucket(gateway, &bucket, BucketChange::Acl(acl)).await?;
    Ok(StatusCode::OK.into_response())
}

/// GetObjectAcl.
pub async fn get_object_acl(gateway: &Gateway, request: &S3Request) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request, Access::Owner)?;
    let key = request.key.as_deref().ok_or(S3Error::NoSuchKey)?;
    let version = read_version(gateway, &bucket, key).await?.ok_or(S3Error::NoSuchKey)?;
    Ok(xml_response(policy_xml(&bucket.owner_key, version.acl)))
}

/// PutObjectAcl: rewrites the current version's row with the new ACL.
pub async fn put_object_acl(gateway: &Gateway, request: &S3Request) -> Result<Response, S3Error> {
    let bucket = resolve_bucket(gateway, request, Access::Owner)?;
    let key = request.key.as_deref().ok_or(S3Error::NoSuchKey)?;
    let acl = acl_of_put(request)?;
    rewrite_current_version(gateway, &bucket, key, |version| version.acl = acl).await?;
    Ok(StatusCode::OK.into_response())
}
