//! Background work with a result to pick up later, without blocking a frame.

use std::sync::mpsc::{Receiver, TryRecvError, channel};

/// Why a background task gave no result: its thread panicked (a bug below us, e.g. in a file
/// dialog library). The UI reports it once instead of spinning forever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskCrashed(pub String);

impl std::fmt::Display for TaskCrashed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "it crashed ({})", self.0)
    }
}

/// A value being computed on another thread. Poll it once per frame with [`Promise::poll`].
pub struct Promise<T> {
    receiver: Receiver<Result<T, TaskCrashed>>,
}

impl<T: Send + 'static> Promise<T> {
    /// Runs `work` on a new thread and wakes the UI (`ctx`) when it is done or has panicked.
    pub fn spawn(ctx: &egui::Context, work: impl FnOnce() -> T + Send + 'static) -> Self {
        let (sender, receiver) = channel();
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                .map_err(|payload| TaskCrashed(panic_text(payload.as_ref())));
            let _ = sender.send(result);
            ctx.request_repaint();
        });
        Self { receiver }
    }

    /// The result once ready (`Some` exactly once): the value, or why there is none.
    pub fn poll(&self) -> Option<Result<T, TaskCrashed>> {
        match self.receiver.try_recv() {
            Ok(result) => Some(result),
            Err(TryRecvError::Empty) => None,
            // Not even the crash was reported (the thread could not unwind).
            Err(TryRecvError::Disconnected) => Some(Err(TaskCrashed(
                "the background thread ended without a result".to_string(),
            ))),
        }
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_string())
}

/// A named promise that is either idle or pending; the UI shows pending ones as spinners.
pub struct Task<T> {
    pending: Option<Promise<T>>,
}

impl<T> Default for Task<T> {
    fn default() -> Self {
        Self { pending: None }
    }
}

impl<T: Send + 'static> Task<T> {
    pub fn start(&mut self, ctx: &egui::Context, work: impl FnOnce() -> T + Send + 'static) {
        self.pending = Some(Promise::spawn(ctx, work));
    }

    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Takes the result (or the crash) if it arrived; afterwards the task is idle again.
    pub fn take(&mut self) -> Option<Result<T, TaskCrashed>> {
        let value = self.pending.as_ref()?.poll();
        if value.is_some() {
            self.pending = None;
        }
        value
    }
}
