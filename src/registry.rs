//! The registry of layer kinds: every `kind:` a spec can name registers here, from its own file,
//! with its family and its JSON Schema ([`register_kind!`](crate::register_kind), which also
//! registers it with typetag, so the name is written once). The spec's schema
//! ([`crate::spec::schema`]) and the tests read it; this module imports nothing else in the crate
//! (the macro names the layer traits only in the code it expands to), so any layer may register
//! without an import cycle. `tests/registry.rs` checks that the parser and the schema know the
//! same kinds in every family (and that the random specs of the equivalence tests use every kind).

use schemars::{Schema, SchemaGenerator};

/// The trait a kind implements, i.e. the spec fields it can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Position,
    Attention,
    FeedForward,
    Norm,
    /// `data.tokenizer` (not a layer: its kinds make a tokenizer instead of resolving).
    Tokenizer,
}

/// A kind's schema, registered by [`register_kind!`](crate::register_kind).
pub struct KindSchema {
    pub family: Family,
    /// The `kind:` name, as registered with typetag.
    pub name: &'static str,
    pub schema: fn(&mut SchemaGenerator) -> Schema,
}

inventory::collect!(KindSchema);

/// Registers a layer kind, once, under its `kind:` name: `register_kind!(Position, "learned", Learned);`.
///
/// It emits the typetag registration (so the spec parser reads `kind: learned` into `Learned`,
/// whose [`ResolveKind`](crate::layers::ResolveKind) impl resolves it) and the kind's JSON Schema.
/// The name is written here only. The family is `Position`, `Attention`, `FeedForward`, `Norm`
/// or `Tokenizer`.
///
/// A kind with nothing to resolve (no size left out, no field to check) is its own resolved form:
/// `register_kind!(FeedForward, "none", NoFeedForward, resolves_to_itself);` also emits its
/// [`ResolveKind`](crate::layers::ResolveKind) impl, and [`WrittenAs`](crate::layers::WrittenAs)
/// comes with any kind that is `Clone`, so such a kind implements only the family's resolved trait.
///
/// From another crate (`examples/custom_layer.rs` does it): the kind derives serde's
/// `Serialize`/`Deserialize` and `schemars::JsonSchema`, so that crate depends on `serde`,
/// `typetag` and `schemars` too.
#[macro_export]
macro_rules! register_kind {
    ($family:ident, $name:tt, $ty:ty, resolves_to_itself) => {
        impl $crate::layers::ResolveKind for $ty {
            type Resolved = $ty;

            fn resolve(
                &self,
                _dims: &$crate::layers::Dims,
            ) -> ::std::result::Result<$ty, $crate::error::SpecError> {
                Ok(::std::clone::Clone::clone(self))
            }
        }

        $crate::register_kind!($family, $name, $ty);
    };
    (Position, $name:tt, $ty:ty) => {
        $crate::register_kind!(@kind Position, PositionKind, ResolvedPosition, $name, $ty);
    };
    (Attention, $name:tt, $ty:ty) => {
        $crate::register_kind!(@kind Attention, AttentionKind, ResolvedAttention, $name, $ty);
    };
    (FeedForward, $name:tt, $ty:ty) => {
        $crate::register_kind!(@kind FeedForward, FeedForwardKind, ResolvedFeedForward, $name, $ty);
    };
    (Norm, $name:tt, $ty:ty) => {
        $crate::register_kind!(@kind Norm, NormKind, ResolvedNorm, $name, $ty);
    };
    (Tokenizer, $name:tt, $ty:ty) => {
        #[typetag::serde(name = $name)]
        impl $crate::data::tokenizer::TokenizerKind for $ty {
            fn validate(&self) -> ::std::result::Result<(), $crate::error::SpecError> {
                <$ty as $crate::data::tokenizer::MakeTokenizer>::validate(self)
            }

            fn make(
                &self,
                text: &str,
                training: &str,
            ) -> $crate::error::Result<::std::boxed::Box<dyn $crate::data::tokenizer::Tokenizer>>
            {
                <$ty as $crate::data::tokenizer::MakeTokenizer>::make(self, text, training)
            }
        }

        $crate::register_kind!(@schema Tokenizer, $name, $ty);
    };
    (@kind $family:ident, $written:ident, $resolved:ident, $name:tt, $ty:ty) => {
        #[typetag::serde(name = $name)]
        impl $crate::layers::$written for $ty {
            fn resolve(
                &self,
                dims: &$crate::layers::Dims,
            ) -> ::std::result::Result<
                ::std::boxed::Box<dyn $crate::layers::$resolved>,
                $crate::error::SpecError,
            > {
                let resolved = <$ty as $crate::layers::ResolveKind>::resolve(self, dims)?;
                Ok(::std::boxed::Box::new(resolved))
            }
        }

        $crate::register_kind!(@schema $family, $name, $ty);
    };
    (@schema $family:ident, $name:tt, $ty:ty) => {
        $crate::__private::inventory::submit! {
            $crate::registry::KindSchema {
                family: $crate::registry::Family::$family,
                name: $name,
                schema: <$ty as $crate::__private::schemars::JsonSchema>::json_schema,
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
