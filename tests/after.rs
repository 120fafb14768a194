//! After-rotation actions (issue 25, item 3): generic-rotation's binary runs
//! the actions its secret's `rotor:after` tag lists at finishSecret, against
//! moto's ECS and SNS (the topic read back through an SQS queue subscribed to
//! it) and the test bed's webhook receiver, which checks rotor's signature.
//! A replayed finishSecret runs none twice; a failed action leaves the new
//! version AWSCURRENT and is reported (result tag, metric, notice topic); an
//! entry outside the deployer's allow-list does nothing and says why.

use aws_sdk_ecs::types::ContainerDefinition;
use rotor_cli::function::{LocalFunction, function_binary};
use rotor_core::after::{AFTER_TAG, RESULT_TAG, vars};
use rotor_core::labels::AWSCURRENT;
use rotor_core::{ExposeSecret, SecretStore, SecretString, Step};
use rotor_testbed::moto::local_sdk_config;
use rotor_testbed::webhook_receiver::WebhookReceiver;
use rotor_tests::emf::emitted;
use rotor_tests::{
    assert_no_stored_secret_in, moto, moto_store, staged_secret, start_function, steps, token,
    unique,
};
use serde_json::Value;

fn ecs() -> aws_sdk_ecs::Client {
    aws_sdk_ecs::Client::new(&local_sdk_config(moto().endpoint()))
}

fn sns() -> aws_sdk_sns::Client {
    aws_sdk_sns::Client::new(&local_sdk_config(moto().endpoint()))
}

fn sqs() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&local_sdk_config(moto().endpoint()))
}

/// An ECS service in moto, in a cluster of its own: (cluster, service ARN).
async fn service(name: &str) -> (String, String) {
    let ecs = ecs();
    let cluster = unique("cluster");
    ecs.create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .unwrap();
    let container = ContainerDefinition::builder()
        .name("app")
        .image("app:1")
        .memory(128)
        .build();
    let task = ecs
        .register_task_definition()
        .family(unique("app"))
        .container_definitions(container)
        .send()
        .await
        .unwrap();
    let task_arn = task.task_definition().unwrap().task_definition_arn();
    let created = ecs
        .create_service()
        .cluster(&cluster)
        .service_name(name)
        .set_task_definition(task_arn.map(str::to_owned))
        .desired_count(1)
        .send()
        .await
        .unwrap();
    let arn = created.service().unwrap().service_arn().unwrap().to_owned();
    (cluster, arn)
}

/// The id of the service's primary deployment: a forced new deployment
/// gives it a new one (in moto as in ECS).
async fn deployment(cluster: &str, service_arn: &str) -> String {
    let out = ecs()
        .describe_services()
        .cluster(cluster)
        .services(service_arn)
        .send()
        .await
        .unwrap();
    let service = &out.services()[0];
    service.deployments()[0].id().unwrap().to_owned()
}

/// A topic with a queue subscribed to it (raw delivery): (topic ARN, queue URL).
async fn topic_with_queue() -> (String, String) {
    let topic = sns()
        .create_topic()
        .name(unique("rotated"))
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_owned();
    let queue = sqs()
        .create_queue()
        .queue_name(unique("rotated"))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let queue_arn = format!(
        "arn:aws:sqs:us-east-1:123456789012:{}",
        queue.rsplit('/').next().unwrap()
    );
    sns()
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", "true")
        .return_subscription_arn(true)
        .send()
        .await
        .unwrap();
    (topic, queue)
}

/// Every message waiting in the queue (it holds a handful at most).
async fn messages(queue: &str) -> Vec<Value> {
    let out = sqs()
        .receive_message()
        .queue_url(queue)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    out.messages()
        .iter()
        .map(|m| serde_json::from_str(m.body().unwrap()).unwrap())
        .collect()
}

/// generic-rotation with ECS and SNS at moto and this allow-list.
async fn function(allow: &[(&str, &str)]) -> LocalFunction {
    let endpoint = moto().endpoint();
    let mut env = vec![
        ("AWS_ENDPOINT_URL_ECS", endpoint),
        ("AWS_ENDPOINT_URL_SNS", endpoint),
    ];
    env.extend_from_slice(allow);
    start_function("generic-rotation", &env).await
}

async fn result_tag(arn: &str) -> Option<String> {
    let secret = moto_store().describe(arn).await.unwrap();
    secret.tags.get(RESULT_TAG).cloned()
}

