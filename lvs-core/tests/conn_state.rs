//! The TCP state machine against the tables of spec §2.4, transcribed here from the spec's
//! text (not from the library), cell by cell; plus the typical traces, activity, timeouts.

use lvs_core::conn::state::{
    state_name, tcp_transition, ActiveStates, Direction, TcpInput, TcpState, TcpTable, Timeouts,
};
use lvs_core::{Duration, Protocol};

/// spec §2.4, "Normal table (`tcp_states`)", rows as printed there.
const NORMAL_SPEC: &str = "
| IN syn | SR | ES | ES | SR | SR | SR | SR | SR | SR | SR | SR |
| IN fin | CL | CW | SS | TW | TW | TW | CL | CW | LA | LI | TW |
| IN ack | ES | ES | SS | ES | FW | TW | CL | CW | CL | LI | ES |
| IN rst | CL | CL | CL | SR | CL | CL | CL | CL | LA | LI | SR |
| OUT syn | SS | ES | SS | SR | SS | SS | SS | SS | SS | LI | SR |
| OUT fin | TW | FW | SS | TW | FW | TW | CL | TW | LA | LI | TW |
| OUT ack | ES | ES | SS | ES | FW | TW | CL | CW | LA | ES | ES |
| OUT rst | CL | CL | SS | CL | CL | TW | CL | CL | CL | CL | CL |
| INONLY syn | SR | ES | ES | SR | SR | SR | SR | SR | SR | SR | SR |
| INONLY fin | CL | FW | SS | TW | FW | TW | CL | CW | LA | LI | TW |
| INONLY ack | ES | ES | SS | ES | FW | TW | CL | CW | CL | LI | ES |
| INONLY rst | CL | CL | CL | SR | CL | CL | CL | CL | LA | LI | CL |
";

/// spec §2.4, "Secure-TCP table (`tcp_states_dos`)".
const SECURE_SPEC: &str = "
| IN syn | SR | ES | ES | SR | SR | SR | SR | SR | SR | SR | SA |
| IN fin | CL | CW | SS | TW | TW | TW | CL | CW | LA | LI | SA |
| IN ack | ES | ES | SS | SR | FW | TW | CL | CW | CL | LI | SA |
| IN rst | CL | CL | CL | SR | CL | CL | CL | CL | LA | LI | CL |
| OUT syn | SS | ES | SS | SA | SS | SS | SS | SS | SS | LI | SA |
| OUT fin | TW | FW | SS | TW | FW | TW | CL | TW | LA | LI | TW |
| OUT ack | ES | ES | SS | ES | FW | TW | CL | CW | LA | ES | ES |
| OUT rst | CL | CL | SS | CL | CL | TW | CL | CL | CL | CL | CL |
| INONLY syn | SA | ES | ES | SR | SA | SA | SA | SA | SA | SA | SA |
| INONLY fin | CL | FW | SS | TW | FW | TW | CL | CW | LA | LI | TW |
| INONLY ack | ES | ES | SS | ES | FW | TW | CL | CW | CL | LI | ES |
| INONLY rst | CL | CL | CL | SR | CL | CL | CL | CL | LA | LI | CL |
";

/// Column order of the spec: NO ES SS SR FW TW CL CW LA LI SA.
const COLUMNS: [&str; 11] = [
    "NO", "ES", "SS", "SR", "FW", "TW", "CL", "CW", "LA", "LI", "SA",
];

fn abbrev(s: &str) -> TcpState {
    // Spec abbreviations, mapped by the spec's legend.
    match s {
        "NO" => TcpState::from_name("NONE"),
        "ES" => TcpState::from_name("ESTABLISHED"),
        "SS" => TcpState::from_name("SYN_SENT"),
        "SR" => TcpState::from_name("SYN_RECV"),
        "FW" => TcpState::from_name("FIN_WAIT"),
        "TW" => TcpState::from_name("TIME_WAIT"),
        "CL" => TcpState::from_name("CLOSE"),
        "CW" => TcpState::from_name("CLOSE_WAIT"),
        "LA" => TcpState::from_name("LAST_ACK"),
        "LI" => TcpState::from_name("LISTEN"),
        "SA" => TcpState::from_name("SYNACK"),
        _ => None,
    }
    .unwrap_or_else(|| panic!("bad abbreviation {s}"))
}

/// A representative flags byte for each class.
fn flags_for(class: &str) -> (u8, TcpInput) {
    match class {
        "syn" => (0x02, TcpInput::Syn),
        "fin" => (0x01, TcpInput::Fin),
        "ack" => (0x10, TcpInput::Ack),
        "rst" => (0x04, TcpInput::Rst),
        _ => panic!("bad class {class}"),
    }
}

