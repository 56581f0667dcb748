//! Cross-crate tests for cmmp live in `tests/`; this library is empty.
