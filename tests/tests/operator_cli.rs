//! The operator commands, run as the real `igflow-worker` binary against this test's
//! services (build it first: `cargo build --workspace --bins`).

use igflow_tests::faults::workspace_bin;
use igflow_tests::fixtures::{ACCOUNT, campaigns_yaml};
use igflow_tests::harness::{TestEnv, queue_depth};
use igflow_tests::meta::{CommentSpec, comment_delivery};
use igflow_tests::ollama_server::{Mode, OllamaTestServer};

async fn run(env: &TestEnv, args: &[&str]) -> (bool, String) {
    let bin = workspace_bin("igflow-worker").expect("igflow-worker is built");
    let out = tokio::process::Command::new(bin)
        .args(args)
        .envs(env.worker_process_env(&[]))
        .output()
        .await
        .expect("igflow-worker runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_and_dlq_commands_work_from_the_command_line() {
    let env = TestEnv::new().await.unwrap();
    env.apply(&campaigns_yaml()).await.unwrap();

    let dir = std::env::temp_dir().join(format!("igflow-replay-{}", igflow_tests::harness::tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("captured.jsonl");
    let comments = [
        CommentSpec::new("17900000000000301", "6301", "price?"),
        CommentSpec::new("17900000000000302", "6302", "cost?"),
    ];
    std::fs::write(&file, comment_delivery(ACCOUNT, &comments) + "\n").unwrap();
    let (ok, out) = run(&env, &["replay", file.to_str().unwrap()]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("replayed 1 delivery(ies) as 2 envelope(s)"),
        "{out}"
    );
    assert_eq!(env.queue_depth().await.unwrap(), (2, 0));

    std::fs::write(
        &file,
        "{\"object\": \"instagram\", \"entry\": [{\"time\": 1}]}\n",
    )
    .unwrap();
    let (ok, out) = run(&env, &["replay", file.to_str().unwrap()]).await;
    assert!(!ok && out.contains("delivery 0 of the file"), "{out}");
    assert_eq!(
        env.queue_depth().await.unwrap(),
        (2, 0),
        "a bad file enqueues nothing"
    );

    env.sqs
        .send_message()
        .queue_url(&env.dlq_url)
        .message_body("not an envelope")
        .send()
        .await
        .unwrap();
    let (ok, out) = run(&env, &["dlq", "list"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("1 message(s) in the DLQ") && out.contains("kind=(not an envelope)"),
        "{out}"
    );
    let (ok, out) = run(&env, &["dlq", "redrive"]).await;
    assert!(!ok && out.contains("--all"), "{out}");
    let (ok, out) = run(&env, &["dlq", "redrive", "--all"]).await;
    assert!(ok && out.contains("1 message(s) moved back"), "{out}");
    assert_eq!(queue_depth(&env.sqs, &env.dlq_url).await.unwrap(), (0, 0));
    assert_eq!(env.queue_depth().await.unwrap(), (3, 0));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_shows_the_decision_without_sending_anything() {
    let env = TestEnv::new().await.unwrap();
    let dir =
        std::env::temp_dir().join(format!("igflow-simulate-{}", igflow_tests::harness::tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("campaigns.yaml");
    let with_intent = campaigns_yaml().replace(
        "        actions:\n          private_reply: \"Hi! Our price list",
        "        intents:\n          - name: purchase\n            description: wants to buy\n        actions:\n          private_reply: \"Hi! Our price list",
    );
    std::fs::write(&file, with_intent).unwrap();
    let path = file.to_str().unwrap();

    let (ok, out) = run(&env, &["simulate", "--campaigns", path, "PRICE pls 😍"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("campaign price-list fires: rule 0 matched keyword \"price\""),
        "{out}"
    );
    assert!(
        out.contains("would send private_reply: \"Hi! Our price list"),
        "{out}"
    );
    assert!(out.contains("would send public_reply"), "{out}");

    let (ok, out) = run(
        &env,
        &["simulate", "--campaigns", path, "where can I buy these?"],
    )
    .await;
    assert!(
        ok && out.contains("the model was not asked (no_model)")
            && out.contains("no campaign fires"),
        "{out}"
    );

    let ollama = OllamaTestServer::start(0, Mode::Label("purchase".into()))
        .await
        .unwrap();
    let bin = workspace_bin("igflow-worker").expect("igflow-worker is built");
    let out = tokio::process::Command::new(bin)
        .args(["simulate", "--campaigns", path, "where can I buy these?"])
        .env("OLLAMA_URL", &ollama.url)
        .output()
        .await
        .expect("igflow-worker runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("the model recognized intent \"purchase\" (model)"),
        "{text}"
    );
    assert!(
        text.contains("campaign price-list fires: intent \"purchase\""),
        "{text}"
    );
    assert!(env.graph.calls().is_empty(), "nothing is sent");
    std::fs::remove_dir_all(dir).unwrap();
}
