//! Properties every architecture file must have: it loads, its layer table is what we reviewed,
//! its resolved form round-trips, and its model is causal.

mod common;

use common::{architecture_files, build, load_spec, spec_from, VOCAB_SIZE};
use gptbuild::model::summary::parameter_table;
use gptbuild::spec::Spec;
use tch::{Device, Kind, Tensor};

#[test]
fn every_architecture_has_a_reviewed_layer_table() {
    let files = architecture_files();
    assert!(
        files.len() >= 6,
        "expected the course's architecture files, found {files:?}"
    );
    for path in files {
        let spec = load_spec(&path);
        let (vs, _model) = build(&spec, 0);
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        insta::with_settings!({snapshot_path => "../snapshots", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!(format!("layers-{name}"), parameter_table(&vs));
        });
    }
}

#[test]
fn resolved_specs_round_trip() {
    for path in architecture_files() {
        let resolved = load_spec(&path).to_yaml();
        let again: Spec = spec_from(&resolved);
        assert_eq!(again.to_yaml(), resolved, "{}", path.display());
    }
}

/// Changing the token at position t never changes the logits at positions before t.
#[test]
fn every_architecture_is_causal() {
    for path in architecture_files() {
        let spec = load_spec(&path);
        let (_vs, model) = build(&spec, 1);
        let t = spec.model.block_size;
        let ids = Tensor::randint(VOCAB_SIZE, [2, t], (Kind::Int64, Device::Cpu));
        let before = tch::no_grad(|| model.forward_t(&ids, false));
        for position in [0, t / 2, t - 1] {
            let changed = ids.copy();
            let _ = changed
                .narrow(1, position, 1)
                .g_add_scalar_(1)
                .remainder_(VOCAB_SIZE);
            let after = tch::no_grad(|| model.forward_t(&changed, false));
            if position > 0 {
                let past = |x: &Tensor| x.narrow(1, 0, position);
                let diff = (past(&before) - past(&after)).abs().max().double_value(&[]);
                assert_eq!(
                    diff,
                    0.0,
                    "{}: position {position} leaked into the past",
                    path.display()
                );
            }
            // The changed position itself must matter, or the test proves nothing.
            let here = |x: &Tensor| x.narrow(1, position, 1);
            let diff = (here(&before) - here(&after)).abs().max().double_value(&[]);
            assert!(
                diff > 0.0,
                "{}: changing token {position} changed nothing",
                path.display()
            );
        }
    }
}
