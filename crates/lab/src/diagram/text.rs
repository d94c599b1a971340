//! Text measurement for the diagram's one font, so the layout can bound
//! every label before anything is drawn.
//!
//! The diagram names DejaVu Sans first (Debian's default sans-serif, pulled
//! in with fontconfig, so `rsvg-convert` and most Linux viewers use it); the
//! fallbacks it lists (Arial, Helvetica) are narrower, so a width measured
//! here still bounds the label there. The advances are DejaVu Sans 2.37's
//! `hmtx` widths (regular and bold) divided by its 2048 units per em,
//! rounded *up* to thousandths so that a sum of them never falls short.
//! Characters outside the table count as the widest glyph of either face.

/// The `font-family` every label is drawn in.
pub const FONT_FAMILY: &str = "DejaVu Sans, Bitstream Vera Sans, Arial, Helvetica, sans-serif";

/// Ink above the baseline, in em (DejaVu's ascender is 0.928; accents
/// are not used, and the margin covers hinting).
pub const ASCENT: f64 = 0.95;
/// Ink below the baseline, in em (DejaVu's descender is 0.236).
pub const DESCENT: f64 = 0.25;

/// The ellipsis a truncated label ends with (its full text goes in a
/// `<title>`).
pub const ELLIPSIS: char = '…';

/// Advances of U+0020..=U+007E, thousandths of an em.
const REGULAR_ASCII: [u16; 95] = [
    318, 401, 460, 838, 637, 951, 780, 275, 391, 391, 500, 838, 318, 361, 318, 337, //
    637, 637, 637, 637, 637, 637, 637, 637, 637, 637, 337, 337, 838, 838, 838, 531, //
    1000, 685, 687, 699, 771, 632, 576, 775, 752, 295, 295, 656, 558, 863, 749, 788, //
    604, 788, 695, 635, 611, 732, 685, 989, 686, 611, 686, 391, 337, 391, 838, 500, //
    500, 613, 635, 550, 635, 616, 353, 635, 634, 278, 278, 580, 278, 975, 634, 612, //
    635, 635, 412, 521, 393, 634, 592, 818, 592, 592, 525, 637, 337, 637, 838,
];
const BOLD_ASCII: [u16; 95] = [
    349, 457, 521, 838, 696, 1002, 873, 307, 458, 458, 523, 838, 380, 416, 380, 366, //
    696, 696, 696, 696, 696, 696, 696, 696, 696, 696, 400, 400, 838, 838, 838, 581, //
    1000, 774, 763, 734, 831, 684, 684, 821, 837, 373, 373, 775, 638, 996, 837, 851, //
    733, 851, 771, 721, 683, 813, 774, 1104, 771, 725, 726, 458, 366, 458, 838, 500, //
    500, 675, 716, 593, 716, 679, 436, 716, 712, 343, 343, 666, 343, 1042, 712, 688, //
    716, 716, 494, 596, 479, 712, 652, 924, 646, 652, 583, 712, 366, 712, 838,
];
/// The non-ASCII characters the diagram's own wording uses:
/// (character, regular, bold).
const EXTRA: [(char, u16, u16); 13] = [
    ('—', 1000, 1000),
    ('–', 500, 500),
    ('→', 838, 838),
    ('“', 519, 658),
    ('”', 519, 658),
    ('‘', 318, 380),
    ('’', 318, 380),
    ('…', 1000, 1000),
    ('·', 318, 380),
    ('×', 838, 838),
    ('≤', 838, 838),
    ('≥', 838, 838),
    ('│', 603, 603),
];
/// Anything else: the widest advance of either face (bold `W`), rounded up.
const UNKNOWN: u16 = 1105;

/// One character's advance in em.
pub fn advance(c: char, bold: bool) -> f64 {
    let table = if bold { &BOLD_ASCII } else { &REGULAR_ASCII };
    let milli = match c as u32 {
        0x20..=0x7e => table[c as usize - 0x20],
        _ => EXTRA
            .iter()
            .find(|(e, _, _)| *e == c)
            .map_or(UNKNOWN, |(_, r, b)| if bold { *b } else { *r }),
    };
    f64::from(milli) / 1000.0
}

