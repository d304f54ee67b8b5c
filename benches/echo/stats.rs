//! Medians and within-round ratios, for the tables of the echo benches.

use std::fmt;

/// Median, lowest and highest of a server's per-round ratios to a baseline.
pub struct Ratios {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Ratios {
    /// `None` if there are no ratios.
    pub fn of(ratios: Vec<f64>) -> Option<Ratios> {
        let min = ratios.iter().copied().reduce(f64::min)?;
        let max = ratios.iter().copied().reduce(f64::max)?;
        Some(Ratios { median: middle(ratios)?, min, max })
    }
}

/// `1.03x (0.86-1.35)`: the median and, in brackets, the lowest and highest round.
impl fmt::Display for Ratios {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2}x ({:.2}-{:.2})", self.median, self.min, self.max)
    }
}

/// The median of `v`, `None` if it is empty.
pub fn middle(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}
