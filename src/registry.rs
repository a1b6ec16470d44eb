//! The registry of layer kinds: every `kind:` a spec can name registers here, from its own file,
//! with its family and its JSON Schema ([`register_kind!`](crate::register_kind)). The spec's schema
//! ([`crate::spec::schema`]) and the tests read it; it depends on nothing else in the crate, so any
//! layer may register without an import cycle. A kind names itself twice, to typetag and here;
//! `tests/registry.rs` checks that both sets agree in every family (and that the random specs of
//! the equivalence tests use every kind).

use schemars::{Schema, SchemaGenerator};

/// The trait a kind implements, i.e. the spec fields it can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Position,
    Attention,
    FeedForward,
    Norm,
}

/// A kind's schema, registered by [`register_kind!`](crate::register_kind).
pub struct KindSchema {
    pub family: Family,
    /// The `kind:` name, as registered with typetag.
    pub name: &'static str,
    pub schema: fn(&mut SchemaGenerator) -> Schema,
}

inventory::collect!(KindSchema);

/// Registers the schema of a layer kind: `register_kind!(Position, "learned", Learned);`.
#[macro_export]
macro_rules! register_kind {
    ($family:ident, $name:literal, $ty:ty) => {
        inventory::submit! {
            $crate::registry::KindSchema {
                family: $crate::registry::Family::$family,
                name: $name,
                schema: <$ty as schemars::JsonSchema>::json_schema,
            }
        }
    };
}

/// Every registered kind of `family`, sorted by name.
pub fn kinds(family: Family) -> Vec<&'static KindSchema> {
    let mut kinds: Vec<_> = inventory::iter::<KindSchema>
        .into_iter()
        .filter(|k| k.family == family)
        .collect();
    kinds.sort_by_key(|k| k.name);
    kinds
}
