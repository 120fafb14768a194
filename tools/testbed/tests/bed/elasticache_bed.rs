//! The ElastiCache user-API emulator (rotor_testbed::elasticache), driven by
//! the real `aws-sdk-elasticache` client so that its requests and answers are
//! the shapes the SDK sends and parses, over a real Redis whose ACL users hold
//! the passwords: an independent client (redis-cli) proves which log in.

use aws_sdk_elasticache::Client;
use aws_sdk_elasticache::config::http::HttpResponse;
use aws_sdk_elasticache::config::retry::RetryConfig;
use aws_sdk_elasticache::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_elasticache::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_elasticache::types::{AuthenticationMode, AuthenticationType, InputAuthenticationType};
use rotor_testbed::elasticache::{AuthType, ElastiCacheEmulator, EmulatedUser, user_arn};
use rotor_testbed::redis_server::RedisServer;
use secrecy::{ExposeSecret, SecretString};

const ID: &str = "app-user";
const NAME: &str = "app";
const ACCESS: &str = "on ~* +@connection +get +set";

fn password(tag: char) -> SecretString {
    SecretString::from(format!("{tag}-{}", uuid::Uuid::new_v4().simple()))
}

/// An SDK client pointed at the emulator: rotor-core's HTTPS client, fixed
/// test credentials (the emulator does not verify SigV4), `attempts` tries.
fn client(emulator: &ElastiCacheEmulator, attempts: u32) -> Client {
    let config = aws_sdk_elasticache::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "test", None, None, "bed"))
        .endpoint_url(emulator.url())
        .http_client(rotor_core::store::aws::https_client())
        .retry_config(RetryConfig::standard().with_max_attempts(attempts))
        .build();
    Client::from_conf(config)
}

/// A Redis, an emulator over it, and user `ID` (Redis user `NAME`) with `first`.
async fn bed(first: &SecretString) -> (RedisServer, ElastiCacheEmulator) {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("cannot start Redis: {e:#}"));
    let emulator = ElastiCacheEmulator::start_for(&redis).await.unwrap();
    let arn = emulator
        .add_user(EmulatedUser::new(
            ID,
            NAME,
            ACCESS,
            std::slice::from_ref(first),
        ))
        .await
        .unwrap();
    assert_eq!(
        arn,
        "arn:aws:elasticache:us-east-1:123456789012:user:app-user"
    );
    (redis, emulator)
}

/// The error code and HTTP status of a failed call.
fn code_and_status<E>(error: &SdkError<E, HttpResponse>) -> (String, u16)
where
    E: ProvideErrorMetadata,
{
    let status = error.raw_response().map_or(0, |r| r.status().as_u16());
    let code = match error {
        SdkError::ServiceError(e) => e.err().code().unwrap_or("").to_owned(),
        _ => String::new(),
    };
    (code, status)
}

async fn status_of(client: &Client, id: &str) -> String {
    let out = client.describe_users().user_id(id).send().await.unwrap();
    assert_eq!(out.users().len(), 1);
    out.users()[0].status().unwrap_or("").to_owned()
}

#[tokio::test]
async fn elasticache_describes_a_user_in_the_documented_shape() {
    let first = password('a');
    let (redis, emulator) = bed(&first).await;
    assert!(
        redis.logs_in(NAME, &first),
        "add_user sets the Redis password"
    );
    let client = client(&emulator, 1);

    let out = client.describe_users().user_id(ID).send().await.unwrap();
    let user = &out.users()[0];
    assert_eq!(user.user_id(), Some(ID));
    assert_eq!(user.user_name(), Some(NAME));
    assert_eq!(user.status(), Some("active"));
    assert_eq!(user.engine(), Some("redis"));
    assert_eq!(user.minimum_engine_version(), Some("6.0"));
    assert_eq!(user.access_string(), Some(ACCESS));
    assert!(user.user_group_ids().is_empty());
    assert_eq!(user.arn(), Some(user_arn(ID).as_str()));
    let auth = user.authentication().expect("Authentication");
    assert_eq!(auth.r#type(), Some(&AuthenticationType::Password));
    assert_eq!(auth.password_count(), Some(1));
    assert!(out.marker().is_none());

    // Without UserId: every user.
    let all = client.describe_users().send().await.unwrap();
    assert_eq!(all.users().len(), 1);

    let missing = client
        .describe_users()
        .user_id("nobody")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_and_status(&missing), ("UserNotFound".into(), 404));
    assert!(
        missing
            .as_service_error()
            .unwrap()
            .is_user_not_found_fault()
    );

    let calls = emulator.calls();
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|c| c.action == "DescribeUsers"));
    assert_eq!(calls[2].error_code.as_deref(), Some("UserNotFound"));
}

