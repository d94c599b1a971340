//! Rectangles and segments: what the layout is made of and what its checks
//! (no label over another, none out of its box, no line through a label)
//! are computed on.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Rect {
    pub fn new(x: f64, y: f64, w: f64, h: f64) -> Self {
        Self { x, y, w, h }
    }
    pub fn right(&self) -> f64 {
        self.x + self.w
    }
    pub fn bottom(&self) -> f64 {
        self.y + self.h
    }
    /// `other` lies inside (borders may touch).
    pub fn contains(&self, other: &Rect) -> bool {
        other.x >= self.x
            && other.y >= self.y
            && other.right() <= self.right()
            && other.bottom() <= self.bottom()
    }
    /// The interiors share some area (touching borders do not count).
    pub fn overlaps(&self, other: &Rect) -> bool {
        self.x < other.right()
            && other.x < self.right()
            && self.y < other.bottom()
            && other.y < self.bottom()
    }
    /// Grown by `d` on every side.
    pub fn grow(&self, d: f64) -> Rect {
        Rect::new(self.x - d, self.y - d, self.w + 2.0 * d, self.h + 2.0 * d)
    }
    /// Whether the segment `a`–`b` passes through the interior
    /// (Liang–Barsky clipping; a segment along a border does not count).
    pub fn hit_by_segment(&self, a: (f64, f64), b: (f64, f64)) -> bool {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let (mut t0, mut t1) = (0.0_f64, 1.0_f64);
        for (p, q) in [
            (-dx, a.0 - self.x),
            (dx, self.right() - a.0),
            (-dy, a.1 - self.y),
            (dy, self.bottom() - a.1),
        ] {
            if p == 0.0 {
                // Parallel to this edge: outside or on it means no crossing.
                if q <= 0.0 {
                    return false;
                }
            } else {
                let t = q / p;
                if p < 0.0 {
                    t0 = t0.max(t);
                } else {
                    t1 = t1.min(t);
                }
            }
        }
        t0 < t1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containment_and_overlap() {
        let a = Rect::new(0.0, 0.0, 10.0, 10.0);
        assert!(a.contains(&Rect::new(0.0, 0.0, 10.0, 10.0)));
        assert!(!a.contains(&Rect::new(5.0, 5.0, 6.0, 1.0)));
        assert!(a.overlaps(&Rect::new(9.0, 9.0, 5.0, 5.0)));
        assert!(!a.overlaps(&Rect::new(10.0, 0.0, 5.0, 5.0)), "touching");
    }

    #[test]
    fn segments_through_beside_and_along_a_rect() {
        let r = Rect::new(10.0, 10.0, 10.0, 10.0);
        assert!(r.hit_by_segment((0.0, 15.0), (30.0, 15.0)));
        assert!(r.hit_by_segment((15.0, 0.0), (15.0, 12.0)), "ends inside");
        assert!(r.hit_by_segment((0.0, 0.0), (30.0, 30.0)), "diagonal");
        assert!(!r.hit_by_segment((0.0, 5.0), (30.0, 5.0)), "above");
        assert!(
            !r.hit_by_segment((10.0, 0.0), (10.0, 30.0)),
            "along the border"
        );
        assert!(
            !r.hit_by_segment((15.0, 0.0), (15.0, 10.0)),
            "ends on the border"
        );
        assert!(!r.hit_by_segment((0.0, 30.0), (30.0, 25.0)), "below");
    }
}
