//! OpenSSH public keys: checking what a user pastes, and making RSA key pairs for users who have none.
//!
//! Pure functions, no I/O. Every error is a user-facing sentence: the API shows it as the field error
//! for `public_key`. The numbers reported (bits, fingerprint) are the ones `ssh-keygen -lf` prints, so
//! a user can compare them with their own machine's.

use ::ssh_key::private::{KeypairData, RsaKeypair};
use ::ssh_key::public::KeyData;
use ::ssh_key::{EcdsaCurve, HashAlg, LineEnding, PrivateKey, PublicKey};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use rand::rngs::OsRng;

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: u32 = 2048;
/// The largest RSA modulus accepted, in bits (OpenSSH's own limit).
pub const MAX_RSA_BITS: u32 = 16384;
/// Longer input is refused before any parsing: a 16384-bit RSA key line is under 3 KiB.
const MAX_INPUT_LEN: usize = 16 * 1024;
/// The size of the RSA keys [`generate_rsa_key_pair`] makes.
const GENERATED_RSA_BITS: usize = 2048;

/// The key types accepted, as they start an OpenSSH public key line.
const ACCEPTED_ALGORITHMS: [&str; 5] = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
];
const SUPPORTED_TYPES: &str = "ssh-ed25519, ecdsa-sha2-nistp256/384/521 or ssh-rsa";

const EMPTY: &str = "The public key is empty; paste the contents of your .pub file";
const PRIVATE_KEY: &str = "This is a private key; paste the public key (the .pub file)";
const DSA: &str = "DSA keys are not supported; use ed25519, ECDSA or RSA of at least 2048 bits";
const NOT_A_KEY: &str = "This is not an OpenSSH public key; expected one line like \
                         \"ssh-ed25519 AAAAC3Nza... you@host\"";
const MORE_THAN_ONE: &str = "This contains more than one key; paste one public key at a time";
const BAD_BASE64: &str = "The key's base64 data is malformed or truncated; paste the whole line \
                          from the .pub file";
const BAD_DATA: &str =
    "The key data is malformed or truncated; paste the whole line from the .pub file";

/// What [`parse_public_key`] found in a valid public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKeyInfo {
    /// The key type, e.g. "ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256".
    pub algorithm: String,
    /// The key size as `ssh-keygen -lf` prints it: RSA modulus bits, 256 for ed25519, the curve size
    /// (256, 384, 521) for ECDSA.
    pub bits: u32,
    /// "SHA256:..." exactly as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
    /// The comment after the key data, if any.
    pub comment: Option<String>,
    /// "<algorithm> <base64>", plus " <comment>" if there is one: the one line to store.
    pub normalized: String,
}

/// A key pair made by [`generate_rsa_key_pair`].
#[derive(Clone, PartialEq, Eq)]
pub struct GeneratedKeyPair {
    /// OpenSSH format, "-----BEGIN OPENSSH PRIVATE KEY-----", unencrypted, LF line endings.
    pub private_key: String,
    /// "ssh-rsa AAAA... comment" (no comment part if the comment was empty).
    pub public_key: String,
    /// "SHA256:..." as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
}

impl std::fmt::Debug for GeneratedKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKeyPair")
            .field("private_key", &"<redacted>")
            .field("public_key", &self.public_key)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