#[tokio::test]
async fn elasticache_modify_user_sets_exactly_the_given_passwords_in_redis() {
    let first = password('a');
    let (redis, emulator) = bed(&first).await;
    let client = client(&emulator, 1);
    let (second, third) = (password('b'), password('c'));

    let out = client
        .modify_user()
        .user_id(ID)
        .passwords(second.expose_secret())
        .passwords(third.expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(out.user_id(), Some(ID));
    assert_eq!(out.status(), Some("modifying"));
    assert_eq!(out.authentication().unwrap().password_count(), Some(2));
    assert_eq!(out.arn(), Some(user_arn(ID).as_str()));

    assert!(
        redis.logs_in(NAME, &second),
        "the first new password logs in"
    );
    assert!(
        redis.logs_in(NAME, &third),
        "the second new password logs in"
    );
    assert!(!redis.logs_in(NAME, &first), "the old password is gone");
    assert_eq!(redis.password_count(NAME).unwrap(), 2);
    assert_eq!(emulator.password_count(ID), Some(2));

    // Default: one DescribeUsers says modifying, then active.
    assert_eq!(status_of(&client, ID).await, "modifying");
    assert_eq!(status_of(&client, ID).await, "active");
    assert_eq!(status_of(&client, ID).await, "active");

    // Down to one password.
    client
        .modify_user()
        .user_id(ID)
        .passwords(third.expose_secret())
        .send()
        .await
        .unwrap();
    assert!(!redis.logs_in(NAME, &second));
    assert!(redis.logs_in(NAME, &third));
    assert_eq!(emulator.password_count(ID), Some(1));

    // The call log counts passwords and never holds one.
    let modifies = emulator.calls_of("ModifyUser");
    assert_eq!(
        modifies
            .iter()
            .map(|c| c.password_count)
            .collect::<Vec<_>>(),
        [2, 1]
    );
    assert_eq!(modifies[0].user_id.as_deref(), Some(ID));
    let log = format!("{:?}", emulator.calls());
    for secret in [&first, &second, &third] {
        assert!(
            !log.contains(secret.expose_secret()),
            "a password in the call log"
        );
    }
}

#[tokio::test]
async fn elasticache_refuses_modify_user_while_modifying() {
    let first = password('a');
    let (redis, emulator) = bed(&first).await;
    let client = client(&emulator, 1);
    emulator.set_modifying_describes(2);
    let second = password('b');
    client
        .modify_user()
        .user_id(ID)
        .passwords(second.expose_secret())
        .send()
        .await
        .unwrap();

    let third = password('c');
    let refused = client
        .modify_user()
        .user_id(ID)
        .passwords(third.expose_secret())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_and_status(&refused), ("InvalidUserState".into(), 400));
    assert!(
        refused
            .as_service_error()
            .unwrap()
            .is_invalid_user_state_fault()
    );
    assert!(
        redis.logs_in(NAME, &second),
        "a refused call changes nothing"
    );
    assert!(!redis.logs_in(NAME, &third));

    assert_eq!(status_of(&client, ID).await, "modifying");
    assert_eq!(status_of(&client, ID).await, "modifying");
    assert_eq!(status_of(&client, ID).await, "active");

    // The knob for one user.
    assert!(emulator.stay_modifying(ID, 1));
    assert!(!emulator.stay_modifying("nobody", 1));
    assert_eq!(emulator.user(ID).unwrap().status, "modifying");
    assert_eq!(status_of(&client, ID).await, "modifying");
    assert_eq!(status_of(&client, ID).await, "active");
    client
        .modify_user()
        .user_id(ID)
        .passwords(third.expose_secret())
        .send()
        .await
        .unwrap();
    assert!(redis.logs_in(NAME, &third));

    let missing = client
        .modify_user()
        .user_id("nobody")
        .passwords(third.expose_secret())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_and_status(&missing), ("UserNotFound".into(), 404));
}

