//! Golden replay tests live in `tests/`.
