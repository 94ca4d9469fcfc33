"""A plain baseline beside every trained model, where one is cheap: for tables (layout NF) a
standardised scikit-learn LogisticRegression on the same split. A network below it has not
learned what a linear model gets for free (the symptom of bad preprocessing), so a training
stage records both figures and warns when the model falls short."""

from __future__ import annotations

import sys

BASELINE_METRICS = ("baseline_test_accuracy_pct", "baseline_method", "vs_baseline_pts",
                    "baseline_warning")
LOGREG = "standardised LogisticRegression (scikit-learn, lbfgs, C=1, train split)"


def baseline_accuracy(data) -> tuple[float, str] | None:
    """(test accuracy in %, method) of the plain baseline for `data`; None where there is none
    (sequences and images: no linear model is a fair, cheap reference there)."""
    if data.x_train.ndim != 2:
        return None
    from sklearn.linear_model import LogisticRegression

    # data.x_* are already standardised per feature with the training split's statistics.
    clf = LogisticRegression(max_iter=5000)
    clf.fit(data.x_train, data.y_train)
    acc = float((clf.predict(data.x_test) == data.y_test).mean() * 100)
    return round(acc, 4), LOGREG


def baseline_metrics(data, test_accuracy_pct: float, who: str) -> dict:
    """The baseline's figures for a model with `test_accuracy_pct`, and a warning (printed to
    stderr and recorded, so the report repeats it) when the model is below the baseline."""
    found = baseline_accuracy(data)
    if found is None:
        return dict.fromkeys(BASELINE_METRICS)
    acc, method = found
    gap = round(test_accuracy_pct - acc, 4)
    warning = None
    if gap < 0:
        warning = (f"test accuracy {test_accuracy_pct:.2f} % is {-gap:.2f} pts below the plain "
                   f"baseline ({method}: {acc:.2f} %); check the preprocessing, epochs and lr")
        print(f"warning: {who}: {warning}", file=sys.stderr)
    return {"baseline_test_accuracy_pct": acc, "baseline_method": method,
            "vs_baseline_pts": gap, "baseline_warning": warning}
