//! The hasher of the classifier's fixed lookup tables (the rules' word index, the word
//! model's trigrams).

/// A fast, unkeyed hasher for the word index and the trigram table (FxHash's
/// multiply-rotate). Both are built once from the rules and the word model and never grow, so
/// callers' words can only probe them, and a probe is bounded by the table's own chains: keyed
/// hashing would buy nothing here.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct WordHasher(u64);

impl WordHasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl std::hash::Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.mix(u64::from(byte));
    }

    /// The word model's letter trigrams are keyed by their three bytes packed in a `u32`.
    fn write_u32(&mut self, packed: u32) {
        self.mix(u64::from(packed));
    }
}
