//! What the property tests share (`tests/fuzz.rs`, `tests/fuzz_config.rs`): one runner,
//! sized by `PROPTEST_CASES` (default 256), with no failure files written into the tree,
//! and the byte strategy biased towards /proc formats and settings files.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn runner() -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Run `test` on values of `strategy`; a failing case panics with its minimal input.
pub fn check<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    if let Err(e) = runner().run(&strategy, test) {
        panic!("{e}");
    }
}

/// Bytes biased towards the characters /proc formats and settings files are made of.
pub fn proc_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        4 => prop::sample::select(b"0123456789:[]()/ \t\n-_.@,".to_vec()),
        2 => prop::sample::select(b"abcdefnetpidusrcgroupmnt".to_vec()),
        1 => any::<u8>(),
    ];
    prop::collection::vec(byte, 0..max)
}
