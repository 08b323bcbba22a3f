//! Password hashing with argon2id on a bounded blocking pool (DESIGN.md §5).
//!
//! A hash costs tens of milliseconds of CPU on purpose. They run on tokio's blocking threads, at
//! most `hashes_at_once` at a time, so the async workers (and with them the keep-alives) never
//! wait on one. When more than `waiting_max` logins wait for a slot, a new one is refused as busy
//! instead of queueing without end: a login storm is answered, not absorbed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::Semaphore;

/// Longest password accepted, in bytes.
pub const PASSWORD_BYTES_MAX: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("too many password checks are waiting ({0}); retry shortly")]
    Busy(usize),
    #[error("the password is {0} bytes; at most {PASSWORD_BYTES_MAX}")]
    TooLong(usize),
    #[error("the password is empty")]
    Empty,
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// The pool: a semaphore over tokio's blocking threads.
#[derive(Clone)]
pub struct PasswordPool {
    /// One permit per hash running at once.
    slots: Arc<Semaphore>,
    /// Logins waiting for a slot or holding one, to refuse past `waiting_max`.
    waiting: Arc<AtomicUsize>,
    waiting_max: usize,
}

impl PasswordPool {
    pub fn new(hashes_at_once: usize, waiting_max: usize) -> PasswordPool {
        PasswordPool {
            slots: Arc::new(Semaphore::new(hashes_at_once.max(1))),
            waiting: Arc::new(AtomicUsize::new(0)),
            waiting_max,
        }
    }

    /// A pool sized for this machine: half its cores (at least one) hash at once.
    pub fn for_this_machine() -> PasswordPool {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        PasswordPool::new((cores / 2).max(1), 1024)
    }

    /// The PHC string (`$argon2id$...`) of `password` with a fresh salt.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        check(&password)?;
        let salt = crate::secret::random_bytes::<16>()
            .map_err(|error| PasswordError::Hash(error.to_string()))?;
        self.run(move || {
            let salt =
                SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|error| PasswordError::Hash(error.to_string()))
        })
        .await
    }

    /// Whether `password` matches the stored PHC string.
    pub async fn verify(&self, password: String, stored: String) -> Result<bool, PasswordError> {
        if password.len() > PASSWORD_BYTES_MAX {
            return Err(PasswordError::TooLong(password.len()));
        }
        self.run(move || {
            let parsed = PasswordHash::new(&stored)
                .map_err(|error| PasswordError::Hash(format!("stored hash: {error}")))?;
            Ok(Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok())
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let waiting = self.waiting.fetch_add(1, Ordering::AcqRel) + 1;
        let _count = Waiting(self.waiting.clone());
        if waiting > self.waiting_max {
            return Err(PasswordError::Busy(waiting - 1));
        }
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| PasswordError::Hash("the pool is closed".into()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|error| PasswordError::Hash(error.to_string()))?
    }
}

/// Gives the waiting count back however `run` ends (also when its caller goes away).
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A new password's rules: not empty, not too long.
pub fn check(password: &str) -> Result<(), PasswordError> {
    if password.is_empty() {
        return Err(PasswordError::Empty);
    }
    if password.len() > PASSWORD_BYTES_MAX {
        return Err(PasswordError::TooLong(password.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let pool = PasswordPool::new(1, 8);
        let hash = pool.hash("s3cret".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(pool.verify("s3cret".into(), hash.clone()).await.unwrap());
        assert!(!pool.verify("S3cret".into(), hash).await.unwrap());
    }

    #[tokio::test]
    async fn bad_passwords_and_hashes_are_errors() {
        let pool = PasswordPool::new(1, 8);
        assert!(matches!(
            pool.hash(String::new()).await,
            Err(PasswordError::Empty)
        ));
        let long = "x".repeat(PASSWORD_BYTES_MAX + 1);
        assert!(matches!(
            pool.hash(long).await,
            Err(PasswordError::TooLong(_))
        ));
        let garbage = pool.verify("x".into(), "not a hash".into()).await;
        assert!(matches!(garbage, Err(PasswordError::Hash(_))));
    }

    #[tokio::test]
    async fn past_the_waiting_bound_a_check_is_refused_as_busy() {
        let pool = PasswordPool::new(1, 0);
        assert!(matches!(
            pool.hash("x".into()).await,
            Err(PasswordError::Busy(0))
        ));
    }
}
