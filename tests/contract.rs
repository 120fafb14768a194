//! The store contract (`rotor_core::testing::store_contract`) on every adapter
//! of the secret-store port: the in-memory store must behave as moto does
//! wherever moto behaves as AWS documents, and where moto does not, AWS's
//! documented behaviour is what the in-memory store does and what the suite
//! asserts (its `Reference::Moto` names each such place).
//!
//! The checks live in rotor-core, exported behind its `testing` feature, so
//! that a store or rotator built outside this workspace can prove itself the
//! same way; here they run as one test per check and adapter.
//!
//! The rotator contract (`rotor_core::testing::rotator_contract`) runs on
//! generic-rotation's rotator here, in both stores; its values have no target
//! to accept them, so the checks prove what the driver and the rotator
//! promise about the store: replays, restarts, promotion.

use generic_rotation::GenericRotator;
use generic_rotation::settings::Defaults;
use rotor_core::SecretString;
use rotor_core::testing::rotator_contract::{NewSecret, Subject};
use rotor_core::testing::store_contract::Reference;
use rotor_core::testing::unique;

mod memory {
    use super::Reference;

    rotor_core::store_contract_tests!(rotor_core::MemoryStore::new(), Reference::Aws);
}

mod moto {
    use super::Reference;

    rotor_core::store_contract_tests!(rotor_tests::moto_store(), Reference::Moto);
}

/// generic-rotation with its defaults, rotating a plain password.
struct Generic;

impl Subject for Generic {
    type Rotator = GenericRotator;

    fn rotator(&self) -> GenericRotator {
        let defaults = Defaults::from_lookup(|_| None).expect("the defaults are valid");
        GenericRotator::with_defaults(defaults)
    }

    async fn new_secret(&self) -> NewSecret {
        NewSecret::new(unique("generic"), SecretString::from("a-first-password"))
    }

    async fn accepts(&self, _secret: &str, _value: &SecretString) -> bool {
        true
    }
}

mod generic_in_memory {
    rotor_core::rotator_contract_tests!(rotor_core::MemoryStore::new(), super::Generic);
}

mod generic_on_moto {
    rotor_core::rotator_contract_tests!(rotor_tests::moto_store(), super::Generic);
}
