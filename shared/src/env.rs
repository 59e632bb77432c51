//! Reading configuration once, at start-up, from a lookup (the process environment in the
//! binaries, a map in tests), with errors that name the variable and say what to set.

use std::collections::HashMap;
use std::str::FromStr;

use secrecy::SecretString;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} is not set: {hint}")]
    Missing {
        var: &'static str,
        hint: &'static str,
    },
    #[error("{var} is invalid: {problem}")]
    Invalid { var: &'static str, problem: String },
}

type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// A source of configuration values.
pub struct Env {
    lookup: Lookup,
}

impl Env {
    /// The process environment; empty values count as unset.
    pub fn process() -> Self {
        Self {
            lookup: Box::new(|k| std::env::var(k).ok().filter(|v| !v.is_empty())),
        }
    }

    pub fn from_map(map: HashMap<String, String>) -> Self {
        Self {
            lookup: Box::new(move |k| map.get(k).cloned()),
        }
    }

    /// This source with `values` in front: settings read from elsewhere at start-up (for
    /// example Secrets Manager) win over the lookup's.
    pub fn overlaid(self, values: HashMap<String, String>) -> Self {
        Self {
            lookup: Box::new(move |k| values.get(k).cloned().or_else(|| (self.lookup)(k))),
        }
    }

    pub fn optional(&self, var: &str) -> Option<String> {
        (self.lookup)(var)
    }

    pub fn required(&self, var: &'static str, hint: &'static str) -> Result<String, ConfigError> {
        self.optional(var).ok_or(ConfigError::Missing { var, hint })
    }

    pub fn secret(
        &self,
        var: &'static str,
        hint: &'static str,
    ) -> Result<SecretString, ConfigError> {
        self.required(var, hint).map(SecretString::from)
    }

    /// Parses `var` if set, else returns `default`.
    pub fn parse_or<T>(&self, var: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.optional(var) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|e| ConfigError::Invalid {
                var,
                problem: format!("{raw:?}: {e}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_variable() {
        let env = Env::from_map(HashMap::from([("N".to_owned(), "x".to_owned())]));
        assert_eq!(
            env.required("Q", "set it to the queue URL")
                .unwrap_err()
                .to_string(),
            "Q is not set: set it to the queue URL"
        );
        assert_eq!(
            env.parse_or::<u32>("N", 1).unwrap_err().to_string(),
            "N is invalid: \"x\": invalid digit found in string"
        );
        assert_eq!(env.parse_or::<u32>("M", 7).unwrap(), 7);
    }
}
