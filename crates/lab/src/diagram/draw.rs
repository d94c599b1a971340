//! Placing labels and boxes: the text styles the diagram uses and the
//! collector that turns "this text at this corner" into a label with its
//! measured bounds.

use super::geometry::Rect;
use super::layout::{BoxKind, Label, Shape, Wire, WireKind};
use super::text::{self, ASCENT, DESCENT};

#[derive(Debug, Clone, Copy)]
pub(super) struct Style {
    pub size: f64,
    pub bold: bool,
}

impl Style {
    const fn new(size: f64, bold: bool) -> Self {
        Self { size, bold }
    }
    pub fn width(self, s: &str) -> f64 {
        text::width(s, self.size, self.bold)
    }
    /// The advance from one line's top to the next.
    pub fn line(self) -> f64 {
        ((ASCENT + DESCENT) * self.size).ceil() + 3.0
    }
}

pub(super) const TITLE: Style = Style::new(20.0, true);
pub(super) const FABRIC_HEAD: Style = Style::new(16.0, true);
pub(super) const BOX_HEAD: Style = Style::new(15.0, true);
pub(super) const SUBNET_HEAD: Style = Style::new(14.0, true);
pub(super) const NODE_HEAD: Style = Style::new(13.0, true);
pub(super) const SECTION: Style = Style::new(13.0, true);
pub(super) const BODY: Style = Style::new(12.0, false);
pub(super) const BODY_BOLD: Style = Style::new(12.0, true);
pub(super) const SMALL: Style = Style::new(11.0, false);

/// Collects shapes, labels and wires as they are placed.
#[derive(Default)]
pub(super) struct Draw {
    pub shapes: Vec<Shape>,
    pub labels: Vec<Label>,
    pub wires: Vec<Wire>,
}

impl Draw {
    pub fn shape(
        &mut self,
        kind: BoxKind,
        rect: Rect,
        parent: Option<usize>,
        alert: bool,
    ) -> usize {
        self.shapes.push(Shape {
            kind,
            rect,
            parent,
            alert,
        });
        self.shapes.len() - 1
    }

    /// A shape inside `parent`.
    pub fn inside(&mut self, parent: usize, kind: BoxKind, rect: Rect) -> usize {
        self.shape(kind, rect, Some(parent), false)
    }

    /// Lines of text down `parent` from (`x`, `top`), each at most `max_w`.
    pub fn lines(&mut self, parent: usize, x: f64, top: f64, max_w: f64) -> Lines<'_> {
        Lines {
            d: self,
            parent,
            x,
            top,
            max_w,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push_label(
        &mut self,
        parent: usize,
        x: f64,
        top: f64,
        st: Style,
        shown: String,
        full: Option<String>,
        alert: bool,
    ) {
        let baseline = top + (ASCENT * st.size).ceil();
        let bounds = Rect::new(
            x,
            baseline - ASCENT * st.size,
            st.width(&shown),
            (ASCENT + DESCENT) * st.size,
        );
        self.labels.push(Label {
            text: shown,
            full,
            x,
            baseline,
            size: st.size,
            bold: st.bold,
            alert,
            parent,
            bounds,
        });
    }

    pub fn wire(&mut self, kind: WireKind, from: (f64, f64), to: (f64, f64)) {
        self.wires.push(Wire { kind, from, to });
    }
}

/// A column of text lines being placed in one box.
pub(super) struct Lines<'a> {
    d: &'a mut Draw,
    parent: usize,
    x: f64,
    /// Where the next line's top goes.
    pub top: f64,
    max_w: f64,
}

impl Lines<'_> {
    /// One line, cut with an ellipsis when it does not fit.
    pub fn line(&mut self, st: Style, s: &str) -> &mut Self {
        self.put(st, s, false)
    }

    /// One line in the alert colour.
    pub fn alert(&mut self, st: Style, s: &str) -> &mut Self {
        self.put(st, s, true)
    }

    /// `s` wrapped at spaces into at most `max_lines` lines.
    pub fn paragraph(&mut self, st: Style, s: &str, max_lines: usize) -> &mut Self {
        let (lines, cut) = text::wrap(s, st.size, st.bold, self.max_w, max_lines);
        let n = lines.len();
        for (i, l) in lines.into_iter().enumerate() {
            let full = (cut && i + 1 == n).then(|| s.to_string());
            self.d
                .push_label(self.parent, self.x, self.top, st, l, full, false);
            self.top += st.line();
        }
        self
    }

    fn put(&mut self, st: Style, s: &str, alert: bool) -> &mut Self {
        let (shown, cut) = text::fit(s, st.size, st.bold, self.max_w);
        let full = cut.then(|| s.to_string());
        self.d
            .push_label(self.parent, self.x, self.top, st, shown, full, alert);
        self.top += st.line();
        self
    }
}
