//! Integration tests of the nemesis mechanisms on this machine.
mod shim;
