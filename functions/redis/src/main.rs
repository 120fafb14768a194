//! `redis-rotation`: rotates the passwords of Redis ACL users.

use redis_rotation::RedisRotator;
use rotor_core::{AwsStore, Driver, lambda};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_logging();
    let store = AwsStore::from_env().await;
    lambda::serve(Driver::new(store, RedisRotator::from_env())).await
}
