//! The S3 operation a request asks for, told from its method, whether it names a bucket and a
//! key, its subresource query parameters and its copy-source header: what routing dispatches
//! on, and what metrics and logs name.

use http::Method;

/// Every operation Cairn routes, by S3's own names, plus the two outcomes that are not one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    ListBuckets,
    CreateBucket,
    HeadBucket,
    DeleteBucket,
    GetBucketLocation,
    GetBucketAcl,
    PutBucketAcl,
    GetBucketCors,
    PutBucketCors,
    DeleteBucketCors,
    GetBucketTagging,
    PutBucketTagging,
    DeleteBucketTagging,
    GetBucketVersioning,
    PutBucketVersioning,
    ListObjects,
    ListObjectsV2,
    ListObjectVersions,
    ListMultipartUploads,
    DeleteObjects,
    PutObject,
    CopyObject,
    GetObject,
    HeadObject,
    DeleteObject,
    GetObjectAcl,
    PutObjectAcl,
    GetObjectTagging,
    PutObjectTagging,
    DeleteObjectTagging,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    ListParts,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    /// A CORS preflight (`OPTIONS`).
    Preflight,
    /// A method the addressed resource has no operation for.
    Unsupported,
}

impl Operation {
    /// The operation of a request: `method` on a bucket (`bucket`) or an object (`key` too),
    /// `has` telling which query parameters it carries, `copy` whether it names a copy source.
    pub fn of(method: &Method, bucket: bool, key: bool, has: impl Fn(&str) -> bool, copy: bool) -> Self {
        use Operation::*;
        if *method == Method::OPTIONS {
            return Preflight;
        }
        match (bucket, key) {
            (false, _) => match *method {
                Method::GET => ListBuckets,
                _ => Unsupported,
            },
            (true, false) => match *method {
                Method::PUT if has("acl") => PutBucketAcl,
                Method::PUT if has("cors") => PutBucketCors,
                Method::PUT if has("tagging") => PutBucketTagging,
                Method::PUT if has("versioning") => PutBucketVersioning,
                Method::PUT => CreateBucket,
                Method::HEAD => HeadBucket,
                Method::DELETE if has("cors") => DeleteBucketCors,
                Method::DELETE if has("tagging") => DeleteBucketTagging,
                Method::DELETE => DeleteBucket,
                Method::GET if has("location") => GetBucketLocation,
                Method::GET if has("acl") => GetBucketAcl,
                Method::GET if has("cors") => GetBucketCors,
                Method::GET if has("tagging") => GetBucketTagging,
                Method::GET if has("versioning") => GetBucketVersioning,
                Method::GET if has("versions") => ListObjectVersions,
                Method::GET if has("uploads") => ListMultipartUploads,
                Method::GET if has("list-type") => ListObjectsV2,
                Method::GET => ListObjects,
                Method::POST if has("delete") => DeleteObjects,
                _ => Unsupported,
            },
            (true, true) => match *method {
                Method::PUT if has("acl") => PutObjectAcl,
                Method::PUT if has("tagging") => PutObjectTagging,
                Method::PUT if has("uploadId") && copy => UploadPartCopy,
                Method::PUT if has("uploadId") => UploadPart,
                Method::PUT if copy => CopyObject,
                Method::PUT => PutObject,
                Method::GET if has("uploadId") => ListParts,
                Method::GET if has("acl") => GetObjectAcl,
                Method::GET if has("tagging") => GetObjectTagging,
                Method::GET => GetObject,
                Method::HEAD => HeadObject,
                Method::DELETE if has("tagging") => DeleteObjectTagging,
                Method::DELETE if has("uploadId") => AbortMultipartUpload,
                Method::DELETE => DeleteObject,
                Method::POST if has("uploads") => CreateMultipartUpload,
                Method::POST if has("uploadId") => CompleteMultipartUpload,
                _ => Unsupported,
            },
        }
    }

    /// The operation's name as S3 documents it (`PutObject`), the value of metric labels.
    pub fn name(self) -> &'static str {
        use Operation::*;
        match self {
            ListBuckets => "ListBuckets",
            CreateBucket => "CreateBucket",
            HeadBucket => "HeadBucket",
            DeleteBucket => "DeleteBucket",
            GetBucketLocation => "GetBucketLocation",
            GetBucketAcl => "GetBucketAcl",
            PutBucketAcl => "PutBucketAcl",
            GetBucketCors => "GetBucketCors",
            PutBucketCors => "PutBucketCors",
            DeleteBucketCors => "DeleteBucketCors",
            GetBucketTagging => "GetBucketTagging",
            PutBucketTagging => "PutBucketTagging",
            DeleteBucketTagging => "DeleteBucketTagging",
            GetBucketVersioning => "GetBucketVersioning",
            PutBucketVersioning => "PutBucketVersioning",
            ListObjects => "ListObjects",
            ListObjectsV2 => "ListObjectsV2",
            ListObjectVersions => "ListObjectVersions",
            ListMultipartUploads => "ListMultipartUploads",
            DeleteObjects => "DeleteObjects",
            PutObject => "PutObject",
            CopyObject => "CopyObject",
            GetObject => "GetObject",
            HeadObject => "HeadObject",
            DeleteObject => "DeleteObject",
            GetObjectAcl => "GetObjectAcl",
            PutObjectAcl => "PutObjectAcl",
            GetObjectTagging => "GetObjectTagging",
            PutObjectTagging => "PutObjectTagging",
            DeleteObjectTagging => "DeleteObjectTagging",
            CreateMultipartUpload => "CreateMultipartUpload",
            UploadPart => "UploadPart",
            UploadPartCopy => "UploadPartCopy",
            ListParts => "ListParts",
            CompleteMultipartUpload => "CompleteMultipartUpload",
            AbortMultipartUpload => "AbortMultipartUpload",
            Preflight => "Preflight",
            Unsupported => "Unsupported",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(method: Method, bucket: bool, key: bool, query: &[&str], copy: bool) -> Operation {
        Operation::of(&method, bucket, key, |name| query.contains(&name), copy)
    }

    #[test]
    fn requests_name_their_operation() {
        use Operation::*;
        assert_eq!(of(Method::GET, false, false, &[], false), ListBuckets);
        assert_eq!(of(Method::PUT, true, false, &[], false), CreateBucket);
        assert_eq!(of(Method::GET, true, false, &["list-type"], false), ListObjectsV2);
        assert_eq!(of(Method::GET, true, false, &[], false), ListObjects);
        assert_eq!(of(Method::PUT, true, true, &[], false), PutObject);
        assert_eq!(of(Method::PUT, true, true, &[], true), CopyObject);
        assert_eq!(of(Method::PUT, true, true, &["uploadId", "partNumber"], true), UploadPartCopy);
        assert_eq!(of(Method::PUT, true, true, &["uploadId", "partNumber"], false), UploadPart);
        assert_eq!(of(Method::DELETE, true, true, &["tagging"], false), DeleteObjectTagging);
        assert_eq!(of(Method::POST, true, true, &["uploads"], false), CreateMultipartUpload);
        assert_eq!(of(Method::OPTIONS, true, true, &[], false), Preflight);
        assert_eq!(of(Method::PATCH, true, true, &[], false), Unsupported);
        assert_eq!(of(Method::DELETE, false, false, &[], false), Unsupported);
    }
}
