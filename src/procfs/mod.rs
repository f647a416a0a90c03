//! The host's procfs: where it is, dirfd access to `/proc/<pid>`, and parsers of its
//! files; and the exporter's own process figures.

pub(crate) mod fd;
pub mod own;
pub mod parse;
pub mod paths;
