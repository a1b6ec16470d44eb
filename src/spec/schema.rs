//! `gptbuild schema`: a JSON Schema of the spec (schemars), so that editors complete and check
//! YAML specs as they are typed.
//!
//! Plain sections derive their schema. The layer kinds are trait objects (typetag), whose set is
//! open: each kind's file registers its schema under its `kind:` name with
//! [`register_kind!`](crate::register_kind) ([`crate::registry`]),
//! beside its typetag registration, and a family's schema is "one of" the registered kinds.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde_json::Value;

use crate::data::tokenizer::TokenizerKind;
use crate::layers::{AttentionKind, FeedForwardKind, NormKind, PositionKind};
use crate::registry::{kinds, Family};
use crate::spec::WrittenSpec;

/// The JSON Schema of a whole spec file.
pub fn spec_schema() -> Value {
    let mut schema = schemars::schema_for!(WrittenSpec);
    schema.insert(
        "title".into(),
        Value::String("gptbuild architecture spec".into()),
    );
    schema.to_value()
}

/// "One of" the kinds of `family`: each the kind's own fields plus `kind: <its name>`.
fn family_schema(family: Family, generator: &mut SchemaGenerator) -> Schema {
    let variants: Vec<Value> = kinds(family)
        .into_iter()
        .map(|kind| {
            let mut schema = (kind.schema)(generator).to_value();
            if let Some(object) = schema.as_object_mut() {
                object.remove("$schema");
                object.remove("title");
                object.insert("type".into(), "object".into());
                let properties = object
                    .entry("properties")
                    .or_insert_with(|| Value::Object(Default::default()));
                if let Some(properties) = properties.as_object_mut() {
                    properties.insert("kind".into(), serde_json::json!({ "const": kind.name }));
                }
                let required = object
                    .entry("required")
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Some(required) = required.as_array_mut() {
                    required.insert(0, "kind".into());
                }
            }
            schema
        })
        .collect();
    json_schema!({ "oneOf": variants })
}

macro_rules! family_json_schema {
    ($trait:ident, $family:ident) => {
        impl JsonSchema for Box<dyn $trait> {
            fn schema_name() -> Cow<'static, str> {
                stringify!($trait).into()
            }

            fn json_schema(generator: &mut SchemaGenerator) -> Schema {
                family_schema(Family::$family, generator)
            }
        }
    };
}

family_json_schema!(PositionKind, Position);
family_json_schema!(AttentionKind, Attention);
family_json_schema!(FeedForwardKind, FeedForward);
family_json_schema!(NormKind, Norm);
family_json_schema!(TokenizerKind, Tokenizer);

#[cfg(test)]
mod tests {
    use super::*;

    /// Every registered schema name is a kind typetag knows: the two registrations agree.
    #[test]
    fn every_schema_names_a_registered_kind() {
        for (family, parse) in [
            (
                Family::Position,
                parse::<Box<dyn PositionKind>> as fn(&str) -> String,
            ),
            (Family::Attention, parse::<Box<dyn AttentionKind>>),
            (Family::FeedForward, parse::<Box<dyn FeedForwardKind>>),
            (Family::Norm, parse::<Box<dyn NormKind>>),
            (Family::Tokenizer, parse::<Box<dyn TokenizerKind>>),
        ] {
            assert!(!kinds(family).is_empty(), "{family:?}");
            for kind in kinds(family) {
                let error = parse(kind.name);
                assert!(!error.contains("unknown variant"), "{}: {error}", kind.name);
            }
        }
    }

    /// Parses `{kind: name}` and returns the error, if any, as text.
    fn parse<T: serde::de::DeserializeOwned>(name: &str) -> String {
        serde_norway::from_str::<T>(&format!("kind: {name}"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn the_schema_lists_the_kinds_and_forbids_unknown_keys() {
        let schema = spec_schema().to_string();
        for kind in [
            "\"learned\"",
            "\"multi_head\"",
            "\"mlp\"",
            "\"layernorm\"",
            "\"head\"",
        ] {
            assert!(schema.contains(kind), "{kind} missing");
        }
        assert!(schema.contains("\"additionalProperties\":false"));
    }
}
