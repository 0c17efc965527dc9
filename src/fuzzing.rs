//! Shared settings of the property tests (`proptest`), which stand in for `cargo fuzz` so they
//! run in CI with the other unit tests: `cargo test --lib`.

use proptest::test_runner::Config;

/// `cases` random inputs per property, enough to stay a few seconds for the whole unit-test run
/// in a debug build; `PROPTEST_CASES=100000 cargo test --lib` searches deeper. Failures are not
/// saved to `proptest-regressions/` files: a failing input found once becomes a plain `#[test]`.
pub fn config(cases: u32) -> Config {
    let mut config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}
