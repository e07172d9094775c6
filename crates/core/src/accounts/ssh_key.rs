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
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// The example key in the `ssh-key` crate's documentation; fingerprint from `ssh-keygen -lf`.
    const EXAMPLE_ED25519: &str = "ssh-ed25519 \
        AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti user@example.com";
    const EXAMPLE_ED25519_FINGERPRINT: &str = "SHA256:UCUiLr7Pjs9wFFJMDByLgc3NrtdU344OgUM45wZPcIQ";

    // ---- building key lines by hand ----

    fn push_string(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&u32::try_from(bytes.len()).unwrap().to_be_bytes());
        out.extend_from_slice(bytes);
    }

    /// An SSH mpint of the positive big-endian integer `bytes`.
    fn push_mpint(out: &mut Vec<u8>, bytes: &[u8]) {
        let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
        let bytes = &bytes[start..];
        if bytes.first().is_some_and(|&b| b & 0x80 != 0) {
            let mut padded = vec![0];
            padded.extend_from_slice(bytes);
            push_string(out, &padded);
        } else {
            push_string(out, bytes);
        }
    }

    /// A big-endian integer of exactly `bits` bits (top bit set), odd, with arbitrary middle bytes.
    fn number_of_bits(bits: usize) -> Vec<u8> {
        let len = bits.div_ceil(8);
        let mut bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
        let top_bit = (bits - 1) % 8;
        bytes[0] = (bytes[0] & ((1u16 << top_bit) - 1) as u8) | (1 << top_bit);
        bytes[len - 1] |= 1;
        assert_eq!(significant_bits(&bytes), bits as u32);
        bytes
    }

    fn line(algorithm: &str, blob: &[u8], comment: &str) -> String {
        format!("{algorithm} {} {comment}", STANDARD.encode(blob))
            .trim_end()
            .to_owned()
    }

    fn rsa_blob(bits: usize, exponent: &[u8]) -> Vec<u8> {
        let mut blob = Vec::new();
        push_string(&mut blob, b"ssh-rsa");
        push_mpint(&mut blob, exponent);
        push_mpint(&mut blob, &number_of_bits(bits));
        blob
    }

    fn rsa_line(bits: usize) -> String {
        line("ssh-rsa", &rsa_blob(bits, &[1, 0, 1]), "made by hand")
    }

    fn ed25519_blob() -> Vec<u8> {
        let mut blob = Vec::new();
        push_string(&mut blob, b"ssh-ed25519");
        push_string(&mut blob, &[7; 32]);
        blob
    }

    fn dsa_line() -> String {
        let mut blob = Vec::new();
        push_string(&mut blob, b"ssh-dss");
        push_mpint(&mut blob, &number_of_bits(1024)); // p
        push_mpint(&mut blob, &number_of_bits(160)); // q
        push_mpint(&mut blob, &number_of_bits(1023)); // g
        push_mpint(&mut blob, &number_of_bits(1022)); // y
        line("ssh-dss", &blob, "old@host")
    }

    // ---- running ssh-keygen ----

    /// A directory removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let path = std::env::temp_dir().join(format!(
                "barrack-ssh-key-{tag}-{}-{nanos}",
                std::process::id()
            ));
            std::fs::create_dir_all(&path).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn have_ssh_keygen(test: &str) -> bool {
        let found = Command::new("ssh-keygen").arg("-?").output().is_ok();
        if !found {
            println!("note: ssh-keygen not found; skipping the ssh-keygen part of {test}");
        }
        found
    }

    /// Runs `ssh-keygen -q -t <key_type> [-b <bits>] -N '' -C 'test key' -f <dir>/<name>`; the path of
    /// the private key, or `None` if ssh-keygen refused.
    fn keygen(dir: &TempDir, name: &str, key_type: &str, bits: Option<u32>) -> Option<PathBuf> {
        let path = dir.0.join(name);
        let mut command = Command::new("ssh-keygen");
        command.args(["-q", "-t", key_type]);
        if let Some(bits) = bits {
            command.args(["-b", &bits.to_string()]);
        }
        command.args(["-N", "", "-C", "test key", "-f"]).arg(&path);
        let output = command.output().unwrap();
        output.status.success().then_some(path)
    }

    fn pub_path(private: &Path) -> PathBuf {
        let mut path = private.as_os_str().to_owned();
        path.push(".pub");
        PathBuf::from(path)
    }

    /// (bits, fingerprint) as `ssh-keygen -lf <path>` prints them.
    fn keygen_fingerprint(path: &Path) -> (u32, String) {
        let output = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(path)
            .output()
            .unwrap();
        assert!(output.status.success(), "ssh-keygen -lf: {output:?}");
        let stdout = String::from_utf8(output.stdout).unwrap();
        let mut fields = stdout.split_whitespace();
        let bits = fields.next().unwrap().parse().unwrap();
        (bits, fields.next().unwrap().to_owned())
    }

    fn check_against_ssh_keygen(key_type: &str, bits: Option<u32>, algorithm: &str, size: u32) {
        if !have_ssh_keygen(algorithm) {
            return;
        }
        let dir = TempDir::new(algorithm);
        let private = keygen(&dir, "key", key_type, bits).expect("ssh-keygen failed");
        let text = std::fs::read_to_string(pub_path(&private)).unwrap();
        let info = parse_public_key(&text).unwrap();
        let (keygen_bits, keygen_fingerprint) = keygen_fingerprint(&pub_path(&private));
        assert_eq!(info.algorithm, algorithm);
        assert_eq!(info.bits, size);
        assert_eq!(info.bits, keygen_bits);
        assert_eq!(info.fingerprint, keygen_fingerprint);
        assert_eq!(info.comment.as_deref(), Some("test key"));
        assert_eq!(info.normalized, text.trim_end());
        // The normalised line is itself accepted, with the same result.
        assert_eq!(parse_public_key(&info.normalized).unwrap(), info);
    }

    // ---- accepted keys ----

    #[test]
    fn rsa_3072_matches_ssh_keygen() {
        check_against_ssh_keygen("rsa", Some(3072), "ssh-rsa", 3072);
    }

    #[test]
    fn ed25519_matches_ssh_keygen() {
        check_against_ssh_keygen("ed25519", None, "ssh-ed25519", 256);
    }

    #[test]
    fn ecdsa_256_matches_ssh_keygen() {
        check_against_ssh_keygen("ecdsa", Some(256), "ecdsa-sha2-nistp256", 256);
    }

    #[test]
    fn ecdsa_384_matches_ssh_keygen() {
        check_against_ssh_keygen("ecdsa", Some(384), "ecdsa-sha2-nistp384", 384);
    }

    #[test]
    fn ecdsa_521_matches_ssh_keygen() {
        check_against_ssh_keygen("ecdsa", Some(521), "ecdsa-sha2-nistp521", 521);
    }

    #[test]
    fn known_key_has_known_fingerprint() {
        let info = parse_public_key(EXAMPLE_ED25519).unwrap();
        assert_eq!(
            info,
            PublicKeyInfo {
                algorithm: "ssh-ed25519".into(),
                bits: 256,
                fingerprint: EXAMPLE_ED25519_FINGERPRINT.into(),
                comment: Some("user@example.com".into()),
                normalized: EXAMPLE_ED25519.into(),
            }
        );
    }

    #[test]
    fn whitespace_newlines_and_comments_are_normalised() {
        let (algorithm, rest) = EXAMPLE_ED25519.split_once(' ').unwrap();
        let (data, _) = rest.split_once(' ').unwrap();
        let bare = format!("{algorithm} {data}");

        let info = parse_public_key(&format!("\n  {algorithm}\t {data}  \r\n\n")).unwrap();
        assert_eq!(info.comment, None);
        assert_eq!(info.normalized, bare);
        assert_eq!(info.fingerprint, EXAMPLE_ED25519_FINGERPRINT);

        let info = parse_public_key(&format!("\u{feff}{bare}   my laptop key \n")).unwrap();
        assert_eq!(info.comment.as_deref(), Some("my laptop key"));
        assert_eq!(info.normalized, format!("{bare} my laptop key"));

        // Base64 without its padding is the same key.
        // 2056 bits: a 280-byte blob, so its base64 ends in "==".
        let rsa = rsa_line(2056);
        let (algorithm, rest) = rsa.split_once(' ').unwrap();
        let (data, _) = rest.split_once(' ').unwrap();
        assert!(data.ends_with('='), "the test needs a padded key");
        let unpadded =
            parse_public_key(&format!("{algorithm} {}", data.trim_end_matches('='))).unwrap();
        assert_eq!(unpadded.normalized, format!("{algorithm} {data}"));

        // A comment that merely mentions a key type is still a comment.
        let info = parse_public_key(&format!("{bare} my ssh-rsa replacement")).unwrap();
        assert_eq!(info.comment.as_deref(), Some("my ssh-rsa replacement"));
    }

    #[test]
    fn rsa_bits_are_the_modulus_bits() {
        for bits in [2048, 2049, 3071, 4096, 8192, 16384] {
            let info = parse_public_key(&rsa_line(bits)).unwrap();
            assert_eq!(info.bits, bits as u32);
            assert_eq!(info.algorithm, "ssh-rsa");
            assert_eq!(info.comment.as_deref(), Some("made by hand"));
        }
    }

    #[test]
    fn fingerprint_is_sha256_of_the_blob() {
        use sha2::Digest as _;
        let text = rsa_line(2048);
        let blob = rsa_blob(2048, &[1, 0, 1]);
        let expected = format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(sha2::Sha256::digest(&blob))
        );
        assert_eq!(parse_public_key(&text).unwrap().fingerprint, expected);
    }

    // ---- generated pairs ----

    #[test]
    fn generated_pair_is_accepted_by_ssh_keygen() {
        let pair = generate_rsa_key_pair("  barrack generated  ").unwrap();
        assert!(
            pair.private_key
                .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n")
        );
        assert!(
            pair.private_key
                .ends_with("-----END OPENSSH PRIVATE KEY-----\n")
        );
        assert!(pair.public_key.starts_with("ssh-rsa AAAA"));
        assert!(pair.public_key.ends_with(" barrack generated"));
        assert!(!format!("{pair:?}").contains("PRIVATE KEY"));

        let info = parse_public_key(&pair.public_key).unwrap();
        assert_eq!(info.bits, 2048);
        assert_eq!(info.fingerprint, pair.fingerprint);
        assert_eq!(info.comment.as_deref(), Some("barrack generated"));
        assert_eq!(info.normalized, pair.public_key);
        assert_eq!(
            parse_public_key(&pair.private_key).unwrap_err(),
            PRIVATE_KEY
        );

        if !have_ssh_keygen("generated_pair_is_accepted_by_ssh_keygen") {
            return;
        }
        let dir = TempDir::new("generated");
        let private_path = dir.0.join("id_rsa");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&private_path)
            .unwrap();
        file.write_all(pair.private_key.as_bytes()).unwrap();
        drop(file);

        let output = Command::new("ssh-keygen")
            .arg("-y")
            .arg("-f")
            .arg(&private_path)
            .output()
            .unwrap();
        assert!(output.status.success(), "ssh-keygen -y: {output:?}");
        let derived = String::from_utf8(output.stdout).unwrap();
        let key_part = |line: &str| {
            line.split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(key_part(&derived), key_part(&pair.public_key));

        let public_path = dir.0.join("id_rsa.pub");
        std::fs::write(&public_path, format!("{}\n", pair.public_key)).unwrap();
        assert_eq!(
            keygen_fingerprint(&public_path),
            (2048, pair.fingerprint.clone())
        );
    }

    #[test]
    fn generated_pair_without_comment() {
        let pair = generate_rsa_key_pair("").unwrap();
        assert_eq!(pair.public_key.split(' ').count(), 2);
        assert_eq!(parse_public_key(&pair.public_key).unwrap().comment, None);
        assert!(generate_rsa_key_pair("two\nlines").is_err());
    }

    // ---- rejected input ----

    #[test]
    fn rejects_empty() {
        for text in ["", "   ", "\n", " \t\r\n \n"] {
            assert_eq!(parse_public_key(text).unwrap_err(), EMPTY);
        }
    }

    #[test]
    fn rejects_garbage() {
        for text in [
            "hello world",
            "not a key at all",
            "ssh-ed25519",
            "ssh-ed25519 !!!not-base64!!!",
            "ssh-ed25519 AAAA",
            "ssh-ed25519 ====",
            "AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti",
            "command=\"ls\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti",
            "ssh-foo AAAAB3NzaC1yc2E",
            "\u{0}\u{1}\u{2}",
        ] {
            let error = parse_public_key(text).unwrap_err();
            assert!(!error.is_empty(), "{text:?}");
        }
        assert_eq!(parse_public_key("hello world").unwrap_err(), NOT_A_KEY);
        assert!(
            parse_public_key("ssh-foo AAAAB3NzaC1yc2E")
                .unwrap_err()
                .starts_with("Unsupported key type \"ssh-foo\"")
        );
        assert!(
            parse_public_key("ssh-ed25519")
                .unwrap_err()
                .contains("is missing")
        );
        let too_long = format!("ssh-rsa {}", "A".repeat(MAX_INPUT_LEN));
        assert!(
            parse_public_key(&too_long)
                .unwrap_err()
                .contains("too long")
        );
    }

    #[test]
    fn rejects_truncated_keys() {
        for text in [EXAMPLE_ED25519.to_owned(), rsa_line(2048)] {
            let (algorithm, rest) = text.split_once(' ').unwrap();
            let (data, _) = rest.split_once(' ').unwrap();
            for len in 1..data.len() {
                let truncated = format!("{algorithm} {} comment", &data[..len]);
                let error = parse_public_key(&truncated).unwrap_err();
                assert!(
                    error == BAD_BASE64 || error == BAD_DATA,
                    "{truncated}: {error}"
                );
            }
        }
        // Trailing bytes after the key are malformed too.
        let mut blob = ed25519_blob();
        blob.push(0);
        assert_eq!(
            parse_public_key(&line("ssh-ed25519", &blob, "")).unwrap_err(),
            BAD_DATA
        );
    }

    #[test]
    fn rejects_mismatched_algorithm() {
        let error = parse_public_key(&line("ssh-rsa", &ed25519_blob(), "x")).unwrap_err();
        assert_eq!(
            error,
            "The key type says \"ssh-rsa\" but the key data is of type \"ssh-ed25519\""
        );
        let error = parse_public_key(&line("ssh-ed25519", &rsa_blob(2048, &[3]), "")).unwrap_err();
        assert!(error.contains("\"ssh-rsa\""), "{error}");
    }

    #[test]
    fn rejects_mismatched_ecdsa_curve() {
        if !have_ssh_keygen("rejects_mismatched_ecdsa_curve") {
            return;
        }
        let dir = TempDir::new("ecdsa-mismatch");
        let private = keygen(&dir, "key", "ecdsa", Some(256)).unwrap();
        let text = std::fs::read_to_string(pub_path(&private)).unwrap();
        let relabelled = text.replacen("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", 1);
        assert!(
            parse_public_key(&relabelled)
                .unwrap_err()
                .starts_with("The key type says \"ecdsa-sha2-nistp384\"")
        );
    }

    #[test]
    fn rejects_dsa() {
        assert_eq!(parse_public_key(&dsa_line()).unwrap_err(), DSA);
        // The blob is well formed: labelled as another type, it is a type mismatch, not garbage.
        let relabelled = dsa_line().replacen("ssh-dss", "ssh-rsa", 1);
        assert!(
            parse_public_key(&relabelled)
                .unwrap_err()
                .contains("\"ssh-dss\"")
        );
    }

    #[test]
    fn rejects_small_and_huge_rsa() {
        for (bits, expected) in [
            (
                1024,
                "RSA keys must be at least 2048 bits; this one has 1024",
            ),
            (
                2047,
                "RSA keys must be at least 2048 bits; this one has 2047",
            ),
            (
                16385,
                "RSA keys must be at most 16384 bits; this one has 16385",
            ),
        ] {
            assert_eq!(parse_public_key(&rsa_line(bits)).unwrap_err(), expected);
        }
        // A public exponent that is even or below 3 is malformed.
        for exponent in [&[1][..], &[2], &[1, 0, 0]] {
            let text = line("ssh-rsa", &rsa_blob(2048, exponent), "");
            assert_eq!(parse_public_key(&text).unwrap_err(), BAD_DATA);
        }
    }

    #[test]
    fn rejects_rsa_1024_from_ssh_keygen() {
        if !have_ssh_keygen("rejects_rsa_1024_from_ssh_keygen") {
            return;
        }
        let dir = TempDir::new("rsa-1024");
        let text = match keygen(&dir, "key", "rsa", Some(1024)) {
            Some(private) => std::fs::read_to_string(pub_path(&private)).unwrap(),
            None => {
                println!("note: ssh-keygen refuses RSA-1024 here; using a constructed key");
                rsa_line(1024)
            }
        };
        assert_eq!(
            parse_public_key(&text).unwrap_err(),
            "RSA keys must be at least 2048 bits; this one has 1024"
        );
    }

    #[test]
    fn rejects_private_keys() {
        let constructed = "-----BEGIN OPENSSH PRIVATE KEY-----\n\
            b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n\
            -----END OPENSSH PRIVATE KEY-----\n";
        let pem =
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----";
        let putty = "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n";
        for text in [constructed, pem, putty] {
            assert_eq!(parse_public_key(text).unwrap_err(), PRIVATE_KEY);
        }
        if !have_ssh_keygen("rejects_private_keys") {
            return;
        }
        let dir = TempDir::new("private");
        let private = keygen(&dir, "key", "ed25519", None).unwrap();
        let text = std::fs::read_to_string(private).unwrap();
        assert_eq!(parse_public_key(&text).unwrap_err(), PRIVATE_KEY);
    }

    #[test]
    fn rejects_other_public_key_formats() {
        let rfc4716 = "---- BEGIN SSH2 PUBLIC KEY ----\nComment: \"x\"\nAAAAC3NzaC1lZDI1NTE5\n\
                       ---- END SSH2 PUBLIC KEY ----";
        assert!(parse_public_key(rfc4716).unwrap_err().contains("RFC 4716"));
        let pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----";
        assert!(parse_public_key(pem).unwrap_err().contains("PEM"));
        let cert = "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQ= x";
        assert!(parse_public_key(cert).unwrap_err().contains("certificates"));
        let sk = "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29t x";
        assert!(parse_public_key(sk).unwrap_err().contains("FIDO"));
    }

    #[test]
    fn rejects_two_keys() {
        let other = rsa_line(2048);
        assert_eq!(
            parse_public_key(&format!("{EXAMPLE_ED25519}\n{other}\n")).unwrap_err(),
            MORE_THAN_ONE
        );
        assert_eq!(
            parse_public_key(&format!("{EXAMPLE_ED25519}\n\n{EXAMPLE_ED25519}")).unwrap_err(),
            MORE_THAN_ONE
        );
        assert_eq!(
            parse_public_key(&format!("{EXAMPLE_ED25519} {other}")).unwrap_err(),
            MORE_THAN_ONE
        );
        let (algorithm, rest) = EXAMPLE_ED25519.split_once(' ').unwrap();
        let (data, _) = rest.split_once(' ').unwrap();
        assert_eq!(
            parse_public_key(&format!("{algorithm} {data} {other}")).unwrap_err(),
            MORE_THAN_ONE
        );
        assert_eq!(
            parse_public_key(&format!("{EXAMPLE_ED25519}\nsomething else")).unwrap_err(),
            "A public key is a single line; this text has 2 lines"
        );
    }

    #[test]
    fn rejects_control_characters_in_comment() {
        let text = format!("{EXAMPLE_ED25519}\u{7}bell");
        assert!(
            parse_public_key(&text)
                .unwrap_err()
                .contains("control characters")
        );
        let text = format!("{EXAMPLE_ED25519} a\rb");
        assert!(
            parse_public_key(&text)
                .unwrap_err()
                .contains("control characters")
        );
    }

    #[test]
    fn significant_bits_counts_from_the_top_bit() {
        assert_eq!(significant_bits(&[]), 0);
        assert_eq!(significant_bits(&[0, 0]), 0);
        assert_eq!(significant_bits(&[1]), 1);
        assert_eq!(significant_bits(&[0, 0x80]), 8);
        assert_eq!(significant_bits(&[0x01, 0]), 9);
        assert_eq!(significant_bits(&[0xff; 256]), 2048);
    }
}
