//! The secret writer as an attacker against redis-rotation: an admin that serves a writer acts only on that writer's user, at the admin's own server (issue 21, items 1 and 4).
//!
//! Item 1: before the fix, setSecret took a login at the *writer's* `host` and
//! `port` as proof that the writer held a working password, and compared only
//! the host with the admin secret's. A writer whose secret the admin serves
//! named the admin's host, a port of its own where anything answers `+OK`,
//! `"ssl": false`, and the admin's own user (or another team's): the real
//! admin then added the writer's pending password to that user, and
//! finishSecret removed the user's other passwords.

use std::sync::{Arc, Mutex, PoisonError};

use rotor_core::event::Step;
use rotor_core::labels::{AWSCURRENT, AWSPENDING};
use rotor_core::store::{NewVersion, RotationService};
use rotor_core::{ExposeSecret, SecretStore, SecretString};
use rotor_testbed::redis_server::{ADMIN_USER, RedisServer};
use rotor_tests::db::random_password;
use rotor_tests::{
    assert_no_stored_secret_in, moto, moto_store, staged_secret, staged_secret_named,
    start_function, steps, token, unique, value,
};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::rotate_until_refused;
use crate::redis::{admin_secret, function, secret};

#[derive(Default)]
struct Seen {
    connections: usize,
    bytes: Vec<u8>,
}

/// A listener of the writer's on another port of 127.0.0.1 that passes for a
/// Redis where every password works: `+PONG` to `PING`, `+OK` to anything
/// else (`AUTH` included). It counts connections and keeps what arrives,
/// which is only ever searched, never printed.
struct AnyPasswordRedis {
    port: u16,
    seen: Arc<Mutex<Seen>>,
    server: JoinHandle<()>,
}

impl Drop for AnyPasswordRedis {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl AnyPasswordRedis {
    async fn start() -> AnyPasswordRedis {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("its address").port();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let shared = seen.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                shared
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .connections += 1;
                tokio::spawn(answer_everything(stream, shared.clone()));
            }
        });
        AnyPasswordRedis { port, seen, server }
    }

    fn connections(&self) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .connections
    }

    fn received_contains(&self, needle: &str) -> bool {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        !needle.is_empty()
            && seen
                .bytes
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
    }
}

