//! Randomness from the operating system, failing closed: a host whose RNG fails gets an error,
//! never a guessable value (a time-derived key or an all-zero id would look fine and be weak).

/// The operating system's random source did not answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct RandomUnavailable(String);

/// Returns `N` random bytes.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomUnavailable> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| RandomUnavailable(e.to_string()))?;
    Ok(bytes)
}

/// Returns `bytes` random bytes as lower-case hex.
pub fn random_hex(bytes: usize) -> Result<String, RandomUnavailable> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|e| RandomUnavailable(e.to_string()))?;
    Ok(hex::encode(buffer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_values_have_the_asked_length_and_differ() {
        let (a, b) = (random_hex(16).unwrap(), random_hex(16).unwrap());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert_ne!(random_bytes::<32>().unwrap(), [0u8; 32]);
    }
}
