//! Tokenizers beyond characters (`data.tokenizer`): the character vocabulary stays the course's,
//! byte-level BPE trains deterministically on the training split and accepts any text, streams
//! decode whole characters, checkpoints carry the tokenizer, and bits per character compare them.
#![cfg(feature = "cli")]

mod common;

use common::{corpus_path, spec_from};
use gptbuild::artifacts::checkpoint;
use gptbuild::artifacts::metrics;
use gptbuild::artifacts::run_dir::{CHECKPOINT_FILE, METRICS_FILE};
use gptbuild::data::tokenizer::{StoredTokenizer, StreamDecoder, Tokenizer};
use gptbuild::data::vocab::Vocabulary;
use gptbuild::data::{split_text, Dataset, Split};
use gptbuild::train::evaluate::score_split;
use gptbuild::workflow::run::{run, RunOptions};
use tch::Device;

fn shakespeare() -> String {
    std::fs::read_to_string(corpus_path()).expect("the corpus")
}

/// The tokenizer a spec's `data.tokenizer` makes for `text`.
fn make(tokenizer_yaml: &str, text: &str) -> Box<dyn Tokenizer> {
    let spec = spec_from(&format!(
        "data: {{tokenizer: {tokenizer_yaml}}}\nmodel: {{block_size: 8, n_embd: 8, block: {{attention: {{kind: head}}}}}}\n"
    ));
    let training = split_text(text, spec.data.train_fraction).0;
    spec.data
        .tokenizer
        .make(text, training)
        .expect("a tokenizer")
}

#[test]
fn the_default_tokenizer_is_the_course_vocabulary() {
    let text = shakespeare();
    let spec = spec_from("model: {block_size: 8, n_embd: 8, block: {attention: {kind: head}}}");
    assert!(
        spec.to_yaml().contains("tokenizer:\n    kind: char"),
        "{}",
        spec.to_yaml()
    );
    let made = make("{kind: char}", &text);
    let course = Vocabulary::from_text(&text);
    assert_eq!(made.vocab_size(), 65);
    assert_eq!(made.stored(), course.stored());
    assert_eq!(
        made.encode("ROMEO:\n").unwrap(),
        course.encode("ROMEO:\n").unwrap()
    );
    assert!(
        made.encode("ROMEO: ☃").is_err(),
        "unseen characters stay an error"
    );
}

#[test]
fn byte_level_bpe_is_deterministic_and_encodes_any_text() {
    let text = shakespeare();
    let text = &text[..200_000];
    let first = make("{kind: bpe, vocab_size: 300}", text);
    let second = make("{kind: bpe, vocab_size: 300}", text);
    assert_eq!(
        first.stored(),
        second.stored(),
        "the same text gives the same merges"
    );
    assert_eq!(first.vocab_size(), 300);
    for sample in ["ROMEO:\nWherefore art thou?", "naïve ☃ 漢字 🎭", ""] {
        let ids = first.encode(sample).unwrap();
        assert_eq!(first.decode(&ids), sample);
        assert!(ids.iter().all(|&id| (0..300).contains(&id)));
    }
    let ids = first.encode("the king and the queen").unwrap();
    assert!(
        ids.len() < "the king and the queen".len(),
        "merges shorten text: {ids:?}"
    );
    // Trained on the training split only: a different validation part changes nothing.
    let changed = format!("{}{}", &text[..180_000], "zzzz ".repeat(4_000));
    let from_changed = make("{kind: bpe, vocab_size: 300}", &changed);
    let (training, _) = split_text(&changed, 0.9);
    assert_eq!(training, &text[..180_000]);
    assert_eq!(from_changed.stored(), first.stored());
    // The stored form rebuilds the same tokenizer.
    let rebuilt = first.stored().rebuild().unwrap();
    assert_eq!(
        rebuilt.encode("Wherefore").unwrap(),
        first.encode("Wherefore").unwrap()
    );
}

#[test]
fn a_stream_writes_a_character_split_across_tokens_when_it_is_complete() {
    // Few merges: the snowman's three bytes stay three tokens.
    let tokenizer = make(
        "{kind: bpe, vocab_size: 260}",
        &"to be or not to be ".repeat(50),
    );
    let text = "be ☃ or 🎭 not";
    let ids = tokenizer.encode(text).unwrap();
    assert!(
        ids.len() > text.chars().count(),
        "multi-byte characters span tokens"
    );
    let mut decoder = StreamDecoder::new(tokenizer.as_ref());
    let pieces: Vec<String> = ids.iter().map(|&id| decoder.push(id)).collect();
    assert!(
        pieces.iter().all(|piece| !piece.contains('\u{FFFD}')),
        "{pieces:?}"
    );
    assert!(
        pieces.iter().any(String::is_empty),
        "some tokens wait for the rest"
    );
    assert_eq!(pieces.concat() + &decoder.finish(), text);
}

#[test]
fn bits_per_character_of_a_character_model_is_its_loss_in_bits() {
    let _rng = common::torch_rng();
    let text = shakespeare()[..20_000].to_string();
    let spec = spec_from("model: {block_size: 16, n_embd: 16, block: {attention: {kind: head}}}");
    let vocab = Vocabulary::from_text(&text);
    let dataset = Dataset::new(&text, &vocab, 0.9, 16, Device::Cpu).unwrap();
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let model = gptbuild::model::Gpt::new(&vs.root(), &spec, vocab.len() as i64);
    let score = score_split(&model, &dataset, Split::Val, 16);
    assert_eq!(score.tokens, dataset.len(Split::Val) - 1);
    assert_eq!(dataset.scored_characters(Split::Val), score.tokens);
    let expected = score.loss / std::f64::consts::LN_2;
    assert!(
        (score.bits_per_character - expected).abs() <= 1e-12 * expected,
        "{} vs {expected}",
        score.bits_per_character
    );
}

