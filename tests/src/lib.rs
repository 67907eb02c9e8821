//! Helpers for the integration tests: fixture C libraries built at test time.