/// Slack over the font's own advances: `rsvg-convert` draws within them
/// to the pixel (the PNG test fails at 1 % less), and other renderers hint
/// and round differently.
const SLACK: f64 = 1.02;

/// The width of `s` at `size` px: an upper bound of what the renderer
/// draws (kerning in DejaVu only ever tightens).
pub fn width(s: &str, size: f64, bold: bool) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    s.chars().map(|c| advance(c, bold)).sum::<f64>() * size * SLACK + 0.5
}

/// `s` cut to fit `max_w` px, ending in an ellipsis when anything was cut.
pub fn fit(s: &str, size: f64, bold: bool, max_w: f64) -> (String, bool) {
    if width(s, size, bold) <= max_w {
        return (s.to_string(), false);
    }
    let mut out = String::new();
    for c in s.chars() {
        out.push(c);
        out.push(ELLIPSIS);
        let over = width(&out, size, bold) > max_w;
        out.pop();
        if over {
            out.pop();
            break;
        }
    }
    // A cut just after a space or separator reads as a stray gap.
    let kept = out.trim_end_matches([' ', ',', '·']).len();
    out.truncate(kept);
    out.push(ELLIPSIS);
    (out, true)
}

/// `s` broken at spaces into lines of at most `max_w` px, at most
/// `max_lines` of them; the last line is cut with an ellipsis when the text
/// does not fit. Returns the lines and whether anything was cut.
pub fn wrap(s: &str, size: f64, bold: bool, max_w: f64, max_lines: usize) -> (Vec<String>, bool) {
    let words: Vec<&str> = s.split(' ').filter(|w| !w.is_empty()).collect();
    let mut lines: Vec<String> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if lines.len() + 1 == max_lines.max(1) {
            let (last, cut) = fit(&words[i..].join(" "), size, bold, max_w);
            lines.push(last);
            return (lines, cut);
        }
        let mut line = words[i].to_string();
        i += 1;
        while i < words.len() {
            let longer = format!("{line} {}", words[i]);
            if width(&longer, size, bold) > max_w {
                break;
            }
            line = longer;
            i += 1;
        }
        let (line, cut) = fit(&line, size, bold, max_w);
        if cut {
            // One word wider than the line: the rest would read out of order.
            lines.push(line);
            return (lines, true);
        }
        lines.push(line);
    }
    (lines, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_add_up_per_face() {
        assert!((width("0", 10.0, false) - (6.37 * SLACK + 0.5)).abs() < 1e-9);
        assert!(width("node-1", 12.0, true) > width("node-1", 12.0, false));
        assert!((advance('→', false) - 0.838).abs() < 1e-9);
        assert!((advance('漢', true) - 1.105).abs() < 1e-9);
        assert_eq!(width("", 12.0, false), 0.0);
    }

    #[test]
    fn fit_keeps_short_text_and_cuts_long_text_with_an_ellipsis() {
        assert_eq!(
            fit("pod-1-1", 12.0, false, 200.0),
            ("pod-1-1".into(), false)
        );
        let (s, cut) = fit("10.224.0.10-10.224.0.40, 10.224.0.50", 12.0, false, 100.0);
        assert!(cut && s.ends_with('…'), "{s}");
        assert!(width(&s, 12.0, false) <= 100.0, "{s}");
        let (s, cut) = fit("abc", 12.0, false, 1.0);
        assert!(cut && s == "…");
    }

    #[test]
    fn wrap_breaks_at_spaces_and_cuts_the_last_line() {
        let (l, cut) = wrap("pods: 10.1.0.1-10.1.0.9, 10.1.0.20", 12.0, false, 150.0, 3);
        assert!(!cut);
        assert_eq!(l, vec!["pods: 10.1.0.1-10.1.0.9,", "10.1.0.20"]);
        let long = (0..20)
            .map(|i| format!("10.1.0.{i},"))
            .collect::<Vec<_>>()
            .join(" ");
        let (l, cut) = wrap(&long, 12.0, false, 150.0, 2);
        assert!(cut && l.len() == 2 && l[1].ends_with('…'), "{l:?}");
        assert!(l.iter().all(|s| width(s, 12.0, false) <= 150.0));
        assert_eq!(wrap("", 12.0, false, 10.0, 2), (vec![], false));
    }
}
