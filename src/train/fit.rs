//! The training loop.
//!
//! Hand-written rather than burn-train's `Learner`: the whole dataset lives on the device, is
//! shuffled there once an epoch and cut into batches by slicing (no per-item batcher), the loss
//! is read back once an epoch (and at most once a second for the live curve) instead of every
//! batch, and checkpoints, resume and metrics go straight into Kiln's run store with its
//! supersede semantics.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::nn::loss::{MseLoss, Reduction};
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamWConfig, ModuleOptimizer, SgdConfig};
use burn::tensor::{Bytes, Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::config::{OptimizerConfig, TrainConfig};
use super::device::{DeviceChoice, resolve_for};
use super::doctor::ModelCost;
use super::engine::Emitter;
use super::events::{EpochMetrics, Outcome, TrainEvent};
use super::tensors::{DeviceData, Predictor, score};
use super::writer::{EpochWrite, StoreWriter};
use crate::data::{PreparedData, Task};
use crate::model::Network;
use crate::model::cpu_kernels::{cross_entropy, served_device};
use crate::runs::{
    BestSummary, CheckpointEntry, CheckpointIndex, MetricPoint, RunDir, RunRecord, RunStatus,
    SplitName,
};

/// Batch progress events (and UI repaints) are throttled to this interval.
const BATCH_EVENT_INTERVAL_SECS: f64 = 0.05;
/// A live training-loss point is read back (one device sync) at most this often.
const LIVE_LOSS_INTERVAL_SECS: f64 = 1.0;

static INIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub(crate) struct FitPlan {
    pub dir: RunDir,
    pub record: RunRecord,
    pub data: PreparedData,
    pub device: DeviceChoice,
    pub resume_from: Option<CheckpointEntry>,
    pub judge: Option<EpochJudge>,
    /// A warm start's weights (and optimizer state), used when not resuming.
    pub initial: Option<InitialWeights>,
}

/// What a run's first epoch starts from.
enum StartFrom {
    Scratch,
    /// A checkpoint of the run itself (resume).
    Checkpoint(CheckpointEntry),
    /// Another model's weights (a warm start).
    Weights(InitialWeights),
}

/// Burnpack model bytes and, optionally, optimizer state to start a new run from.
pub struct InitialWeights {
    pub model: Vec<u8>,
    pub optimizer: Option<Vec<u8>>,
}

/// Asked after every epoch (once its checkpoint is saved) whether the run should go on; a
/// reason ends it as `pruned` (a sweep's pruner says so when a trial lags behind the others).
pub type EpochJudge = std::sync::Arc<dyn Fn(&EpochMetrics) -> Option<String> + Send + Sync>;

/// Why training ended early, with the message stored in the run.
enum Ending {
    Stopped,
    EarlyStopped(String),
    Pruned(String),
    Diverged(String),
    Failed(String),
}

pub(crate) fn run_fit(plan: FitPlan, emitter: &Emitter, stop: &AtomicBool) {
    super::threads::in_training_pool(|| fit(plan, emitter, stop));
}

fn fit(plan: FitPlan, emitter: &Emitter, stop: &AtomicBool) {
    // On this thread and the pool's: the training pool's, as `fit` runs inside it.
    super::denormals::flush_to_zero();
    let FitPlan {
        dir,
        mut record,
        data,
        device,
        resume_from,
        judge,
        initial,
    } = plan;
    let start_from = match (resume_from, initial) {
        (Some(entry), _) => StartFrom::Checkpoint(entry),
        (None, Some(weights)) => StartFrom::Weights(weights),
        (None, None) => StartFrom::Scratch,
    };
    let ending = std::thread::scope(|scope| {
        let writer = StoreWriter::start(scope, &dir, emitter);
        let parts = Parts {
            dir: &dir,
            data: &data,
            emitter,
            writer: &writer,
        };
        let ending = match Trainer::new(parts, &mut record, device, start_from, judge) {
            Ok(mut trainer) => trainer.train(stop),
            Err(message) => Some(Ending::Failed(message)),
        };
        // Every write of the run lands before its end is recorded; if one failed, the record
        // goes back to the last one written (it names only checkpoints on disk).
        match writer.finish() {
            (Some(message), written) => {
                if let Some(written) = written {
                    record = written;
                }
                Some(Ending::Failed(message))
            }
            (None, _) => ending,
        }
    });
    let (status, outcome, message) = match ending {
        None => (
            RunStatus::Completed,
            Outcome::Completed,
            format!("trained {} epochs", record.epochs_completed),
        ),
        Some(Ending::Stopped) => (
            RunStatus::Stopped,
            Outcome::Stopped,
            format!(
                "stopped after {} epochs; resume continues from there",
                record.epochs_completed
            ),
        ),
        Some(Ending::EarlyStopped(message)) => {
            (RunStatus::EarlyStopped, Outcome::EarlyStopped, message)
        }
        Some(Ending::Pruned(message)) => (RunStatus::Pruned, Outcome::Pruned, message),
        Some(Ending::Diverged(message)) => (RunStatus::Diverged, Outcome::Diverged, message),
        Some(Ending::Failed(message)) => (RunStatus::Failed, Outcome::Failed, message),
    };
    record.status = status;
    record.status_message = Some(message.clone());
    record.updated = chrono::Utc::now().to_rfc3339();
    if let Err(error) = dir.write_record(&record) {
        emitter.send(TrainEvent::Warning {
            message: format!("could not record the run's end: {error}"),
        });
    }
    emitter.send(TrainEvent::Finished {
        outcome,
        epochs_completed: record.epochs_completed,
        message,
    });
}

/// What a trainer works with that outlives it: the run's folder and data, where events go, and
/// the thread that writes the folder.
struct Parts<'a, 'scope> {
    dir: &'a RunDir,
    data: &'a PreparedData,
    emitter: &'a Emitter,
    writer: &'a StoreWriter<'scope>,
}

struct Trainer<'a, 'scope> {
    dir: &'a RunDir,
    record: &'a mut RunRecord,
    data: &'a PreparedData,
    emitter: &'a Emitter,
    writer: &'a StoreWriter<'scope>,
    /// The run's checkpoint index: this loop is its only writer while it trains, so it is kept
    /// here and written whole after each checkpoint's files.
    index: CheckpointIndex,
    device: Device,
    train_device: Device,
    model: Network,
    optimizer: ModuleOptimizer,
    /// The training split on the device, uploaded once and permuted there each epoch; `None`
    /// on the CPU, where each epoch's rows are gathered straight from the host matrix.
    train: Option<DeviceData>,
    step: u64,
    /// Wall seconds of earlier sessions of this run, so curves continue on resume.
    wall_offset_secs: f64,
    /// The best checkpoint so far: its epoch and its value of the `best_by` metric.
    best: Option<(usize, f64)>,
    judge: Option<EpochJudge>,
}

impl<'a, 'scope> Trainer<'a, 'scope> {
    fn new(
        parts: Parts<'a, 'scope>,
        record: &'a mut RunRecord,
        choice: DeviceChoice,
        start_from: StartFrom,
        judge: Option<EpochJudge>,
    ) -> Result<Self, String> {
        let Parts {
            dir,
            data,
            emitter,
            writer,
        } = parts;
        let (input, outputs) = (data.preprocessor.input_shape(), data.output_width());
        // `auto` weighs the GPU against the CPU for this model when the doctor bench has a record.
        let cost = ModelCost::of(&record.model, &input, outputs, record.train.batch_size);
        let resolved = resolve_for(choice, Some(&cost)).map_err(|error| error.to_string())?;
        record.device = resolved.info.clone();
        let device = resolved.device;
        let train_device = device.clone().autodiff();
        let config = &record.train;
        // The device RNG is shared by every run in the process; seeding and initialising under
        // one lock keeps a run's initial weights a function of its seed alone.
        let mut model = {
            let _guard = INIT_LOCK
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            train_device.seed(config.seed);
            Network::new(&record.model, &input, outputs, &train_device)?
        };
        let mut optimizer = make_optimizer(config);
        if let StartFrom::Weights(initial) = &start_from {
            model = Network::from_burnpack(
                &record.model,
                &input,
                outputs,
                initial.model.clone(),
                &train_device,
            )
            .map_err(|error| format!("the parent model's weights: {error}"))?;
            if let Some(bytes) = &initial.optimizer {
                optimizer = optimizer
                    .from_bytes(Bytes::from_bytes_vec(bytes.clone()))
                    .map_err(|error| format!("the parent's optimizer state: {error:?}"))?;
            }
        }
        if let StartFrom::Checkpoint(entry) = &start_from {
            let model_bytes = dir
                .read_checkpoint_file(&entry.model_file)
                .map_err(|error| error.to_string())?;
            model =
                Network::from_burnpack(&record.model, &input, outputs, model_bytes, &train_device)
                    .map_err(|error| format!("checkpoint {}: {error}", entry.epoch))?;
            let optimizer_bytes = dir
                .read_checkpoint_file(&entry.optimizer_file)
                .map_err(|error| error.to_string())?;
            optimizer = optimizer
                .from_bytes(Bytes::from_bytes_vec(optimizer_bytes))
                .map_err(|error| {
                    format!("checkpoint {} optimizer state: {error:?}", entry.epoch)
                })?;
        }
        let best_by = record.train.best_by.clone().unwrap_or_default();
        let index = dir.read_index().map_err(|error| error.to_string())?;
        let best = index
            .best()
            .and_then(|best| Some((best.epoch, *best.metrics.get(&best_by.metric)?)));
        dir.write_record(record)
            .map_err(|error| error.to_string())?;
        writer.record_written(record);
        let on_cpu = served_device(&burn::tensor::DType::F32, &train_device);
        let train =
            (!on_cpu).then(|| DeviceData::upload(&data.train, data.schema.task(), &train_device));
        Ok(Self {
            dir,
            step: record.steps_completed,
            wall_offset_secs: record.train_secs,
            record,
            data,
            emitter,
            writer,
            index,
            device,
            train_device,
            model,
            optimizer,
            train,
            best,
            judge,
        })
    }

    fn train(&mut self, stop: &AtomicBool) -> Option<Ending> {
        let config = self.record.train.clone();
        let rows = self.data.train.rows;
        let batch_size = config.batch_size.min(rows).max(1);
        let batches = rows.div_ceil(batch_size);
        let start_epoch = self.record.epochs_completed;
        self.emitter.send(TrainEvent::Started {
            run_id: self.dir.id.clone(),
            run_name: self.record.name.clone(),
            device: self.record.device.clone(),
            task: self.data.schema.task(),
            model: self.record.model_summary(),
            start_epoch,
            total_epochs: config.epochs,
            batches_per_epoch: batches,
            train_rows: rows,
            valid_rows: self.data.valid.rows,
        });
        for warning in &self.data.warnings {
            self.emitter.send(TrainEvent::Warning {
                message: warning.clone(),
            });
        }
        let session_start = Instant::now();
        let mut samples_done = 0usize;
        let mut last_event = f64::NEG_INFINITY;
        let mut last_live_loss = 0.0;
        for epoch in start_epoch + 1..=config.epochs {
            let epoch_start = Instant::now();
            let order = self.epoch_order(epoch, &config);
            // Augmented images are drawn afresh each epoch from the seed and the epoch number,
            // so a resumed run sees what it would have seen without the interruption.
            let augment_seed = config.seed ^ (epoch as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
            let task = self.data.schema.task();
            let augmented = self.data.augmented_train(augment_seed);
            let epoch_data = match (&self.train, augmented) {
                (Some(train), None) => train.permuted(self.order_tensor(order)),
                (None, None) => {
                    DeviceData::upload_in_order(&self.data.train, &order, task, &self.train_device)
                }
                (_, Some(matrix)) => {
                    DeviceData::upload_in_order(&matrix, &order, task, &self.train_device)
                }
            };
            // [summed loss, correct predictions] over the epoch, on the device until its end.
            let mut tally_sum: Option<Tensor<1>> = None;
            for batch in 0..batches {
                if stop.load(Ordering::SeqCst) {
                    return Some(Ending::Stopped);
                }
                let start = batch * batch_size;
                let end = (start + batch_size).min(rows);
                let progress = (epoch - 1) as f64 + batch as f64 / batches as f64;
                let lr = config
                    .schedule
                    .rate(config.learning_rate, progress, config.epochs);
                super::threads::keep_warm();
                let (loss, tally) = self.batch_step(epoch_data.rows(start, end), lr);
                tally_sum = Some(match tally_sum.take() {
                    Some(sum) => sum + tally,
                    None => tally,
                });
                self.step += 1;
                samples_done += end - start;
                let elapsed = session_start.elapsed().as_secs_f64();
                if elapsed - last_live_loss >= LIVE_LOSS_INTERVAL_SECS && batch + 1 < batches {
                    last_live_loss = elapsed;
                    let value = loss.into_scalar::<f32>() as f64;
                    self.log(epoch, SplitName::Train, "batch_loss", value, elapsed);
                }
                if elapsed - last_event >= BATCH_EVENT_INTERVAL_SECS || batch + 1 == batches {
                    last_event = elapsed;
                    let samples_per_sec = samples_done as f64 / elapsed.max(1e-9);
                    let remaining = (config.epochs - epoch) * rows + (rows - end);
                    self.emitter.send(TrainEvent::Batch {
                        epoch,
                        batch: batch + 1,
                        batches,
                        step: self.step,
                        samples_per_sec,
                        eta_secs: remaining as f64 / samples_per_sec.max(1e-9),
                    });
                }
            }
            let tally = tally_sum
                .and_then(|sum| sum.into_data().try_to_vec::<f32>().ok())
                .unwrap_or_default();
            let train_loss = tally.first().map_or(f64::NAN, |&sum| f64::from(sum)) / rows as f64;
            let train_accuracy = (self.data.schema.task() == Task::Classification).then(|| {
                tally.get(1).map_or(f64::NAN, |&correct| f64::from(correct)) / rows as f64
            });
            let epoch_secs = epoch_start.elapsed().as_secs_f64();
            let lr = config
                .schedule
                .rate(config.learning_rate, (epoch - 1) as f64, config.epochs);
            if let Some(ending) = self.finish_epoch(
                epoch,
                train_loss,
                train_accuracy,
                lr,
                rows as f64 / epoch_secs.max(1e-9),
                session_start,
            ) {
                return Some(ending);
            }
        }
        None
    }

    /// A shuffled row order for the epoch, derived from the seed and the epoch number alone so a
    /// resumed run sees the same order it would have seen without the interruption.
    fn epoch_order(&self, epoch: usize, config: &TrainConfig) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.data.train.rows).collect();
        let mut rng =
            StdRng::seed_from_u64(config.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        order.shuffle(&mut rng);
        order
    }

    fn order_tensor(&self, order: Vec<usize>) -> Tensor<1, Int> {
        let rows = order.len();
        let order: Vec<i64> = order.into_iter().map(|row| row as i64).collect();
        Tensor::from_data(TensorData::new(order, [rows]), &self.train_device)
    }

    /// One optimisation step; returns the batch loss and the batch's tally, both still on the
    /// device: `[summed loss, correct predictions]` (regression: no predictions are counted).
    fn batch_step(&mut self, batch: DeviceData, lr: f64) -> (Tensor<1>, Tensor<1>) {
        let rows = batch.rows;
        let outputs = self.model.forward(batch.inputs, true);
        let (loss, tally) = match (batch.labels, batch.values) {
            (Some(targets), _) => cross_entropy(outputs, targets),
            (None, Some(targets)) => {
                let loss = MseLoss::new().forward(outputs, targets, Reduction::Mean);
                let summed = loss.clone().inner().mul_scalar(rows as f32);
                let tally = Tensor::cat(vec![summed.clone(), summed.zeros_like()], 0);
                (loss, tally)
            }
            (None, None) => unreachable!("uploaded data always has labels or values"),
        };
        self.model.step(&mut self.optimizer, lr, loss.backward());
        (loss, tally)
    }

    fn log(&self, epoch: usize, split: SplitName, metric: &str, value: f64, session_secs: f64) {
        self.append_all(&[MetricPoint {
            epoch,
            step: self.step,
            split,
            metric: metric.to_string(),
            value,
            wall_secs: self.wall_offset_secs + session_secs,
        }]);
    }

    fn append_all(&self, points: &[MetricPoint]) {
        self.writer
            .log(self.dir, self.emitter, points.to_vec(), None);
    }

    /// Validates, logs, checkpoints and applies the stopping rules at the end of an epoch.
    fn finish_epoch(
        &mut self,
        epoch: usize,
        train_loss: f64,
        train_accuracy: Option<f64>,
        learning_rate: f64,
        samples_per_sec: f64,
        session_start: Instant,
    ) -> Option<Ending> {
        if let Some(message) = self.writer.failure() {
            return Some(Ending::Failed(message));
        }
        let task = self.data.schema.task();
        let valid_model = self.model.valid();
        let predictor = Predictor {
            model: &valid_model,
            device: &self.device,
        };
        let outputs = match predictor.outputs(&self.data.valid.inputs, self.data.valid.width) {
            Ok(outputs) => outputs,
            Err(message) => return Some(Ending::Failed(message)),
        };
        let valid_score = score(
            &outputs,
            &self.data.valid,
            task,
            self.data.output_width(),
            self.data.preprocessor.target_std,
        );
        let (valid_loss, valid_accuracy, valid_rmse) =
            (valid_score.loss, valid_score.accuracy, valid_score.rmse);
        let session_secs = session_start.elapsed().as_secs_f64();
        let metrics = EpochMetrics {
            epoch,
            step: self.step,
            train_loss,
            valid_loss,
            train_accuracy,
            valid_accuracy,
            valid_rmse,
            learning_rate,
            samples_per_sec,
            wall_secs: self.wall_offset_secs + session_secs,
            confusion: valid_score.confusion.clone(),
        };
        let points = metrics.points();
        let metrics_for_judge = metrics.clone();
        self.emitter.send(TrainEvent::Epoch(metrics));

        if !train_loss.is_finite() || !valid_loss.is_finite() {
            let confusion = valid_score.confusion.map(|confusion| (epoch, confusion));
            self.writer.log(self.dir, self.emitter, points, confusion);
            self.record.train_secs = self.wall_offset_secs + session_secs;
            let value = if train_loss.is_nan() || valid_loss.is_nan() {
                "NaN"
            } else {
                "infinite"
            };
            let good = self.record.epochs_completed;
            return Some(Ending::Diverged(if good > 0 {
                format!(
                    "the loss became {value} at epoch {epoch}; the checkpoint of epoch {good} is kept: resume from it with a lower learning rate"
                )
            } else {
                format!(
                    "the loss became {value} at epoch {epoch}, before any checkpoint was saved; train a new run with a lower learning rate"
                )
            }));
        }

        let checkpoint_metrics: BTreeMap<String, f64> = points
            .iter()
            .map(|p| (format!("{}_{}", p.split.name(), p.metric), p.value))
            .collect();
        let entry = CheckpointEntry {
            epoch,
            step: self.step,
            model_file: format!("model-{epoch:04}.bpk"),
            optimizer_file: format!("optim-{epoch:04}.bpk"),
            metrics: checkpoint_metrics,
            confusion: valid_score.confusion,
            best: false,
            wall_secs: self.wall_offset_secs + session_secs,
        };
        let model_bytes = match self.model.to_burnpack() {
            Ok(bytes) => bytes,
            Err(message) => return Some(Ending::Failed(format!("saving the model: {message}"))),
        };
        let optimizer_bytes = match self.optimizer.into_bytes() {
            Ok(bytes) => bytes.to_vec(),
            Err(error) => return Some(Ending::Failed(format!("saving the optimizer: {error:?}"))),
        };
        let keep_last = self.record.train.keep_last_checkpoints;
        let best_by = self.record.train.best_by.clone().unwrap_or_default();
        self.index.best_by = self.record.train.best_by.clone();
        let dropped = self.index.insert(entry.clone(), keep_last);
        let best_entry = self.index.best();
        self.best = best_entry.and_then(|b| Some((b.epoch, *b.metrics.get(&best_by.metric)?)));
        self.record.epochs_completed = epoch;
        self.record.steps_completed = self.step;
        self.record.train_secs = self.wall_offset_secs + session_secs;
        self.record.best = best_entry.and_then(|b| {
            Some(BestSummary {
                epoch: b.epoch,
                valid_loss: b.valid_loss()?,
                valid_accuracy: b.metrics.get("valid_accuracy").copied(),
            })
        });
        self.record.updated = chrono::Utc::now().to_rfc3339();
        // The metrics, the checkpoint, the index and run.json, written in that order on the
        // writer's thread while the next epoch trains; it announces the checkpoint once saved.
        self.writer.epoch(
            self.dir,
            self.emitter,
            EpochWrite {
                points,
                entry,
                model_bytes,
                optimizer_bytes,
                index: self.index.clone(),
                dropped,
                record: self.record.clone(),
                best_epoch: self.best.map(|(epoch, _)| epoch),
            },
        );

        if let (Some(patience), Some((best_epoch, best_value))) =
            (self.record.train.early_stopping_patience, self.best)
            && epoch - best_epoch >= patience
        {
            let what = if best_by.metric == "valid_loss" {
                "validation loss".to_string()
            } else {
                best_by.metric.clone()
            };
            return Some(Ending::EarlyStopped(format!(
                "stopped early at epoch {epoch}: no better {what} than {best_value:.4} (epoch {best_epoch}) for {patience} epochs"
            )));
        }
        if let Some(judge) = &self.judge
            && let Some(reason) = judge(&metrics_for_judge)
        {
            return Some(Ending::Pruned(reason));
        }
        None
    }
}

fn make_optimizer(config: &TrainConfig) -> ModuleOptimizer {
    match config.optimizer {
        OptimizerConfig::Sgd { momentum } => {
            let momentum = (momentum > 0.0).then(|| MomentumConfig::new().with_momentum(momentum));
            SgdConfig::new().with_momentum(momentum).init()
        }
        OptimizerConfig::Adam => super::fused_adam::adam(),
        OptimizerConfig::AdamW { weight_decay } => AdamWConfig::new()
            .with_weight_decay(weight_decay as f32)
            .init(),
    }
}
