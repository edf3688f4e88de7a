//! Golden sync datagrams (`tests/data/sync/*.bin`).
//!
//! Each file's bytes are built here field by field from the kernel structures
//! (`struct ip_vs_sync_mesg`, `ip_vs_sync_v4`, `ip_vs_sync_v6`, `ip_vs_sync_mesg_v0`,
//! `ip_vs_sync_conn_v0`, the option TLVs), without the crate's encoder. The test checks that
//! the stored file equals that layout, that it decodes to the expected records, and that the
//! encoder writes it back byte for byte. `LVS_SYNC_REGEN=1 cargo test -p lvs-core --test
//! sync_golden` rewrites the files from the layout.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use lvs_core::conn::{ConnFlags, FwdMethod};
use lvs_core::sync::{
    decode, PeName, SeqData, SeqOptions, SyncBatcher, SyncConn, SyncMessage, SyncVersion,
};
use lvs_core::Instant;

// ---- the hand-written layout -------------------------------------------------------------

fn be16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn be32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// A type-length-value option.
fn opt(ty: u8, data: &[u8]) -> Vec<u8> {
    let mut o = vec![ty, data.len() as u8];
    o.extend_from_slice(data);
    o
}

/// Sequence option body: in (init, delta, prev) then out, each 32-bit big-endian.
fn seq_body(v: [u32; 6]) -> Vec<u8> {
    let mut o = Vec::new();
    for x in v {
        be32(&mut o, x);
    }
    o
}

/// `struct ip_vs_sync_v4` + options.
#[allow(clippy::too_many_arguments)]
fn v1_v4(
    proto: u8,
    flags: u32,
    state: u16,
    ports: [u16; 3],
    fwmark: u32,
    timeout: u32,
    addrs: [[u8; 4]; 3],
    options: &[u8],
) -> Vec<u8> {
    let mut r = vec![0u8, proto]; // type 0 = IPv4
    be16(&mut r, (36 + options.len()) as u16); // version nibble 0, length
    be32(&mut r, flags);
    be16(&mut r, state);
    for p in ports {
        be16(&mut r, p);
    }
    be32(&mut r, fwmark);
    be32(&mut r, timeout);
    for a in addrs {
        r.extend_from_slice(&a);
    }
    assert_eq!(r.len(), 36);
    r.extend_from_slice(options);
    r
}

/// `struct ip_vs_sync_v6` + options.
#[allow(clippy::too_many_arguments)]
fn v1_v6(
    proto: u8,
    flags: u32,
    state: u16,
    ports: [u16; 3],
    fwmark: u32,
    timeout: u32,
    addrs: [[u8; 16]; 3],
    options: &[u8],
) -> Vec<u8> {
    let mut r = vec![1u8, proto]; // type bit 0 = IPv6
    be16(&mut r, (72 + options.len()) as u16);
    be32(&mut r, flags);
    be16(&mut r, state);
    for p in ports {
        be16(&mut r, p);
    }
    be32(&mut r, fwmark);
    be32(&mut r, timeout);
    for a in addrs {
        r.extend_from_slice(&a);
    }
    assert_eq!(r.len(), 72);
    r.extend_from_slice(options);
    r
}

/// `struct ip_vs_sync_mesg` + records, each padded with zeros to 4 bytes before the next.
fn v1_message(syncid: u8, records: &[Vec<u8>]) -> Vec<u8> {
    let mut m = vec![0u8, syncid, 0, 0, records.len() as u8, 1, 0, 0];
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            while m.len() % 4 != 0 {
                m.push(0);
            }
        }
        m.extend_from_slice(r);
    }
    let size = m.len() as u16;
    m[2..4].copy_from_slice(&size.to_be_bytes());
    m
}

/// `struct ip_vs_sync_conn_v0`, plus the raw `ip_vs_sync_conn_options` in host (x86,
/// little-endian) order when given.
fn v0_record(
    proto: u8,
    ports: [u16; 3],
    addrs: [[u8; 4]; 3],
    flags: u16,
    state: u16,
    seq: Option<[u32; 6]>,
) -> Vec<u8> {
    let mut r = vec![0u8, proto]; // reserved, protocol
    for p in ports {
        be16(&mut r, p);
    }
    for a in addrs {
        r.extend_from_slice(&a);
    }
    be16(&mut r, flags);
    be16(&mut r, state);
    assert_eq!(r.len(), 24);
    if let Some(s) = seq {
        for x in s {
            r.extend_from_slice(&x.to_le_bytes());
        }
    }
    r
}

