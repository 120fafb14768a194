//! `generic-rotation`: rotates secrets whose new value rotor generates.

use generic_rotation::GenericRotator;
use rotor_core::{AwsStore, Driver, lambda};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_logging();
    let store = AwsStore::from_env().await;
    lambda::serve(Driver::new(store, GenericRotator::from_env())).await
}
