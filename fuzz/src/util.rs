//! Small deterministic helpers shared by the targets: everything a target derives from its
//! input (chunk splits, visibility predicates, which id answers which method) comes from here,
//! so a corpus file replays identically under the fuzzer and under `cargo test`.

/// FNV-1a, 64 bits.
pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Xorshift64 (never seeded with 0).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Whether `small` is a subsequence of `big` (what is left after deleting byte ranges).
pub fn is_subsequence(small: &[u8], big: &[u8]) -> bool {
    let mut it = big.iter();
    small.iter().all(|c| it.any(|b| b == c))
}

/// Escapes bytes for assertion messages (inputs are arbitrary bytes).
pub fn show(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(400)];
    let mut s = String::from_utf8_lossy(shown).escape_debug().to_string();
    if bytes.len() > shown.len() {
        s.push_str(&format!("… ({} bytes)", bytes.len()));
    }
    s
}