/// `struct ip_vs_sync_mesg_v0` + records.
fn v0_message(syncid: u8, records: &[Vec<u8>]) -> Vec<u8> {
    let mut m = vec![records.len() as u8, syncid, 0, 0];
    for r in records {
        m.extend_from_slice(r);
    }
    let size = m.len() as u16;
    m[2..4].copy_from_slice(&size.to_be_bytes());
    m
}

// ---- the expected records ----------------------------------------------------------------

const C4: [u8; 4] = [192, 0, 2, 10];
const V4: [u8; 4] = [198, 51, 100, 80];
const D4: [u8; 4] = [10, 0, 1, 11];
const C6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0xc, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a];
const V6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0x5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x50];
const D6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b];

fn a4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}
fn a6(a: [u8; 16]) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(a))
}

fn seq(v: [u32; 6]) -> SeqOptions {
    SeqOptions {
        in_seq: SeqData {
            init_seq: v[0],
            delta: v[1],
            previous_delta: v[2],
        },
        out_seq: SeqData {
            init_seq: v[3],
            delta: v[4],
            previous_delta: v[5],
        },
    }
}

#[allow(clippy::too_many_arguments)]
fn conn(
    protocol: u8,
    flags: u16,
    state: u16,
    ports: [u16; 3],
    fwmark: u32,
    timeout: u32,
    addrs: [IpAddr; 3],
) -> SyncConn {
    SyncConn {
        protocol,
        flags: ConnFlags::from_bits(flags),
        state,
        cport: ports[0],
        vport: ports[1],
        dport: ports[2],
        fwmark,
        timeout,
        caddr: addrs[0],
        vaddr: addrs[1],
        daddr: addrs[2],
        seq: None,
        pe_data: None,
        pe_name: None,
    }
}

const SEQ_A: [u32; 6] = [0x1000_0000, 7, 0, 0x8000_0001, 0xffff_fff9, 3];
const SEQ_B: [u32; 6] = [0xdead_beef, 12, 4, 0x0102_0304, 0, 0xffff_ffff];

/// DR, NOOUTPUT (0x83) TCP ESTABLISHED.
const DR: u16 = 0x0083;
/// MASQ, IN_SEQ | OUT_SEQ.
const NAT_SEQ: u16 = 0x0600;

struct Golden {
    name: &'static str,
    bytes: Vec<u8>,
    expected: SyncMessage,
}

