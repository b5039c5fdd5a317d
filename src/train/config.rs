//! Training configuration: optimiser, learning-rate schedule, batches, epochs, stopping rules.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OptimizerConfig {
    Sgd {
        #[serde(default = "default_momentum")]
        momentum: f64,
    },
    Adam,
    AdamW {
        #[serde(default = "default_weight_decay")]
        weight_decay: f64,
    },
}

fn default_momentum() -> f64 {
    0.9
}

fn default_weight_decay() -> f64 {
    0.01
}

impl OptimizerConfig {
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::Sgd { .. } => "sgd",
            OptimizerConfig::Adam => "adam",
            OptimizerConfig::AdamW { .. } => "adamw",
        }
    }
}

/// How the learning rate changes over training, as a function of the epoch (fractional).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LrSchedule {
    Constant,
    /// Cosine decay from the base rate to `base * min_factor` over all epochs.
    Cosine {
        #[serde(default)]
        min_factor: f64,
    },
    /// Multiply by `gamma` every `every_epochs` epochs.
    Step {
        every_epochs: usize,
        gamma: f64,
    },
}

impl LrSchedule {
    pub fn name(&self) -> &'static str {
        match self {
            LrSchedule::Constant => "constant",
            LrSchedule::Cosine { .. } => "cosine",
            LrSchedule::Step { .. } => "step",
        }
    }

    /// The rate at `progress` epochs into training (0-based, fractional) of `total_epochs`.
    /// A closed form, so resuming from a checkpoint continues the same schedule exactly.
    pub fn rate(&self, base: f64, progress: f64, total_epochs: usize) -> f64 {
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::Cosine { min_factor } => {
                let t = (progress / total_epochs.max(1) as f64).clamp(0.0, 1.0);
                let min = base * min_factor;
                min + 0.5 * (base - min) * (1.0 + (std::f64::consts::PI * t).cos())
            }
            LrSchedule::Step {
                every_epochs,
                gamma,
            } => {
                let steps = (progress / every_epochs.max(1) as f64).floor();
                base * gamma.powf(steps)
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub optimizer: OptimizerConfig,
    pub learning_rate: f64,
    pub schedule: LrSchedule,
    pub batch_size: usize,
    pub epochs: usize,
    pub seed: u64,
    /// Stop after this many epochs without a better validation loss; `None` trains every epoch.
    #[serde(default)]
    pub early_stopping_patience: Option<usize>,
    /// Checkpoints kept besides the best one.
    #[serde(default = "default_keep_last")]
    pub keep_last_checkpoints: usize,
    /// The metric that picks the best checkpoint (and that early stopping watches); absent:
    /// the lowest validation loss. A sweep sets it to the sweep's metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_by: Option<crate::runs::BestBy>,
}

fn default_keep_last() -> usize {
    3
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            optimizer: OptimizerConfig::Adam,
            learning_rate: 0.01,
            schedule: LrSchedule::Constant,
            batch_size: 32,
            epochs: 50,
            seed: 42,
            early_stopping_patience: None,
            keep_last_checkpoints: default_keep_last(),
            best_by: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrainConfigError {
    #[error("the learning rate must be a positive number (it scales every step), not {0}")]
    LearningRate(f64),
    #[error("the batch size must be at least 1")]
    BatchSize,
    #[error("train for at least one epoch")]
    Epochs,
    #[error("momentum must be at least 0 and below 1 (at 1 past steps never fade), not {0}")]
    Momentum(f64),
    #[error("weight decay must be at least 0 (a negative one grows the weights), not {0}")]
    WeightDecay(f64),
    #[error("the step schedule needs every_epochs ≥ 1 and a gamma in (0, 1]")]
    StepSchedule,
    #[error("the cosine schedule's min_factor must be in [0, 1]")]
    CosineSchedule,
    #[error("early-stopping patience must be at least 1 epoch")]
    Patience,
}

/// The learning rate must be positive and finite: it scales every step.
pub fn check_learning_rate(rate: f64) -> Result<(), TrainConfigError> {
    if rate.is_finite() && rate > 0.0 {
        Ok(())
    } else {
        Err(TrainConfigError::LearningRate(rate))
    }
}

/// Rates above this are allowed (a sweep may try them) but almost always diverge.
pub const USUAL_MAX_LEARNING_RATE: f64 = 1.0;

/// A warning for a legal but unusual learning rate, shown where it is typed.
pub fn learning_rate_warning(rate: f64) -> Option<String> {
    (rate > USUAL_MAX_LEARNING_RATE).then(|| {
        format!(
            "a learning rate above {USUAL_MAX_LEARNING_RATE} makes most models diverge; 0.0001–0.1 is usual"
        )
    })
}

/// Momentum must be in [0, 1): at 1 or more past steps never fade and training runs away.
pub fn check_momentum(momentum: f64) -> Result<(), TrainConfigError> {
    if (0.0..1.0).contains(&momentum) {
        Ok(())
    } else {
        Err(TrainConfigError::Momentum(momentum))
    }
}

/// Weight decay must be ≥ 0 (a negative one would grow the weights).
pub fn check_weight_decay(weight_decay: f64) -> Result<(), TrainConfigError> {
    if weight_decay >= 0.0 && weight_decay.is_finite() {
        Ok(())
    } else {
        Err(TrainConfigError::WeightDecay(weight_decay))
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<(), TrainConfigError> {
        check_learning_rate(self.learning_rate)?;
        if self.batch_size == 0 {
            return Err(TrainConfigError::BatchSize);
        }
        if self.epochs == 0 {
            return Err(TrainConfigError::Epochs);
        }
        match self.optimizer {
            OptimizerConfig::Sgd { momentum } => check_momentum(momentum)?,
            OptimizerConfig::AdamW { weight_decay } => check_weight_decay(weight_decay)?,
            OptimizerConfig::Adam => {}
        }
        match self.schedule {
            LrSchedule::Step {
                every_epochs,
                gamma,
            } if every_epochs == 0 || !(gamma > 0.0 && gamma <= 1.0) => {
                return Err(TrainConfigError::StepSchedule);
            }
            LrSchedule::Cosine { min_factor } if !(0.0..=1.0).contains(&min_factor) => {
                return Err(TrainConfigError::CosineSchedule);
            }
            _ => {}
        }
        if self.early_stopping_patience == Some(0) {
            return Err(TrainConfigError::Patience);
        }
        Ok(())
    }
}
