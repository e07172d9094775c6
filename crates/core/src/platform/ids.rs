//! Resource ids: `BRK-` + 6 uppercase alphanumerics + a letter for the kind (`spec/API.md` §1.5).

use rand::Rng;

use crate::platform::error::{Error, Result};

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Kinds of ids and their suffixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Instance,
    Volume,
    Snapshot,
    Firewall,
    Image,
    SshKey,
    Script,
    Rule,
    ApiKey,
    Deposit,
    Transaction,
    User,
    /// An AI chat call (`AITransaction`).
    AiRequest,
    /// A scenario of the simulated data centre.
    Scenario,
}

impl IdKind {
    pub fn suffix(self) -> char {
        match self {
            IdKind::Instance => 'D',
            IdKind::Volume => 'V',
            IdKind::Snapshot => 'S',
            IdKind::Firewall => 'F',
            IdKind::Image => 'I',
            IdKind::SshKey => 'K',
            IdKind::Script => 'C',
            IdKind::Rule => 'R',
            IdKind::ApiKey => 'A',
            IdKind::Deposit => 'P',
            IdKind::Transaction => 'T',
            IdKind::User => 'U',
            IdKind::AiRequest => 'Q',
            IdKind::Scenario => 'E',
        }
    }
}

/// Random characters in every id, as documented. (Ledger entries, of which there are many, are stored
/// under another id when theirs is taken: `barrack_store::ledger::append`.)
const RANDOM_CHARS: usize = 6;

/// How many ids a write of a new row draws before it gives up (see [`IdDraws`]): a taken id is drawn
/// again instead of failing the request (at a million rows of a kind, about one draw in 2,000 finds its
/// id taken).
const ID_DRAWS: usize = 8;

/// Counts the ids a write found taken, up to [`ID_DRAWS`]:
/// `while !insert(&row)? { draws.taken()?; row.id = new_id(kind); }`.
pub struct IdDraws {
    what: &'static str,
    taken: usize,
}

impl IdDraws {
    /// Draws of `what`'s ids ("instance", "rule"), for the error that ends them.
    pub fn of(what: &'static str) -> IdDraws {
        IdDraws { what, taken: 0 }
    }

    /// One more id taken: fine while fewer than `ID_DRAWS` were, then an internal error.
    pub fn taken(&mut self) -> Result<()> {
        self.taken += 1;
        if self.taken < ID_DRAWS {
            return Ok(());
        }
        Err(Error::internal(format!(
            "no free {} id after {ID_DRAWS} draws",
            self.what
        )))
    }
}

/// A store insert's answer (whether the id was free) with its unique violation, which can only be the
/// name's as a taken id is not one, as 409 `DUPLICATE_NAME`: "`a_kind` named '`name`' already exists".
pub fn name_taken_as_conflict(
    inserted: barrack_store::Result<bool>,
    a_kind: &str,
    name: &str,
) -> Result<bool> {
    match inserted {
        Err(barrack_store::StoreError::Unique(_)) => Err(Error::conflict(
            "DUPLICATE_NAME",
            format!("{a_kind} named '{name}' already exists"),
        )),
        inserted => Ok(inserted?),
    }
}

pub fn new_id(kind: IdKind) -> String {
    let mut rng = rand::thread_rng();
    let mut id = String::with_capacity(4 + RANDOM_CHARS + 1);
    id.push_str("BRK-");
    for _ in 0..RANDOM_CHARS {
        id.push(ALPHABET[rng.gen_range(0..ALPHABET.len())] as char);
    }
    id.push(kind.suffix());
    id
}

/// A billing record's id: its resource's id form followed by `B` (`BRK-123456DB` for an instance's).
pub fn billing_id(resource: IdKind) -> String {
    let mut id = new_id(resource);
    id.push('B');
    id
}

/// A new ledger entry id (`BRK-XXXXXXT`).
pub fn transaction_id() -> String {
    new_id(IdKind::Transaction)
}

/// Characters drawn uniformly from `[A-Za-z0-9]`.
pub fn random_alphanumeric(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

/// A request id: 8 lowercase alphanumerics.
pub fn request_id() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..8)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_documented_pattern() {
        let id = new_id(IdKind::Instance);
        assert_eq!(id.len(), 11);
        assert!(id.starts_with("BRK-") && id.ends_with('D'));
        assert!(
            id[4..10]
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        );
        let billing = billing_id(IdKind::Volume);
        assert!(billing.len() == 12 && billing.starts_with("BRK-") && billing.ends_with("VB"));
        assert!(
            billing[4..10]
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        );
        let rid = request_id();
        assert!(
            rid.len() == 8
                && rid
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }
}