fn check_table(spec: &str, table: TcpTable) -> usize {
    let mut cells = 0;
    for line in spec.lines().filter(|l| !l.trim().is_empty()) {
        let parts: Vec<&str> = line
            .split('|')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(parts.len(), 12, "row {line}");
        let mut head = parts[0].split_whitespace();
        let dir = match head.next().unwrap() {
            "IN" => Direction::Input,
            "OUT" => Direction::Output,
            "INONLY" => Direction::InputOnly,
            d => panic!("bad direction {d}"),
        };
        let (byte, class) = flags_for(head.next().unwrap());
        for (col, cell) in parts[1..].iter().enumerate() {
            let cur = abbrev(COLUMNS[col]);
            let want = abbrev(cell);
            assert_eq!(cur.index(), col, "column order");
            assert_eq!(
                table.next(dir, Some(class), cur),
                want,
                "{table:?} {line} col {}",
                COLUMNS[col]
            );
            // The same cell through the flags byte. NOOUTPUT selects INPUT_ONLY for input.
            let (d, noout) = match dir {
                Direction::InputOnly => (Direction::Input, true),
                d => (d, false),
            };
            let t = tcp_transition(table, cur, noout, d, byte);
            assert_eq!(
                t.state, want,
                "{table:?} {line} col {} via flags",
                COLUMNS[col]
            );
            assert_eq!(t.used, dir);
            cells += 1;
        }
    }
    cells
}

#[test]
fn normal_table_every_cell() {
    assert_eq!(check_table(NORMAL_SPEC, TcpTable::Normal), 3 * 4 * 11);
}

#[test]
fn secure_table_every_cell() {
    assert_eq!(check_table(SECURE_SPEC, TcpTable::Secure), 3 * 4 * 11);
}

#[test]
fn tables_differ_only_where_spec_says() {
    // Sanity on the transcriptions: the two spec tables differ in exactly these cells.
    let mut diffs = 0;
    for (a, b) in NORMAL_SPEC.lines().zip(SECURE_SPEC.lines()) {
        let a: Vec<&str> = a.split('|').map(str::trim).collect();
        let b: Vec<&str> = b.split('|').map(str::trim).collect();
        diffs += a.iter().zip(&b).filter(|(x, y)| x != y).count();
    }
    // IN: syn SA, fin SA, ack SR and SA, rst SA; OUT syn: SR and SA; INONLY syn: 8 cells.
    assert_eq!(diffs, 15);
}

#[test]
fn flag_priority_and_no_flag_close() {
    // RST > SYN > FIN > ACK.
    for byte in 0u8..=255 {
        let want = if byte & 0x04 != 0 {
            Some(TcpInput::Rst)
        } else if byte & 0x02 != 0 {
            Some(TcpInput::Syn)
        } else if byte & 0x01 != 0 {
            Some(TcpInput::Fin)
        } else if byte & 0x10 != 0 {
            Some(TcpInput::Ack)
        } else {
            None
        };
        assert_eq!(TcpInput::classify(byte), want, "flags {byte:#04x}");
    }
    // No flag of the four: CLOSE from every state, every direction, both tables.
    for table in [TcpTable::Normal, TcpTable::Secure] {
        for s in TcpState::ALL {
            for (d, noout) in [
                (Direction::Input, false),
                (Direction::Output, false),
                (Direction::Input, true),
            ] {
                assert_eq!(
                    tcp_transition(table, s, noout, d, 0x08).state,
                    TcpState::Close
                );
            }
        }
    }
}

/// Runs (direction, flags) segments on a NAT or DR connection, returning the states after
/// each.
fn trace(nooutput: bool, segs: &[(Direction, u8)]) -> Vec<&'static str> {
    let mut s = TcpState::None;
    let mut noout = nooutput;
    segs.iter()
        .map(|&(d, f)| {
            let t = tcp_transition(TcpTable::Normal, s, noout, d, f);
            if t.clear_nooutput {
                noout = false;
            }
            s = t.state;
            s.name()
        })
        .collect()
}

const SYN: u8 = 0x02;
const SYNACK: u8 = 0x12;
const ACK: u8 = 0x10;
const FIN: u8 = 0x11;
const RST: u8 = 0x04;

