//! The training engine: device choice and a training loop on a worker thread, driven by a
//! handle (stop) and reporting through a channel of [`TrainEvent`]s; and the device doctor
//! ([`doctor`]), which says what the machine offers and times it.

mod config;
mod denormals;
mod device;
pub mod doctor;
mod engine;
mod events;
mod fit;
mod fused_adam;
mod tensors;
mod threads;
mod writer;

pub use config::{
    LrSchedule, OptimizerConfig, TrainConfig, TrainConfigError, USUAL_MAX_LEARNING_RATE,
    check_learning_rate, check_momentum, check_weight_decay, learning_rate_warning,
};
pub use device::{
    AdapterSummary, DeviceChoice, DeviceError, DeviceInfo, ResolvedDevice, hardware_gpu, resolve,
    resolve_for, wgpu_adapters,
};
pub use engine::{
    EngineError, Notify, PlannedRun, ResumeRequest, TrainHandle, TrainRequest, WarmStart, plan,
    plan_rerun, plan_resume, plan_warm, resume, start,
};
pub use events::{EpochMetrics, Outcome, TrainEvent};
pub use fit::EpochJudge;
pub use fused_adam::adam;
pub use tensors::{DeviceData, Predictor, Score, argmax, score, softmax};
pub use threads::{in_training_pool, keep_warm};
