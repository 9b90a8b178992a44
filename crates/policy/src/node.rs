//! A located YAML tree: every node remembers its line and column, so errors found after
//! decoding (validation) can still point at the source.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// Line and column (1-based) of a node in the YAML stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// 1-based line, absolute within the whole multi-document stream.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
}

/// One YAML node with its position.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Debug, Clone)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// What the YAML held, for "expected X, found Y" messages.
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "null".into(),
            Value::Bool(b) => format!("boolean `{b}`"),
            Value::I64(n) => format!("number `{n}`"),
            Value::U64(n) => format!("number `{n}`"),
            Value::F64(n) => format!("number `{n}`"),
            Value::Str(s) => format!("string {s:?}"),
            Value::Seq(_) => "a list".into(),
            Value::Map(_) => "a mapping".into(),
        }
    }

    /// The text of a scalar key, as Kubernetes would turn it into a JSON object key.
    pub fn key_text(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.clone()),
            Value::I64(n) => Some(n.to_string()),
            Value::U64(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::F64(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

impl Node {
    /// Field of a mapping node by key text.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.value.key_text().as_deref() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Walks a field path (`spec.rules[0].from`) as far as it exists and returns the
    /// position of the deepest part found: the key for a field, the item for an index.
    pub fn locate(&self, path: &str) -> Pos {
        let mut node = self;
        let mut pos = self.pos;
        for segment in split_path(path) {
            let next = match segment {
                Segment::Field(f) => match &node.value {
                    Value::Map(entries) => entries
                        .iter()
                        .find(|(k, _)| k.value.key_text().as_deref() == Some(f))
                        .map(|(k, v)| (k.pos, v)),
                    _ => None,
                },
                Segment::Index(i) => match &node.value {
                    Value::Seq(items) => items.get(i).map(|n| (n.pos, n)),
                    _ => None,
                },
            };
            match next {
                Some((p, n)) => {
                    pos = p;
                    node = n;
                }
                None => break,
            }
        }
        pos
    }
}

impl Node {
    /// Field path of the mapping key at `pos`, searching depth-first.
    pub fn path_of_key(&self, pos: Pos, prefix: &str) -> Option<String> {
        match &self.value {
            Value::Map(entries) => entries.iter().find_map(|(k, v)| {
                let text = k.value.key_text().unwrap_or_default();
                let path = if prefix.is_empty() {
                    text
                } else {
                    format!("{prefix}.{text}")
                };
                if k.pos == pos {
                    Some(path)
                } else {
                    v.path_of_key(pos, &path)
                }
            }),
            Value::Seq(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, n)| n.path_of_key(pos, &format!("{prefix}[{i}]"))),
            _ => None,
        }
    }
}

enum Segment<'a> {
    Field(&'a str),
    Index(usize),
}

fn split_path(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (field, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !field.is_empty() {
            out.push(Segment::Field(field));
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            let idx = idx.trim_end_matches(']');
            match idx.parse::<usize>() {
                Ok(i) => out.push(Segment::Index(i)),
                Err(_) => out.push(Segment::Field(idx)),
            }
        }
    }
    out
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(deserializer)?;
        Ok(Node {
            pos: Pos {
                line: spanned.referenced.line(),
                column: spanned.referenced.column(),
            },
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::I64(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::U64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::F64(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = seq.next_element::<Node>()? {
            items.push(n);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some((k, v)) = map.next_entry::<Node, Node>()? {
            entries.push((k, v));
        }
        Ok(Value::Map(entries))
    }
}
