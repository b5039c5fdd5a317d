//! How a run looks everywhere in the window: its colour and the name it is shown under, decided
//! here once so the runs table, the plot, its legend and the compare tab always agree.

use std::collections::{BTreeMap, HashMap};

use egui::Color32;
use serde::{Deserialize, Serialize};

use crate::runs::RunSummary;

/// Distinct, readable colours for runs (on the dark and the light theme).
const PALETTE: [Color32; 10] = [
    Color32::from_rgb(0x4e, 0x9a, 0xf1),
    Color32::from_rgb(0xf5, 0x8b, 0x3c),
    Color32::from_rgb(0x5c, 0xc2, 0x6f),
    Color32::from_rgb(0xe0, 0x5a, 0x8a),
    Color32::from_rgb(0xb0, 0x8c, 0xf0),
    Color32::from_rgb(0xe6, 0xc3, 0x3d),
    Color32::from_rgb(0x3d, 0xc8, 0xc8),
    Color32::from_rgb(0xc8, 0x7d, 0x5a),
    Color32::from_rgb(0x9a, 0xb8, 0x3a),
    Color32::from_rgb(0xd9, 0x6b, 0xd9),
];

/// The colour of palette slot `index` (wrapping).
pub fn palette_color(index: usize) -> Color32 {
    PALETTE[index % PALETTE.len()]
}

/// Each run's palette slot, kept for the run's whole life (and across restarts, in the saved
/// settings): deleting or adding a run never recolours another.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunColors {
    slots: BTreeMap<String, usize>,
}

impl RunColors {
    /// Gives each run seen for the first time the colour least used among the listed runs
    /// (oldest runs first), and forgets runs that are gone.
    pub fn update<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>) {
        let mut ids: Vec<&str> = ids.into_iter().collect();
        ids.sort_unstable();
        self.slots
            .retain(|id, _| ids.binary_search(&id.as_str()).is_ok());
        let mut uses = [0usize; PALETTE.len()];
        for &slot in self.slots.values() {
            uses[slot % PALETTE.len()] += 1;
        }
        for id in ids {
            if self.slots.contains_key(id) {
                continue;
            }
            let slot = (0..PALETTE.len())
                .min_by_key(|&slot| (uses[slot], slot))
                .unwrap_or(0);
            uses[slot] += 1;
            self.slots.insert(id.to_string(), slot);
        }
    }

    /// A run's colour; a run not listed yet (training has just begun) gets a stable colour
    /// from its id until the next listing assigns it one.
    pub fn color(&self, id: &str) -> Color32 {
        match self.slots.get(id) {
            Some(&slot) => palette_color(slot),
            None => palette_color(id.bytes().map(usize::from).sum()),
        }
    }
}

/// The name each run is shown under: its own name, or, when another listed run has the same
/// name, the name with the end of its id, so two runs are never merged or confused.
pub fn display_names(runs: &[RunSummary]) -> HashMap<String, String> {
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for run in runs {
        *by_name.entry(run.name.as_str()).or_default() += 1;
    }
    runs.iter()
        .map(|run| {
            let shown = if by_name.get(run.name.as_str()).copied().unwrap_or(0) > 1 {
                format!("{} ({})", run.name, id_tail(&run.id))
            } else {
                run.name.clone()
            };
            (run.id.clone(), shown)
        })
        .collect()
}

/// The random end of a run id (`20261125-142233-iris-a1b2` → `a1b2`), or the id's last 8 chars.
fn id_tail(id: &str) -> &str {
    match id.rsplit_once('-') {
        Some((_, tail)) if !tail.is_empty() => tail,
        _ => &id[id.len().saturating_sub(8)..],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleting_a_run_keeps_every_other_colour() {
        let mut colors = RunColors::default();
        colors.update(["a", "b", "c"]);
        let before: Vec<Color32> = ["a", "c"].iter().map(|id| colors.color(id)).collect();
        colors.update(["a", "c"]);
        let after: Vec<Color32> = ["a", "c"].iter().map(|id| colors.color(id)).collect();
        assert_eq!(before, after);
        // A new run takes the freed colour rather than repeating one in use.
        colors.update(["a", "c", "d"]);
        assert_ne!(colors.color("d"), colors.color("a"));
        assert_ne!(colors.color("d"), colors.color("c"));
    }

    #[test]
    fn runs_get_distinct_colours_until_the_palette_is_used_up() {
        let mut colors = RunColors::default();
        let ids: Vec<String> = (0..PALETTE.len()).map(|i| format!("run-{i:02}")).collect();
        colors.update(ids.iter().map(String::as_str));
        let distinct: std::collections::HashSet<Color32> =
            ids.iter().map(|id| colors.color(id)).collect();
        assert_eq!(distinct.len(), PALETTE.len());
    }

    #[test]
    fn id_tail_is_the_random_suffix() {
        assert_eq!(id_tail("20261125-142233-iris-a1b2"), "a1b2");
        assert_eq!(id_tail("plain"), "plain");
    }
}