fn goldens() -> Vec<Golden> {
    let mut out = Vec::new();

    // 1. v1, one IPv4 TCP connection (DR, ESTABLISHED, timeout 900 s).
    out.push(Golden {
        name: "v1_ipv4",
        bytes: v1_message(
            0,
            &[v1_v4(
                6,
                u32::from(DR),
                1,
                [40001, 80, 8080],
                0,
                900,
                [C4, V4, D4],
                &[],
            )],
        ),
        expected: SyncMessage::new(
            SyncVersion::V1,
            0,
            vec![conn(
                6,
                DR,
                1,
                [40001, 80, 8080],
                0,
                900,
                [a4(C4), a4(V4), a4(D4)],
            )],
        ),
    });

    // 2. v1 IPv6: a SIP persistence template (UDP, PE data of 18 bytes + name "sip", so the
    //    record is 97 bytes and 3 padding bytes follow), then a NAT TCP connection with
    //    sequence data (FTP helper) in state CLOSE_WAIT.
    let pe = b"a84b4c76e66710@pc1";
    let mut tpl_opts = opt(2, pe);
    tpl_opts.extend(opt(3, b"sip"));
    let mut tcp_opts = opt(1, &seq_body(SEQ_A));
    tcp_opts.truncate(26);
    let tpl_flags = 0x1000 | 0x0100 | u32::from(DR); // TEMPLATE INACTIVE DR
    let mut tpl = conn(
        17,
        tpl_flags as u16,
        1,
        [5060, 5060, 5060],
        0,
        360,
        [a6(C6), a6(V6), a6(D6)],
    );
    tpl.pe_data = Some(pe.to_vec());
    tpl.pe_name = PeName::new(b"sip");
    let mut ftp = conn(
        6,
        NAT_SEQ,
        7,
        [50000, 21, 21],
        0,
        60,
        [a6(C6), a6(V6), a6(D6)],
    );
    ftp.seq = Some(seq(SEQ_A));
    out.push(Golden {
        name: "v1_ipv6_seq_pe",
        bytes: v1_message(
            42,
            &[
                v1_v6(
                    17,
                    tpl_flags,
                    1,
                    [5060, 5060, 5060],
                    0,
                    360,
                    [C6, V6, D6],
                    &tpl_opts,
                ),
                v1_v6(
                    6,
                    u32::from(NAT_SEQ),
                    7,
                    [50000, 21, 21],
                    0,
                    60,
                    [C6, V6, D6],
                    &tcp_opts,
                ),
            ],
        ),
        expected: SyncMessage::new(SyncVersion::V1, 42, vec![tpl, ftp]),
    });

    // 3. v0 without sequence data: one UDP connection (TUNNEL, NOOUTPUT).
    out.push(Golden {
        name: "v0_plain",
        bytes: v0_message(
            7,
            &[v0_record(
                17,
                [53000, 53, 53],
                [C4, V4, D4],
                0x0082,
                0,
                None,
            )],
        ),
        expected: SyncMessage::new(
            SyncVersion::V0,
            7,
            vec![conn(
                17,
                0x0082,
                0,
                [53000, 53, 53],
                0,
                0,
                [a4(C4), a4(V4), a4(D4)],
            )],
        ),
    });

    // 4. v0 with sequence data: a NAT FTP connection with IN_SEQ|OUT_SEQ (48-byte record),
    //    then a TCP connection in FIN_WAIT without.
    let mut v0ftp = conn(
        6,
        NAT_SEQ,
        1,
        [50001, 21, 21],
        0,
        0,
        [a4(C4), a4(V4), a4(D4)],
    );
    v0ftp.seq = Some(seq(SEQ_B));
    out.push(Golden {
        name: "v0_seq",
        bytes: v0_message(
            7,
            &[
                v0_record(6, [50001, 21, 21], [C4, V4, D4], NAT_SEQ, 1, Some(SEQ_B)),
                v0_record(6, [50002, 80, 80], [C4, V4, D4], 0x0183, 4, None),
            ],
        ),
        expected: SyncMessage::new(
            SyncVersion::V0,
            7,
            vec![
                v0ftp,
                conn(
                    6,
                    0x0183,
                    4,
                    [50002, 80, 80],
                    0,
                    0,
                    [a4(C4), a4(V4), a4(D4)],
                ),
            ],
        ),
    });

    // 5. v1 multi-record IPv4: TCP, UDP, an fwmark persistence template (protocol 0,
    //    fwmark 7, port 0), a TCP TIME_WAIT with a 5-byte PE name only (43 bytes, padded),
    //    an SCTP connection, a connection with NO_CPORT.
    let mut pe_only = conn(
        6,
        0x0103,
        5,
        [40005, 443, 443],
        0,
        120,
        [a4(C4), a4(V4), a4(D4)],
    );
    pe_only.pe_name = PeName::new(b"xpe01");
    let multi_expected = vec![
        conn(
            6,
            DR,
            1,
            [40001, 443, 443],
            0,
            900,
            [a4(C4), a4(V4), a4(D4)],
        ),
        conn(
            17,
            0x0002,
            0,
            [40002, 53, 53],
            0,
            300,
            [a4(C4), a4(V4), a4(D4)],
        ),
        conn(
            0,
            0x1083,
            0,
            [0, 0, 0],
            7,
            1800,
            [a4(C4), a4([0; 4]), a4(D4)],
        ),
        pe_only,
        conn(
            132,
            0x0000,
            8,
            [40006, 3868, 3868],
            9,
            900,
            [a4(C4), a4(V4), a4(D4)],
        ),
        conn(6, 0x0980, 3, [0, 21, 21], 0, 60, [a4(C4), a4(V4), a4(D4)]),
    ];
    out.push(Golden {
        name: "v1_multi",
        bytes: v1_message(
            1,
            &[
                v1_v4(6, 0x83, 1, [40001, 443, 443], 0, 900, [C4, V4, D4], &[]),
                v1_v4(17, 0x02, 0, [40002, 53, 53], 0, 300, [C4, V4, D4], &[]),
                v1_v4(0, 0x1083, 0, [0, 0, 0], 7, 1800, [C4, [0; 4], D4], &[]),
                v1_v4(
                    6,
                    0x0103,
                    5,
                    [40005, 443, 443],
                    0,
                    120,
                    [C4, V4, D4],
                    &opt(3, b"xpe01"),
                ),
                v1_v4(132, 0, 8, [40006, 3868, 3868], 9, 900, [C4, V4, D4], &[]),
                v1_v4(6, 0x0980, 3, [0, 21, 21], 0, 60, [C4, V4, D4], &[]),
            ],
        ),
        expected: SyncMessage::new(SyncVersion::V1, 1, multi_expected),
    });
    out
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/sync")
}

