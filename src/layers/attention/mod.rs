//! How tokens exchange information: one causal head ([`head`]), several side by side with grouped
//! key/value heads ([`multi_head`]), the score computation every head shares ([`scores`]), normalised
//! queries and keys ([`qk_norm`]), all heads in one fused kernel ([`fused`]), and the keys and values
//! kept for generation ([`kv_cache`]).

pub mod fused;
pub mod head;
pub mod kv_cache;
pub mod multi_head;
pub mod qk_norm;
pub mod scores;
