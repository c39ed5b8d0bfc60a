//! Random values from the operating system's CSPRNG: request nonces and follower tokens.
//!
//! `getrandom` (no features) rather than `rand`: these need only the OS source, not a
//! userspace generator and its feature set. The source fails only on a broken system (no
//! getrandom syscall and no /dev/urandom); that is an error the caller answers, never a
//! panic on the request path.

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed")]
pub struct NoRandomness(#[source] pub getrandom::Error);

/// `N` random bytes as `2 N` lower-case hex characters.
pub fn random_hex<const N: usize>() -> Result<String, NoRandomness> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(NoRandomness)?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_of_the_asked_length_and_never_the_same() {
        let (a, b) = (random_hex::<16>().unwrap(), random_hex::<16>().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }
}
