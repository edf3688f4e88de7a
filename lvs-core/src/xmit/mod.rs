//! Packet rewrite for the forwarding methods, in place, as pure functions over `&mut [u8]`.
//!
//! Every function takes the buffer and the [`Classified`](crate::wire::Classified) summary
//! that [`wire::classify`](crate::wire::classify) returned for it, rewrites in place without
//! allocating, and returns a verdict. The summary is trusted only for offsets; each layer is
//! re-validated with its view, so a summary that does not belong to the buffer gives an error,
//! never a panic.
//!
//! Done so far: NAT ([`nat`]): the client-to-real-server rewrite (`nat_in`, DNAT), the reply
//! rewrite (`nat_out`, SNAT), and the TTL / hop-limit step of spec 3.1 with its Time Exceeded
//! verdict.

pub mod nat;

pub use nat::{decrement_ttl, nat_in, nat_out, NatError, Verdict};