/// `gptbuild run` with a BPE tokenizer: trains, samples, checkpoints the tokenizer, and the
/// checkpoint evaluates with bits per character well below the loss in bits (a token is several
/// characters).
#[test]
fn a_bpe_run_trains_samples_and_keeps_its_tokenizer() {
    let _rng = common::torch_rng();
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.txt");
    std::fs::write(&corpus, &shakespeare()[..120_000]).unwrap();
    let spec_path = dir.path().join("bpe.yaml");
    std::fs::write(
        &spec_path,
        "data: {tokenizer: {kind: bpe, vocab_size: 512}}\n\
         model: {block_size: 16, n_embd: 32, n_layer: 1,\n  \
           block: {attention: {kind: multi_head, n_head: 2}, feed_forward: {kind: mlp}, norm_placement: pre}}\n\
         training: {batch_size: 8, learning_rate: 3.0e-3}\n\
         sampling: {tokens: 60}\n",
    )
    .unwrap();
    let options = RunOptions {
        data: Some(corpus.clone()),
        runs_dir: Some(dir.path().join("runs")),
        max_iters: Some(40),
        eval_interval: Some(20),
        eval_iters: Some(2),
        threads: Some(1),
        device: Some(gptbuild::spec::DeviceSpec::Cpu),
        ..RunOptions::default()
    };
    let mut log = Vec::new();
    let outcome = run(&spec_path, &options, &mut log).expect("the run succeeds");
    assert!(outcome.finished);
    // (A barely trained byte-level model may still draw a lone byte that is no UTF-8 on its
    // own; decoding shows it as U+FFFD rather than failing.)
    assert!(
        outcome.sample.chars().count() > 60,
        "60 tokens are more than 60 characters"
    );

    let loaded = checkpoint::load(&outcome.dir.join(CHECKPOINT_FILE), Device::Cpu).unwrap();
    assert_eq!(loaded.tokenizer.vocab_size(), 512);
    assert!(matches!(
        loaded.tokenizer.stored(),
        StoredTokenizer::HuggingFace(_)
    ));
    let text = std::fs::read_to_string(&corpus).unwrap();
    let dataset = Dataset::new(&text, loaded.tokenizer.as_ref(), 0.9, 16, Device::Cpu).unwrap();
    let score = score_split(&loaded.model, &dataset, Split::Val, 16);
    let bits_per_token = score.loss / std::f64::consts::LN_2;
    let characters_per_token = dataset.scored_characters(Split::Val) as f64 / score.tokens as f64;
    assert!(characters_per_token > 1.5, "{characters_per_token}");
    let expected = bits_per_token / characters_per_token;
    assert!((score.bits_per_character - expected).abs() <= 1e-9 * expected);
    // metrics.csv converts each validation loss at the same characters per token.
    let rows = metrics::read_rows(&outcome.dir.join(METRICS_FILE)).unwrap();
    let last = rows.last().expect("rows");
    let bits = last.val_bits_per_character.expect("the column");
    let expected = last.val_loss / std::f64::consts::LN_2 / characters_per_token;
    // Both written to 6 decimals.
    assert!((bits - expected).abs() < 1e-5, "{bits} vs {expected}");
}

#[test]
fn bad_tokenizer_input_is_one_error_naming_it() {
    let spec = |tokenizer: &str| {
        format!(
            "data: {{tokenizer: {tokenizer}}}\nmodel: {{block_size: 8, n_embd: 8, block: {{attention: {{kind: head}}}}}}\n"
        )
    };
    let error = gptbuild::spec::Spec::from_yaml(&spec("{kind: bpe, vocab_size: 100}")).unwrap_err();
    assert!(error.contains("data.tokenizer.vocab_size"), "{error}");
    let error = gptbuild::spec::Spec::from_yaml(&spec("{kind: wordpiece}")).unwrap_err();
    assert!(error.contains("wordpiece"), "{error}");

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("tokenizer.json");
    std::fs::write(&broken, "{\"not\": \"a tokenizer\"}").unwrap();
    let missing = dir.path().join("missing.json");
    for path in [&broken, &missing] {
        let parsed = spec_from(&spec(&format!("{{kind: file, path: {}}}", path.display())));
        let error = parsed
            .data
            .tokenizer
            .make("text", "text")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(&format!("tokenizer {}", path.display())),
            "{error}"
        );
    }
    // A file tokenizer that is valid: the BPE one, saved.
    let bpe = make(
        "{kind: bpe, vocab_size: 260}",
        &"to be or not to be ".repeat(50),
    );
    let StoredTokenizer::HuggingFace(json) = bpe.stored() else {
        panic!("BPE is a Hugging Face tokenizer")
    };
    let saved = dir.path().join("bpe.json");
    std::fs::write(&saved, json).unwrap();
    let from_file = make(
        &format!("{{kind: file, path: {}}}", saved.display()),
        "unused",
    );
    assert_eq!(from_file.stored(), bpe.stored());
}