#[tokio::test]
async fn elasticache_refuses_bad_passwords_without_echoing_them() {
    let first = password('a');
    let (redis, emulator) = bed(&first).await;
    let client = client(&emulator, 1);
    let short = SecretString::from("fifteen-chars!!");
    let long = SecretString::from("x".repeat(129));
    let (ok1, ok2, ok3) = (password('b'), password('c'), password('d'));

    let cases: [(&str, Vec<&SecretString>); 3] = [
        ("15 characters", vec![&short]),
        ("129 characters", vec![&ok1, &long]),
        ("three passwords", vec![&ok1, &ok2, &ok3]),
    ];
    for (what, list) in cases {
        let mut call = client.modify_user().user_id(ID);
        for p in &list {
            call = call.passwords(p.expose_secret());
        }
        let error = call.send().await.unwrap_err();
        assert_eq!(
            code_and_status(&error),
            ("InvalidParameterValue".into(), 400),
            "{what}"
        );
        let message = error
            .as_service_error()
            .and_then(|e| e.message())
            .unwrap_or("")
            .to_owned();
        for p in &list {
            assert!(
                !message.contains(p.expose_secret()),
                "{what}: a password echoed"
            );
        }
    }
    // Exactly 16 and 128 are fine.
    let sixteen = SecretString::from("sixteen-chars-ok");
    let max = SecretString::from("y".repeat(128));
    assert!(redis.logs_in(NAME, &first), "refused calls change nothing");
    client
        .modify_user()
        .user_id(ID)
        .passwords(sixteen.expose_secret())
        .passwords(max.expose_secret())
        .send()
        .await
        .unwrap();
    assert!(redis.logs_in(NAME, &sixteen) && redis.logs_in(NAME, &max));

    // Passwords with NoPasswordRequired, and nothing to change.
    emulator.stay_modifying(ID, 0);
    let both = client
        .modify_user()
        .user_id(ID)
        .passwords(ok1.expose_secret())
        .no_password_required(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_and_status(&both),
        ("InvalidParameterCombination".into(), 400)
    );
}

#[tokio::test]
async fn elasticache_access_strings_and_authentication_modes() {
    let first = password('a');
    let (redis, emulator) = bed(&first).await;
    let client = client(&emulator, 1);
    emulator.set_modifying_describes(0);

    let out = client
        .modify_user()
        .user_id(ID)
        .append_access_string("+dbsize")
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.access_string(),
        Some(format!("{ACCESS} +dbsize").as_str())
    );
    let dbsize = redis.cli_as(
        rotor_testbed::redis_server::Via::Tls,
        NAME,
        &first,
        &["DBSIZE"],
    );
    assert!(
        dbsize.is_ok_and(|out| out.parse::<u64>().is_ok()),
        "appended rule applied"
    );

    let bad = client
        .modify_user()
        .user_id(ID)
        .access_string("on +no-such-command")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_and_status(&bad), ("InvalidParameterValue".into(), 400));

    let second = password('b');
    let mode = AuthenticationMode::builder()
        .r#type(InputAuthenticationType::Password)
        .passwords(second.expose_secret())
        .build();
    let out = client
        .modify_user()
        .user_id(ID)
        .authentication_mode(mode)
        .send()
        .await
        .unwrap();
    assert_eq!(out.authentication().unwrap().password_count(), Some(1));
    assert!(redis.logs_in(NAME, &second) && !redis.logs_in(NAME, &first));

    let out = client
        .modify_user()
        .user_id(ID)
        .no_password_required(true)
        .send()
        .await
        .unwrap();
    let auth = out.authentication().unwrap();
    assert_eq!(auth.r#type(), Some(&AuthenticationType::NoPassword));
    assert_eq!(auth.password_count(), Some(0));
    assert_eq!(emulator.user(ID).unwrap().auth, AuthType::NoPassword);
    assert!(
        redis.logs_in(NAME, &password('z')),
        "nopass: any password logs in"
    );
}

#[tokio::test]
async fn elasticache_injected_faults_reach_the_sdk_and_its_retries() {
    let first = password('a');
    let (redis, emulator) = bed(&first).await;
    let second = password('b');

    // One attempt: the SDK reports the injected fault; nothing changes.
    let once = client(&emulator, 1);
    emulator.fail_next("ModifyUser", "Throttling", 400);
    let error = once
        .modify_user()
        .user_id(ID)
        .passwords(second.expose_secret())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_and_status(&error), ("Throttling".into(), 400));
    assert!(redis.logs_in(NAME, &first) && !redis.logs_in(NAME, &second));

    emulator.fail_next("DescribeUsers", "InternalFailure", 500);
    let error = once.describe_users().user_id(ID).send().await.unwrap_err();
    assert_eq!(code_and_status(&error), ("InternalFailure".into(), 500));

    // The SDK's standard retries get past one throttled attempt.
    let retrying = client(&emulator, 3);
    emulator.fail_next("ModifyUser", "Throttling", 400);
    retrying
        .modify_user()
        .user_id(ID)
        .passwords(second.expose_secret())
        .send()
        .await
        .unwrap();
    assert!(redis.logs_in(NAME, &second));
    let modifies = emulator.calls_of("ModifyUser");
    let codes: Vec<Option<&str>> = modifies.iter().map(|c| c.error_code.as_deref()).collect();
    assert_eq!(codes, [Some("Throttling"), Some("Throttling"), None]);
    assert_eq!(modifies[2].status, 200);

    // An answer lost after the change: Redis has the new passwords, the
    // caller an error, and the user is modifying.
    emulator.stay_modifying(ID, 0);
    let third = password('c');
    emulator.lose_next_answer("ModifyUser", "InternalFailure", 500);
    let error = once
        .modify_user()
        .user_id(ID)
        .passwords(second.expose_secret())
        .passwords(third.expose_secret())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_and_status(&error), ("InternalFailure".into(), 500));
    assert!(redis.logs_in(NAME, &second) && redis.logs_in(NAME, &third));
    assert_eq!(emulator.password_count(ID), Some(2));
    assert_eq!(emulator.user(ID).unwrap().status, "modifying");
}