/// Parses and checks one OpenSSH public key line (`ssh-ed25519`, `ecdsa-sha2-nistp256/384/521` or
/// `ssh-rsa` of 2048 to 16384 bits). Surrounding whitespace, a trailing newline and a leading byte
/// order mark are ignored.
pub fn parse_public_key(text: &str) -> Result<PublicKeyInfo, String> {
    let text = text.trim_start_matches('\u{feff}').trim();
    if text.is_empty() {
        return Err(EMPTY.into());
    }
    if text.len() > MAX_INPUT_LEN {
        return Err(format!(
            "This is too long for a public key ({} bytes; the limit is {MAX_INPUT_LEN})",
            text.len()
        ));
    }
    check_other_formats(text)?;

    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    if lines.len() > 1 {
        return Err(
            if lines
                .iter()
                .filter(|line| looks_like_key_line(line))
                .count()
                > 1
            {
                MORE_THAN_ONE.into()
            } else {
                format!(
                    "A public key is a single line; this text has {} lines",
                    lines.len()
                )
            },
        );
    }
    let line = lines[0];

    let (algorithm, rest) = split_field(line);
    check_algorithm(algorithm)?;
    let (base64_data, comment) = split_field(rest);
    if base64_data.is_empty() {
        return Err(format!(
            "The key is incomplete: the base64 data after \"{algorithm}\" is missing"
        ));
    }
    let comment = check_comment(comment)?;

    let blob = decode_base64(base64_data)?;
    let key = PublicKey::from_bytes(&blob).map_err(|_| String::from(BAD_DATA))?;
    let encoded_algorithm = key.algorithm();
    if encoded_algorithm.as_str() != algorithm {
        return Err(format!(
            "The key type says \"{algorithm}\" but the key data is of type \"{}\"",
            shorten(encoded_algorithm.as_str())
        ));
    }
    let bits = key_bits(key.key_data())?;

    // Re-encoding gives the canonical form; ssh-key refuses non-canonical integers, so for any key it
    // accepts this is the blob that was pasted.
    let blob = key.to_bytes().map_err(|_| String::from(BAD_DATA))?;
    let mut normalized = format!("{algorithm} {}", STANDARD.encode(&blob));
    if let Some(comment) = &comment {
        normalized.push(' ');
        normalized.push_str(comment);
    }
    Ok(PublicKeyInfo {
        algorithm: algorithm.to_owned(),
        bits,
        fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        comment,
        normalized,
    })
}

/// Makes a new RSA-2048 key pair; `comment` (trimmed; may be empty) ends the public key line and is
/// stored in the private key.
pub fn generate_rsa_key_pair(comment: &str) -> Result<GeneratedKeyPair, String> {
    let comment = comment.trim();
    if comment.chars().any(char::is_control) {
        return Err("The key comment must be one line without control characters".into());
    }
    let failed = |error: ::ssh_key::Error| format!("Could not generate an RSA key pair: {error}");
    let keypair = RsaKeypair::random(&mut OsRng, GENERATED_RSA_BITS).map_err(failed)?;
    let private = PrivateKey::new(KeypairData::Rsa(keypair), comment).map_err(failed)?;
    let private_key = private.to_openssh(LineEnding::LF).map_err(failed)?;
    let public = private.public_key();
    Ok(GeneratedKeyPair {
        private_key: String::clone(&private_key),
        public_key: public.to_openssh().map_err(failed)?,
        fingerprint: public.fingerprint(HashAlg::Sha256).to_string(),
    })
}

/// Refuses private keys and public keys in formats other than OpenSSH's one-line one.
fn check_other_formats(text: &str) -> Result<(), String> {
    if text.contains("PRIVATE KEY-----") || text.starts_with("PuTTY-User-Key-File-") {
        return Err(PRIVATE_KEY.into());
    }
    if text.starts_with("---- BEGIN SSH2 PUBLIC KEY") {
        return Err(
            "This public key is in SSH2 (RFC 4716) format; convert it with \
                    `ssh-keygen -i -f key.pub` and paste the one-line result"
                .into(),
        );
    }
    if text.starts_with("-----BEGIN") && text.contains("PUBLIC KEY-----") {
        return Err(
            "This is a PEM public key, not an OpenSSH one; convert it with \
                    `ssh-keygen -i -m PKCS8 -f key.pem` and paste the one-line result"
                .into(),
        );
    }
    Ok(())
}

fn check_algorithm(algorithm: &str) -> Result<(), String> {
    if ACCEPTED_ALGORITHMS.contains(&algorithm) {
        return Ok(());
    }
    if algorithm == "ssh-dss" {
        return Err(DSA.into());
    }
    if algorithm.ends_with("-cert-v01@openssh.com") {
        return Err(
            "SSH certificates are not supported; paste the plain public key (the .pub file, \
                    not the -cert.pub one)"
                .into(),
        );
    }
    if algorithm.starts_with("sk-") {
        return Err(format!(
            "Security-key (FIDO) SSH keys are not supported; use {SUPPORTED_TYPES}"
        ));
    }
    if algorithm.starts_with("AAAA") {
        return Err(format!(
            "The key type is missing: the line must start with {SUPPORTED_TYPES}"
        ));
    }
    let algorithm_like = algorithm
        .bytes()
        .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"-@.".contains(&byte))
        && (algorithm.starts_with("ssh-")
            || algorithm.starts_with("ecdsa-")
            || algorithm.starts_with("rsa-")
            || algorithm.contains('@'));
    if algorithm_like {
        return Err(format!(
            "Unsupported key type \"{}\"; use {SUPPORTED_TYPES}",
            shorten(algorithm)
        ));
    }
    Err(NOT_A_KEY.into())
}

