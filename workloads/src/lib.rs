//! placeholder, replaced by this crate's owner.
