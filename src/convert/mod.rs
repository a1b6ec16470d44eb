//! Models that leave and enter: a trained model written in another program's format, and
//! another program's model read in as a spec and a checkpoint, to sample from or fine-tune.
//!
//! | file | what |
//! |---|---|
//! | [`architecture`] | which published family (Llama, GPT-2) a spec's model is, and how the family names and lays out each tensor |
//! | [`hugging_face`] | transformers directories: `gptbuild export --format hf`, `gptbuild import` |
//! | [`char_tokenizer`] | the course's character vocabulary as a `tokenizer.json` that gives exactly our ids |
//! | [`llama_cpp`] | llama.cpp's GGUF files: `gptbuild export --format gguf` |
//! | [`gguf`] | the GGUF file format, written |

pub mod architecture;
pub mod char_tokenizer;
pub mod gguf;
pub mod hugging_face;
pub mod llama_cpp;
