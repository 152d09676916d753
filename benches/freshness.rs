//! Freshness benchmark (filled in below).
fn main() {}
