import torch
from sklearn.datasets import load_digits
from torch import nn

from transfertune import Tuner

torch.set_num_threads(1)                             # float sums depend on the thread count: one, so runs repeat
digits = load_digits()
even = digits.target % 2 == 0                        # a task the database has not seen
X = torch.tensor(digits.data[even] / 16.0, dtype=torch.float32)
y = torch.tensor(digits.target[even] // 2)           # labels 0..4
order = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))
train, val = order[: int(0.7 * len(X))], order[int(0.7 * len(X)) :]


def build(config):
    """The model and optimizer of a config of conf/base/spaces/mlp.yml."""
    layers, width = [], X.shape[1]
    for _ in range(config["n_layers"]):
        layers += [nn.Linear(width, config["hidden_units"]), nn.ReLU(), nn.Dropout(config["dropout"])]
        width = config["hidden_units"]
    model = nn.Sequential(*layers, nn.Linear(width, 5))
    return model, torch.optim.Adam(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])


def train_one_epoch(model, optimizer, batch_size):
    model.train()
    for batch in train[torch.randperm(len(train))].split(batch_size):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(X[batch]), y[batch]).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        return (model(X[val]).argmax(1) == y[val]).float().mean().item()


with Tuner(database="data/01_raw/digits_mlp", method="at2", store="data/07_model_output/tuner_example",
           budget=30, task="even-digits", seed=0) as tuner:
    for trial in tuner:                              # asks until 30 epochs are spent
        torch.manual_seed(trial.trial_id)            # the trial's initial weights, whoever asks it when
        model, optimizer = build(trial.config)
        if trial.start_epoch:                        # the method continues a trial: load its state
            state = tuner.load_checkpoint(trial)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
        for epoch in range(trial.start_epoch + 1, trial.epoch + 1):
            torch.manual_seed(1000 * trial.trial_id + epoch)   # batch order and dropout of this epoch
            accuracy = train_one_epoch(model, optimizer, trial.config["batch_size"])
            tuner.tell(trial, epoch, {"val_acc": accuracy},
                       checkpoint={"model": model.state_dict(), "optimizer": optimizer.state_dict()})
    print("recommended:", tuner.recommend())
    print(tuner.history()[["q", "trial", "epoch", "value", "best", "t"]].tail())
