//! A serde `Deserializer` over the located tree ([`Node`]) that tracks the field path, so a
//! decoding error names both the position and `spec.rules[0].from[0].source.principals`.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use crate::error::{ErrorKind, closest};
use crate::node::{Node, Pos, Value};

/// A decoding error before it is tied to a file and document.
#[derive(Debug)]
pub(crate) struct DeError {
    pub kind: ErrorKind,
    /// Set by the innermost node that saw the error.
    pub at: Option<(String, Pos)>,
}

impl DeError {
    fn kind(kind: ErrorKind) -> Self {
        DeError { kind, at: None }
    }
    fn at(mut self, path: &str, pos: Pos) -> Self {
        if self.at.is_none() {
            self.at = Some((path.to_owned(), pos));
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::kind(ErrorKind::Decode {
            message: msg.to_string(),
        })
    }
    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError::kind(ErrorKind::WrongType {
            expected: exp.to_string(),
            found: unexp.to_string(),
        })
    }
    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError::kind(ErrorKind::InvalidValue {
            expected: exp.to_string(),
            found: unexp.to_string(),
        })
    }
    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError::kind(ErrorKind::UnknownField {
            field: field.to_owned(),
            expected: expected.iter().map(|s| (*s).to_owned()).collect(),
            suggestion: closest(field, expected.iter().copied()),
        })
    }
    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError::kind(ErrorKind::UnknownEnumValue {
            value: variant.to_owned(),
            allowed: expected.iter().map(|s| (*s).to_owned()).collect(),
            suggestion: closest(variant, expected.iter().copied()),
        })
    }
    fn missing_field(field: &'static str) -> Self {
        DeError::kind(ErrorKind::MissingField {
            field: field.to_owned(),
        })
    }
    fn duplicate_field(field: &'static str) -> Self {
        DeError::kind(ErrorKind::DuplicateField {
            field: field.to_owned(),
        })
    }
}

/// Deserializes `node` (whose path is `path`) into `T`.
pub(crate) fn from_node<'a, T: de::Deserialize<'a>>(
    node: &'a Node,
    path: &str,
) -> Result<T, DeError> {
    T::deserialize(NodeDe {
        node,
        path: path.to_owned(),
        is_key: false,
    })
}

struct NodeDe<'a> {
    node: &'a Node,
    path: String,
    /// Mapping keys: Kubernetes treats all object keys as strings, so `9090:` and `"9090":`
    /// both decode into a numeric key, and a numeric key decodes into a string key.
    is_key: bool,
}

impl NodeDe<'_> {
    fn wrap<T>(&self, r: Result<T, DeError>) -> Result<T, DeError> {
        r.map_err(|e| e.at(&self.path, self.node.pos))
    }
}

macro_rules! number_method {
    ($method:ident) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            if self.is_key {
                if let Value::Str(s) = &self.node.value {
                    let r = if let Ok(n) = s.parse::<u64>() {
                        visitor.visit_u64(n)
                    } else if let Ok(n) = s.parse::<i64>() {
                        visitor.visit_i64(n)
                    } else {
                        visitor.visit_str(s)
                    };
                    return self.wrap(r);
                }
            }
            self.deserialize_any(visitor)
        }
    };
}

impl<'de> de::Deserializer<'de> for NodeDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let node = self.node;
        let r = match &node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::I64(n) => visitor.visit_i64(*n),
            Value::U64(n) => visitor.visit_u64(*n),
            Value::F64(n) => visitor.visit_f64(*n),
            Value::Str(s) => visitor.visit_borrowed_str(s),
            Value::Seq(items) => visitor.visit_seq(SeqDe {
                items,
                index: 0,
                path: &self.path,
            }),
            Value::Map(entries) => visitor.visit_map(MapDe {
                entries,
                index: 0,
                path: &self.path,
                current: None,
            }),
        };
        self.wrap(r)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Bool(b) => self.wrap(visitor.visit_bool(*b)),
            Value::Str(s)
                if matches!(
                    s.to_ascii_lowercase().as_str(),
                    "yes" | "no" | "on" | "off" | "y" | "n"
                ) =>
            {
                Err(DeError::kind(ErrorKind::NotBoolean).at(&self.path, self.node.pos))
            }
            _ => self.deserialize_any(visitor),
        }
    }

    number_method!(deserialize_u8);
    number_method!(deserialize_u16);
    number_method!(deserialize_u32);
    number_method!(deserialize_u64);
    number_method!(deserialize_i8);
    number_method!(deserialize_i16);
    number_method!(deserialize_i32);
    number_method!(deserialize_i64);

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.is_key
            && let Some(text) = self.node.value.key_text()
        {
            return self.wrap(visitor.visit_string(text));
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.value {
            Value::Null => self.wrap(visitor.visit_none()),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Str(s) => {
                let d: de::value::StrDeserializer<'_, DeError> = s.as_str().into_deserializer();
                self.wrap(visitor.visit_enum(d))
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        i128 u128 f32 f64 char bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier
    }
}

struct SeqDe<'a, 'p> {
    items: &'a [Node],
    index: usize,
    path: &'p str,
}

impl<'de> de::SeqAccess<'de> for SeqDe<'de, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(node) = self.items.get(self.index) else {
            return Ok(None);
        };
        let path = format!("{}[{}]", self.path, self.index);
        self.index += 1;
        let de = NodeDe {
            node,
            path,
            is_key: false,
        };
        let (path, pos) = (de.path.clone(), node.pos);
        seed.deserialize(de).map(Some).map_err(|e| e.at(&path, pos))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.index)
    }
}

struct MapDe<'a, 'p> {
    entries: &'a [(Node, Node)],
    index: usize,
    path: &'p str,
    /// Path of the entry whose key was just read.
    current: Option<String>,
}

impl<'de> de::MapAccess<'de> for MapDe<'de, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, _)) = self.entries.get(self.index) else {
            return Ok(None);
        };
        let text = key.value.key_text().unwrap_or_else(|| "<key>".to_owned());
        let path = if self.path.is_empty() {
            text
        } else if text.contains('.') || text.contains('[') {
            format!("{}[{}]", self.path, text)
        } else {
            format!("{}.{}", self.path, text)
        };
        self.current = Some(path.clone());
        let pos = key.pos;
        seed.deserialize(NodeDe {
            node: key,
            path: path.clone(),
            is_key: true,
        })
        .map(Some)
        .map_err(|e| e.at(&path, pos))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((_, value)) = self.entries.get(self.index) else {
            return Err(de::Error::custom(
                "internal: map value requested before its key",
            ));
        };
        self.index += 1;
        let path = self.current.take().unwrap_or_default();
        let pos = value.pos;
        seed.deserialize(NodeDe {
            node: value,
            path: path.clone(),
            is_key: false,
        })
        .map_err(|e| e.at(&path, pos))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.index)
    }
}
