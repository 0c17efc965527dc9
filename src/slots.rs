//! Render once, fill per use: a text rendered with stand-ins (markers) where the per-use values
//! go, split at the markers so that each use costs one copy instead of a template render. The
//! invitation email (one rendering per campaign variant and locale) and the landing page (one per
//! campaign and locale) are made this way.

/// A rendered text with `N` kinds of slot left open: `pieces[0]`, the value of slot `slots[0]`,
/// `pieces[1]`, … and the last piece. A slot may occur any number of times, in any order.
#[derive(Debug, Clone)]
pub struct Slotted<const N: usize> {
    pieces: Vec<String>,
    slots: Vec<usize>,
}

impl<const N: usize> Slotted<N> {
    /// Splits `rendered` at every occurrence of each of `markers` (slot `i` is `markers[i]`).
    /// Markers must be text the template's escaping leaves alone, and none may contain another.
    pub fn split(rendered: &str, markers: &[&str; N]) -> Self {
        let (mut pieces, mut slots) = (Vec::new(), Vec::new());
        let mut rest = rendered;
        while let Some((at, slot)) = markers
            .iter()
            .enumerate()
            .filter_map(|(slot, marker)| rest.find(marker).map(|at| (at, slot)))
            .min()
        {
            pieces.push(rest[..at].to_owned());
            slots.push(slot);
            rest = &rest[at + markers[slot].len()..];
        }
        pieces.push(rest.to_owned());
        Self { pieces, slots }
    }

    /// Whether every slot occurs exactly once: then no marker came from the values the text was
    /// rendered with (a campaign's own text holding a marker, say).
    pub fn has_each_slot_once(&self) -> bool {
        self.slots.len() == N && (0..N).all(|slot| self.slots.contains(&slot))
    }

    /// The text with `values[i]` in every slot `i`, allocated once at its final size.
    pub fn fill(&self, values: &[&str; N]) -> String {
        let len = self.pieces.iter().map(String::len).sum::<usize>()
            + self.slots.iter().map(|&slot| values[slot].len()).sum::<usize>();
        let mut out = String::with_capacity(len);
        for (i, piece) in self.pieces.iter().enumerate() {
            out.push_str(piece);
            if let Some(&slot) = self.slots.get(i) {
                out.push_str(values[slot]);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_filled_wherever_and_however_often_they_occur() {
        let text = Slotted::split("<a href=\"/l/@T@\">@C@</a> @T@", &["@T@", "@C@"]);
        assert_eq!(text.fill(&["abc", "123"]), "<a href=\"/l/abc\">123</a> abc");
        assert!(!text.has_each_slot_once());
        let once = Slotted::split("@C@ and @T@", &["@T@", "@C@"]);
        assert_eq!(once.fill(&["t", "c"]), "c and t");
        assert!(once.has_each_slot_once());
        let none = Slotted::split("no slots", &["@T@", "@C@"]);
        assert_eq!(none.fill(&["t", "c"]), "no slots");
        assert!(!none.has_each_slot_once());
        assert!(!Slotted::split("@T@ only", &["@T@", "@C@"]).has_each_slot_once());
    }

    #[test]
    fn filling_allocates_the_final_size_once() {
        let text = Slotted::split("ab@1@cd@2@ef@1@", &["@1@", "@2@"]);
        let filled = text.fill(&["xyz", ""]);
        assert_eq!(filled, "abxyzcdefxyz");
        assert_eq!(filled.capacity(), filled.len());
    }
}