/// `rotor status` for the secret, as JSON and as the table's text.
async fn status(arn: &str) -> (Value, String) {
    let name = moto_store().describe(arn).await.unwrap().name;
    let run = |json: bool| {
        let mut command = tokio::process::Command::new(function_binary("rotor"));
        command.args(["status", "--prefix", &name, "--endpoint", moto().endpoint()]);
        if json {
            command.arg("--json");
        }
        command.stdin(std::process::Stdio::null()).output()
    };
    let json = run(true)
        .await
        .expect("run rotor; build it with cargo build --workspace");
    let text = run(false).await.expect("run rotor");
    (
        serde_json::from_slice(&json.stdout).unwrap(),
        String::from_utf8_lossy(&text.stdout).into_owned(),
    )
}

async fn current_version(arn: &str) -> Option<String> {
    let secret = moto_store().describe(arn).await.unwrap();
    secret.versions.current().map(str::to_owned)
}

#[tokio::test]
async fn a_replayed_finish_secret_redeploys_and_publishes_once_per_rotation() {
    let (cluster, web) = service("web").await;
    let (topic, queue) = topic_with_queue().await;
    let function = function(&[
        (vars::ECS_SERVICES, web.as_str()),
        (vars::SNS_TOPICS, topic.as_str()),
    ])
    .await;
    let store = moto_store();
    let t = token();
    let after = format!("ecs:{cluster}/web sns:{topic}");
    let arn = staged_secret(&store, "first-value", &[(AFTER_TAG, after.as_str())], &t).await;
    steps::replay(&function, &arn, &t, &Step::ALL[..3]).await;

    let before = deployment(&cluster, &web).await;
    let finished = steps::run(&function, &arn, &t, Step::FinishSecret).await;
    assert_eq!(finished.as_deref(), Ok("done"), "{}", function.output());
    let redeployed = deployment(&cluster, &web).await;
    assert_ne!(redeployed, before, "finishSecret forces a new deployment");
    assert_eq!(result_tag(&arn).await, Some(format!("{t} ok ok")));

    // Secrets Manager may send finishSecret again: nothing runs twice.
    let again = steps::run(&function, &arn, &t, Step::FinishSecret).await;
    assert_eq!(again.as_deref(), Ok("already_current"));
    assert_eq!(deployment(&cluster, &web).await, redeployed);
    let published = messages(&queue).await;
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0]["action"], "finished");
    assert_eq!(published[0]["versionId"], t.as_str());
    assert_eq!(published[0]["secretArn"], arn.as_str());
    assert_no_stored_secret_in(&store, &arn, &published[0].to_string()).await;

    let metrics = emitted(&function.output());
    for action in ["ecs", "sns"] {
        let docs = metrics.with(&[("Action", action), ("Outcome", "Success")]);
        assert_eq!(docs.len(), 1, "{action}: {}", metrics.text());
        assert_eq!(docs[0]["Actions"], 1.0);
    }
    assert_no_stored_secret_in(&store, &arn, &function.output()).await;
}

