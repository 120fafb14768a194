//! The test bed's own tests: that its throwaway servers start, enforce what the
//! tests rely on (TLS, passwords, OAuth flows) and never outlive their test
//! process. One binary, so that it links once.

mod db_bed;
mod elasticache_bed;
mod oauth_bed;
