//! Curve maths: debiased smoothing and decimation that keeps extremes.

use kiln::ui::{MAX_DRAWN_POINTS, debiased_ema, decimate};

#[test]
fn debiased_ema_starts_at_the_first_value_and_skips_non_finite() {
    let smoothed = debiased_ema(&[4.0, 4.0, f64::NAN, 4.0], 0.9);
    assert!(
        (smoothed[0] - 4.0).abs() < 1e-12,
        "no pull towards zero: {smoothed:?}"
    );
    assert!(smoothed[2].is_nan());
    assert!((smoothed[3] - 4.0).abs() < 1e-12);
    let step = debiased_ema(&[0.0, 10.0], 0.5);
    assert!((step[1] - 10.0 * 0.5 / 0.75).abs() < 1e-12);
}

#[test]
fn decimation_bounds_the_points_and_keeps_spikes() {
    let mut points: Vec<[f64; 2]> = (0..100_000).map(|i| [i as f64, (i % 7) as f64]).collect();
    points[54_321][1] = 1000.0;
    points[77_777][1] = -1000.0;
    let drawn = decimate(points.clone(), MAX_DRAWN_POINTS);
    assert!(drawn.len() <= MAX_DRAWN_POINTS, "{}", drawn.len());
    assert!(drawn.iter().any(|p| p == &[54_321.0, 1000.0]));
    assert!(drawn.iter().any(|p| p == &[77_777.0, -1000.0]));
    assert_eq!(drawn.first(), points.first());
    assert_eq!(drawn.last(), points.last());
    assert!(
        drawn.windows(2).all(|w| w[0][0] < w[1][0]),
        "x stays in order"
    );
    let short: Vec<[f64; 2]> = points[..10].to_vec();
    assert_eq!(decimate(short.clone(), MAX_DRAWN_POINTS), short);
}
