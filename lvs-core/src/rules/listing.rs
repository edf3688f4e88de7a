//! `ipvsadm -L -n` listings.
