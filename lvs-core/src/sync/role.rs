//! The director's high-availability role, driven the way the ecosystem drives it: a VRRP
//! daemon (keepalived, or any other) decides which director holds the virtual addresses and
//! runs notify hooks; this pure state machine turns those notifications into what the
//! director must do. VRRP itself stays out.
//!
//! # What happens on a takeover (what the kernel does, spec §4.4)
//! Nothing is converted. A backup's synced entries are ordinary entries of its connection
//! table (flag SYNC, `in_pkts = sync_threshold[0]`, `old_state` = the synced state) with the
//! timeout the master sent, counted on their real servers. When the virtual address moves
//! here, the next packet of such a connection finds it, is forwarded to the same real server
//! and re-arms it with its state's timeout; a new connection from a client with a synced
//! persistence template goes to the template's real server. Entries that see no packet
//! expire when their synced timeout runs out. The new master then starts its sync master
//! (its own records continue from the synced `in_pkts` and `old_state`) and stops its backup,
//! so that the old master, now backup, learns the connections it will need back.
//!
//! keepalived's `lvs_sync_daemon` does exactly this: on MASTER it stops the backup daemon and
//! starts the master daemon; on BACKUP or FAULT the reverse.
//!
//! ```
//! use lvs_core::sync::role::{Role, RoleEffect, RoleEvent, RoleState};
//! let mut r = RoleState::new(true);
//! assert_eq!(r.role(), Role::Backup);
//! assert!(!r.forwards());
//! let fx = r.handle(RoleEvent::from_notify("MASTER").unwrap());
//! assert_eq!(
//!     fx,
//!     vec![RoleEffect::StopSyncBackup, RoleEffect::StartSyncMaster, RoleEffect::Forward(true)]
//! );
//! assert!(r.forwards());
//! // The same notification twice changes nothing.
//! assert!(r.handle(RoleEvent::BecomeMaster).is_empty());
//! ```

/// Where the director stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Holds the virtual addresses: forwards traffic, runs the sync master.
    Master,
    /// Standby: runs the sync backup, forwards nothing (the addresses are elsewhere).
    Backup,
    /// The VRRP instance is in fault (an interface or tracked script is down): like a backup
    /// that cannot take over.
    Fault,
    /// The VRRP daemon stopped: no sync daemon, no forwarding.
    Stopped,
}

/// A notification from the VRRP daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RoleEvent {
    /// `notify_master`.
    BecomeMaster,
    /// `notify_backup`.
    BecomeBackup,
    /// `notify_fault`.
    Fault,
    /// `notify_stop`.
    Stop,
}

impl RoleEvent {
    /// The event for the state word a keepalived `notify` script receives as its third
    /// argument (`MASTER`, `BACKUP`, `FAULT`, `STOP`; case as keepalived writes it).
    ///
    /// ```
    /// use lvs_core::sync::role::RoleEvent;
    /// assert_eq!(RoleEvent::from_notify("FAULT"), Some(RoleEvent::Fault));
    /// assert_eq!(RoleEvent::from_notify("master"), None);
    /// ```
    pub fn from_notify(state: &str) -> Option<RoleEvent> {
        match state {
            "MASTER" => Some(RoleEvent::BecomeMaster),
            "BACKUP" => Some(RoleEvent::BecomeBackup),
            "FAULT" => Some(RoleEvent::Fault),
            "STOP" => Some(RoleEvent::Stop),
            _ => None,
        }
    }
}

/// What the driver does, in order, after a role change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RoleEffect {
    /// Start the sync master ([`crate::director::Director::set_sync_master`] with its
    /// configuration).
    StartSyncMaster,
    /// Stop the sync master (`set_sync_master(None)`; unsent datagrams are discarded, as the
    /// kernel's thread frees its queue).
    StopSyncMaster,
    /// Start receiving sync datagrams (feed them to
    /// [`crate::director::Director::apply_sync`]).
    StartSyncBackup,
    /// Stop receiving sync datagrams.
    StopSyncBackup,
    /// Forward (`true`) or stop forwarding (`false`) traffic of the virtual services (the
    /// kernel's `backup_only` behaviour: a backup processes no traffic).
    Forward(bool),
}

