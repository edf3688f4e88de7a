//! Counters shared by the workers: why packets were dropped, and per-queue traffic.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use lvs_core::director::{DropReason as FlowDrop, PacketDrop};
use lvs_core::xmit::DropReason as XmitDrop;

/// Why the runtime did not forward a packet read from the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    /// Not a valid IP packet (or Ethernet frame).
    Malformed,
    /// Not for a configured service nor a reply of one: this is not a router.
    NotOurs,
    /// A local-node real server (spec 3.5): the packet would be routed back into the device,
    /// so it is dropped.
    LocalNode,
    /// A frame that is neither IPv4, IPv6, ARP nor neighbour discovery (tap), or a VLAN tag.
    NonIp,
    /// The next hop's link-layer address is not known yet (a resolution was sent).
    NeighMiss,
    /// The flow layer refused it.
    Flow(FlowDrop),
    /// The rewrite refused it (including packets answered with an ICMP error).
    Xmit(XmitDrop),
    /// `decap`: not a tunnel packet addressed to this server, or a bad one.
    NotTunnel,
    /// Writing to the device failed.
    WriteError,
    /// Read while this director is not the master (backup, fault or stopped): a standby
    /// forwards nothing (the kernel's `backup_only`).
    Backup,
}

const FIXED: usize = 8;
const FLOW: usize = 3;
/// Number of distinct drop counters.
pub const DROP_COUNT: usize = FIXED + FLOW + XmitDrop::COUNT;

impl Drop {
    /// The counter index, `0..DROP_COUNT`.
    pub fn index(self) -> usize {
        match self {
            Drop::Malformed => 0,
            Drop::NotOurs => 1,
            Drop::LocalNode => 2,
            Drop::NonIp => 3,
            Drop::NeighMiss => 4,
            Drop::NotTunnel => 5,
            Drop::WriteError => 6,
            Drop::Backup => 7,
            Drop::Flow(r) => {
                FIXED
                    + FlowDrop::ALL
                        .iter()
                        .position(|x| *x == r)
                        .unwrap_or_default()
            }
            Drop::Xmit(r) => FIXED + FLOW + r.index(),
        }
    }

    /// A stable `snake_case` name (the `reason` label of the metrics).
    pub fn name(self) -> &'static str {
        match self {
            Drop::Malformed => "malformed",
            Drop::NotOurs => "not_ours",
            Drop::LocalNode => "local_node",
            Drop::NonIp => "non_ip",
            Drop::NeighMiss => "neigh_miss",
            Drop::NotTunnel => "not_tunnel",
            Drop::WriteError => "write_error",
            Drop::Backup => "backup",
            Drop::Flow(FlowDrop::DestUnavailable) => "dest_unavailable",
            Drop::Flow(FlowDrop::PortMismatch) => "port_mismatch",
            Drop::Flow(FlowDrop::TableFull) => "table_full",
            // The rewrite's own validation failure, apart from a packet that did not parse.
            Drop::Xmit(XmitDrop::Malformed) => "xmit_malformed",
            Drop::Xmit(r) => r.name(),
        }
    }

    /// Every reason, in index order.
    pub fn all() -> Vec<Drop> {
        let mut v = vec![
            Drop::Malformed,
            Drop::NotOurs,
            Drop::LocalNode,
            Drop::NonIp,
            Drop::NeighMiss,
            Drop::NotTunnel,
            Drop::WriteError,
            Drop::Backup,
        ];
        v.extend(FlowDrop::ALL.iter().map(|r| Drop::Flow(*r)));
        v.extend(XmitDrop::ALL.iter().map(|r| Drop::Xmit(*r)));
        v
    }
}

impl From<PacketDrop> for Drop {
    fn from(d: PacketDrop) -> Drop {
        match d {
            PacketDrop::Flow(r) => Drop::Flow(r),
            PacketDrop::Malformed(_) => Drop::Malformed,
            PacketDrop::Xmit(r) => Drop::Xmit(r),
        }
    }
}

/// Drop counters by reason.
#[derive(Debug)]
pub struct Drops {
    counts: [AtomicU64; DROP_COUNT],
}

impl Default for Drops {
    fn default() -> Self {
        Drops {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl Drops {
    /// Counts one drop.
    pub fn add(&self, d: Drop) {
        self.counts[d.index()].fetch_add(1, Relaxed);
    }

    /// Drops for one reason so far.
    pub fn get(&self, d: Drop) -> u64 {
        self.counts[d.index()].load(Relaxed)
    }

    /// Every reason with its count.
    pub fn snapshot(&self) -> Vec<(Drop, u64)> {
        Drop::all().into_iter().map(|d| (d, self.get(d))).collect()
    }
}

/// Traffic of one device queue.
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Packets read from the device.
    pub rx_packets: AtomicU64,
    /// Bytes read.
    pub rx_bytes: AtomicU64,
    /// Packets written to the device.
    pub tx_packets: AtomicU64,
    /// Bytes written.
    pub tx_bytes: AtomicU64,
    /// ICMP errors built and sent (a packet answered instead of forwarded).
    pub icmp_errors: AtomicU64,
    /// Failed reads.
    pub read_errors: AtomicU64,
}

impl QueueStats {
    /// Counts a read.
    pub fn rx(&self, len: usize) {
        self.rx_packets.fetch_add(1, Relaxed);
        self.rx_bytes.fetch_add(len as u64, Relaxed);
    }

    /// Counts a write.
    pub fn tx(&self, len: usize) {
        self.tx_packets.fetch_add(1, Relaxed);
        self.tx_bytes.fetch_add(len as u64, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_distinct_and_dense() {
        let all = Drop::all();
        assert_eq!(all.len(), DROP_COUNT);
        for (i, d) in all.iter().enumerate() {
            assert_eq!(d.index(), i, "{d:?}");
        }
        let mut names: Vec<_> = all.iter().map(|d| d.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DROP_COUNT);
    }

    #[test]
    fn counts_per_reason() {
        let d = Drops::default();
        d.add(Drop::Malformed);
        d.add(Drop::Malformed);
        d.add(Drop::Xmit(XmitDrop::TtlExpired));
        assert_eq!(d.get(Drop::Malformed), 2);
        assert_eq!(d.get(Drop::Xmit(XmitDrop::TtlExpired)), 1);
        assert_eq!(d.get(Drop::NotOurs), 0);
    }
}