#[tokio::test]
async fn elasticache_requires_a_signed_query_request() {
    let first = password('a');
    let (_redis, emulator) = bed(&first).await;
    let http = rotor_core::http::client().unwrap();
    let body = format!("Action=DescribeUsers&Version=2015-02-02&UserId={ID}");
    let unsigned = http
        .post(emulator.url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 403);
    let text = unsigned.text().await.unwrap();
    assert!(
        text.contains("<Code>MissingAuthenticationToken</Code>"),
        "{text}"
    );

    let signed = http
        .post(emulator.url())
        .header("authorization", "AWS4-HMAC-SHA256 not-verified")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status().as_u16(), 200);
    let text = signed.text().await.unwrap();
    assert!(
        text.starts_with(
            "<DescribeUsersResponse xmlns=\"http://elasticache.amazonaws.com/doc/2015-02-02/\">\
             <DescribeUsersResult><Users><member><UserId>app-user</UserId>"
        ),
        "{text}"
    );
    assert!(text.contains("<ResponseMetadata><RequestId>"), "{text}");

    let wrong_version = http
        .post(emulator.url())
        .header("authorization", "AWS4-HMAC-SHA256 not-verified")
        .body("Action=DescribeUsers&Version=2014-01-01")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_version.status().as_u16(), 400);
}

/// A user's tags through the SDK: `AddTagsToResource` sets and replaces,
/// `ListTagsForResource` lists them in the `TagList` shape the SDK parses,
/// the knob tags as an owner would; an unknown user is `UserNotFound`, an
/// ARN of something else `InvalidARN`.
#[tokio::test]
async fn elasticache_lists_and_adds_a_users_tags() {
    use aws_sdk_elasticache::types::Tag;

    let (_redis, emulator) = bed(&password('a')).await;
    let client = client(&emulator, 1);
    let arn = user_arn(ID);
    let tags_of = |out: &[Tag]| -> Vec<(String, String)> {
        out.iter()
            .map(|t| {
                (
                    t.key().unwrap_or("").to_owned(),
                    t.value().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };

    let none = client
        .list_tags_for_resource()
        .resource_name(&arn)
        .send()
        .await
        .unwrap();
    assert!(none.tag_list().is_empty());

    let secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:team-a/orders-AbCdEf";
    let added = client
        .add_tags_to_resource()
        .resource_name(&arn)
        .tags(Tag::builder().key("rotor:secret").value("old").build())
        .tags(Tag::builder().key("team").value("a").build())
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(added.tag_list()).len(), 2);
    client
        .add_tags_to_resource()
        .resource_name(&arn)
        .tags(Tag::builder().key("rotor:secret").value(secret).build())
        .send()
        .await
        .unwrap();
    let listed = client
        .list_tags_for_resource()
        .resource_name(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags_of(listed.tag_list()),
        [
            ("rotor:secret".to_owned(), secret.to_owned()),
            ("team".to_owned(), "a".to_owned())
        ]
    );
    assert!(emulator.tag_user(ID, "owner", "ops"));
    assert!(!emulator.tag_user("nobody", "owner", "ops"));
    assert_eq!(emulator.tags(ID).unwrap().len(), 3);

    let missing = client
        .list_tags_for_resource()
        .resource_name(user_arn("nobody"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_and_status(&missing), ("UserNotFound".into(), 404));
    assert!(
        missing
            .as_service_error()
            .unwrap()
            .is_user_not_found_fault()
    );
    let cluster = client
        .list_tags_for_resource()
        .resource_name("arn:aws:elasticache:us-east-1:123456789012:cluster:c1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_and_status(&cluster), ("InvalidARN".into(), 400));
    assert!(cluster.as_service_error().unwrap().is_invalid_arn_fault());
    let reserved = client
        .add_tags_to_resource()
        .resource_name(&arn)
        .tags(Tag::builder().key("aws:x").value("v").build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code_and_status(&reserved),
        ("InvalidParameterValue".into(), 400)
    );
    assert_eq!(emulator.calls_of("ListTagsForResource").len(), 4);
}
