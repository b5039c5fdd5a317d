//! Small widgets shared by the forms.

/// What is wrong with a typed value: an error blocks Train, a warning only informs.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldIssue {
    Error(String),
    Warning(String),
}

impl FieldIssue {
    pub fn from_result<E: std::fmt::Display>(result: Result<(), E>) -> Option<Self> {
        result
            .err()
            .map(|error| FieldIssue::Error(error.to_string()))
    }

    pub fn is_error(&self) -> bool {
        matches!(self, FieldIssue::Error(_))
    }
}

/// A number field that keeps exactly what was typed (egui's `DragValue` ranges would clamp it
/// silently) and says right below it what is wrong with the value and why.
/// `check` sees the value after this frame's edit.
pub fn checked_number<N: egui::emath::Numeric>(
    ui: &mut egui::Ui,
    value: &mut N,
    speed: f64,
    label: egui::Id,
    check: impl Fn(N) -> Option<FieldIssue>,
) -> egui::Response {
    ui.vertical(|ui| {
        let response = ui
            .add(egui::DragValue::new(value).speed(speed).max_decimals(6))
            .labelled_by(label);
        issue_label(ui, check(*value).as_ref());
        response
    })
    .inner
}

/// Shows an issue in the colour of its severity, wrapped to the column's width.
pub fn issue_label(ui: &mut egui::Ui, issue: Option<&FieldIssue>) {
    let Some(issue) = issue else {
        return;
    };
    let (color, text) = match issue {
        FieldIssue::Error(text) => (ui.visuals().error_fg_color, text),
        FieldIssue::Warning(text) => (ui.visuals().warn_fg_color, text),
    };
    ui.add(egui::Label::new(egui::RichText::new(text).small().color(color)).wrap());
}

/// "1 run", "2 runs": a count with its noun in the right number.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
