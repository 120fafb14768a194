//! `oauth-rotation`: rotates OAuth 2.0 client secrets.

use oauth_rotation::OAuthRotator;
use rotor_core::{AwsStore, Driver, lambda};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_logging();
    let store = AwsStore::from_env().await;
    lambda::serve(Driver::new(store, OAuthRotator::from_env())).await
}
