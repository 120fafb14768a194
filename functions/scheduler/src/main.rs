//! `rotation-scheduler`: starts the rotations that are due, for every secret a
//! tag selects. An EventBridge Scheduler schedule invokes it.

use rotation_scheduler::{Config, serve};
use rotor_core::{AwsStore, lambda};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_logging();
    let store = AwsStore::from_env().await;
    serve(store.client(), Config::from_env()).await
}
