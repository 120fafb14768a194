//! The Runtime API host against a real `lambda_runtime` function process.

use super::*;
use serde_json::json;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use lambda_runtime::{Diagnostic, LambdaEvent};

const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotor-test";
/// Set on the re-executed test binary to make [`function_process`] act as the function.
const CHILD_VAR: &str = "ROTOR_RUNTIME_API_TEST_FUNCTION";
const LONG: Duration = Duration::from_secs(30);

/// The function under test, a real `lambda_runtime` client. It runs only in a child
/// process that [`FunctionProcess::start`] makes of this test binary, handing it the
/// Runtime API through its environment as Lambda does (no env mutation in the tests'
/// own process); run as a plain test, it returns at once.
#[test]
#[ignore = "the function process of the other tests; does nothing on its own"]
fn function_process() {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    async fn handler(event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
        let call = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        let payload = event.payload;
        if let Some(ms) = payload["sleep_ms"].as_u64() {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if let Some(message) = payload["fail"].as_str() {
            return Err(Diagnostic {
                error_type: "Rotor.TestFailure".into(),
                error_message: message.into(),
            });
        }
        let context = event.context;
        Ok(json!({
            "echo": payload["echo"], "call": call, "pid": std::process::id(), "request_id": context.request_id,
            "deadline_ms": context.deadline, "arn": context.invoked_function_arn,
        }))
    }
    if std::env::var_os(CHILD_VAR).is_none() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // Ends with an error once the host goes away; the parent kills this process anyway.
    let _ = runtime.block_on(lambda_runtime::run(lambda_runtime::service_fn(handler)));
}

/// The function process, killed on drop.
struct FunctionProcess(Child);

impl FunctionProcess {
    fn start(api: &RuntimeApi) -> Self {
        let module = module_path!()
            .split_once("::")
            .map_or(module_path!(), |(_crate, rest)| rest);
        let child = Command::new(std::env::current_exe().expect("test binary path"))
            .args([
                &format!("{module}::function_process"),
                "--exact",
                "--ignored",
                "--test-threads=1",
            ])
            .env(CHILD_VAR, "1")
            .env("AWS_LAMBDA_RUNTIME_API", api.address().to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "rotor-test")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2024/01/01/[$LATEST]test")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/rotor-test")
            .env_remove("AWS_LAMBDA_MAX_CONCURRENCY")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the function process");
        Self(child)
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One HTTP/1.1 exchange on a fresh connection, as a bare-bones runtime would make it.
/// Returns the status, the head and the body.
async fn raw(api: &RuntimeApi, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let address = api.address();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = move || {
        let mut stream = std::net::TcpStream::connect(address).expect("connect");
        stream.write_all(request.as_bytes()).expect("send request");
        let mut text = String::new();
        stream.read_to_string(&mut text).expect("read response");
        let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status code");
        (status, head.to_owned(), body.to_owned())
    };
    tokio::task::spawn_blocking(exchange)
        .await
        .expect("raw exchange")
}

/// The value of a header, matching the name exactly as AWS documents it.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':').map(str::trim))
}

fn response(invocation: &Invocation) -> &Value {
    match &invocation.outcome {
        Outcome::Response(value) => value,
        other => panic!("expected a response, got {other:?}"),
    }
}

#[tokio::test]
async fn warm_function_answers_several_invocations_in_a_row() {
    let api = RuntimeApi::start(ARN).await.expect("start");
    assert_eq!(api.first_poll(), None);
    let started = Instant::now();
    let _function = FunctionProcess::start(&api);
    let first_poll = api
        .wait_for_first_poll(LONG)
        .await
        .expect("the function polls");
    assert!(first_poll > started);
    assert_eq!(api.first_poll(), Some(first_poll));

    let mut pids = Vec::new();
    let mut ids = Vec::new();
    for n in 1..=3u64 {
        let before = epoch_ms(SystemTime::now() + LONG);
        let invocation = api
            .invoke(&json!({ "echo": format!("event {n}") }), LONG)
            .await
            .expect("invoke");
        let body = response(&invocation);
        assert_eq!(body["echo"], format!("event {n}"));
        assert_eq!(body["call"], n, "the same warm process counts its calls");
        assert_eq!(body["request_id"], invocation.request_id.as_str());
        assert_eq!(body["arn"], ARN);
        let deadline = body["deadline_ms"].as_u64().expect("deadline");
        assert!(
            deadline.abs_diff(before) < 1000,
            "deadline {deadline} is not now + timeout ({before})"
        );
        assert!(invocation.waited_for_poll <= invocation.duration);
        pids.push(body["pid"].clone());
        ids.push(invocation.request_id);
    }
    assert!(pids.iter().all(|pid| *pid == pids[0]));
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
    // The first poll is not reset by later ones.
    assert_eq!(api.first_poll(), Some(first_poll));
}

#[tokio::test]
async fn handler_error_comes_back_as_outcome_error() {
    let api = RuntimeApi::start(ARN).await.expect("start");
    let _function = FunctionProcess::start(&api);
    let failed = api
        .invoke(&json!({ "fail": "boom" }), LONG)
        .await
        .expect("invoke");
    let expected = Outcome::Error {
        error_type: "Rotor.TestFailure".into(),
        error_message: "boom".into(),
    };
    assert_eq!(failed.outcome, expected);
    let after = api
        .invoke(&json!({ "echo": 1 }), LONG)
        .await
        .expect("invoke");
    assert_eq!(response(&after)["call"], 2, "still the same process");
}

#[tokio::test]
async fn timeout_then_late_answer_is_ignored() {
    let api = RuntimeApi::start(ARN).await.expect("start");
    let _function = FunctionProcess::start(&api);
    api.wait_for_first_poll(LONG)
        .await
        .expect("the function polls");
    let slow = api
        .invoke(
            &json!({ "echo": "slow", "sleep_ms": 2000 }),
            Duration::from_millis(500),
        )
        .await;
    let Err(InvokeError::TimedOut {
        request_id,
        timeout,
        fetched: true,
    }) = slow
    else {
        panic!("expected a timeout after the function fetched the event, got {slow:?}");
    };
    assert_eq!(timeout, Duration::from_millis(500));
    // The function answers the slow one ~1.5 s from now, while this one is waiting: that
    // late answer must not resolve it.
    let next = api
        .invoke(&json!({ "echo": "next" }), LONG)
        .await
        .expect("invoke");
    assert_ne!(next.request_id, request_id);
    assert_eq!(response(&next)["echo"], "next");
    assert_eq!(response(&next)["call"], 2);
    assert!(
        next.waited_for_poll >= Duration::from_millis(1000),
        "{next:?}"
    );
}

#[tokio::test]
async fn protocol_headers_unknown_ids_and_paths() {
    let api = RuntimeApi::start(ARN).await.expect("start");
    let event = json!({ "Step": "createSecret", "SecretId": "s" });
    let function = async {
        let (status, head, body) =
            raw(&api, "GET", "/2018-06-01/runtime/invocation/next", "").await;
        assert_eq!(status, 200);
        assert_eq!(
            serde_json::from_str::<Value>(&body).expect("event JSON"),
            event
        );
        assert_eq!(header(&head, "Content-Type"), Some("application/json"));
        assert_eq!(
            header(&head, "Lambda-Runtime-Invoked-Function-Arn"),
            Some(ARN)
        );
        assert!(header(&head, "Lambda-Runtime-Trace-Id").is_some_and(|t| t.starts_with("Root=1-")));
        let deadline: u64 = header(&head, "Lambda-Runtime-Deadline-Ms")
            .and_then(|d| d.parse().ok())
            .expect("deadline");
        assert!(deadline.abs_diff(epoch_ms(SystemTime::now() + LONG)) < 1000);
        let id = header(&head, "Lambda-Runtime-Aws-Request-Id")
            .expect("request id")
            .to_owned();

        let (status, _, body) = raw(
            &api,
            "POST",
            "/2018-06-01/runtime/invocation/bogus/response",
            "{}",
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(
            serde_json::from_str::<Value>(&body).expect("JSON")["errorType"],
            "InvalidRequestID"
        );
        let (status, _, body) = raw(&api, "GET", "/2018-06-01/runtime/nowhere", "").await;
        assert_eq!(status, 404);
        assert_eq!(
            serde_json::from_str::<Value>(&body).expect("JSON")["errorType"],
            "NotFound"
        );

        let path = format!("/2018-06-01/runtime/invocation/{id}/response");
        assert_eq!(raw(&api, "POST", &path, r#"{"ok":true}"#).await.0, 202);
        assert_eq!(
            raw(&api, "POST", &path, r#"{"ok":false}"#).await.0,
            400,
            "answered already"
        );
    };
    let (invocation, ()) = tokio::join!(api.invoke(&event, LONG), function);
    assert_eq!(
        invocation.expect("invoke").outcome,
        Outcome::Response(json!({ "ok": true }))
    );

    // An error posted with the type only in the header, and a response that is not JSON.
    let function = async {
        let (_, head, _) = raw(&api, "GET", "/2018-06-01/runtime/invocation/next", "").await;
        let id = header(&head, "Lambda-Runtime-Aws-Request-Id").expect("request id");
        raw(
            &api,
            "POST",
            &format!("/2018-06-01/runtime/invocation/{id}/error"),
            "plain text",
        )
        .await
        .0
    };
    let (invocation, status) = tokio::join!(api.invoke(&Value::Null, LONG), function);
    assert_eq!(status, 202);
    let expected = Outcome::Error {
        error_type: "Unhandled".into(),
        error_message: "plain text".into(),
    };
    assert_eq!(invocation.expect("invoke").outcome, expected);
    let function = async {
        let (_, head, _) = raw(&api, "GET", "/2018-06-01/runtime/invocation/next", "").await;
        let id = header(&head, "Lambda-Runtime-Aws-Request-Id").expect("request id");
        raw(
            &api,
            "POST",
            &format!("/2018-06-01/runtime/invocation/{id}/response"),
            "not json",
        )
        .await
        .0
    };
    let (invocation, status) = tokio::join!(api.invoke(&Value::Null, LONG), function);
    assert_eq!(status, 202);
    assert_eq!(
        invocation.expect("invoke").outcome,
        Outcome::Response(Value::Null)
    );
}

#[tokio::test]
async fn init_error_fails_waiting_and_later_invocations() {
    let api = RuntimeApi::start(ARN).await.expect("start");
    let report = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let body = r#"{"errorType":"Runtime.ConfigError","errorMessage":"no SECRET_ARN"}"#;
        raw(&api, "POST", "/2018-06-01/runtime/init/error", body)
            .await
            .0
    };
    let (waiting, status) = tokio::join!(api.invoke(&Value::Null, LONG), report);
    assert_eq!(status, 202);
    fn is_init_failure<T>(result: &Result<T, InvokeError>) -> bool {
        matches!(result, Err(InvokeError::InitFailed { error_type, error_message })
            if error_type == "Runtime.ConfigError" && error_message == "no SECRET_ARN")
    }
    assert!(is_init_failure(&waiting), "{waiting:?}");
    assert!(is_init_failure(&api.invoke(&json!({}), LONG).await));
    assert!(is_init_failure(&api.wait_for_first_poll(LONG).await));
}

#[tokio::test]
async fn nobody_polling_times_out() {
    let api = RuntimeApi::start(ARN).await.expect("start");
    let short = Duration::from_millis(50);
    let never = api.wait_for_first_poll(short).await;
    assert!(
        matches!(never, Err(InvokeError::NeverPolled { timeout }) if timeout == short),
        "{never:?}"
    );
    let unfetched = api.invoke(&json!({}), short).await;
    assert!(
        matches!(unfetched, Err(InvokeError::TimedOut { fetched: false, .. })),
        "{unfetched:?}"
    );
    assert_eq!(api.first_poll(), None);
}
