//! Random model specs that together exercise every architecture knob: positions, norms and their
//! placement, feed-forward kinds, attention options (heads, grouped key/value heads, head size,
//! projection, biases, QK-norm, fused), tied embeddings, initialisation, dropout sites and
//! explicit block lists. Deterministic in the seed, so a failure names a reproducible case.

/// A small xorshift generator: the test needs variety, not statistical quality.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The YAML of a random model (and a tiny training section), seeded.
pub fn random_spec(seed: u64) -> String {
    let mut rng = Rng::new(seed);
    let n_embd = *rng.pick(&[8i64, 12, 16, 24]);
    let block_size = 3 + rng.below(10) as i64;
    let position = rng
        .pick(&[
            "{kind: learned}",
            "{kind: sinusoidal}",
            "{kind: rope}",
            "{kind: rope, theta: 500.0}",
            "{kind: alibi}",
            "{kind: none}",
        ])
        .to_string();
    let rope = position.contains("rope");
    let mut yaml = format!(
        "model:\n  block_size: {block_size}\n  n_embd: {n_embd}\n  position: {position}\n  \
         init: {}\n  tie_embeddings: {}\n  head_bias: {}\n  dropout: 0.1\n  \
         embedding_dropout: 0.1\n",
        rng.pick(&["pytorch", "gpt2"]),
        rng.chance(30),
        !rng.chance(25),
    );
    if rng.chance(60) {
        yaml += &format!("  final_norm: {}\n", random_norm(&mut rng));
    }
    let explicit = rng.chance(40);
    let layers = 1 + rng.below(3);
    if explicit {
        yaml += "  blocks:\n";
        for _ in 0..layers {
            yaml += &indent(&random_block(&mut rng, n_embd, rope), "    - ", "      ");
        }
    } else {
        yaml += &format!("  n_layer: {layers}\n  block:\n");
        yaml += &indent(&random_block(&mut rng, n_embd, rope), "    ", "    ");
    }
    yaml + "training: {batch_size: 2, max_iters: 1, eval_iters: 1}\n"
}

fn indent(lines: &str, first: &str, rest: &str) -> String {
    lines
        .lines()
        .enumerate()
        .map(|(i, line)| format!("{}{line}\n", if i == 0 { first } else { rest }))
        .collect()
}

fn random_norm(rng: &mut Rng) -> String {
    rng.pick(&[
        "{kind: layernorm}",
        "{kind: rmsnorm}",
        "{kind: layernorm, eps: 1.0e-3}",
        "{kind: rmsnorm, eps: 1.0e-6}",
    ])
    .to_string()
}

/// One block's YAML lines (unindented).
fn random_block(rng: &mut Rng, n_embd: i64, rope: bool) -> String {
    let attention = random_attention(rng, n_embd, rope);
    let feed_forward = rng
        .pick(&[
            "{kind: none}",
            "{kind: linear}",
            "{kind: mlp}",
            "{kind: mlp, hidden_multiplier: 2, activation: gelu}",
            "{kind: mlp, hidden_size: 20, activation: relu}",
            "{kind: mlp, hidden_size: 12, activation: gelu_tanh}",
            "{kind: swiglu}",
            "{kind: swiglu, hidden_size: 10}",
        ])
        .to_string();
    let placement = *rng.pick(&["none", "pre", "post"]);
    let mut block = format!(
        "attention: {attention}\nfeed_forward: {feed_forward}\nresidual: {}\nnorm_placement: {placement}\n",
        rng.chance(80)
    );
    if placement != "none" {
        block += &format!("norm: {}\n", random_norm(rng));
    }
    block
}

fn random_attention(rng: &mut Rng, n_embd: i64, rope: bool) -> String {
    if rng.chance(15) {
        // The course's single head, as wide as the stream.
        return "{kind: head}".into();
    }
    let divisors: Vec<i64> = (1..=n_embd)
        .filter(|h| n_embd % h == 0 && (!rope || (n_embd / h) % 2 == 0))
        .collect();
    let n_head = *rng.pick(&divisors);
    let kv_divisors: Vec<i64> = (1..=n_head).filter(|k| n_head % k == 0).collect();
    let n_kv_head = *rng.pick(&kv_divisors);
    let projection = rng.chance(75);
    let head_size = if projection && rng.chance(40) {
        format!(", head_size: {}", 2 + 2 * rng.below(4))
    } else {
        String::new()
    };
    format!(
        "{{kind: multi_head, n_head: {n_head}, n_kv_head: {n_kv_head}{head_size}, projection: {projection}, \
         qkv_bias: {}, projection_bias: {}, qk_norm: {}, fused: {}}}",
        rng.chance(40),
        rng.chance(60),
        rng.pick(&["none", "none", "l2", "rmsnorm"]),
        rng.chance(50),
    )
}
