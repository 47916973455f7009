"""A new Optuna study of the same search space on a new task (the even digits), transfer-tuned
from the imported history: the two lines that change are the sampler and the pruner."""

import optuna
from make_history import objective_for

from transfertune.history.sampler import TransferPruner, TransferSampler

optuna.logging.set_verbosity(optuna.logging.WARNING)
sampler = TransferSampler("my_history", method="at2", budget=40, seed=0, stop_when_spent=True)
study = optuna.create_study(study_name="digits-even", storage="sqlite:///history.db", direction="maximize",
                            sampler=sampler, pruner=TransferPruner(sampler))
study.optimize(objective_for([0, 2, 4, 6, 8]), n_trials=100)  # stops once the 40 epochs are spent
print(study.trials_dataframe()[["number", "state", "value"]].to_string(index=False))
print("epochs trained:", sum(len(t.intermediate_values) for t in study.trials))
print("best:", round(study.best_value, 4), study.best_params)
print("recommended:", sampler.recommend())
