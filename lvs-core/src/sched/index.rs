//! Ordered indexes over destinations for the least-connection family.