/// The role state machine. See the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RoleState {
    role: Role,
    sync: bool,
    transitions: u64,
}

impl RoleState {
    /// A director starting as backup (keepalived's instances start in BACKUP unless they
    /// win an election). `sync`: whether the sync daemons are managed (`lvs_sync_daemon`
    /// configured); without it the effects are only about forwarding.
    pub const fn new(sync: bool) -> RoleState {
        RoleState {
            role: Role::Backup,
            sync,
            transitions: 0,
        }
    }

    /// The current role.
    pub const fn role(&self) -> Role {
        self.role
    }

    /// Whether this director forwards traffic of the virtual services.
    pub const fn forwards(&self) -> bool {
        matches!(self.role, Role::Master)
    }

    /// Whether the sync master should be running.
    pub const fn sync_master(&self) -> bool {
        self.sync && matches!(self.role, Role::Master)
    }

    /// Whether received sync datagrams should be applied.
    pub const fn sync_backup(&self) -> bool {
        self.sync && matches!(self.role, Role::Backup | Role::Fault)
    }

    /// Role changes so far.
    pub const fn transitions(&self) -> u64 {
        self.transitions
    }

    /// Takes a notification; returns the effects in the order to carry them out (empty when
    /// the role does not change).
    pub fn handle(&mut self, ev: RoleEvent) -> Vec<RoleEffect> {
        let to = match ev {
            RoleEvent::BecomeMaster => Role::Master,
            RoleEvent::BecomeBackup => Role::Backup,
            RoleEvent::Fault => Role::Fault,
            RoleEvent::Stop => Role::Stopped,
        };
        if to == self.role {
            return Vec::new();
        }
        let (was_master, was_backup) = (self.sync_master(), self.sync_backup());
        let was_forwarding = self.forwards();
        self.role = to;
        self.transitions += 1;
        let mut fx = Vec::with_capacity(3);
        // Stop forwarding first when leaving master, start last when becoming master: the
        // sync daemons are in place before traffic arrives.
        if was_forwarding && !self.forwards() {
            fx.push(RoleEffect::Forward(false));
        }
        if was_backup && !self.sync_backup() {
            fx.push(RoleEffect::StopSyncBackup);
        }
        if was_master && !self.sync_master() {
            fx.push(RoleEffect::StopSyncMaster);
        }
        if !was_master && self.sync_master() {
            fx.push(RoleEffect::StartSyncMaster);
        }
        if !was_backup && self.sync_backup() {
            fx.push(RoleEffect::StartSyncBackup);
        }
        if !was_forwarding && self.forwards() {
            fx.push(RoleEffect::Forward(true));
        }
        fx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_backup_fault_stop() {
        let mut r = RoleState::new(true);
        assert!(r.sync_backup() && !r.sync_master());
        r.handle(RoleEvent::BecomeMaster);
        assert_eq!(
            r.handle(RoleEvent::BecomeBackup),
            vec![
                RoleEffect::Forward(false),
                RoleEffect::StopSyncMaster,
                RoleEffect::StartSyncBackup
            ]
        );
        // Backup -> fault: still receiving, nothing to do.
        assert!(r.handle(RoleEvent::Fault).is_empty());
        assert_eq!(r.role(), Role::Fault);
        assert_eq!(r.handle(RoleEvent::Stop), vec![RoleEffect::StopSyncBackup]);
        assert_eq!(
            r.handle(RoleEvent::BecomeMaster),
            vec![RoleEffect::StartSyncMaster, RoleEffect::Forward(true)]
        );
        assert_eq!(r.transitions(), 5);
    }

    #[test]
    fn without_sync_only_forwarding() {
        let mut r = RoleState::new(false);
        assert_eq!(
            r.handle(RoleEvent::BecomeMaster),
            vec![RoleEffect::Forward(true)]
        );
        assert_eq!(r.handle(RoleEvent::Fault), vec![RoleEffect::Forward(false)]);
    }
}
