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
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----";
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
