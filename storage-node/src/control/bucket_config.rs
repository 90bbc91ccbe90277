//! Per-bucket settings kept in the control plane besides identity and consistency: the canned
//! ACL, the access keys granted rights on the bucket, cross-origin (CORS) rules and tags, and
//! the command payload that changes one of them.

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

/// What one access key may do with a bucket besides what its ACL lets everyone do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// List the bucket and read every object.
    #[serde(default)]
    pub read: bool,
    /// Create, overwrite and delete objects.
    #[serde(default)]
    pub write: bool,
    /// Everything the owner may do: settings, ACLs, deleting the bucket.
    #[serde(default)]
    pub owner: bool,
}

impl Permissions {
    /// Whether the grant gives nothing (and is dropped).
    pub fn is_empty(self) -> bool {
        !(self.read || self.write || self.owner)
    }

    /// The rights as `cairn admin` prints them: `read,write`, `owner`, `-`.
    pub fn names(self) -> String {
        let names: Vec<&str> = [(self.read, "read"), (self.write, "write"), (self.owner, "owner")]
            .into_iter()
            .filter_map(|(granted, name)| granted.then_some(name))
            .collect();
        if names.is_empty() { "-".to_owned() } else { names.join(",") }
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
    /// Grant an access key rights on the bucket, replacing what it had (none: revoke).
    Grant {
        /// The access key id.
        key_id: String,
        /// Its rights from now on.
        permissions: Permissions,
    },
}

impl BucketChange {
    /// Applies the change.
    pub fn apply_to(&self, bucket: &mut BucketInfo) {
        match self {
            Self::Acl(acl) => bucket.acl = *acl,
            Self::Cors(rules) => bucket.cors = rules.clone(),
            Self::Tags(tags) => bucket.tags = tags.clone(),
            Self::Consistency(level) => bucket.consistency = *level,
            Self::Grant { key_id, permissions } => {
                if permissions.is_empty() {
                    bucket.grants.remove(key_id);
                } else {
                    bucket.grants.insert(key_id.clone(), *permissions);
                }
            }
        }
    }
}
