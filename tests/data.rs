//! The corpus, its vocabulary and the batches drawn from it.

mod common;

use gptbuild::data::vocab::Vocabulary;
use gptbuild::data::{read_corpus, sha256_hex, Dataset, Split, SplitMix64, CORPUS_SHA256};
use tch::Device;

#[test]
fn the_corpus_is_tiny_shakespeare() {
    let bytes = std::fs::read(common::corpus_path()).unwrap();
    assert_eq!(bytes.len(), 1_115_394);
    assert_eq!(sha256_hex(&bytes), CORPUS_SHA256);
    let vocab = Vocabulary::from_text(&String::from_utf8(bytes).unwrap());
    assert_eq!(vocab.len(), 65);
    assert_eq!(vocab.chars()[0], '\n');
}

#[test]
fn the_vocabulary_round_trips() {
    let text = read_corpus(&common::corpus_path()).unwrap();
    let vocab = Vocabulary::from_text(&text);
    let excerpt: String = text.chars().take(2000).collect();
    let ids = vocab.encode(&excerpt).unwrap();
    assert!(ids.iter().all(|&id| (0..65).contains(&id)));
    assert_eq!(vocab.decode(&ids), excerpt);
    // Stored as its characters in id order, it rebuilds the same vocabulary.
    assert_eq!(
        Vocabulary::from_chars(vocab.as_string().chars().collect()).unwrap(),
        vocab
    );
    let error = vocab.encode("héllo").unwrap_err().to_string();
    assert!(error.contains("'é'"), "{error}");
    assert!(Vocabulary::from_chars("ba".chars().collect()).is_err());
}

#[test]
fn batches_are_windows_inside_their_split_with_shifted_targets() {
    let text: String = (0..500)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let vocab = Vocabulary::from_text(&text);
    let ids = vocab.encode(&text).unwrap();
    let block_size = 8;
    let dataset = Dataset::new(&text, &vocab, 0.9, block_size, Device::Cpu).unwrap();
    assert_eq!(dataset.len(Split::Train), 450);
    assert_eq!(dataset.len(Split::Val), 50);
    let mut rng = SplitMix64::new(5);
    for split in [Split::Train, Split::Val] {
        let base = if split == Split::Train { 0 } else { 450 };
        let offsets = dataset.random_offsets(split, 2000, &mut rng);
        let limit = dataset.len(split) - block_size;
        assert!(offsets.iter().all(|&o| (0..limit).contains(&o)));
        // Every legal offset, including the last, is drawn.
        assert!(offsets.contains(&0) && offsets.contains(&(limit - 1)));
        let (x, y) = dataset.batch_at(split, &offsets[..16]);
        assert_eq!(x.size(), [16, block_size]);
        assert_eq!(y.size(), [16, block_size]);
        for (row, &offset) in offsets[..16].iter().enumerate() {
            let start = (base + offset) as usize;
            let x_row: Vec<i64> = Vec::try_from(x.get(row as i64)).unwrap();
            let y_row: Vec<i64> = Vec::try_from(y.get(row as i64)).unwrap();
            assert_eq!(x_row, ids[start..start + 8]);
            assert_eq!(y_row, ids[start + 1..start + 9]);
        }
    }
}

#[test]
fn a_corpus_too_short_for_the_block_size_is_an_error() {
    let text = "abcdefghijklmnopqrstuvwxyz";
    let vocab = Vocabulary::from_text(text);
    let error = Dataset::new(text, &vocab, 0.9, 8, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(error.contains("validation split has 3 tokens"), "{error}");
}

#[test]
fn empty_and_non_utf8_corpora_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, b"").unwrap();
    let binary = dir.path().join("binary.txt");
    std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
    assert!(read_corpus(&empty)
        .unwrap_err()
        .to_string()
        .contains("empty"));
    assert!(read_corpus(&binary)
        .unwrap_err()
        .to_string()
        .contains("not UTF-8"));
    assert!(read_corpus(&dir.path().join("absent.txt")).is_err());
}

#[test]
fn a_directory_corpus_is_its_text_files_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.txt"), "second\n").unwrap();
    std::fs::write(dir.path().join("a.txt"), "first\n").unwrap();
    std::fs::write(dir.path().join("notes.md"), "not text of the corpus").unwrap();
    std::fs::create_dir(dir.path().join("c.txt")).unwrap();
    assert_eq!(read_corpus(dir.path()).unwrap(), "first\nsecond\n");

    std::fs::write(dir.path().join("broken.txt"), [0xff, 0xfe]).unwrap();
    let error = read_corpus(dir.path()).unwrap_err().to_string();
    assert!(
        error.contains("broken.txt") && error.contains("not UTF-8"),
        "{error}"
    );

    let none = tempfile::tempdir().unwrap();
    let error = read_corpus(none.path()).unwrap_err().to_string();
    assert!(error.contains("no .txt files"), "{error}");
}
