//! Sampling: feed the model its own output. Each step turns the next-token logits into
//! probabilities — softened or sharpened by the temperature, optionally cut down to the most likely
//! tokens — draws a token, and appends it to the [`Context`], which keeps the model's view of the
//! text within its block size.

use tch::{Device, Kind, Tensor};

use crate::generate::context::Context;
use crate::model::Gpt;
use crate::spec::Decoding;

/// Drawing with the settings the spec or the command line chose ([`Decoding`] is defined with the
/// spec's sampling section, where it is validated).
impl Decoding {
    /// The probabilities `[vocab]` that [`Decoding::draw`] draws from, for logits `[vocab]`.
    pub fn probabilities(&self, logits: &Tensor) -> Tensor {
        let mut logits = logits.to_kind(Kind::Float) / self.temperature;
        if let Some(k) = self.top_k {
            logits = keep_top_k(&logits, k);
        }
        if let Some(p) = self.top_p {
            logits = keep_top_p(&logits, p);
        }
        logits.softmax(-1, Kind::Float)
    }

    /// Draws one token for logits `[vocab]` from libtorch's generator (seed it for reproducible
    /// text).
    pub fn draw(&self, logits: &Tensor) -> i64 {
        self.probabilities(logits)
            .multinomial(1, true)
            .int64_value(&[0])
    }
}

/// Logits `[vocab]` with all but the `k` largest set to -inf (ties at the k-th value are kept).
pub fn keep_top_k(logits: &Tensor, k: i64) -> Tensor {
    let k = k.clamp(1, logits.size()[0]);
    let (largest, _) = logits.topk(k, -1, true, true);
    let threshold = largest.select(-1, k - 1);
    logits.masked_fill(&logits.lt_tensor(&threshold), f64::NEG_INFINITY)
}

/// Logits `[vocab]` with -inf for every token outside the nucleus: the most likely tokens, in
/// order, until their probabilities reach `p`. The most likely token always stays.
pub fn keep_top_p(logits: &Tensor, p: f64) -> Tensor {
    let (sorted, order) = logits.sort(-1, true);
    let probabilities = sorted.softmax(-1, Kind::Float);
    // A token is cut when the more likely tokens before it already reach p.
    let before = probabilities.cumsum(-1, Kind::Float) - &probabilities;
    let cut_sorted = before.ge(p);
    let cut = cut_sorted.zeros_like().scatter(-1, &order, &cut_sorted);
    logits.masked_fill(&cut, f64::NEG_INFINITY)
}

/// Generates tokens after `prompt` (not empty), calling `on_token` with each as soon as it is
/// drawn. Stops after `count` tokens, never when `count` is `None`, or as soon as `on_token`
/// returns false. `cached` chooses the KV cache over recomputing the window at every step (see
/// [`Context`]); both draw from the same distribution.
pub fn generate(
    model: &Gpt,
    prompt: &[i64],
    count: Option<u64>,
    decoding: &Decoding,
    cached: bool,
    device: Device,
    mut on_token: impl FnMut(i64) -> bool,
) {
    if count == Some(0) {
        return;
    }
    let mut context = Context::new(model, device, cached);
    let mut logits = context.push(prompt);
    for produced in 1u64.. {
        let token = decoding.draw(&logits);
        if !on_token(token) || count.is_some_and(|count| produced >= count) {
            return;
        }
        logits = context.push(&[token]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Tensor {
        // Probabilities 0.5, 0.25, 0.125, 0.125 in a shuffled order.
        Tensor::from_slice(&[0.125f32, 0.5, 0.125, 0.25]).log()
    }

    fn kept(logits: &Tensor) -> Vec<bool> {
        Vec::<bool>::try_from(logits.isfinite()).unwrap()
    }

    #[test]
    fn top_k_keeps_the_k_most_likely() {
        assert_eq!(kept(&keep_top_k(&logits(), 1)), [false, true, false, false]);
        assert_eq!(kept(&keep_top_k(&logits(), 2)), [false, true, false, true]);
        assert_eq!(kept(&keep_top_k(&logits(), 99)), [true; 4]);
    }

    #[test]
    fn top_p_keeps_the_smallest_nucleus_reaching_p() {
        assert_eq!(
            kept(&keep_top_p(&logits(), 0.5)),
            [false, true, false, false]
        );
        assert_eq!(
            kept(&keep_top_p(&logits(), 0.6)),
            [false, true, false, true]
        );
        assert_eq!(
            kept(&keep_top_p(&logits(), 0.75)),
            [false, true, false, true]
        );
        let three = kept(&keep_top_p(&logits(), 0.8));
        assert_eq!(three.iter().filter(|&&k| k).count(), 3, "{three:?}");
        assert!(three[1] && three[3]);
        assert_eq!(kept(&keep_top_p(&logits(), 0.9)), [true; 4]);
        assert_eq!(kept(&keep_top_p(&logits(), 1.0)), [true; 4]);
        assert_eq!(
            kept(&keep_top_p(&logits(), 1e-9)),
            [false, true, false, false],
            "the most likely token always stays"
        );
    }

    #[test]
    fn filtered_probabilities_renormalise() {
        let decoding = Decoding {
            top_k: Some(2),
            ..Decoding::default()
        };
        let probabilities = Vec::<f32>::try_from(decoding.probabilities(&logits())).unwrap();
        let expected = [0.0, 2.0 / 3.0, 0.0, 1.0 / 3.0];
        for (p, e) in probabilities.iter().zip(expected) {
            assert!((p - e).abs() < 1e-6, "{probabilities:?}");
        }
    }

    #[test]
    fn a_low_temperature_sharpens() {
        let cold = Decoding {
            temperature: 0.1,
            ..Decoding::default()
        };
        let probabilities = Vec::<f32>::try_from(cold.probabilities(&logits())).unwrap();
        assert!(probabilities[1] > 0.99, "{probabilities:?}");
    }
}
