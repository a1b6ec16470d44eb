//! The corpus download, against a local HTTP server: a verified file is kept, a wrong checksum is
//! an error and leaves nothing behind. One test function, because it changes the working
//! directory and environment of the whole process.
#![cfg(feature = "download")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::thread;

use gptbuild::data::{
    download_verified, locate_corpus, sha256_hex, DATA_ENV, DATA_URL_ENV, DEFAULT_CORPUS_PATH,
};

/// Serves `body` to each of `requests` connections on a loopback port; returns the URL.
fn serve(body: Vec<u8>, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let url = format!("http://{}/input.txt", listener.local_addr().unwrap());
    thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.expect("connection");
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) && line != "\r\n" {
                line.clear();
            }
            let header = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(header.as_bytes()).unwrap();
            stream.write_all(&body).unwrap();
        }
    });
    url
}

#[test]
fn downloads_are_verified_before_they_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let body = b"To be, or not to be".to_vec();
    let good_sum = sha256_hex(&body);

    // A matching checksum: the file is written whole.
    let dest = dir.path().join("sub/corpus.txt");
    download_verified(&serve(body.clone(), 1), &good_sum, &dest).expect("verified download");
    assert_eq!(std::fs::read(&dest).unwrap(), body);

    // A wrong checksum: an error naming both sums, and no file, partial or whole.
    let bad_dest = dir.path().join("bad.txt");
    let wrong = "0".repeat(64);
    let error = download_verified(&serve(body.clone(), 1), &wrong, &bad_dest)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(&wrong) && error.contains(&good_sum),
        "{error}"
    );
    let partial = std::path::PathBuf::from(format!("{}.partial", bad_dest.display()));
    assert!(!bad_dest.exists() && !partial.exists());

    // An unreachable server: an error, not a hang or a panic.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    assert!(download_verified(
        &format!("http://{closed}/x"),
        &good_sum,
        &dir.path().join("x")
    )
    .is_err());

    // The full fallback: nothing named, nothing in data/ → download the canonical bytes, verified
    // against the canonical checksum, into data/tinyshakespeare.txt.
    let corpus = std::fs::read(common::corpus_path()).unwrap();
    std::env::set_current_dir(dir.path()).unwrap();
    std::env::remove_var(DATA_ENV);
    std::env::set_var(DATA_URL_ENV, serve(corpus.clone(), 1));
    let found = locate_corpus(None, None).expect("downloads the corpus");
    assert_eq!(found, Path::new(DEFAULT_CORPUS_PATH));
    assert_eq!(std::fs::read(&found).unwrap(), corpus);
    // Next time the local copy is used (the server would refuse a second request).
    assert_eq!(
        locate_corpus(None, None).unwrap(),
        Path::new(DEFAULT_CORPUS_PATH)
    );

    // Tampered bytes under the canonical name are refused.
    std::fs::remove_file(DEFAULT_CORPUS_PATH).unwrap();
    let mut tampered = corpus;
    tampered[100] ^= 1;
    std::env::set_var(DATA_URL_ENV, serve(tampered, 1));
    let error = locate_corpus(None, None).unwrap_err().to_string();
    assert!(error.contains("sha256"), "{error}");
    assert!(!Path::new(DEFAULT_CORPUS_PATH).exists());

    // Precedence: an explicit path beats the environment, which beats the spec.
    std::env::set_var(DATA_ENV, "from-env.txt");
    assert_eq!(
        locate_corpus(Some(Path::new("cli.txt")), Some(Path::new("spec.txt"))).unwrap(),
        Path::new("cli.txt")
    );
    assert_eq!(
        locate_corpus(None, Some(Path::new("spec.txt"))).unwrap(),
        Path::new("from-env.txt")
    );
    std::env::remove_var(DATA_ENV);
    assert_eq!(
        locate_corpus(None, Some(Path::new("spec.txt"))).unwrap(),
        Path::new("spec.txt")
    );
}
