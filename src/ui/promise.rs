//! Background work with a result to pick up later, without blocking a frame.

use std::sync::mpsc::{Receiver, channel};

/// A value being computed on another thread. Poll it once per frame with [`Promise::poll`].
pub struct Promise<T> {
    receiver: Receiver<T>,
}

impl<T: Send + 'static> Promise<T> {
    /// Runs `work` on a new thread and wakes the UI (`ctx`) when it is done.
    pub fn spawn(ctx: &egui::Context, work: impl FnOnce() -> T + Send + 'static) -> Self {
        let (sender, receiver) = channel();
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let _ = sender.send(work());
            ctx.request_repaint();
        });
        Self { receiver }
    }

    /// The result once ready (`Some` exactly once); a panicked worker yields `None` forever.
    pub fn poll(&self) -> Option<T> {
        self.receiver.try_recv().ok()
    }
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

    /// Takes the result if it arrived; afterwards the task is idle again.
    pub fn take(&mut self) -> Option<T> {
        let value = self.pending.as_ref()?.poll();
        if value.is_some() {
            self.pending = None;
        }
        value
    }
}
