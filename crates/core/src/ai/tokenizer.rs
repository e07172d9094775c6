//! Token counts with a real BPE tokenizer (cl100k_base, the ranks shipped by `tiktoken-rs`), so usage and
//! bills look like a production model's.

use barrack_api::ai::ChatMessage;
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
        total += count(role_name(message));
        if let Some(text) = message.content.as_ref().and_then(|c| c.text()) {
            total += count(&text);
        }
        if let Some(name) = &message.name {
            total += TOKENS_PER_NAME + count(name);
        }
    }
    total
}

fn role_name(message: &ChatMessage) -> &'static str {
    use barrack_api::ai::ChatRole::*;
    match message.role {
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
