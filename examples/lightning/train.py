"""PyTorch Lightning on scikit-learn's digits (bundled, no download), logged by MLFlowLogger.

Under `mlflow run` or Runwise, MLFLOW_RUN_ID names the run to log into; alone, the logger
creates a run in MLFLOW_EXPERIMENT_NAME (default "lightning-example") of MLFLOW_TRACKING_URI.
"""
import argparse
import os
import time

import lightning as L
import torch
from lightning.pytorch.loggers import MLFlowLogger
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Classifier(L.LightningModule):
    def __init__(self, lr, optimizer, dropout, hidden, epoch_seconds, raise_at_epoch):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 10))
        self.loss = nn.CrossEntropyLoss()
        self._epoch_started = time.monotonic()

    def training_step(self, batch, _):
        x, y = batch
        out = self.net(x)
        loss = self.loss(out, y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        self.log("train_accuracy", (out.argmax(1) == y).float().mean(), on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        out = self.net(x)
        self.log("val_loss", self.loss(out, y), on_epoch=True)
        self.log("val_accuracy", (out.argmax(1) == y).float().mean(), on_epoch=True)

    def on_train_epoch_start(self):
        self._epoch_started = time.monotonic()
        if self.current_epoch + 1 == self.hparams.raise_at_epoch:
            raise RuntimeError(f"raised on purpose in epoch {self.current_epoch + 1} (--raise_at_epoch)")

    def on_train_epoch_end(self):
        print(f"epoch {self.current_epoch + 1}: train_loss {self.trainer.callback_metrics.get('train_loss_epoch', 0):.4f}",
              flush=True)
        time.sleep(max(0.0, self.hparams.epoch_seconds - (time.monotonic() - self._epoch_started)))

    def configure_optimizers(self):
        if self.hparams.optimizer == "adam":
            return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--max_epochs", type=int, default=6)
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epoch_seconds", type=float, default=0.0)
    p.add_argument("--raise_at_epoch", type=int, default=0)
    args = p.parse_args()

    L.seed_everything(args.seed, verbose=False)
    torch.set_num_threads(1)
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x / 16.0, y, test_size=0.25, random_state=args.seed, stratify=y)

    def loader(x, y, shuffle):
        data = TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y))
        return DataLoader(data, batch_size=args.batch_size, shuffle=shuffle)

    logger = MLFlowLogger(experiment_name=os.environ.get("MLFLOW_EXPERIMENT_NAME", "lightning-example"),
                          tracking_uri=os.environ.get("MLFLOW_TRACKING_URI"), run_id=os.environ.get("MLFLOW_RUN_ID"))
    # the Trainer's settings too, so that a reader of the run sees its epochs and batch size
    logger.log_hyperparams({"max_epochs": args.max_epochs, "batch_size": args.batch_size, "seed": args.seed})
    model = Classifier(args.lr, args.optimizer, args.dropout, args.hidden, args.epoch_seconds, args.raise_at_epoch)
    trainer = L.Trainer(max_epochs=args.max_epochs, logger=logger, log_every_n_steps=1, accelerator="cpu",
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0)
    trainer.fit(model, loader(x_train, y_train, True), loader(x_val, y_val, False))


if __name__ == "__main__":
    main()
