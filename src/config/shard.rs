//! Sharding a clinic's accounts over replicas: `--shard.index` of `--shard.count`. Each
//! replica polls only the accounts whose stable hash of the account name, modulo the count,
//! equals its index, so an account is never polled, and its password never sent, from two
//! replicas. The hash is FNV-1a (64 bit) of the name's UTF-8 bytes: fixed by this file, not by
//! the standard library's hasher (which may change between Rust versions), so every replica of
//! every version agrees.

use super::ConfigError;

/// Which replica this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This replica's index, `0..count`.
    pub index: u32,
    /// How many replicas share the accounts.
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl Shard {
    /// Checks `index` and `count`.
    ///
    /// # Errors
    /// [`ConfigError::Shard`] when the count is 0 or the index is not below it.
    pub fn new(index: u32, count: u32) -> Result<Self, ConfigError> {
        if count == 0 || index >= count {
            return Err(ConfigError::Shard { index, count });
        }
        Ok(Shard { index, count })
    }

    /// Whether this replica polls the account labelled `name`.
    pub fn owns(self, name: &str) -> bool {
        shard_of(name, self.count) == self.index
    }
}

/// The shard of the account labelled `name` among `count`.
pub fn shard_of(name: &str, count: u32) -> u32 {
    (crate::share::fnv1a(name.as_bytes()) % u64::from(count.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_fixed_and_spreads_accounts_evenly() {
        // Fixed values: a change here would move accounts between replicas on upgrade.
        assert_eq!(crate::share::fnv1a(b"kid"), 0x3da0_5f19_3638_2f87);
        assert_eq!(shard_of("kid", 3), 0);
        let names: Vec<String> = (0..3000).map(|i| format!("camper-{i:04}")).collect();
        let mut per_shard = [0usize; 3];
        for name in &names {
            per_shard[shard_of(name, 3) as usize] += 1;
        }
        for n in per_shard {
            assert!((900..=1100).contains(&n), "{per_shard:?}");
        }
        // Every account in exactly one shard.
        for name in &names {
            let owners = (0..3)
                .filter(|i| Shard::new(*i, 3).unwrap().owns(name))
                .count();
            assert_eq!(owners, 1);
        }
    }

    #[test]
    fn index_must_be_below_count() {
        assert!(Shard::new(0, 1).is_ok());
        assert!(Shard::new(3, 3).is_err());
        assert!(Shard::new(0, 0).is_err());
    }
}
