//! The status bar: the latest message for a while, then the run store; every message of the
//! session stays in a list one click away, so a warning is never lost under the next one.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

/// How long the latest message stays in the bar.
const INFO_SHOWN: Duration = Duration::from_secs(8);
const ERROR_SHOWN: Duration = Duration::from_secs(30);
/// Messages kept in the list.
const HISTORY: usize = 200;

#[derive(Default)]
pub struct StatusBar {
    messages: Vec<(Instant, Level, String)>,
}

impl StatusBar {
    pub fn push(&mut self, level: Level, text: String) {
        if self.messages.len() == HISTORY {
            self.messages.remove(0);
        }
        self.messages.push((Instant::now(), level, text));
    }

    pub fn texts(&self) -> Vec<String> {
        self.messages
            .iter()
            .map(|(_, _, text)| text.clone())
            .collect()
    }

    /// `busy`: background work is pending (shows a spinner).
    pub fn ui(&self, ui: &mut egui::Ui, store: &std::path::Path, busy: bool) {
        ui.horizontal(|ui| {
            if busy {
                ui.spinner();
            }
            if !self.messages.is_empty() {
                ui.menu_button(format!("Messages ({})", self.messages.len()), |ui| {
                    egui::ScrollArea::vertical()
                        .max_height(300.0)
                        .show(ui, |ui| {
                            ui.set_max_width(640.0);
                            for (at, level, text) in self.messages.iter().rev() {
                                let seconds = at.elapsed().as_secs();
                                let color = level_color(ui, *level);
                                ui.horizontal_top(|ui| {
                                    ui.weak(format!("{seconds} s ago"));
                                    ui.add(
                                        egui::Label::new(egui::RichText::new(text).color(color))
                                            .wrap(),
                                    );
                                });
                            }
                        });
                });
            }
            match self.messages.last() {
                Some((at, level, text))
                    if at.elapsed()
                        < if *level == Level::Error {
                            ERROR_SHOWN
                        } else {
                            INFO_SHOWN
                        } =>
                {
                    let color = level_color(ui, *level);
                    ui.add(egui::Label::new(egui::RichText::new(text).color(color)).truncate());
                    // Fade to the store line when the message's time is up.
                    ui.ctx().request_repaint_after(INFO_SHOWN);
                }
                _ => {
                    ui.weak(format!("Run store: {}", store.display()));
                }
            }
        });
    }
}

fn level_color(ui: &egui::Ui, level: Level) -> egui::Color32 {
    match level {
        Level::Info => ui.visuals().text_color(),
        Level::Error => ui.visuals().error_fg_color,
    }
}