/// Reads RESP commands (`*N` then `N` bulk strings) and answers each.
async fn answer_everything(stream: tokio::net::TcpStream, seen: Arc<Mutex<Seen>>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let keep = |bytes: &[u8]| {
        seen.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes
            .extend_from_slice(bytes)
    };
    loop {
        let mut line = Vec::new();
        if read.read_until(b'\n', &mut line).await.unwrap_or(0) == 0 {
            return;
        }
        keep(&line);
        let count: usize = std::str::from_utf8(&line[1..])
            .ok()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        let mut first = Vec::new();
        for i in 0..count.min(64) {
            let mut header = Vec::new();
            if read.read_until(b'\n', &mut header).await.unwrap_or(0) == 0 {
                return;
            }
            keep(&header);
            let len: usize = std::str::from_utf8(&header[1..])
                .ok()
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            let mut data = vec![0; len.min(1 << 16) + 2];
            if read.read_exact(&mut data).await.is_err() {
                return;
            }
            keep(&data);
            if i == 0 {
                first = data[..data.len() - 2].to_ascii_uppercase();
            }
        }
        let reply: &[u8] = if first == b"PING" {
            b"+PONG\r\n"
        } else {
            b"+OK\r\n"
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// Item 1: the writer's secret names the admin's host, a port of the
/// writer's where any password works, `"ssl": false`, and a user the writer
/// has no password for: the admin's own user, then another team's user.
///
/// On the code before the fix, all four steps succeeded for both users
/// (`rotate_until_refused` returned None): the admin user was given the
/// writer's pending password, a password read from the writer's own
/// AWSCURRENT logged in as the admin, and finishSecret removed the admin's
/// real password (and the other team's), so the deployer's admin secret
/// stopped working. Now setSecret refuses with InvalidSettings naming
/// `masterarn` and both endpoints; nothing reaches the writer's port and no
/// password changes.
#[tokio::test]
async fn a_writer_cannot_prove_a_password_at_its_own_port_and_take_over_a_user() {
    let redis = RedisServer::start().unwrap();
    let store = moto_store();
    let admin_password = redis.admin_password();
    let (admin, team) = admin_secret(&store, &redis, &admin_password).await;
    let victim_password = random_password();
    redis.create_user("victim", &victim_password, &[]).unwrap();
    let fake = AnyPasswordRedis::start().await;
    let function = function(&redis, &[]).await;
    let admin_address = format!("{}:{}", redis.host(), redis.tls_port());
    let fake_address = format!("{}:{}", redis.host(), fake.port);

    for user in [ADMIN_USER, "victim"] {
        let acl_before = redis.admin(&["ACL", "GETUSER", user]).unwrap();
        let count_before = redis.password_count(user).unwrap();
        let t = token();
        let writer = staged_secret_named(
            &store,
            &format!("{team}{}", unique("writer")),
            &secret(
                &redis,
                user,
                &random_password(),
                json!({"masterarn": admin, "port": fake.port, "ssl": false}),
            ),
            &[],
            &t,
        )
        .await;

        let refused = rotate_until_refused(&function, &writer, &t).await;

        // What the writer could read back from its own secret.
        let mut readable = Vec::new();
        for label in [AWSCURRENT, AWSPENDING] {
            if let Some(v) = value(&store, &writer, label).await {
                let v: serde_json::Value = serde_json::from_str(v.expose_secret()).unwrap();
                readable.push(SecretString::from(v["password"].as_str().unwrap()));
            }
        }
        assert!(
            !readable.iter().any(|p| redis.logs_in(user, p)),
            "{user}: a password from the writer's own secret logs in"
        );
        assert_eq!(
            redis.password_count(user).unwrap(),
            count_before,
            "{user}: the user's passwords changed"
        );
        assert_eq!(
            redis.admin(&["ACL", "GETUSER", user]).unwrap(),
            acl_before,
            "{user}: ACL GETUSER changed"
        );
        assert_eq!(
            fake.connections(),
            0,
            "{user}: the function connected to the writer's port"
        );
        let (kind, message) = refused.expect("the rotation is refused");
        assert_eq!(kind, "NotRetryable.InvalidSettings", "{user}: {message}");
        assert!(
            message.contains("masterarn")
                && message.contains(&admin_address)
                && message.contains(&fake_address),
            "{user}: the error names the setting and both endpoints: {message}"
        );
        let text = format!("{message}\n{}", function.output());
        assert_no_stored_secret_in(&store, &writer, &text).await;
        assert!(!text.contains(admin_password.expose_secret()));
        assert!(!text.contains(victim_password.expose_secret()));
    }
    assert!(redis.logs_in(ADMIN_USER, &admin_password));
    assert!(redis.logs_in("victim", &victim_password));
    assert!(!fake.received_contains(admin_password.expose_secret()));
}

/// Item 1, at the admin's own endpoint: a writer names the admin's user (which
/// the admin never changes for another secret: NotManaged, before any
/// login), or another team's user with a password it guessed (the admin's
/// `ACL GETUSER` shows the user holds none of the secret's passwords:
/// CacheMismatch, and the error says to set the user's password to
/// AWSCURRENT). On the code before the fix both failed with CacheAuth at the
/// proof login; the admin case now fails earlier and names the rule.
#[tokio::test]
async fn at_the_admins_endpoint_a_writer_gets_neither_the_admin_nor_another_user() {
    let redis = RedisServer::start().unwrap();
    let store = moto_store();
    let (admin, team) = admin_secret(&store, &redis, &redis.admin_password()).await;
    let victim_password = random_password();
    redis.create_user("victim", &victim_password, &[]).unwrap();
    let function = function(&redis, &[]).await;
    for (user, kind, says) in [
        (ADMIN_USER, "NotRetryable.NotManaged", "own user"),
        ("victim", "NotRetryable.CacheMismatch", "AWSCURRENT"),
    ] {
        let count_before = redis.password_count(user).unwrap();
        let t = token();
        let writer = staged_secret_named(
            &store,
            &format!("{team}{}", unique("writer")),
            &secret(
                &redis,
                user,
                &random_password(),
                json!({"masterarn": admin}),
            ),
            &[],
            &t,
        )
        .await;
        let (got, message) = rotate_until_refused(&function, &writer, &t)
            .await
            .expect("the rotation is refused");
        assert_eq!(got, kind, "{user}: {message}");
        assert!(
            message.contains(says) && message.contains(user),
            "{user}: {message}"
        );
        assert_eq!(redis.password_count(user).unwrap(), count_before, "{user}");
        let pending = value(&store, &writer, AWSPENDING).await.expect("pending");
        let pending: serde_json::Value = serde_json::from_str(pending.expose_secret()).unwrap();
        assert!(!redis.logs_in(
            user,
            &SecretString::from(pending["password"].as_str().unwrap())
        ));
        assert_no_stored_secret_in(
            &store,
            &writer,
            &format!("{message}\n{}", function.output()),
        )
        .await;
    }
    assert!(redis.logs_in(ADMIN_USER, &redis.admin_password()));
    assert!(redis.logs_in("victim", &victim_password));
}

/// Item 1, the admin owner's `rotor:manages` tag: a user outside it is never
/// changed, even by a writer that holds one of its passwords: setSecret adds
/// nothing, and finishSecret (reached with an AWSPENDING the writer staged
/// itself, holding that password) removes nothing. On the code before the
/// fix the tag was not read: setSecret added the pending password, and
/// finishSecret removed the user's other password.
#[tokio::test]
async fn an_admin_changes_only_users_its_manages_tag_allows() {
    let redis = RedisServer::start().unwrap();
    let store = moto_store();
    let team = format!("{}/", unique("team"));
    let admin = store
        .create_secret(
            &unique("redis-admin"),
            &SecretString::from(secret(
                &redis,
                ADMIN_USER,
                &redis.admin_password(),
                json!({}),
            )),
            &[
                ("rotor:serves", team.as_str()),
                ("rotor:manages", "app_..."),
            ],
        )
        .await
        .unwrap();
    // `ops` holds the writer's password and one of somebody else's.
    let (known, other) = (random_password(), random_password());
    redis.create_user("ops", &known, &[]).unwrap();
    let rule = format!(">{}", other.expose_secret());
    redis.admin(&["ACL", "SETUSER", "ops", &rule]).unwrap();
    let function = function(&redis, &[]).await;
    let value_with = |pw: &SecretString| secret(&redis, "ops", pw, json!({"masterarn": admin}));

    let t = token();
    let writer = staged_secret_named(
        &store,
        &format!("{team}{}", unique("ops")),
        &value_with(&known),
        &[],
        &t,
    )
    .await;
    let (kind, message) = rotate_until_refused(&function, &writer, &t)
        .await
        .expect("setSecret is refused");
    assert_eq!(kind, "NotRetryable.NotManaged", "{message}");
    assert!(
        message.contains("rotor:manages") && message.contains("\"ops\""),
        "{message}"
    );
    assert_eq!(redis.password_count("ops").unwrap(), 2);

    // The writer stages AWSPENDING itself with the password it knows, and
    // has finishSecret run: the labels move, but nothing is removed.
    let t = token();
    let writer = staged_secret_named(
        &store,
        &format!("{team}{}", unique("ops")),
        &value_with(&known),
        &[],
        &t,
    )
    .await;
    store
        .put_value(
            &writer,
            NewVersion {
                version_id: &t,
                value: &SecretString::from(value_with(&known)),
                labels: &[AWSPENDING],
                rotation_token: None,
            },
        )
        .await
        .unwrap();
    let (kind, message) = steps::run(&function, &writer, &t, Step::FinishSecret)
        .await
        .unwrap_err();
    assert_eq!(kind, "NotRetryable.NotManaged", "{message}");
    assert_eq!(redis.password_count("ops").unwrap(), 2, "nothing removed");
    assert!(redis.logs_in("ops", &known) && redis.logs_in("ops", &other));
    assert_no_stored_secret_in(
        &store,
        &writer,
        &format!("{message}\n{}", function.output()),
    )
    .await;
}

/// The tag on an ElastiCache or MemoryDB user that names the secret allowed
/// to rotate it.
const SECRET_TAG: &str = "rotor:secret";

/// A secret in AWS's shape for an ElastiCache user, with the endpoint where
/// testSecret logs in.
fn cache_user_secret(redis: &RedisServer, arn: &str, name: &str, pw: &SecretString) -> String {
    json!({
        "user_arn": arn,
        "username": name,
        "password": pw.expose_secret(),
        "host": redis.host(),
        "port": redis.tls_port(),
    })
    .to_string()
}

/// Item 4: one `MANAGED_USER_ARNS` for the whole function let any writer
/// name another listed user (another team's) and replace its passwords with
/// values the writer reads back, breaking that team's AWSCURRENT at once.
///
/// Team A's writer names team B's ElastiCache user, under a wildcard list and
/// under a list of both ARNs. On the code before the fix all four steps
/// passed: team B's password stopped logging in, the writer's did. Now
/// createSecret refuses (InvalidSettings naming the user, the `rotor:secret`
/// tag and MANAGED_USER_ARNS): no ModifyUser reaches the emulator, team B's
/// password logs in. Once B's owner tags B with B's secret, team B rotates
/// under the wildcard list and team A is still refused; a list that admits
/// several users is open to untagged users only when the deployer says every
/// writer is trusted (`MANAGED_USERS_TRUST_ALL_WRITERS=true`).
#[tokio::test]
async fn a_writer_cannot_rotate_another_listed_teams_elasticache_user() {
    use rotor_testbed::elasticache::{ElastiCacheEmulator, EmulatedUser};

    let redis = RedisServer::start().unwrap();
    let emulator = ElastiCacheEmulator::start_for(&redis).await.unwrap();
    let store = moto_store();
    let access = "on ~* +@connection +get +set";
    let (a_pw, b_pw) = (random_password(), random_password());
    let (a_id, b_id) = (unique("orders"), unique("billing"));
    let (a_name, b_name) = (unique("orders_app"), unique("billing_app"));
    let a_arn = emulator
        .add_user(EmulatedUser::new(
            &a_id,
            &a_name,
            access,
            std::slice::from_ref(&a_pw),
        ))
        .await
        .unwrap();
    let b_arn = emulator
        .add_user(EmulatedUser::new(
            &b_id,
            &b_name,
            access,
            std::slice::from_ref(&b_pw),
        ))
        .await
        .unwrap();
    let ca = redis.ca_path().display().to_string();
    let url = emulator.url();
    let start = |allowed: String, trust: bool| {
        let (ca, url) = (ca.clone(), url.clone());
        async move {
            let mut env = vec![
                ("SSL_CERT_FILE", ca.as_str()),
                ("AWS_ENDPOINT_URL_ELASTICACHE", url.as_str()),
                ("MANAGED_USER_ARNS", allowed.as_str()),
                ("WAITING_RETRY_INTERVAL_IN_SECONDS", "1"),
            ];
            if trust {
                env.push(("MANAGED_USERS_TRUST_ALL_WRITERS", "true"));
            }
            start_function("redis-rotation", &env).await
        }
    };
    let wildcard = "arn:aws:elasticache:us-east-1:123456789012:user:*".to_owned();

    for allowed in [wildcard.clone(), format!("{a_arn},{b_arn}")] {
        let function = start(allowed.clone(), false).await;
        let t = token();
        let writer = staged_secret(
            &store,
            &cache_user_secret(&redis, &b_arn, &b_name, &random_password()),
            &[],
            &t,
        )
        .await;

        let refused = rotate_until_refused(&function, &writer, &t).await;

        assert!(
            redis.logs_in(&b_name, &b_pw),
            "{allowed}: team B's password stopped logging in"
        );
        assert_eq!(
            emulator.calls_of("ModifyUser").len(),
            0,
            "{allowed}: a ModifyUser reached ElastiCache"
        );
        assert_eq!(emulator.password_count(&b_id), Some(1), "{allowed}");
        let (kind, message) = refused.expect("the rotation is refused");
        assert_eq!(kind, "NotRetryable.InvalidSettings", "{allowed}: {message}");
        assert!(
            message.starts_with("createSecret")
                && message.contains(&b_arn)
                && message.contains(SECRET_TAG)
                && message.contains("MANAGED_USER_ARNS"),
            "{allowed}: {message}"
        );
        let text = format!("{message}\n{}", function.output());
        assert_no_stored_secret_in(&store, &writer, &text).await;
        assert!(!text.contains(b_pw.expose_secret()));
    }

    // B's owner binds B to team B's secret: team B rotates, team A still may not.
    let t = token();
    let team_b = staged_secret(
        &store,
        &cache_user_secret(&redis, &b_arn, &b_name, &b_pw),
        &[],
        &t,
    )
    .await;
    assert!(emulator.tag_user(&b_id, SECRET_TAG, &team_b));
    let function = start(wildcard.clone(), false).await;
    let completed = rotate_until_refused(&function, &team_b, &t).await;
    assert!(completed.is_none(), "{completed:?}\n{}", function.output());
    let rotated = value(&store, &team_b, AWSCURRENT).await.unwrap();
    let rotated: serde_json::Value = serde_json::from_str(rotated.expose_secret()).unwrap();
    assert!(redis.logs_in(
        &b_name,
        &SecretString::from(rotated["password"].as_str().unwrap())
    ));
    let t = token();
    let writer = staged_secret(
        &store,
        &cache_user_secret(&redis, &b_arn, &b_name, &random_password()),
        &[],
        &t,
    )
    .await;
    let (kind, message) = rotate_until_refused(&function, &writer, &t)
        .await
        .expect("team A is still refused");
    assert_eq!(kind, "NotRetryable.InvalidSettings", "{message}");
    assert!(
        message.contains(&team_b),
        "the tag's value is named: {message}"
    );

    // Team A's own untagged user: refused under the wildcard list, unless the
    // deployer says every writer is trusted.
    let t = token();
    let own = staged_secret(
        &store,
        &cache_user_secret(&redis, &a_arn, &a_name, &a_pw),
        &[],
        &t,
    )
    .await;
    // A role without the tag permission is told which one to grant.
    emulator.fail_next("ListTagsForResource", "AccessDenied", 403);
    let (kind, message) = steps::run(&function, &own, &t, Step::CreateSecret)
        .await
        .unwrap_err();
    assert_eq!(kind, "NotRetryable.CachePermission", "{message}");
    assert!(
        message.contains("elasticache:ListTagsForResource"),
        "{message}"
    );
    let (kind, _) = steps::run(&function, &own, &t, Step::CreateSecret)
        .await
        .unwrap_err();
    assert_eq!(kind, "NotRetryable.InvalidSettings");
    let trusting = start(wildcard, true).await;
    let completed = rotate_until_refused(&trusting, &own, &t).await;
    assert!(completed.is_none(), "{completed:?}\n{}", trusting.output());
    assert_eq!(emulator.password_count(&a_id), Some(2));
}

/// Item 4 for MemoryDB users, through moto's MemoryDB (which keeps users'
/// tags: `ListTags` and `TagResource` on a user ARN, checked here). Team A's
/// writer names team B's user under a wildcard list: on the code before the
/// fix setSecret gave B the writer's two passwords (moto counts 2); now
/// createSecret refuses and B keeps its one password. With B's owner's tag
/// naming team B's secret, team B rotates and team A is still refused.
#[tokio::test]
async fn a_writer_cannot_rotate_another_listed_teams_memorydb_user() {
    use crate::redis_managed::{create_user, memorydb, secret as user_secret, user, user_arn};
    use aws_sdk_memorydb::types::Tag;

    let store = moto_store();
    let b_pw = random_password();
    let b_name = create_user(&[&b_pw]).await;
    let b_arn = user_arn(&b_name);
    let wildcard = "arn:aws:memorydb:us-east-1:123456789012:user/*";
    let function = start_function(
        "redis-rotation",
        &[
            ("AWS_ENDPOINT_URL_MEMORYDB", moto().endpoint()),
            ("MANAGED_USER_ARNS", wildcard),
            ("WAITING_RETRY_INTERVAL_IN_SECONDS", "1"),
        ],
    )
    .await;
    let t = token();
    let writer = staged_secret(
        &store,
        &user_secret(&b_arn, &b_name, Some(&random_password())),
        &[],
        &t,
    )
    .await;
    let refused = rotate_until_refused(&function, &writer, &t).await;
    assert_eq!(user(&b_name).await.1, 1, "team B's user was changed");
    let (kind, message) = refused.expect("the rotation is refused");
    assert_eq!(kind, "NotRetryable.InvalidSettings", "{message}");
    assert!(
        message.contains(&b_arn) && message.contains(SECRET_TAG),
        "{message}"
    );

    let t = token();
    let team_b = staged_secret(&store, &user_secret(&b_arn, &b_name, Some(&b_pw)), &[], &t).await;
    memorydb()
        .tag_resource()
        .resource_arn(&b_arn)
        .tags(Tag::builder().key(SECRET_TAG).value(&team_b).build())
        .send()
        .await
        .expect("moto's TagResource");
    let completed = rotate_until_refused(&function, &team_b, &t).await;
    assert!(completed.is_none(), "{completed:?}\n{}", function.output());
    assert_eq!(user(&b_name).await.1, 2, "pending and previous");
    let t = token();
    let writer = staged_secret(
        &store,
        &user_secret(&b_arn, &b_name, Some(&random_password())),
        &[],
        &t,
    )
    .await;
    let (kind, _) = rotate_until_refused(&function, &writer, &t)
        .await
        .expect("team A is still refused");
    assert_eq!(kind, "NotRetryable.InvalidSettings");
    assert_no_stored_secret_in(&store, &writer, &function.output()).await;
}
