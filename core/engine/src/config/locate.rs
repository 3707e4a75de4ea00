//! Maps a field path (`groups[0].max`) back to its line and column in the YAML text, so that
//! errors found after parsing (min above max, an unknown provider) point at the right line.

use std::collections::HashMap;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, de::IgnoredAny};
use serde_saphyr::Spanned;

/// Line and column (1-based) of every mapping value and sequence item in a document, by path.
#[derive(Debug, Clone, Default)]
pub struct LocationIndex {
    by_path: HashMap<String, (u64, u64)>,
}

impl LocationIndex {
    /// Indexes `text` within the default [`super::PolicyLimits`]; an unparsable document gives an
    /// empty index.
    pub fn build(text: &str) -> LocationIndex {
        Self::build_with_options(text, super::PolicyLimits::default().options())
    }

    /// Indexes `text`, parsed with `options`; an unparsable document gives an empty index.
    pub(crate) fn build_with_options(
        text: &str,
        mut options: serde_saphyr::Options,
    ) -> LocationIndex {
        // `.nan` and `.inf` are located like any value (the checks refuse them with a line).
        options.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::AsString;
        let mut index = LocationIndex::default();
        if let Ok(root) = serde_saphyr::from_str_with_options::<Node>(text, options) {
            index.walk(String::new(), &root);
        }
        index
    }

    fn walk(&mut self, path: String, node: &Node) {
        match node {
            Node::Map(entries) => {
                for (key, value) in entries {
                    let child = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    self.insert(&child, value);
                    self.walk(child, &value.value);
                }
            }
            Node::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let child = format!("{path}[{i}]");
                    self.insert(&child, item);
                    self.walk(child, &item.value);
                }
            }
            Node::Scalar => {}
        }
    }

    fn insert(&mut self, path: &str, node: &Spanned<Node>) {
        let loc = node.referenced;
        self.by_path
            .insert(path.to_owned(), (loc.line(), loc.column()));
    }

    /// The field path of the value at `line` and `column` (the deepest, when several start
    /// there).
    pub fn path_at(&self, line: u64, column: u64) -> Option<&str> {
        self.by_path
            .iter()
            .filter(|(_, loc)| **loc == (line, column))
            .map(|(path, _)| path.as_str())
            .max_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)))
    }

    /// The location of `path`, or of its nearest ancestor that has one.
    pub fn locate(&self, path: &str) -> Option<(u64, u64)> {
        let mut path = path;
        loop {
            if let Some(loc) = self.by_path.get(path) {
                return Some(*loc);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }
}

/// A YAML node with spans on every child.
#[derive(Debug)]
enum Node {
    Map(Vec<(String, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Scalar,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Node>>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<KeyName>()? {
            let value = map.next_value::<Spanned<Node>>()?;
            match key.0 {
                Some(name) => entries.push((name, value)),
                None => continue,
            }
        }
        Ok(Node::Map(entries))
    }
}

/// A mapping key as text when it is a scalar; complex keys are skipped.
struct KeyName(Option<String>);

impl<'de> Deserialize<'de> for KeyName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeyName;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a mapping key")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeyName, E> {
                Ok(KeyName(Some(v.to_owned())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<KeyName, E> {
                Ok(KeyName(Some(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeyName, E> {
                Ok(KeyName(Some(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeyName, E> {
                Ok(KeyName(Some(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeyName, E> {
                Ok(KeyName(Some(v.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<KeyName, E> {
                Ok(KeyName(Some("null".to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyName, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(KeyName(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyName, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(KeyName(None))
            }
        }
        deserializer.deserialize_any(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_nested_fields_and_falls_back_to_ancestors() {
        let text = "providers:\n  sim:\n    simulated: {}\ngroups:\n  - name: web\n    min: 5\n    max: 2\n";
        let index = LocationIndex::build(text);
        assert_eq!(index.locate("groups[0].max").map(|l| l.0), Some(7));
        assert_eq!(index.locate("groups[0].min").map(|l| l.0), Some(6));
        assert_eq!(
            index.locate("providers.sim.simulated").map(|l| l.0),
            Some(3)
        );
        // A field that is absent points at its parent.
        assert_eq!(index.locate("groups[0].policies").map(|l| l.0), Some(5));
    }
}
