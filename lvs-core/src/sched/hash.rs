//! Kernel hash functions used by the hashing schedulers.
