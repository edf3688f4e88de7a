//! Protocol states of connections and templates, the TCP transition tables, and timeouts
//! (spec §2.4, §6.4 secure_tcp).
//!
//! Everything here is pure data and pure functions; the connection table applies them.
//!
//! ```
//! use lvs_core::conn::state::{Direction, TcpInput, TcpState, TcpTable};
//! // A DR connection (INPUT_ONLY): SYN, then ACK.
//! let s = TcpTable::Normal.next(Direction::InputOnly, Some(TcpInput::Syn), TcpState::None);
//! assert_eq!(s, TcpState::SynRecv);
//! let s = TcpTable::Normal.next(Direction::InputOnly, TcpInput::classify(0x10), s);
//! assert_eq!(s, TcpState::Established);
//! ```

use core::fmt;

use crate::protocol::Protocol;
use crate::time::Duration;

/// The eleven IPVS TCP states (`IP_VS_TCP_S_*`), with the kernel's numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum TcpState {
    /// 0: a new connection before its first processed segment.
    None = 0,
    /// 1: ESTABLISHED.
    Established = 1,
    /// 2: SYN_SENT.
    SynSent = 2,
    /// 3: SYN_RECV.
    SynRecv = 3,
    /// 4: FIN_WAIT.
    FinWait = 4,
    /// 5: TIME_WAIT.
    TimeWait = 5,
    /// 6: CLOSE.
    Close = 6,
    /// 7: CLOSE_WAIT.
    CloseWait = 7,
    /// 8: LAST_ACK.
    LastAck = 8,
    /// 9: LISTEN.
    Listen = 9,
    /// 10: SYNACK (only reachable through the secure_tcp table).
    SynAck = 10,
}

