//! The layer/parameter table of a built model: every tensor by its checkpoint name, its shape and
//! its number of parameters, then the total. `gptbuild inspect` prints it; snapshot tests pin it.

use std::cmp::Ordering;

use tch::nn::VarStore;

use crate::spec::ResolvedModel;

/// One row per variable, in natural order (`blocks.2` before `blocks.10`).
pub fn parameter_table(vs: &VarStore) -> String {
    let mut rows: Vec<(String, Vec<i64>)> = vs
        .variables()
        .into_iter()
        .map(|(name, t)| (name, t.size()))
        .collect();
    rows.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    let name_width = rows
        .iter()
        .map(|r| r.0.len())
        .max()
        .unwrap_or(0)
        .max("tensor".len());
    let mut table = format!(
        "{:<name_width$}  {:<14}  {:>10}\n",
        "tensor", "shape", "parameters"
    );
    let mut total = 0;
    for (name, shape) in &rows {
        let count: i64 = shape.iter().product();
        total += count;
        table.push_str(&format!(
            "{name:<name_width$}  {:<14}  {count:>10}\n",
            format!("{shape:?}")
        ));
    }
    table.push_str(&format!(
        "{:<name_width$}  {:<14}  {total:>10}\n",
        "total", ""
    ));
    table
}

/// Floating-point operations per token of a model, counted the usual way (Kaplan et al. 2020,
/// arXiv 2001.08361, §2.1; Chowdhery et al. 2022, arXiv 2204.02311, App. B): 2 per multiply-add of
/// every weight matrix applied to a token (embedding lookups are free), plus the attention
/// scores and the weighted sum over a full context of `block_size` tokens; a training step costs
/// about three forward passes (the backward pass computes two gradients per multiply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlopsPerToken {
    pub forward: i64,
    pub training: i64,
}

impl FlopsPerToken {
    /// Counted from the variables of a built model (its matrices) and its resolved spec (the
    /// width of the queries that score the context).
    pub fn of(vs: &VarStore, model: &ResolvedModel) -> Self {
        let variables = vs.variables();
        let is_lookup =
            |name: &str| name.starts_with("token_embedding.") || name.starts_with("position.");
        let matrix_weights: i64 = variables
            .iter()
            .filter(|(name, t)| t.dim() == 2 && name.ends_with(".weight") && !is_lookup(name))
            .map(|(_, t)| t.numel() as i64)
            .sum();
        // Every query dimension meets a key dimension (scores) and a value dimension (weighted
        // sum): 2 multiply-adds per query dimension per context position. Grouped key/value heads
        // save projections, not this.
        let query_width: i64 = model
            .stack()
            .iter()
            .map(|block| block.attention.query_width())
            .sum();
        let forward = 2 * matrix_weights + 2 * 2 * model.block_size * query_width;
        FlopsPerToken {
            forward,
            training: 3 * forward,
        }
    }
}

/// Total number of trainable parameters.
pub fn parameter_count(vs: &VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}

/// Compares dotted names piecewise, numerically where both pieces are numbers.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let mut a_parts = a.split('.');
    let mut b_parts = b.split('.');
    loop {
        match (a_parts.next(), b_parts.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    _ => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::natural_cmp;
    use std::cmp::Ordering;

    #[test]
    fn numbers_sort_numerically() {
        assert_eq!(natural_cmp("blocks.2.a", "blocks.10.a"), Ordering::Less);
        assert_eq!(natural_cmp("blocks.2", "blocks.2.a"), Ordering::Less);
        assert_eq!(natural_cmp("lm_head", "blocks.0"), Ordering::Greater);
    }
}
