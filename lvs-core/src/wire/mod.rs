//! Typed zero-copy views over packet bytes, and checksums.
