//! `ldap-rotation`: rotates Active Directory and LDAP service accounts' passwords.

use ldap_rotation::LdapRotator;
use rotor_core::{AwsStore, Driver, lambda};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::init_logging();
    let store = AwsStore::from_env().await;
    lambda::serve(Driver::new(store, LdapRotator::from_env())).await
}