#[test]
fn golden_files_match_the_hand_written_layout() {
    let regen = std::env::var_os("LVS_SYNC_REGEN").is_some();
    for g in goldens() {
        let path = data_dir().join(format!("{}.bin", g.name));
        if regen {
            std::fs::write(&path, &g.bytes).unwrap();
        }
        let stored = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(stored, g.bytes, "{} differs from the layout", g.name);
    }
}

#[test]
fn golden_files_decode_to_the_expected_records() {
    for g in goldens() {
        let m = decode(&g.bytes).unwrap_or_else(|e| panic!("{}: {e}", g.name));
        assert_eq!(m, g.expected, "{}", g.name);
    }
}

#[test]
fn golden_files_reencode_byte_for_byte() {
    for g in goldens() {
        let m = decode(&g.bytes).unwrap();
        assert_eq!(m.encode().unwrap(), g.bytes, "{}", g.name);
        // The batcher writes the same datagram when everything fits.
        let mut b = SyncBatcher::new(m.version, m.syncid, 1472);
        let mut sent = Vec::new();
        for r in &m.records {
            b.push(Instant::ZERO, r, |d| sent.push(d.to_vec())).unwrap();
        }
        b.flush(|d| sent.push(d.to_vec()));
        assert_eq!(sent, vec![g.bytes.clone()], "{}", g.name);
    }
}

#[test]
fn golden_padding_and_lengths_are_where_the_layout_says() {
    let g = goldens();
    let v6 = &g[1].bytes;
    // Template record: 72 + (2 + 18) + (2 + 3) = 97 bytes, then 3 zero bytes of padding.
    assert_eq!(u16::from_be_bytes([v6[10], v6[11]]), 97);
    assert_eq!(&v6[8 + 97..8 + 100], &[0, 0, 0]);
    // The second record starts at the next 4-byte boundary, 8 + 100.
    assert_eq!(v6[8 + 100], 1);
    assert_eq!(
        u16::from_be_bytes([v6[8 + 100 + 2], v6[8 + 100 + 3]]),
        72 + 26
    );
    // The last record is not padded: size = 8 + 100 + 98.
    assert_eq!(v6.len(), 8 + 100 + 98);
    assert_eq!(u16::from_be_bytes([v6[2], v6[3]]) as usize, v6.len());
    let multi = &g[4].bytes;
    // Record 3 (36 + 2 + 5 = 43 bytes) is followed by 1 byte of padding.
    let r3 = 8 + 3 * 36;
    assert_eq!(u16::from_be_bytes([multi[r3 + 2], multi[r3 + 3]]), 43);
    assert_eq!(multi[r3 + 43], 0);
    assert_eq!(multi[r3 + 44], 0); // next record's type
    assert_eq!(multi.len(), 8 + 3 * 36 + 44 + 2 * 36);
}

#[test]
fn flags_keep_dr_and_hashed_is_never_written() {
    let mut r = goldens()[0].expected.records[0].clone();
    assert_eq!(r.flags.fwd_method(), FwdMethod::DirectRoute);
    r.flags = r.flags.with(ConnFlags::HASHED);
    let bytes = SyncMessage::new(SyncVersion::V1, 0, vec![r])
        .encode()
        .unwrap();
    assert_eq!(bytes, goldens()[0].bytes);
}
