//! Consistency checks (filled in below).
