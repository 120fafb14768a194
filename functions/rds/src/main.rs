//! `rds-rotation`: rotates MySQL, MariaDB and PostgreSQL credentials.

use rds_rotation::RdsRotator;
use rotor_core::{AwsStore, Driver, lambda};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_logging();
    let store = AwsStore::from_env().await;
    lambda::serve(Driver::new(store, RdsRotator::from_env())).await
}