impl TcpState {
    /// Every state, in kernel index order.
    pub const ALL: [TcpState; 11] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];

    /// The kernel index (0..=10).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The state with kernel index `i`, if there is one.
    pub const fn from_index(i: u8) -> Option<TcpState> {
        if (i as usize) < Self::ALL.len() {
            Some(Self::ALL[i as usize])
        } else {
            None
        }
    }

    /// The name `ipvsadm -Lnc` and `/proc/net/ip_vs_conn` print.
    ///
    /// ```
    /// use lvs_core::conn::state::TcpState;
    /// assert_eq!(TcpState::SynRecv.name(), "SYN_RECV");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }

    /// The state with that ipvsadm name.
    pub fn from_name(name: &str) -> Option<TcpState> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Half-open states that the embryonic-eviction policy of the connection table (and the
    /// kernel's drop_entry defence, spec §6.4) treat as cheap to drop: SYN_RECV and SYNACK,
    /// plus NONE (created, no segment processed yet).
    pub const fn is_embryonic(self) -> bool {
        matches!(self, TcpState::None | TcpState::SynRecv | TcpState::SynAck)
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which states count as active (`activeconns`) rather than inactive (`inactconns`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ActiveStates {
    /// Current kernels (`tcp_state_active_table`): ESTABLISHED, SYN_SENT, SYN_RECV, SYNACK.
    #[default]
    Current,
    /// 3.x/4.x-era kernels: only ESTABLISHED.
    LegacyEstablishedOnly,
}

impl ActiveStates {
    /// Whether a TCP connection in `state` is counted as active.
    ///
    /// ```
    /// use lvs_core::conn::state::{ActiveStates, TcpState};
    /// assert!(ActiveStates::Current.is_active(TcpState::SynRecv));
    /// assert!(!ActiveStates::LegacyEstablishedOnly.is_active(TcpState::SynRecv));
    /// ```
    pub const fn is_active(self, state: TcpState) -> bool {
        match self {
            ActiveStates::Current => matches!(
                state,
                TcpState::Established | TcpState::SynSent | TcpState::SynRecv | TcpState::SynAck
            ),
            ActiveStates::LegacyEstablishedOnly => matches!(state, TcpState::Established),
        }
    }
}

/// The direction of a packet relative to a connection, selecting the sub-table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client → director (`IP_VS_DIR_INPUT`).
    Input,
    /// Real server → client, seen by the director (`IP_VS_DIR_OUTPUT`, NAT replies).
    Output,
    /// Client → director on a connection that has `NOOUTPUT` (DR, TUN, LOCALNODE):
    /// `IP_VS_DIR_INPUT_ONLY`. [`tcp_transition`] selects it from `Input` by itself.
    InputOnly,
}

impl Direction {
    const fn row(self) -> usize {
        match self {
            Direction::Input => 0,
            Direction::Output => 1,
            Direction::InputOnly => 2,
        }
    }
}

/// The class of a TCP segment for the transition tables (`tcp_state_idx`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpInput {
    /// SYN set (RST clear); SYN+ACK is a `Syn`.
    Syn,
    /// FIN set (RST and SYN clear); FIN+ACK is a `Fin`.
    Fin,
    /// ACK only among the four.
    Ack,
    /// RST set, whatever else is.
    Rst,
}

impl TcpInput {
    /// TCP header flag bit FIN.
    pub const FIN: u8 = 0x01;
    /// TCP header flag bit SYN.
    pub const SYN: u8 = 0x02;
    /// TCP header flag bit RST.
    pub const RST: u8 = 0x04;
    /// TCP header flag bit ACK.
    pub const ACK: u8 = 0x10;

    /// Classifies the flags byte of a TCP header (byte 13) with the kernel's priority
    /// RST > SYN > FIN > ACK. `None` when none of the four is set: the transition then goes to
    /// CLOSE whatever the current state (a kernel quirk kept on purpose).
    ///
    /// ```
    /// use lvs_core::conn::state::TcpInput;
    /// assert_eq!(TcpInput::classify(0x12), Some(TcpInput::Syn)); // SYN+ACK
    /// assert_eq!(TcpInput::classify(0x11), Some(TcpInput::Fin)); // FIN+ACK
    /// assert_eq!(TcpInput::classify(0x16), Some(TcpInput::Rst));
    /// assert_eq!(TcpInput::classify(0x08), None); // PSH only
    /// ```
    pub const fn classify(flags: u8) -> Option<TcpInput> {
        // One load instead of four tests: the four bits packed into an index of `CLASSES`.
        Self::CLASSES[((flags & 0x07) | (flags & Self::ACK) >> 1) as usize]
    }

    /// [`TcpInput::classify`] of every combination of FIN, SYN, RST (index bits 0-2) and ACK
    /// (bit 3).
    const CLASSES: [Option<TcpInput>; 16] = {
        let mut t = [None; 16];
        let mut i = 0;
        while i < 16 {
            t[i] = Self::classify_bits(((i & 0x07) | (i & 0x08) << 1) as u8);
            i += 1;
        }
        t
    };

    /// The priority rule itself, RST > SYN > FIN > ACK.
    const fn classify_bits(flags: u8) -> Option<TcpInput> {
        if flags & Self::RST != 0 {
            Some(TcpInput::Rst)
        } else if flags & Self::SYN != 0 {
            Some(TcpInput::Syn)
        } else if flags & Self::FIN != 0 {
            Some(TcpInput::Fin)
        } else if flags & Self::ACK != 0 {
            Some(TcpInput::Ack)
        } else {
            None
        }
    }

    const fn col(self) -> usize {
        match self {
            TcpInput::Syn => 0,
            TcpInput::Fin => 1,
            TcpInput::Ack => 2,
            TcpInput::Rst => 3,
        }
    }
}

/// Which TCP transition table is in force.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TcpTable {
    /// `tcp_states`.
    #[default]
    Normal,
    /// `tcp_states_dos`, while the secure_tcp defence is engaged (spec §6.4).
    Secure,
}

use TcpState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    SynAck as SA, SynRecv as SR, SynSent as SS, TimeWait as TW,
};

/// A table: `[direction][input][current state] -> next state`.
type Table = [[[TcpState; 11]; 4]; 3];

