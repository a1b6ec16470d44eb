//! Generation: drawing characters from a trained model ([`sample`]: temperature, top-k, top-p),
//! over a window that slides along the text with a KV cache ([`context`]), streamed to a writer
//! until a count, Ctrl-C or a closed pipe ends it ([`stream`]).

pub mod context;
pub mod sample;
pub mod sampler;
pub mod stream;
