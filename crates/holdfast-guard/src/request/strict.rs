//! JSON into a [`Value`], refusing repeated keys at any depth: serde_json's own reader keeps
//! the last of two equal keys, other readers the first, so a request could name one address
//! to Holdfast and another to whoever reads the stored body.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::RequestError;

/// The error a duplicate key raises inside serde, turned back into
/// [`RequestError::DuplicateKey`] by [`parse`].
const MARK: &str = "\u{0}duplicate\u{0}";

pub fn parse(bytes: &[u8]) -> Result<Value, RequestError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = At(String::new())
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| {
            let text = e.to_string();
            match text.strip_prefix(MARK) {
                Some(rest) => {
                    let rest = rest.split(" at line ").next().unwrap_or(rest);
                    let (path, key) = rest.split_once(MARK).unwrap_or(("", rest));
                    RequestError::DuplicateKey {
                        key: key.to_owned(),
                        path: path.to_owned(),
                    }
                }
                None => RequestError::Json(text),
            }
        })?;
    Ok(value)
}

/// A value at `path` (`confirmations[0]`, empty at the top).
struct At(String);

impl<'de> DeserializeSeed<'de> for At {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl At {
    fn child(&self, key: &str) -> At {
        At(if self.0.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.0)
        })
    }
}

impl<'de> Visitor<'de> for At {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(At(format!("{}[{}]", self.0, out.len())))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format_args!(
                    "{MARK}{}{MARK}{key}",
                    self.0
                )));
            }
            let v = map.next_value_seed(self.child(&key))?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}