#[test]
fn typical_traces() {
    use Direction::{Input as I, Output as O};
    // NAT, client closes first.
    assert_eq!(
        trace(
            false,
            &[
                (I, SYN),
                (O, SYNACK),
                (I, ACK),
                (I, ACK),
                (I, FIN),
                (O, FIN),
                (I, ACK)
            ]
        ),
        [
            "SYN_RECV",
            "SYN_RECV",
            "ESTABLISHED",
            "ESTABLISHED",
            "CLOSE_WAIT",
            "TIME_WAIT",
            "TIME_WAIT"
        ]
    );
    // NAT, server closes first (after an established connection).
    assert_eq!(
        trace(
            false,
            &[
                (I, SYN),
                (O, SYNACK),
                (I, ACK),
                (O, FIN),
                (I, ACK),
                (I, FIN),
                (O, ACK)
            ]
        ),
        [
            "SYN_RECV",
            "SYN_RECV",
            "ESTABLISHED",
            "FIN_WAIT",
            "FIN_WAIT",
            "TIME_WAIT",
            "TIME_WAIT"
        ]
    );
    // DR / TUN: INPUT_ONLY.
    assert_eq!(
        trace(true, &[(I, SYN), (I, ACK), (I, FIN), (I, ACK), (I, RST)]),
        ["SYN_RECV", "ESTABLISHED", "FIN_WAIT", "FIN_WAIT", "CLOSE"]
    );
    let t = Timeouts::default();
    let secs = |n: &str| t.tcp(TcpState::from_name(n).unwrap()).as_secs();
    assert_eq!(
        [
            secs("SYN_RECV"),
            secs("ESTABLISHED"),
            secs("FIN_WAIT"),
            secs("CLOSE"),
            secs("CLOSE_WAIT"),
            secs("TIME_WAIT")
        ],
        [60, 900, 120, 10, 60, 120]
    );
    // An output packet on a NOOUTPUT connection clears the flag; input then uses INPUT.
    let a = tcp_transition(
        TcpTable::Normal,
        TcpState::Established,
        true,
        Direction::Output,
        ACK,
    );
    assert!(a.clear_nooutput);
    assert_eq!(a.used, Direction::Output);
    let b = tcp_transition(
        TcpTable::Normal,
        TcpState::Established,
        false,
        Direction::Input,
        FIN,
    );
    assert_eq!(b.state, TcpState::CloseWait);
}

#[test]
fn active_sets() {
    let cur: Vec<&str> = TcpState::ALL
        .iter()
        .filter(|s| ActiveStates::Current.is_active(**s))
        .map(|s| s.name())
        .collect();
    assert_eq!(cur, ["ESTABLISHED", "SYN_SENT", "SYN_RECV", "SYNACK"]);
    let old: Vec<&str> = TcpState::ALL
        .iter()
        .filter(|s| ActiveStates::LegacyEstablishedOnly.is_active(**s))
        .map(|s| s.name())
        .collect();
    assert_eq!(old, ["ESTABLISHED"]);
}

#[test]
fn names_and_indexes() {
    let names: Vec<&str> = TcpState::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        [
            "NONE",
            "ESTABLISHED",
            "SYN_SENT",
            "SYN_RECV",
            "FIN_WAIT",
            "TIME_WAIT",
            "CLOSE",
            "CLOSE_WAIT",
            "LAST_ACK",
            "LISTEN",
            "SYNACK"
        ]
    );
    for (i, s) in TcpState::ALL.iter().enumerate() {
        assert_eq!(s.index(), i);
        assert_eq!(TcpState::from_index(i as u8), Some(*s));
    }
    assert_eq!(TcpState::from_index(11), None);
    assert_eq!(state_name(Protocol::Tcp, false, 11), "ERR!");
    assert_eq!(state_name(Protocol::Udp, false, 0), "UDP");
    assert_eq!(state_name(Protocol::Udp, true, 0), "NONE");
    assert_eq!(state_name(Protocol::Ip, true, 1), "ASSURED");
}

#[test]
fn default_timeouts_match_spec() {
    let t = Timeouts::default();
    let got: Vec<u64> = TcpState::ALL.iter().map(|s| t.tcp(*s).as_secs()).collect();
    assert_eq!(got, [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120]);
    assert_eq!(t.udp(), Duration::from_secs(300));
    assert_eq!(t.ipvsadm_triple(), (900, 120, 300));
}

#[test]
fn set_semantics() {
    let mut t = Timeouts::default();
    t.apply_set(0, 0, 0, Timeouts::IPVSADM_MAX_SECS).unwrap();
    assert_eq!(t, Timeouts::default(), "0 keeps every value");
    t.apply_set(7200, 30, 0, Timeouts::IPVSADM_MAX_SECS)
        .unwrap();
    assert_eq!(t.ipvsadm_triple(), (7200, 30, 300));
    // Only ESTABLISHED and FIN_WAIT change among TCP states.
    let d = Timeouts::default();
    for s in TcpState::ALL {
        if s != TcpState::Established && s != TcpState::FinWait {
            assert_eq!(t.tcp(s), d.tcp(s), "{s}");
        }
    }
    let before = t.clone();
    let err = t
        .apply_set(1, 1, 3_000_000, Timeouts::IPVSADM_MAX_SECS)
        .unwrap_err();
    assert_eq!(err.field, "udp");
    assert_eq!(t, before, "a rejected --set changes nothing");
    assert_eq!(Timeouts::kernel_max_secs(1000), 2_147_483);
    assert!(t
        .apply_set(2_200_000, 0, 0, Timeouts::kernel_max_secs(1000))
        .is_err());
}