#[tokio::test]
async fn failed_actions_leave_the_new_version_current_and_are_reported() {
    // Allowed, but neither exists: ECS answers ServiceNotFoundException and
    // SNS NotFound, which no retry cures.
    let cluster = unique("gone");
    let missing_service = format!("arn:aws:ecs:us-east-1:123456789012:service/{cluster}/web");
    let missing_topic = format!("arn:aws:sns:us-east-1:123456789012:{}", unique("gone"));
    let (notices, notice_queue) = topic_with_queue().await;
    let function = function(&[
        (vars::ECS_SERVICES, missing_service.as_str()),
        (vars::SNS_TOPICS, missing_topic.as_str()),
        (vars::NOTICE_TOPIC, notices.as_str()),
    ])
    .await;
    let store = moto_store();
    let t = token();
    let after = format!("ecs:{cluster}/web sns:{missing_topic}");
    let arn = staged_secret(&store, "first-value", &[(AFTER_TAG, after.as_str())], &t).await;
    for step in Step::ALL {
        let outcome = steps::run(&function, &arn, &t, step).await;
        assert!(
            outcome.is_ok(),
            "{step}: {outcome:?}\n{}",
            function.output()
        );
    }
    assert_eq!(current_version(&arn).await.as_deref(), Some(t.as_str()));
    assert_eq!(result_tag(&arn).await, Some(format!("{t} failed failed")));

    let notice = messages(&notice_queue).await;
    assert_eq!(notice.len(), 1, "{notice:?}");
    assert_eq!(notice[0]["versionId"], t.as_str());
    let (json, text) = status(&arn).await;
    let after = &json["secrets"][0]["after_actions"];
    assert_eq!(after["version"], t.as_str(), "{json}");
    assert_eq!(after["actions"][0]["outcome"], "failed", "{json}");
    assert_eq!(after["actions"][1]["entry"], format!("sns:{missing_topic}"));
    assert!(
        text.contains(&format!(
            "after-rotation actions (last run for version {t})"
        )),
        "{text}"
    );
    let problems = notice[0]["problems"].to_string();
    assert!(problems.contains("ecs:UpdateService failed"), "{problems}");
    assert!(problems.contains("sns:Publish failed"), "{problems}");

    let metrics = emitted(&function.output());
    for action in ["ecs", "sns"] {
        let docs = metrics.with(&[("Action", action), ("Outcome", "Failed")]);
        assert_eq!(docs.len(), 1, "{action}: {}", metrics.text());
    }
    // The replay tries neither again.
    let again = steps::run(&function, &arn, &t, Step::FinishSecret).await;
    assert_eq!(again.as_deref(), Ok("already_current"));
    assert!(messages(&notice_queue).await.is_empty());
    assert_no_stored_secret_in(&store, &arn, &function.output()).await;
}

#[tokio::test]
async fn a_service_outside_the_allow_list_is_left_alone_and_the_reason_given() {
    let (ours, web) = service("web").await;
    let (theirs, other) = service("billing").await;
    let function = function(&[(vars::ECS_SERVICES, web.as_str())]).await;
    let store = moto_store();
    let t = token();
    // A tag writer names another team's service, by name and by ARN.
    let after = format!("ecs:{theirs}/billing ecs:{other}");
    let arn = staged_secret(&store, "first-value", &[(AFTER_TAG, after.as_str())], &t).await;
    let before = deployment(&theirs, &other).await;
    for step in Step::ALL {
        steps::run(&function, &arn, &t, step).await.unwrap();
    }
    assert_eq!(deployment(&theirs, &other).await, before);
    assert_eq!(current_version(&arn).await.as_deref(), Some(t.as_str()));
    assert_eq!(result_tag(&arn).await, Some(format!("{t} refused refused")));
    let output = function.output();
    assert!(
        output.contains("not in the function's allow-list") && output.contains("afterEcsServices"),
        "{output}"
    );
    let metrics = emitted(&output);
    let refused = metrics.with(&[("Action", "ecs"), ("Outcome", "Refused")]);
    assert_eq!(refused.len(), 1, "{}", metrics.text());
    assert_eq!(refused[0]["Actions"], 2.0);
    // Our own service was not named, so it was not touched either.
    let _ = ours;
}

#[tokio::test]
async fn the_webhook_gets_a_signed_finished_call_without_the_value_once() {
    let store = moto_store();
    let key = SecretString::from(format!("key-{}", unique("k")));
    let receiver = WebhookReceiver::start(SecretString::from(key.expose_secret()))
        .await
        .unwrap();
    let key_secret =
        rotor_core::store::RotationService::create_secret(&store, &unique("after-key"), &key, &[])
            .await
            .unwrap();
    let url = receiver.url();
    let function = function(&[
        (vars::WEBHOOK_PREFIXES, url.as_str()),
        (vars::WEBHOOK_KEY_SECRET, key_secret.as_str()),
    ])
    .await;
    let t = token();
    let after = format!("webhook:{url}/app");
    let arn = staged_secret(&store, "first-value", &[(AFTER_TAG, after.as_str())], &t).await;
    steps::replay(&function, &arn, &t, &Step::ALL).await;

    let seen = receiver.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].action, "finished");
    assert_eq!(seen[0].version_id, t);
    assert!(
        seen[0].signature_ok && !seen[0].carried_value,
        "{:?}",
        seen[0]
    );
    assert_eq!(seen[0].status, 200);
    assert_eq!(result_tag(&arn).await, Some(format!("{t} ok")));
    let current = rotor_tests::value(&store, &arn, AWSCURRENT).await;
    assert!(current.is_some());
    assert_no_stored_secret_in(&store, &arn, &function.output()).await;
}
