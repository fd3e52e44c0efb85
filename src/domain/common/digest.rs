//! A small non-cryptographic digest for keys that must be stable across builds, platforms and
//! instances (de-duplication keys, routing draws).

/// FNV-1a over the parts (each followed by a NUL): stable across builds and platforms.
pub fn fnv1a<'a>(parts: impl Iterator<Item = &'a str>) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}
