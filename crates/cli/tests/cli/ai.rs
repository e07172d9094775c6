//! `barrack ai`: models, a chat whole and streamed (the prompt from stdin), and usage.

use crate::common::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ai_models_chat_and_usage() {
    let server = TestServer::start().await;
    server.fund_operator(10).await;
    let cli = server.barrack();

    let models = cli.run(&["ai", "models", "-q"]).await;
    assert_eq!(
        models.lines(),
        ["barrack-sim-small", "barrack-sim-large"],
        "{models:?}"
    );

    let reply = cli
        .run(&[
            "ai",
            "chat",
            "--model",
            "barrack-sim-small",
            "--max-tokens",
            "20",
            "What is NVLink?",
        ])
        .await;
    let text = reply.ok().trim().to_string();
    assert!(!text.is_empty());
    assert!(reply.stderr.contains("output tokens"), "{reply:?}");

    // The same prompt from stdin, streamed: the same reply.
    let streamed = cli
        .run_with_input(
            &[
                "ai",
                "chat",
                "--model",
                "barrack-sim-small",
                "--max-tokens",
                "20",
                "--stream",
            ],
            "What is NVLink?",
        )
        .await;
    assert_eq!(streamed.ok().trim(), text);

    let unknown = cli.run(&["ai", "chat", "--model", "nope", "hi"]).await;
    assert_ne!(unknown.code, 0);
    assert!(unknown.stderr.contains("nope"), "{}", unknown.stderr);

    // An empty prompt is refused before it is sent (and charged), as an argument as on stdin.
    let chat = ["ai", "chat", "--model", "barrack-sim-small"];
    let empty = [
        cli.run(&[&chat[..], &[""]].concat()).await,
        cli.run(&[&chat[..], &[" \n "]].concat()).await,
        cli.run_with_input(&chat, " \n").await,
    ];
    for refused in empty {
        assert_eq!(refused.code, 2, "{refused:?}");
        assert!(
            refused.stderr.contains("the prompt is empty"),
            "{refused:?}"
        );
    }

    let usage = cli.run(&["ai", "usage", "-o", "json"]).await.json();
    assert_eq!(usage["total"]["requests"], 2);
    assert_eq!(usage["models"][0]["model"], "barrack-sim-small");
    let history = cli.run(&["ai", "usage", "--history", "-q"]).await;
    let ids = history.lines();
    assert_eq!(ids.len(), 2);
    assert!(
        ids.iter()
            .all(|id| id.starts_with("BRK-") && id.ends_with('Q'))
    );
    server.stop().await;
}
