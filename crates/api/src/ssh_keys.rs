//! SSH keys.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SshKey {
    pub id: String,
    pub name: String,
    /// One OpenSSH line: `<algorithm> <base64> [comment]`.
    pub public_key: String,
    /// `SHA256:...`, as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
    pub algorithm: String,
    pub bits: u32,
    pub created_at: String,
}

/// `name` and `public_key` import a key; `name` alone generates an RSA-2048 pair.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSshKeyRequest {
    pub name: String,
    /// Absent, `null` or `""`: generate a key pair.
    #[serde(
        default,
        deserialize_with = "crate::rules::blank_as_none",
        skip_serializing_if = "Option::is_none"
    )]
    pub public_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedSshKey {
    #[serde(flatten)]
    pub key: SshKey,
    /// The generated private key (OpenSSH format), shown only in this response and never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SshKeyList {
    pub ssh_keys: Vec<SshKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeletedSshKey {
    pub id: String,
}