/// The comment, or `None` if there is none. A comment that is another key means two keys were pasted.
fn check_comment(comment: &str) -> Result<Option<String>, String> {
    let comment = comment.trim();
    if comment.is_empty() {
        return Ok(None);
    }
    if looks_like_key_line(comment)
        || comment
            .split_whitespace()
            .zip(comment.split_whitespace().skip(1))
            .any(|(first, second)| is_key_start(first, second))
    {
        return Err(MORE_THAN_ONE.into());
    }
    if comment.chars().any(|c| c.is_control() && c != '\t') {
        return Err("The key's comment contains control characters".into());
    }
    Ok(Some(comment.to_owned()))
}

fn decode_base64(data: &str) -> Result<Vec<u8>, String> {
    // OpenSSH writes padded base64; a paste that lost its padding is still the same key.
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let blob = ENGINE.decode(data).map_err(|_| String::from(BAD_BASE64))?;
    if blob.is_empty() {
        return Err(BAD_BASE64.into());
    }
    Ok(blob)
}

/// The key size as `ssh-keygen -lf` prints it; refuses RSA keys that are too small or too large.
fn key_bits(key: &KeyData) -> Result<u32, String> {
    match key {
        KeyData::Ed25519(_) => Ok(256),
        KeyData::Ecdsa(point) => {
            // OpenSSH writes uncompressed points (tag 4) only.
            if point.as_sec1_bytes().first() != Some(&4) {
                return Err(BAD_DATA.into());
            }
            Ok(match point.curve() {
                EcdsaCurve::NistP256 => 256,
                EcdsaCurve::NistP384 => 384,
                EcdsaCurve::NistP521 => 521,
            })
        }
        KeyData::Rsa(rsa) => {
            let modulus = rsa.n.as_positive_bytes().ok_or(BAD_DATA)?;
            let exponent = rsa.e.as_positive_bytes().ok_or(BAD_DATA)?;
            // The public exponent is odd and at least 3.
            let exponent_ok = exponent.last().is_some_and(|last| last % 2 == 1)
                && (exponent.len() > 1 || exponent[0] >= 3);
            if !exponent_ok {
                return Err(BAD_DATA.into());
            }
            let bits = significant_bits(modulus);
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "RSA keys must be at least {MIN_RSA_BITS} bits; this one has {bits}"
                ));
            }
            if bits > MAX_RSA_BITS {
                return Err(format!(
                    "RSA keys must be at most {MAX_RSA_BITS} bits; this one has {bits}"
                ));
            }
            Ok(bits)
        }
        KeyData::Dsa(_) => Err(DSA.into()),
        _ => Err(format!("Unsupported key type; use {SUPPORTED_TYPES}")),
    }
}

/// The number of bits of a big-endian unsigned integer, leading zero bits not counted.
fn significant_bits(bytes: &[u8]) -> u32 {
    match bytes.iter().position(|&byte| byte != 0) {
        None => 0,
        Some(first) => {
            let rest = u32::try_from(bytes.len() - first - 1).unwrap_or(u32::MAX / 16);
            rest * 8 + (8 - bytes[first].leading_zeros())
        }
    }
}

/// The first whitespace-separated field and the rest, with the rest's leading whitespace removed.
fn split_field(text: &str) -> (&str, &str) {
    match text.split_once(char::is_whitespace) {
        Some((field, rest)) => (field, rest.trim_start()),
        None => (text, ""),
    }
}

/// Whether `line` starts like a public key line: a key type and base64 key data.
fn looks_like_key_line(line: &str) -> bool {
    let mut fields = line.split_whitespace();
    matches!((fields.next(), fields.next()), (Some(first), Some(second)) if is_key_start(first, second))
}

/// Whether these two fields start a public key: every key blob starts with a 4-byte length under
/// 2^24, which is "AAAA" in base64.
fn is_key_start(algorithm: &str, data: &str) -> bool {
    (ACCEPTED_ALGORITHMS.contains(&algorithm)
        || algorithm == "ssh-dss"
        || algorithm.starts_with("sk-"))
        && data.starts_with("AAAA")
}

/// `text` cut to a length fit for an error message.
fn shorten(text: &str) -> String {
    const LIMIT: usize = 64;
    if text.chars().count() <= LIMIT {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(LIMIT).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests;
