"""Your tuning history, as an Optuna user has it: three studies (one per digits task) of a
scikit-learn MLP trained epoch by epoch, each epoch's validation accuracy reported, pruned by
Optuna's default pruner, in the SQLite file history.db of the working folder."""

import warnings
import numpy as np
import optuna
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

warnings.filterwarnings("ignore", category=ConvergenceWarning)
optuna.logging.set_verbosity(optuna.logging.WARNING)
digits = load_digits()
EPOCHS = 10


def task(labels):
    """A digits task: the images of these labels, split 70/30."""
    keep = np.isin(digits.target, labels)
    X, y = digits.data[keep] / 16.0, digits.target[keep]
    order = np.random.default_rng(0).permutation(len(X))
    cut = int(0.7 * len(X))
    return X[order[:cut]], y[order[:cut]], X[order[cut:]], y[order[cut:]], np.unique(y)


def objective_for(labels):
    Xt, yt, Xv, yv, classes = task(labels)

    def objective(trial):
        model = MLPClassifier(
            hidden_layer_sizes=(trial.suggest_int("hidden", 8, 256, log=True),),
            alpha=trial.suggest_float("alpha", 1e-6, 1e-1, log=True),
            learning_rate_init=trial.suggest_float("lr", 1e-4, 1e-1, log=True),
            activation=trial.suggest_categorical("activation", ["relu", "tanh"]),
            batch_size=64, random_state=0)
        for epoch in range(1, EPOCHS + 1):
            model.partial_fit(Xt, yt, classes=classes)
            accuracy = model.score(Xv, yv)
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return accuracy

    return objective


if __name__ == "__main__":  # the past: three studies of three digits tasks, TPE, 15 trials each
    storage = "sqlite:///history.db"
    for name, labels in [("digits-0to4", [0, 1, 2, 3, 4]), ("digits-5to9", [5, 6, 7, 8, 9]), ("digits-odd", [1, 3, 5, 7, 9])]:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
        study.optimize(objective_for(labels), n_trials=15)
        print(name, len(study.trials), "trials, best", round(study.best_value, 4))