// Columns: NO ES SS SR FW TW CL CW LA LI SA. Rows: syn fin ack rst.
const NORMAL: Table = [
    // INPUT
    [
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
    ],
    // OUTPUT
    [
        [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
        [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // INPUT_ONLY
    [
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

const SECURE: Table = [
    // INPUT
    [
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SA],
        [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, SA],
        [ES, ES, SS, SR, FW, TW, CL, CW, CL, LI, SA],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
    // OUTPUT
    [
        [SS, ES, SS, SA, SS, SS, SS, SS, SS, LI, SA],
        [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // INPUT_ONLY
    [
        [SA, ES, ES, SR, SA, SA, SA, SA, SA, SA, SA],
        [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

impl TcpTable {
    /// The next state for a segment of class `input` (`None`: no RST/SYN/FIN/ACK bit) seen in
    /// `dir` by a connection in `state`. `dir` is used as given; [`tcp_transition`] applies
    /// the NOOUTPUT rule first.
    pub const fn next(self, dir: Direction, input: Option<TcpInput>, state: TcpState) -> TcpState {
        let Some(input) = input else {
            // Kernel: new_state starts as CLOSE and the lookup is skipped.
            return TcpState::Close;
        };
        let t = match self {
            TcpTable::Normal => &NORMAL,
            TcpTable::Secure => &SECURE,
        };
        t[dir.row()][input.col()][state.index()]
    }
}

/// The outcome of one TCP segment on a connection's state (`set_tcp_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpTransition {
    /// The state after the segment.
    pub state: TcpState,
    /// The sub-table actually used (`InputOnly` when the connection had NOOUTPUT).
    pub used: Direction,
    /// Whether the NOOUTPUT flag must be cleared (an OUTPUT packet was seen on a NOOUTPUT
    /// connection).
    pub clear_nooutput: bool,
}

/// One segment through the TCP state machine: `dir` is [`Direction::Input`] or
/// [`Direction::Output`] as seen by the director; `nooutput` is the connection's NOOUTPUT
/// flag. While NOOUTPUT is set, input packets use the INPUT_ONLY table; the first output packet
/// clears NOOUTPUT (and is itself looked up in the OUTPUT table).
///
/// ```
/// use lvs_core::conn::state::{tcp_transition, Direction, TcpInput, TcpState, TcpTable};
/// // FIN from the client on an ESTABLISHED DR connection: INPUT_ONLY gives FIN_WAIT,
/// // where the NAT INPUT table would give CLOSE_WAIT.
/// let t = tcp_transition(TcpTable::Normal, TcpState::Established, true, Direction::Input, 0x11);
/// assert_eq!(t.state, TcpState::FinWait);
/// let t = tcp_transition(TcpTable::Normal, TcpState::Established, false, Direction::Input, 0x11);
/// assert_eq!(t.state, TcpState::CloseWait);
/// ```
pub fn tcp_transition(
    table: TcpTable,
    state: TcpState,
    nooutput: bool,
    dir: Direction,
    tcp_flags: u8,
) -> TcpTransition {
    let mut used = dir;
    let mut clear_nooutput = false;
    if nooutput {
        if dir == Direction::Output {
            clear_nooutput = true;
        } else {
            used = Direction::InputOnly;
        }
    }
    TcpTransition {
        state: table.next(used, TcpInput::classify(tcp_flags), state),
        used,
        clear_nooutput,
    }
}

/// The state [`tcp_transition`] gives a connection in raw state `raw` (a state beyond
/// the TCP states counts as CLOSE, as the table reads it) with NOOUTPUT `nooutput`, for a
/// segment with flags byte `tcp_flags` in `dir`: one load from [`NEXT_STATE`], where the
/// transition function selects the sub-table, classifies the flags and indexes three
/// dimensions on every packet of every connection.
#[inline(always)]
pub(crate) fn tcp_next_state(
    table: TcpTable,
    raw: u8,
    nooutput: bool,
    dir: Direction,
    tcp_flags: u8,
) -> TcpState {
    let row = table as usize * 6 + dir as usize * 2 + nooutput as usize;
    let class = ((tcp_flags & 0x07) | (tcp_flags & TcpInput::ACK) >> 1) as usize;
    NEXT_STATE[row][class << 4 | (raw & 0x0f) as usize]
}

/// [`tcp_transition`]'s state for every (table, direction, NOOUTPUT) row (`table * 6 +
/// direction * 2 + nooutput`, directions in declaration order) and every flag class (index
/// of [`TcpInput::CLASSES`], high four bits) and raw state (low four bits).
const NEXT_STATE: [[TcpState; 256]; 12] = {
    let mut t = [[TcpState::None; 256]; 12];
    let tables = [TcpTable::Normal, TcpTable::Secure];
    let dirs = [Direction::Input, Direction::Output, Direction::InputOnly];
    let mut row = 0;
    while row < 12 {
        let (table, dir, nooutput) = (tables[row / 6], dirs[row / 2 % 3], row % 2 == 1);
        // `tcp_transition`'s choice of sub-table.
        let used = match (nooutput, dir) {
            (true, Direction::Output) => Direction::Output,
            (true, _) => Direction::InputOnly,
            (false, d) => d,
        };
        let mut i = 0;
        while i < 256 {
            let state = match TcpState::from_index((i & 0x0f) as u8) {
                Some(s) => s,
                None => TcpState::Close,
            };
            t[row][i] = table.next(used, TcpInput::CLASSES[i >> 4], state);
            i += 1;
        }
        row += 1;
    }
    t
};

/// UDP's single state (`IP_VS_UDP_S_NORMAL`), printed as `UDP`.
pub const UDP_STATE_NORMAL: u8 = 0;

/// States of a persistence template (`IP_VS_CTPL_S_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TemplateState {
    /// Created, no controlled connection confirmed yet.
    #[default]
    None = 0,
    /// A controlled TCP connection reached ESTABLISHED, or a UDP reply was seen.
    Assured = 1,
}

impl TemplateState {
    /// The name ipvsadm prints (`NONE`, `ASSURED`).
    pub const fn name(self) -> &'static str {
        match self {
            TemplateState::None => "NONE",
            TemplateState::Assured => "ASSURED",
        }
    }
}

/// The name `ipvsadm -Lnc` prints for a raw state of a connection of `protocol` (`template`:
/// whether the entry is a persistence template).
///
/// ```
/// use lvs_core::conn::state::state_name;
/// use lvs_core::Protocol;
/// assert_eq!(state_name(Protocol::Tcp, false, 1), "ESTABLISHED");
/// assert_eq!(state_name(Protocol::Udp, false, 0), "UDP");
/// assert_eq!(state_name(Protocol::Tcp, true, 1), "ASSURED");
/// assert_eq!(state_name(Protocol::Ip, false, 0), "NONE");
/// ```
pub fn state_name(protocol: Protocol, template: bool, state: u8) -> &'static str {
    if template {
        return match state {
            0 => TemplateState::None.name(),
            1 => TemplateState::Assured.name(),
            _ => "ERR!",
        };
    }
    match protocol {
        Protocol::Tcp => TcpState::from_index(state).map_or("ERR!", TcpState::name),
        Protocol::Udp => {
            if state == UDP_STATE_NORMAL {
                "UDP"
            } else {
                "ERR!"
            }
        }
        // The SCTP state machine is not modelled (spec §7); its conns stay in state 0.
        Protocol::Sctp => "NONE",
        Protocol::Ip => "NONE",
    }
}

/// A `--set` value outside what the kernel accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("timeout {field} = {value} s is above the maximum of {max} s")]
pub struct TimeoutRangeError {
    /// Which of the three values: `tcp`, `tcpfin` or `udp`.
    pub field: &'static str,
    /// The value given, in seconds.
    pub value: u64,
    /// The largest value accepted, in seconds.
    pub max: u64,
}

/// Per-state timeouts of the protocols (the kernel's per-netns `timeout_table`s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    tcp: [Duration; 11],
    udp: Duration,
    sctp: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let s = Duration::from_secs;
        Timeouts {
            tcp: [
                s(2),   // NONE
                s(900), // ESTABLISHED
                s(120), // SYN_SENT
                s(60),  // SYN_RECV
                s(120), // FIN_WAIT
                s(120), // TIME_WAIT
                s(10),  // CLOSE
                s(60),  // CLOSE_WAIT
                s(30),  // LAST_ACK
                s(120), // LISTEN
                s(120), // SYNACK
            ],
            udp: s(300),
            sctp: s(900),
        }
    }
}

impl Timeouts {
    /// The largest `--set` value ipvsadm accepts (31 days). The kernel itself rejects values
    /// above `INT_MAX / HZ` seconds, which is lower (about 24.8 days) on `HZ=1000` kernels: see
    /// [`Timeouts::kernel_max_secs`].
    pub const IPVSADM_MAX_SECS: u64 = 31 * 24 * 60 * 60;

    /// The largest timeout the kernel accepts in `--set` for a given `HZ`: `INT_MAX / HZ`.
    pub const fn kernel_max_secs(hz: u32) -> u64 {
        if hz == 0 {
            return 0;
        }
        i32::MAX as u64 / hz as u64
    }

    /// The timeout of a TCP connection in `state`.
    pub const fn tcp(&self, state: TcpState) -> Duration {
        self.tcp[state.index()]
    }

    /// Sets the timeout of one TCP state.
    pub fn set_tcp(&mut self, state: TcpState, timeout: Duration) {
        self.tcp[state.index()] = timeout;
    }

    /// The UDP timeout (single state).
    pub const fn udp(&self) -> Duration {
        self.udp
    }

    /// Sets the UDP timeout.
    pub fn set_udp(&mut self, timeout: Duration) {
        self.udp = timeout;
    }

    /// The timeout used for SCTP connections. The SCTP state machine is not modelled: SCTP
    /// connections are treated as single-state with this timeout (default 900 s, the kernel's
    /// SCTP ESTABLISHED timeout).
    pub const fn sctp(&self) -> Duration {
        self.sctp
    }

    /// Sets the SCTP timeout.
    pub fn set_sctp(&mut self, timeout: Duration) {
        self.sctp = timeout;
    }

    /// The timeout of a (non-template) connection of `protocol` in raw state `state`; TCP states
    /// out of range (never produced by this crate) use the CLOSE timeout. Protocol IP (only
    /// used by templates) gets the UDP timeout.
    pub fn for_state(&self, protocol: Protocol, state: u8) -> Duration {
        match protocol {
            Protocol::Tcp => self.tcp(TcpState::from_index(state).unwrap_or(TcpState::Close)),
            Protocol::Udp | Protocol::Ip => self.udp,
            Protocol::Sctp => self.sctp,
        }
    }

    /// `ipvsadm --set tcp tcpfin udp` (seconds): changes only the ESTABLISHED, FIN_WAIT and
    /// UDP timeouts; a value of 0 keeps the current one. Nothing changes when any value is
    /// above `max_secs` (pass [`Timeouts::IPVSADM_MAX_SECS`] or
    /// [`Timeouts::kernel_max_secs`]).
    ///
    /// ```
    /// use lvs_core::conn::state::{TcpState, Timeouts};
    /// use lvs_core::Duration;
    /// let mut t = Timeouts::default();
    /// t.apply_set(3600, 0, 60, Timeouts::IPVSADM_MAX_SECS).unwrap();
    /// assert_eq!(t.ipvsadm_triple(), (3600, 120, 60));
    /// assert_eq!(t.tcp(TcpState::TimeWait), Duration::from_secs(120));
    /// ```
    pub fn apply_set(
        &mut self,
        tcp: u64,
        tcpfin: u64,
        udp: u64,
        max_secs: u64,
    ) -> Result<(), TimeoutRangeError> {
        for (field, value) in [("tcp", tcp), ("tcpfin", tcpfin), ("udp", udp)] {
            if value > max_secs {
                return Err(TimeoutRangeError {
                    field,
                    value,
                    max: max_secs,
                });
            }
        }
        if tcp != 0 {
            self.set_tcp(TcpState::Established, Duration::from_secs(tcp));
        }
        if tcpfin != 0 {
            self.set_tcp(TcpState::FinWait, Duration::from_secs(tcpfin));
        }
        if udp != 0 {
            self.udp = Duration::from_secs(udp);
        }
        Ok(())
    }

    /// What `ipvsadm -L --timeout` prints: `(tcp, tcpfin, udp)` in whole seconds.
    pub const fn ipvsadm_triple(&self) -> (u64, u64, u64) {
        (
            self.tcp(TcpState::Established).as_secs(),
            self.tcp(TcpState::FinWait).as_secs(),
            self.udp.as_secs(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{tcp_next_state, tcp_transition, Direction, TcpInput, TcpState, TcpTable};

    /// The one-load transition agrees with `tcp_transition` everywhere: both tables, every
    /// direction, NOOUTPUT or not, every flags byte and every raw state an entry can hold.
    #[test]
    fn next_state_table_is_the_transition() {
        for table in [TcpTable::Normal, TcpTable::Secure] {
            for dir in [Direction::Input, Direction::Output, Direction::InputOnly] {
                for nooutput in [false, true] {
                    for f in 0..=255u8 {
                        for raw in 0..16u8 {
                            let old = TcpState::from_index(raw).unwrap_or(TcpState::Close);
                            assert_eq!(
                                tcp_next_state(table, raw, nooutput, dir, f),
                                tcp_transition(table, old, nooutput, dir, f).state,
                                "{table:?} {dir:?} nooutput={nooutput} flags={f:#04x} raw={raw}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// The lookup table agrees with the priority rule on every flags byte.
    #[test]
    fn classify_table_is_the_priority_rule() {
        for f in 0..=255u8 {
            assert_eq!(
                TcpInput::classify(f),
                TcpInput::classify_bits(f),
                "{f:#04x}"
            );
        }
    }
}
