//! Medians and within-round ratios, for the tables of the echo and HTTP benches.

use std::fmt;

/// Median, lowest and highest of a server's per-round ratios to a baseline.
pub struct Ratios {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// How many rounds they are from.
    pub count: usize,
}

impl Ratios {
    /// `None` if there are no ratios.
    pub fn of(ratios: Vec<f64>) -> Option<Ratios> {
        let min = ratios.iter().copied().reduce(f64::min)?;
        let max = ratios.iter().copied().reduce(f64::max)?;
        let count = ratios.len();
        Some(Ratios { median: median(ratios)?, min, max, count })
    }
}

/// `1.03x (0.86-1.35)`: the median and, in brackets, the lowest and highest round (`1.03x`
/// alone from a single round).
impl fmt::Display for Ratios {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.count {
            1 => write!(f, "{:.2}x", self.median),
            _ => write!(f, "{:.2}x ({:.2}-{:.2})", self.median, self.min, self.max),
        }
    }
}

/// The median of `v`, `None` if it is empty.
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}
