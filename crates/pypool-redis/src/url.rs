//! Redis URLs whose password never reaches a log.

use std::fmt;

use crate::RedisStoreError;

/// A `redis://` or `rediss://` URL, possibly with a user name and password
/// (Redis AUTH). Its [`Debug`] and [`Display`](fmt::Display) forms replace
/// the password with `***`, so the URL can be logged and shown in
/// `show-config` without leaking the secret.
///
/// ```
/// use pypool_redis::RedisUrl;
///
/// let url: RedisUrl = "redis://app:s3cret@127.0.0.1:6379/0".parse()?;
/// assert_eq!(url.to_string(), "redis://app:***@127.0.0.1:6379/0");
/// assert!(!format!("{url:?}").contains("s3cret"));
/// assert!(!url.is_tls());
/// # Ok::<(), pypool_redis::RedisStoreError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    text: String,
}

impl RedisUrl {
    /// Checks that `text` is a `redis://` or `rediss://` URL the Redis
    /// client accepts.
    pub fn new(text: impl Into<String>) -> Result<Self, RedisStoreError> {
        let text = text.into();
        let url = Self { text };
        let shown = url.redacted();
        if !(url.text.starts_with("redis://") || url.text.starts_with("rediss://")) {
            return Err(RedisStoreError::InvalidUrl {
                url: shown,
                problem: "it must start with redis:// or rediss:// (TLS)".to_owned(),
            });
        }
        redis::Client::open(url.text.as_str()).map_err(|error| RedisStoreError::InvalidUrl {
            url: shown,
            problem: redact_in(&error.to_string(), url.password()),
        })?;
        Ok(url)
    }

    /// Whether the URL asks for TLS (`rediss://`).
    pub fn is_tls(&self) -> bool {
        self.text.starts_with("rediss://")
    }

    /// The full URL, password included: only for handing to the Redis
    /// client or to a child process's environment. Never log it.
    pub fn expose_secret(&self) -> &str {
        &self.text
    }

    /// The password part of the user info, if any.
    fn password(&self) -> Option<&str> {
        let rest = self.text.split_once("://")?.1;
        let authority = rest.split(['/', '?', '#']).next()?;
        let userinfo = authority.rsplit_once('@')?.0;
        match userinfo.split_once(':') {
            Some((_, password)) => Some(password),
            // `redis://secret@host` is a password-only form some clients accept.
            None => Some(userinfo),
        }
        .filter(|password| !password.is_empty())
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_in(&self.text, self.password())
    }
}

/// `text` with every occurrence of `secret` replaced by `***`.
fn redact_in(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(secret) => text.replace(secret, "***"),
        None => text.to_owned(),
    }
}

impl std::str::FromStr for RedisUrl {
    type Err = RedisStoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::new(text)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RedisUrl").field(&self.redacted()).finish()
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn passwords_are_redacted_everywhere() {
        for (text, shown) in [
            ("redis://u:pw@h:1/2", "redis://u:***@h:1/2"),
            ("rediss://:pw@h", "rediss://:***@h"),
            ("redis://h:6379", "redis://h:6379"),
            ("redis://u:p%40ss@h", "redis://u:***@h"),
        ] {
            let url = RedisUrl::new(text).unwrap();
            assert_eq!(url.to_string(), shown);
            assert_eq!(format!("{url:?}"), format!("RedisUrl({shown:?})"));
        }
    }

    #[test]
    fn other_schemes_are_rejected_without_leaking_the_password() {
        let error = RedisUrl::new("http://u:topsecret@h").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("redis:// or rediss://"), "{message}");
        assert!(!message.contains("topsecret"), "{message}");
        assert!(RedisUrl::new("rediss://h:6380").unwrap().is_tls());
    }
}
