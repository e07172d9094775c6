//! Token counts with a real BPE tokenizer (cl100k_base, the ranks shipped by `tiktoken-rs`), so usage and
//! bills look like a production model's.

use std::sync::LazyLock;

use barrack_api::ai::{ChatMessage, ChatRole, MessageContent};
use tiktoken_rs::CoreBPE;

/// Tokens that frame each message, and that prime the reply (OpenAI's accounting for its chat models).
const TOKENS_PER_MESSAGE: u64 = 3;
const TOKENS_PER_NAME: u64 = 1;
const REPLY_PRIMING_TOKENS: u64 = 3;

pub fn bpe() -> &'static CoreBPE {
    tiktoken_rs::cl100k_base_singleton()
}

/// Tokens of a text.
pub fn count(text: &str) -> u64 {
    bpe().encode_ordinary(text).len() as u64
}

/// The text's tokens, each decoded on its own (for texts whose tokens are whole characters, such as the
/// simulator's ASCII replies).
pub fn pieces(text: &str) -> Vec<String> {
    let bpe = bpe();
    bpe.encode_ordinary(text)
        .into_iter()
        .map(|token| {
            let bytes = bpe.decode_bytes(&[token]).unwrap_or_default();
            String::from_utf8_lossy(&bytes).into_owned()
        })
        .collect()
}

/// Tokens of a prompt: every message's role, name and content, and the framing around them.
pub fn count_messages(messages: &[ChatMessage]) -> u64 {
    let mut total = REPLY_PRIMING_TOKENS;
    for message in messages {
        total += TOKENS_PER_MESSAGE;
        total += role_tokens(message);
        match &message.content {
            Some(MessageContent::Text(text)) => total += count(text),
            Some(content) => total += content.text().map_or(0, |text| count(&text)),
            None => {}
        }
        if let Some(name) = &message.name {
            total += TOKENS_PER_NAME + count(name);
        }
    }
    total
}

/// Tokens of the message's role's name, counted once per role: every call counts them.
fn role_tokens(message: &ChatMessage) -> u64 {
    use barrack_api::ai::ChatRole::*;
    static COUNTS: LazyLock<[u64; 5]> = LazyLock::new(|| {
        [System, Developer, User, Assistant, Tool].map(|role| count(role_name(role)))
    });
    let index = match message.role {
        System => 0,
        Developer => 1,
        User => 2,
        Assistant => 3,
        Tool => 4,
    };
    COUNTS[index]
}

fn role_name(role: ChatRole) -> &'static str {
    use barrack_api::ai::ChatRole::*;
    match role {
        System => "system",
        Developer => "developer",
        User => "user",
        Assistant => "assistant",
        Tool => "tool",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_like_the_published_tokenizer() {
        // cl100k_base: "hello world" is two tokens, "tiktoken is great!" six.
        assert_eq!(count("hello world"), 2);
        assert_eq!(count("tiktoken is great!"), 6);
        assert_eq!(pieces("hello world").concat(), "hello world");
    }
}
