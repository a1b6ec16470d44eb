//! Where a token sits. Absolute schemes add a vector to each embedding: [`learned`] (GPT),
//! [`sinusoidal`] (the original Transformer), or nothing ([`none`]); relative schemes act inside
//! attention: rotations of queries and keys ([`rope`]), distance penalties on the scores ([`alibi`]).

pub mod alibi;
pub mod learned;
pub mod none;
pub mod rope;
pub mod sinusoidal;
