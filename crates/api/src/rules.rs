//! The rules request fields follow, in one place: the validators check them and the OpenAPI document
//! declares them from the same constants, so the two cannot drift.
//!
//! It also holds how optional request fields read: clients generated from the documents send every
//! optional field, so `null`, `""` and `[]` mean "absent".

use serde::{Deserialize, Deserializer};

/// Names of volumes, snapshots, images, firewalls, SSH keys and API keys: 1 to 50 characters.
pub const LABEL_MAX_CHARS: usize = 50;
/// Letters, digits, spaces, `-`, `_` and `.`, and not only spaces.
pub const LABEL_PATTERN: &str = "^[A-Za-z0-9 ._-]*[A-Za-z0-9._-][A-Za-z0-9 ._-]*$";
/// The characters a label may have besides ASCII letters and digits.
pub const LABEL_EXTRA_CHARS: &[char] = &[' ', '-', '_', '.'];

/// Instance names: 2 to 30 letters, digits, `-`, `_` and `.`.
pub const INSTANCE_NAME_MIN_CHARS: usize = 2;
pub const INSTANCE_NAME_MAX_CHARS: usize = 30;
pub const INSTANCE_NAME_PATTERN: &str = "^[A-Za-z0-9._-]+$";
pub const INSTANCE_NAME_EXTRA_CHARS: &[char] = &['-', '_', '.'];

/// SSH key names: like labels, without spaces.
pub const SSH_KEY_NAME_PATTERN: &str = "^[A-Za-z0-9._-]+$";
pub const SSH_KEY_NAME_EXTRA_CHARS: &[char] = &['-', '_', '.'];

/// Script names: 1 to 100 characters of the label set.
pub const SCRIPT_NAME_MAX_CHARS: usize = 100;
/// Scripts and deploy's `cloud_init`: at most this many bytes.
pub const SCRIPT_MAX_BYTES: usize = 16384;
/// A script holds something besides white space.
pub const SCRIPT_PATTERN: &str = "\\S";

/// Descriptions of snapshots, images and firewalls.
pub const DESCRIPTION_MAX_CHARS: usize = 255;

/// GPU counts an instance may have (each model allows those up to its `max_count`).
pub const GPU_COUNTS: [u32; 4] = [1, 2, 4, 8];

/// Ports of security rules.
pub const PORT_MIN: u32 = 1;
pub const PORT_MAX: u32 = 65535;

/// Ids in one attach or detach of volumes or firewalls.
pub const MAX_IDS_PER_ATTACHMENT: usize = 25;
/// Ids in one bulk script delete or snapshot-image lookup.
pub const MAX_IDS_PER_BULK: usize = 100;

/// Whether `value` is a valid label: the length in characters and [`LABEL_PATTERN`].
pub fn is_label(value: &str) -> bool {
    label_length_ok(value, LABEL_MAX_CHARS) && label_chars_ok(value)
}

/// 1 to `max` characters.
pub fn label_length_ok(value: &str, max: usize) -> bool {
    (1..=max).contains(&value.chars().count())
}

/// Letters, digits, spaces, `-`, `_`, `.`, and not only spaces.
pub fn label_chars_ok(value: &str) -> bool {
    value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || LABEL_EXTRA_CHARS.contains(&c))
        && value.chars().any(|c| c != ' ')
}

/// `null` and `""` read as an absent optional string.
pub fn blank_as_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

/// `null` reads as the type's default (an empty list, `false`).
pub fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `null` reads as `true` (fields that default to true, like deploy's `public_ip`).
pub fn null_as_true<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_have_a_visible_character_within_the_length() {
        assert!(is_label("a"));
        assert!(is_label("my volume 1.0_x-y"));
        assert!(is_label(" a "));
        assert!(is_label(&"x".repeat(LABEL_MAX_CHARS)));
        assert!(!is_label(&"x".repeat(LABEL_MAX_CHARS + 1)));
        assert!(!is_label(""));
        assert!(!is_label("   "));
        assert!(!is_label("a/b"));
        assert!(!is_label("é"));
    }
}
