//! Per-bucket settings kept in the control plane besides identity and consistency: the canned
//! ACL, cross-origin (CORS) rules and tags, and the command payload that changes one of them.

use serde::{Deserialize, Serialize};

use super::state::BucketInfo;

/// An S3 canned access control list: the grants besides the owner's full control.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CannedAcl {
    /// The owner only.
    #[default]
    Private,
    /// Everyone, signed or not, may read.
    PublicRead,
    /// Everyone, signed or not, may read and write.
    PublicReadWrite,
    /// Every holder of an access key may read.
    AuthenticatedRead,
}

impl CannedAcl {
    /// The name S3 uses in `x-amz-acl`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::PublicRead => "public-read",
            Self::PublicReadWrite => "public-read-write",
            Self::AuthenticatedRead => "authenticated-read",
        }
    }

    /// Parses an `x-amz-acl` value.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Private, Self::PublicRead, Self::PublicReadWrite, Self::AuthenticatedRead]
            .into_iter()
            .find(|acl| acl.name() == name.trim())
    }

    /// Whether the list lets a requester read (`anonymous`: the request is unsigned).
    pub fn grants_read(self, anonymous: bool) -> bool {
        match self {
            Self::Private => false,
            Self::PublicRead | Self::PublicReadWrite => true,
            Self::AuthenticatedRead => !anonymous,
        }
    }

    /// Whether the list lets anyone write.
    pub fn grants_write(self) -> bool {
        self == Self::PublicReadWrite
    }
}

/// One cross-origin rule of a bucket, as S3's `CORSRule`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    /// Optional rule id.
    #[serde(default)]
    pub id: Option<String>,
    /// Origins allowed; each may hold one `*` wildcard.
    pub allowed_origins: Vec<String>,
    /// Methods allowed (GET, PUT, POST, DELETE, HEAD).
    pub allowed_methods: Vec<String>,
    /// Request headers a preflight may ask for; each may hold one `*` wildcard.
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    /// Response headers the browser may show to scripts.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// How long a browser may cache a preflight answer.
    #[serde(default)]
    pub max_age_seconds: Option<u32>,
}

/// One change to a bucket's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BucketChange {
    /// Replace the canned ACL.
    Acl(CannedAcl),
    /// Replace the CORS rules (empty: none).
    Cors(Vec<CorsRule>),
    /// Replace the tags (empty: none).
    Tags(Vec<(String, String)>),
    /// Change the consistency level of later reads and writes.
    Consistency(super::Consistency),
}

impl BucketChange {
    /// Applies the change.
    pub fn apply_to(&self, bucket: &mut BucketInfo) {
        match self {
            Self::Acl(acl) => bucket.acl = *acl,
            Self::Cors(rules) => bucket.cors = rules.clone(),
            Self::Tags(tags) => bucket.tags = tags.clone(),
            Self::Consistency(level) => bucket.consistency = *level,
        }
    }
}
