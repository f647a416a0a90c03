//! nsexporter
