//! A rigorous Chernoff bound on an innocent licensee's symmetric Tardos score.
//!
//! Given the biases and the leaked symbols, an innocent licensee's score at site `i` is a
//! two-point variable: `+u_i` with probability `q_i`, `-v_i` otherwise, with mean 0
//! (`q u = (1 - q) v`) and variance 1, independent across sites (its symbols are a PRF of
//! its id, independent of the colluders' copies and so of the leak). Hence for every
//! `λ > 0`, `P(S >= Z) <= exp(K(λ) - λ Z)` with `K(λ) = Σ ln(q e^{λu} + (1-q) e^{-λv})`,
//! computed exactly per site, whatever the colluders did.

/// One site's innocent score distribution: `+up` with probability `q`, `-down` otherwise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TwoPoint {
    /// The positive value.
    pub up: f64,
    /// Probability of `up`.
    pub q: f64,
    /// The magnitude of the negative value.
    pub down: f64,
}

impl TwoPoint {
    /// The innocent's score distribution at a site with bias `p` (probability of symbol
    /// 1) when the leak shows symbol `y`, under the symmetric Tardos score.
    pub fn symmetric(p: f64, y: bool) -> Self {
        let a = ((1.0 - p) / p).sqrt();
        let b = (p / (1.0 - p)).sqrt();
        if y { TwoPoint { up: a, q: p, down: b } } else { TwoPoint { up: b, q: 1.0 - p, down: a } }
    }
}

/// Precomputed log-MGF of a sum of independent [`TwoPoint`] scores.
#[derive(Clone, Debug, Default)]
pub struct ScoreDistribution {
    up: Vec<f64>,
    down: Vec<f64>,
    ln_q: Vec<f64>,
    ln_1q: Vec<f64>,
    max_total: f64,
    ln_p_max: f64,
}

/// Unit roundoff of f64.
const U: f64 = f64::EPSILON / 2.0;

impl ScoreDistribution {
    /// From per-site distributions.
    pub fn new(sites: impl IntoIterator<Item = TwoPoint>) -> Self {
        let mut d = ScoreDistribution::default();
        for s in sites {
            d.up.push(s.up);
            d.down.push(s.down);
            d.ln_q.push(s.q.ln());
            d.ln_1q.push((-s.q).ln_1p());
            d.max_total += s.up;
            d.ln_p_max += s.q.ln();
        }
        d
    }

    /// Number of sites.
    pub fn len(&self) -> usize {
        self.up.len()
    }

    /// Whether there is no site.
    pub fn is_empty(&self) -> bool {
        self.up.is_empty()
    }

    /// `(K(λ), K'(λ), error)`: the log-MGF, its derivative, and an upper bound on the
    /// floating-point error of the computed `K`.
    pub fn log_mgf(&self, lambda: f64) -> (f64, f64, f64) {
        let mut k = 0.0;
        let mut dk = 0.0;
        let mut abs = 0.0;
        for i in 0..self.up.len() {
            let a = self.ln_q[i] + lambda * self.up[i];
            let b = self.ln_1q[i] - lambda * self.down[i];
            let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
            let e = (lo - hi).exp();
            let term = hi + e.ln_1p();
            // weight of the `up` outcome
            let w = if a >= b { 1.0 / (1.0 + e) } else { e / (1.0 + e) };
            k += term;
            dk += self.up[i] * w - self.down[i] * (1.0 - w);
            abs += term.abs() + hi.abs() + 1.0;
        }
        // Each term is correct to a few ulps of its magnitude (and of the ln q inputs),
        // the sum adds at most n ulps of the absolute sum: 8n+16 ulps is generous.
        let err = abs * U * (8.0 * self.up.len() as f64 + 16.0) + 1e-300;
        (k, dk, err)
    }

    /// The smallest score `Z` for which the Chernoff bound proves
    /// `P(innocent score >= Z) <= exp(-ln_inv_eps)`, found by optimising `λ`, with a margin
    /// for floating-point error. `None` if no score can reach it (even the largest possible
    /// score, `Σ up`, has probability `Π q > ε`).
    pub fn threshold(&self, ln_inv_eps: f64) -> Option<f64> {
        let l = ln_inv_eps;
        if self.is_empty() || -self.ln_p_max <= l * (1.0 + 1e-9) + 1e-9 {
            return None;
        }
        // g(λ) = λK'(λ) - K(λ) increases from 0 to -Σ ln q; the optimum solves g = L.
        let g = |lam: f64| {
            let (k, dk, _) = self.log_mgf(lam);
            lam * dk - k
        };
        let mut hi = 0.01;
        while g(hi) < l && hi < 1e9 {
            hi *= 2.0;
        }
        let mut lo = 0.0;
        for _ in 0..80 {
            let mid = 0.5 * (lo + hi);
            if g(mid) < l {
                lo = mid;
            } else {
                hi = mid;
            }
            if hi - lo < 1e-6 * hi {
                break;
            }
        }
        // Any λ > 0 gives a valid threshold; evaluate at both ends and keep the smaller.
        let z_at = |lam: f64| {
            if lam <= 0.0 {
                return f64::INFINITY;
            }
            let (k, _, err) = self.log_mgf(lam);
            (k + err + l) / lam
        };
        let z = z_at(lo).min(z_at(hi));
        if !z.is_finite() || z > self.max_total {
            return None;
        }
        Some(z)
    }

    /// Natural log of an upper bound on `P(innocent score >= score)` (0 = no information).
    pub fn ln_tail_bound(&self, score: f64) -> f64 {
        if score <= 0.0 || self.is_empty() {
            return 0.0;
        }
        if score > self.max_total * (1.0 + 1e-12) {
            return f64::NEG_INFINITY;
        }
        // minimise K(λ) - λ s: K'(λ) = s.
        let mut hi = 0.01;
        while self.log_mgf(hi).1 < score && hi < 1e9 {
            hi *= 2.0;
        }
        let mut lo = 0.0;
        for _ in 0..80 {
            let mid = 0.5 * (lo + hi);
            if self.log_mgf(mid).1 < score {
                lo = mid;
            } else {
                hi = mid;
            }
            if hi - lo < 1e-6 * hi {
                break;
            }
        }
        let at = |lam: f64| {
            let (k, _, err) = self.log_mgf(lam);
            k + err - lam * score
        };
        at(lo).min(at(hi)).min(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_point_mean_zero_variance_one() {
        for p in [0.001, 0.1, 0.5, 0.9] {
            for y in [false, true] {
                let t = TwoPoint::symmetric(p, y);
                let mean = t.q * t.up - (1.0 - t.q) * t.down;
                let var = t.q * t.up * t.up + (1.0 - t.q) * t.down * t.down;
                assert!(mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn exact_binomial_case() {
        // p = 1/2 everywhere: each site is +-1, so P(S >= n) = 2^-n exactly.
        let d = ScoreDistribution::new((0..20).map(|_| TwoPoint::symmetric(0.5, true)));
        let lb = d.ln_tail_bound(20.0);
        assert!((lb - 20.0 * 0.5f64.ln()).abs() < 1e-6, "{lb}");
        assert!(d.threshold(30.0 * 2f64.ln()).is_none());
        let z = d.threshold(10.0f64.ln()).unwrap();
        assert!(z > 0.0 && z <= 20.0);
    }
}
