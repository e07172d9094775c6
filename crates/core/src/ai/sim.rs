//! The simulated model: seeded, reproducible replies for a local Barrack. The same prompt, model, seed and
//! temperature give the same reply; `max_tokens`, `stop` and `temperature` are honoured; tokens are those
//! of the real tokenizer, streamed at the configured rate.

use std::time::Duration;

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::backend::{BackendEvent, BackendRequest, BackendStream, BackendUsage, ModelBackend};
use super::tokenizer;

/// Words replies are made of; a higher temperature draws from more of them.
const WORDS: &[&str] = &[
    "the",
    "model",
    "cluster",
    "runs",
    "on",
    "a",
    "GPU",
    "with",
    "memory",
    "and",
    "data",
    "is",
    "loaded",
    "into",
    "each",
    "node",
    "training",
    "inference",
    "batch",
    "tokens",
    "latency",
    "can",
    "be",
    "reduced",
    "by",
    "sharding",
    "weights",
    "across",
    "devices",
    "while",
    "throughput",
    "grows",
    "when",
    "requests",
    "share",
    "kernels",
    "the",
    "scheduler",
    "places",
    "jobs",
    "near",
    "their",
    "volumes",
    "so",
    "checkpoints",
    "restore",
    "quickly",
    "after",
    "preemption",
    "every",
    "instance",
    "keeps",
    "its",
    "state",
    "in",
    "snapshots",
    "that",
    "operators",
    "replicate",
    "between",
    "regions",
    "network",
    "bandwidth",
    "limits",
    "how",
    "fast",
    "gradients",
    "synchronise",
    "mixed",
    "precision",
    "halves",
    "activation",
    "size",
    "compilers",
    "fuse",
    "attention",
    "layers",
    "cache",
    "keys",
    "values",
    "for",
    "long",
    "contexts",
    "quantised",
    "serving",
    "lowers",
    "cost",
    "per",
    "token",
    "without",
    "much",
    "loss",
    "of",
    "accuracy",
    "benchmarks",
    "measure",
    "time",
    "to",
    "first",
    "output",
    "under",
    "load",
];

/// Natural reply lengths, in words.
const MIN_WORDS: usize = 12;
const MAX_WORDS: usize = 90;

pub struct SimBackend {
    first_token: Duration,
    per_token: Option<Duration>,
}

impl SimBackend {
    pub fn new(first_token_ms: u64, tokens_per_second: u32) -> SimBackend {
        SimBackend {
            first_token: Duration::from_millis(first_token_ms),
            per_token: (tokens_per_second > 0)
                .then(|| Duration::from_secs_f64(1.0 / f64::from(tokens_per_second))),
        }
    }
}

/// The reply to `request` and why it ended: the natural reply cut at the first stop sequence, then to
/// `max_tokens` tokens.
pub fn reply(request: &BackendRequest) -> (Vec<String>, &'static str) {
    let mut rng = StdRng::seed_from_u64(seed(request));
    let temperature = request.temperature.unwrap_or(1.0).clamp(0.0, 2.0);
    // At temperature 0 a reply uses the 12 most common words; at 2 all of them.
    let vocabulary = 12 + ((WORDS.len() - 12) as f64 * temperature / 2.0) as usize;
    let words = rng.gen_range(MIN_WORDS..=MAX_WORDS);
    let mut text = String::new();
    let mut sentence = 0;
    for i in 0..words {
        let word = WORDS[rng.gen_range(0..vocabulary)];
        if sentence == 0 {
            if i > 0 {
                text.push(' ');
            }
            let mut chars = word.chars();
            if let Some(first) = chars.next() {
                text.extend(first.to_uppercase());
                text.push_str(chars.as_str());
            }
        } else {
            text.push(' ');
            text.push_str(word);
        }
        sentence += 1;
        if sentence >= rng.gen_range(6..14) || i + 1 == words {
            text.push('.');
            sentence = 0;
        }
    }
    let mut finish = "stop";
    if let Some(cut) = request
        .stop
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
    {
        text.truncate(cut);
    }
    let mut pieces = tokenizer::pieces(&text);
    if pieces.len() > request.max_tokens as usize {
        pieces.truncate(request.max_tokens as usize);
        finish = "length";
    }
    (pieces, finish)
}

/// The call's seed: the request's, or one made from the model and the prompt (FNV-1a).
fn seed(request: &BackendRequest) -> u64 {
    let mut hash: u64 = 0xcbf29ce484222325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x100000001b3);
        }
    };
    feed(request.model.as_bytes());
    if let Some(seed) = request.seed {
        feed(&seed.to_le_bytes());
    } else {
        for message in &request.messages {
            feed(format!("{:?}", message.role).as_bytes());
            if let Some(text) = message.content.as_ref().and_then(|c| c.text()) {
                feed(text.as_bytes());
            }
            feed(&[0]);
        }
    }
    hash
}

impl ModelBackend for SimBackend {
    fn stream(&self, request: BackendRequest) -> BackendStream {
        let (pieces, finish) = reply(&request);
        let usage = BackendUsage {
            input_tokens: request.input_tokens,
            output_tokens: pieces.len() as u64,
        };
        let first_token = self.first_token;
        let per_token = self.per_token;
        let deltas = futures::stream::iter(pieces.into_iter().enumerate()).then(
            move |(i, piece)| async move {
                let wait = if i == 0 { Some(first_token) } else { per_token };
                if let Some(wait) = wait.filter(|w| !w.is_zero()) {
                    tokio::time::sleep(wait).await;
                }
                Ok(BackendEvent::Delta(piece))
            },
        );
        let done = futures::stream::once(async move {
            Ok(BackendEvent::Done {
                finish_reason: finish.to_string(),
                usage: Some(usage),
            })
        });
        deltas.chain(done).boxed()
    }
}

#[cfg(test)]
mod tests {
    use barrack_api::ai::{ChatMessage, ChatRole, MessageContent};

    use super::*;

    fn request(max_tokens: u32, stop: &[&str], temperature: Option<f64>) -> BackendRequest {
        BackendRequest {
            model: "sim".into(),
            messages: vec![ChatMessage {
                role: ChatRole::User,
                content: Some(MessageContent::Text("Tell me about GPUs".into())),
                name: None,
            }],
            max_tokens,
            temperature,
            top_p: None,
            stop: stop.iter().map(|s| s.to_string()).collect(),
            seed: None,
            input_tokens: 10,
        }
    }

    #[test]
    fn replies_are_reproducible_and_honour_the_limits() {
        let (a, finish) = reply(&request(4096, &[], None));
        assert_eq!(reply(&request(4096, &[], None)).0, a);
        assert_eq!(finish, "stop");
        assert_eq!(tokenizer::count(&a.concat()), a.len() as u64);

        let (short, finish) = reply(&request(5, &[], None));
        assert_eq!((short.len(), finish), (5, "length"));
        assert_eq!(short[..], a[..5]);

        let (cut, _) = reply(&request(4096, &["."], None));
        assert!(!cut.concat().contains('.'));
        assert!(a.concat().starts_with(&cut.concat()));

        let (cold, _) = reply(&request(4096, &[], Some(0.0)));
        let words: std::collections::BTreeSet<String> = cold
            .concat()
            .split([' ', '.'])
            .map(str::to_lowercase)
            .filter(|w| !w.is_empty())
            .collect();
        assert!(words.len() <= 12, "{words:?}");
    }
}
