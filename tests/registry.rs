//! One registry of layer kinds, seen two ways: the `kind:` names serde (typetag) accepts and the
//! names registered with their JSON Schema must be the same set in every family. `register_kind!`
//! emits both from one name; this checks that nothing registers with typetag by hand beside it.

mod common;

use std::collections::BTreeSet;

use gptbuild::data::tokenizer::TokenizerKind;
use gptbuild::layers::{AttentionKind, FeedForwardKind, NormKind, PositionKind};
use gptbuild::registry::{kinds, Family};
use serde::Serialize;

/// The names typetag accepts for `T`, read from serde's error for an unknown kind ("unknown
/// variant `…`, expected `a` or `b`" / "expected one of `a`, `b`, `c`").
fn deserialisable<T: ?Sized>() -> BTreeSet<String>
where
    Box<T>: serde::de::DeserializeOwned,
{
    let error = match serde_norway::from_str::<Box<T>>("kind: no-such-kind\n") {
        Ok(_) => panic!("an unknown kind parsed"),
        Err(error) => error.to_string(),
    };
    let expected = error
        .split_once("expected ")
        .map(|(_, rest)| rest.split(" at line").next().unwrap_or(rest))
        .unwrap_or_else(|| panic!("serde's error lists the kinds: {error}"));
    // Every other piece between backticks is a name.
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn registered(family: Family) -> BTreeSet<String> {
    kinds(family).iter().map(|k| k.name.to_string()).collect()
}

#[test]
fn every_deserialisable_kind_is_registered_and_vice_versa() {
    let families = [
        (Family::Position, deserialisable::<dyn PositionKind>()),
        (Family::Attention, deserialisable::<dyn AttentionKind>()),
        (Family::FeedForward, deserialisable::<dyn FeedForwardKind>()),
        (Family::Norm, deserialisable::<dyn NormKind>()),
        (Family::Tokenizer, deserialisable::<dyn TokenizerKind>()),
    ];
    for (family, serde_names) in families {
        assert!(serde_names.len() >= 2, "{family:?}: {serde_names:?}");
        assert_eq!(registered(family), serde_names, "{family:?}");
    }
}

/// The `kind:` a registered trait object serialises with.
fn kind_of<T: Serialize + ?Sized>(kind: &T) -> String {
    let value = serde_json::to_value(kind).expect("kinds serialise");
    value["kind"].as_str().expect("a kind field").to_string()
}

/// The random specs the equivalence tests and the PyTorch cross-check use reach every registered
/// kind of every family, so a new kind is checked as soon as it is added to the generator (and
/// this test says when it is not).
#[test]
fn the_random_specs_use_every_registered_kind() {
    let mut used = [
        BTreeSet::new(),
        BTreeSet::new(),
        BTreeSet::new(),
        BTreeSet::new(),
    ];
    for seed in 0..200 {
        let spec = common::spec_from(&common::random_spec::random_spec(seed));
        used[0].insert(kind_of(&spec.model.position));
        for block in spec.model.stack() {
            used[1].insert(kind_of(&block.attention));
            used[2].insert(kind_of(&block.feed_forward));
            used[3].extend(block.norm.as_ref().map(kind_of));
        }
        used[3].extend(spec.model.final_norm.as_ref().map(kind_of));
    }
    let families = [
        Family::Position,
        Family::Attention,
        Family::FeedForward,
        Family::Norm,
    ];
    for (family, used) in families.into_iter().zip(used) {
        assert_eq!(
            used,
            registered(family),
            "{family:?}: kinds the random specs never use"
        );
    }
}

/// A resolved spec is stored as YAML (a run's `spec.yaml`, a checkpoint's metadata) and read back
/// through the written types: for every kind, resolving what it wrote gives it back.
#[test]
fn every_kind_resolves_to_what_it_writes() {
    for seed in 0..200 {
        let resolved = common::spec_from(&common::random_spec::random_spec(seed)).to_yaml();
        let again = common::spec_from(&resolved).to_yaml();
        assert_eq!(again, resolved, "seed {seed}");
    }
}
