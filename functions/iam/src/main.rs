//! `iam-rotation`: rotates IAM users' access keys.

use iam_rotation::IamRotator;
use rotor_core::{AwsStore, Driver, lambda};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_logging();
    let store = AwsStore::from_env().await;
    lambda::serve(Driver::new(store, IamRotator::from_env())).await
}
