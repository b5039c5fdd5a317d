//! What the app remembers between launches (eframe persistence).

use serde::{Deserialize, Serialize};

use crate::data::TaskOverride;
use crate::model::MlpConfig;
use crate::train::{DeviceChoice, TrainConfig};

use super::plot::PlotSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum BottomTab {
    #[default]
    Runs,
    Data,
    Compare,
    Checkpoint,
    Model,
}

impl BottomTab {
    pub const ALL: [BottomTab; 5] = [
        BottomTab::Runs,
        BottomTab::Data,
        BottomTab::Compare,
        BottomTab::Checkpoint,
        BottomTab::Model,
    ];

    pub fn title(self) -> &'static str {
        match self {
            BottomTab::Runs => "Runs",
            BottomTab::Data => "Data preview",
            BottomTab::Compare => "Compare",
            BottomTab::Checkpoint => "Checkpoint & export",
            BottomTab::Model => "Use a model",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub data_path: String,
    pub target: Option<String>,
    pub task: TaskOverride,
    pub valid_fraction: f64,
    pub split_seed: u64,
    pub impute_missing: bool,
    pub model: MlpConfig,
    pub train: TrainConfig,
    pub device: DeviceChoice,
    pub run_name: String,
    pub selected_runs: Vec<String>,
    pub plot: PlotSettings,
    pub bottom_tab: BottomTab,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_path: String::new(),
            target: None,
            task: TaskOverride::Auto,
            valid_fraction: 0.2,
            split_seed: 42,
            impute_missing: false,
            model: MlpConfig::default(),
            train: TrainConfig {
                epochs: 60,
                batch_size: 16,
                ..TrainConfig::default()
            },
            device: DeviceChoice::Auto,
            run_name: String::new(),
            selected_runs: Vec::new(),
            plot: PlotSettings::default(),
            bottom_tab: BottomTab::Runs,
        }
    }
}
