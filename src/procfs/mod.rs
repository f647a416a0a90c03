//! The host's procfs: where it is, dirfd access to `/proc/<pid>`, and parsers of its files.

pub(crate) mod fd;
pub mod parse;
pub mod paths;
