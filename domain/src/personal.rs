//! Personal data of one person inside a tenant, erasable on its own.
//!
//! An email, a conversation title or a message a user wrote is a [`Personal`] value. The store
//! seals it with a data key of that person (the event says whose: `user_id` or `author`)
//! before the event is encrypted with the tenant's key, and opens it on read. Erasing the
//! person destroys their key: from then on every old event decodes with [`Personal::Erased`]
//! in its place, which reads as `[erased]` everywhere (read models, rebuilds, exports), while
//! the rest of the event, the tenant's usage and its hash chain stay as they were.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What an erased value reads as, everywhere.
pub const ERASED: &str = "[erased]";

#[derive(Clone, PartialEq, Eq)]
pub enum Personal {
    /// Readable text.
    Text(String),
    /// Sealed with the person's key, as stored. Only the store handles this form; the domain
    /// and the read side see `Text` or `Erased`.
    Sealed(Vec<u8>),
    /// The person's key is destroyed: the text is gone for good.
    Erased,
}

impl Personal {
    /// The text, or `[erased]`. A value still sealed (never seen outside the store) reads as
    /// erased too: it cannot be read here.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Text(text) => text,
            Self::Sealed(_) | Self::Erased => ERASED,
        }
    }

    pub fn is_erased(&self) -> bool {
        !matches!(self, Self::Text(_))
    }
}

impl fmt::Debug for Personal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => fmt::Debug::fmt(text, f),
            Self::Sealed(bytes) => write!(f, "Sealed({} bytes)", bytes.len()),
            Self::Erased => f.write_str(ERASED),
        }
    }
}

impl fmt::Display for Personal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for Personal {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

impl From<&str> for Personal {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

impl PartialEq<str> for Personal {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Personal {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The stored form (postcard): the variant, then its content.
#[derive(Serialize, Deserialize)]
enum Stored {
    Text(String),
    Sealed(Vec<u8>),
    Erased,
}

impl Serialize for Personal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            // JSON (exports, fixtures): the text as a plain string.
            return s.serialize_str(self.as_str());
        }
        match self {
            Self::Text(text) => Stored::Text(text.clone()),
            Self::Sealed(bytes) => Stored::Sealed(bytes.clone()),
            Self::Erased => Stored::Erased,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Personal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            return String::deserialize(d).map(Self::Text);
        }
        Ok(match Stored::deserialize(d)? {
            Stored::Text(text) => Self::Text(text),
            Stored::Sealed(bytes) => Self::Sealed(bytes),
            Stored::Erased => Self::Erased,
        })
    }
}
