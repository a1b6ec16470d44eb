//! `gptbuild sample`: a sample written as it is generated. Each character is decoded and flushed
//! the moment it is drawn, until the count is reached, the reader goes away (`| head -c 1000` ends
//! it quietly) or the user presses Ctrl-C (the line is finished and the command exits 130).

use std::io::{ErrorKind, Write};
use std::time::Instant;

use crate::artifacts::checkpoint::LoadedModel;
use crate::data::tokenizer::StreamDecoder;
use crate::error::{Error, Result};
use crate::generate::sample::generate;
use crate::interrupt;
use crate::spec::Decoding;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRequest {
    /// Text to continue; empty starts from the first vocabulary entry (a newline, for Shakespeare).
    pub prompt: String,
    /// Characters to generate; `None` generates until stopped.
    pub count: Option<u64>,
    pub decoding: Decoding,
    /// Seeds libtorch's generator: same seed, same text.
    pub seed: u64,
    /// Use the KV cache (else recompute the whole window for every character).
    pub cached: bool,
}

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// All requested characters were written.
    Finished,
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// The reader closed the pipe.
    ReaderGone,
}

/// What a stream did, for `--stats`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamReport {
    pub tokens: u64,
    /// Generation time, from the prompt's forward pass to the last character.
    pub seconds: f64,
    pub end: StreamEnd,
}

impl StreamReport {
    pub fn tokens_per_second(&self) -> f64 {
        self.tokens as f64 / self.seconds.max(f64::EPSILON)
    }
}

/// Writes the prompt (or start token), then each generated character, to `out`.
pub fn stream(
    loaded: &LoadedModel,
    request: &SampleRequest,
    out: &mut dyn Write,
) -> Result<StreamReport> {
    let context = match request.prompt.as_str() {
        "" => vec![loaded.tokenizer.start_token()],
        text => loaded.tokenizer.encode(text)?,
    };
    let mut end = StreamEnd::Finished;
    let mut failure = None;
    let mut write = |text: &str| match write!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => true,
        Err(error) if error.kind() == ErrorKind::BrokenPipe => {
            end = StreamEnd::ReaderGone;
            false
        }
        Err(error) => {
            failure = Some(error);
            false
        }
    };
    let mut tokens = 0;
    let started = Instant::now();
    let mut decoder = StreamDecoder::after(loaded.tokenizer.as_ref(), &context);
    if write(&loaded.tokenizer.decode(&context)) {
        tch::manual_seed(request.seed as i64);
        generate(
            &loaded.model,
            &context,
            request.count,
            &request.decoding,
            request.cached,
            loaded.var_store.device(),
            |token| {
                tokens += 1;
                write(&decoder.push(token)) && !interrupt::requested()
            },
        );
        write(&decoder.finish());
    }
    let seconds = started.elapsed().as_secs_f64();
    if let Some(source) = failure {
        return Err(Error::Io {
            context: "writing the sample".into(),
            source,
        });
    }
    if interrupt::requested() {
        end = StreamEnd::Interrupted;
    }
    if end != StreamEnd::ReaderGone {
        // Leave the terminal on a fresh line; a reader gone meanwhile is no error.
        let _ = writeln!(out).and_then(|()| out.flush());
    }
    Ok(StreamReport {
        tokens,
        seconds,
        end,
    })
}
