//! What the app remembers between launches (eframe persistence).

use serde::{Deserialize, Serialize};

use crate::data::{ImageOptions, TaskOverride};
use crate::model::{CnnConfig, MlpConfig, ModelConfig};
use crate::train::{DeviceChoice, TrainConfig};

use super::identity::RunColors;
use super::plot::PlotSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum BottomTab {
    #[default]
    Runs,
    Data,
    Compare,
    Checkpoint,
    Model,
    Sweep,
    Analysis,
    Devices,
}

impl BottomTab {
    pub const ALL: [BottomTab; 8] = [
        BottomTab::Runs,
        BottomTab::Analysis,
        BottomTab::Data,
        BottomTab::Compare,
        BottomTab::Sweep,
        BottomTab::Checkpoint,
        BottomTab::Model,
        BottomTab::Devices,
    ];

    pub fn title(self) -> &'static str {
        match self {
            BottomTab::Runs => "Runs",
            BottomTab::Data => "Data preview",
            BottomTab::Compare => "Compare",
            BottomTab::Checkpoint => "Checkpoint & export",
            BottomTab::Model => "Use a model",
            BottomTab::Sweep => "Sweep",
            BottomTab::Analysis => "Analysis",
            BottomTab::Devices => "Devices",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ModelKind {
    #[default]
    Mlp,
    Cnn,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub data_path: String,
    pub target: Option<String>,
    pub task: TaskOverride,
    pub valid_fraction: f64,
    pub split_seed: u64,
    /// A held-out test split, as a share of the rows.
    pub test_fraction: Option<f64>,
    pub impute_missing: bool,
    pub images: ImageOptions,
    pub model_kind: ModelKind,
    /// The MLP's settings (kept while the CNN is chosen, and the other way round).
    pub model: MlpConfig,
    pub cnn: CnnConfig,
    pub train: TrainConfig,
    pub device: DeviceChoice,
    /// Not remembered: a name typed for one run must not silently name the next.
    #[serde(skip)]
    pub run_name: String,
    /// The earlier model the next run starts from ("Train on new data…"); not remembered.
    #[serde(skip)]
    pub warm_from: Option<super::panels::WarmFrom>,
    pub selected_runs: Vec<String>,
    pub run_colors: RunColors,
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
            test_fraction: None,
            impute_missing: false,
            images: ImageOptions::default(),
            model_kind: ModelKind::Mlp,
            model: MlpConfig::default(),
            cnn: CnnConfig::default(),
            train: TrainConfig {
                epochs: 60,
                batch_size: 16,
                ..TrainConfig::default()
            },
            device: DeviceChoice::Auto,
            run_name: String::new(),
            warm_from: None,
            selected_runs: Vec::new(),
            run_colors: RunColors::default(),
            plot: PlotSettings::default(),
            bottom_tab: BottomTab::Runs,
        }
    }
}

impl Settings {
    /// Fills the form with a run's data, model and training settings, for a new run.
    pub fn use_run(&mut self, record: &crate::runs::RunRecord) {
        let data = &record.data;
        self.data_path = data.path.display().to_string();
        self.target = data.target.clone();
        self.task = data.task;
        self.valid_fraction = data.valid_fraction;
        self.split_seed = data.split_seed;
        self.test_fraction = match &data.test {
            Some(crate::data::TestSplit::Fraction(fraction)) => Some(*fraction),
            _ => None,
        };
        self.impute_missing = data.impute_missing;
        if let Some(images) = &data.images {
            self.images = images.clone();
        }
        match &record.model {
            ModelConfig::Mlp(mlp) => {
                self.model_kind = ModelKind::Mlp;
                self.model = mlp.clone();
            }
            ModelConfig::Cnn(cnn) => {
                self.model_kind = ModelKind::Cnn;
                self.cnn = cnn.clone();
            }
        }
        self.train = record.train.clone();
    }

    /// The model the form describes.
    pub fn model_config(&self) -> ModelConfig {
        match self.model_kind {
            ModelKind::Mlp => ModelConfig::Mlp(self.model.clone()),
            ModelKind::Cnn => ModelConfig::Cnn(self.cnn.clone()),
        }
    }
}
