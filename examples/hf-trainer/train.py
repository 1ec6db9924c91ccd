"""transformers.Trainer on a tiny BERT built from a BertConfig (random weights, nothing
downloaded), on token sequences made in code: is token 7 in the sequence? The Trainer's MLflow
callback logs loss, learning_rate, grad_norm, epoch, eval_loss and eval_accuracy; under
`mlflow run` or Runwise it logs into the run MLFLOW_RUN_ID names.
"""
import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the Hub
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import (BertConfig, BertForSequenceClassification, Trainer, TrainerCallback,  # noqa: E402
                          TrainingArguments)


class Tokens(torch.utils.data.Dataset):
    def __init__(self, n, seed, length=12, vocab=30):
        rng = np.random.default_rng(seed)
        self.ids = rng.integers(1, vocab, size=(n, length))
        self.labels = (self.ids == 7).any(axis=1).astype(np.int64)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": torch.tensor(self.ids[i]), "attention_mask": torch.ones(len(self.ids[i]), dtype=torch.long),
                "labels": torch.tensor(self.labels[i])}


class Pace(TrainerCallback):
    """--epoch_seconds slows each epoch down (to watch it live); --raise_at_epoch N raises in epoch N."""

    def __init__(self, epoch_seconds, raise_at_epoch):
        self.epoch_seconds, self.raise_at_epoch, self.started = epoch_seconds, raise_at_epoch, time.monotonic()

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.started = time.monotonic()
        if int(round(state.epoch or 0)) + 1 == self.raise_at_epoch:
            raise RuntimeError(f"raised on purpose in epoch {self.raise_at_epoch} (--raise_at_epoch)")

    def on_epoch_end(self, args, state, control, **kwargs):
        print(f"epoch {state.epoch:.0f} done, step {state.global_step}", flush=True)
        time.sleep(max(0.0, self.epoch_seconds - (time.monotonic() - self.started)))


def accuracy(pred):
    return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--weight_decay", type=float, default=0.0)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epoch_seconds", type=float, default=0.0)
    p.add_argument("--raise_at_epoch", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)

    config = BertConfig(vocab_size=32, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=16, num_labels=2,
                        hidden_dropout_prob=args.dropout, attention_probs_dropout_prob=args.dropout)
    model = BertForSequenceClassification(config)
    with tempfile.TemporaryDirectory() as out:
        training = TrainingArguments(
            output_dir=out, learning_rate=args.lr, per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=256, num_train_epochs=args.epochs, weight_decay=args.weight_decay,
            eval_strategy="epoch", logging_strategy="steps", logging_steps=1, save_strategy="no", seed=args.seed,
            report_to=["mlflow"], use_cpu=True, disable_tqdm=True, dataloader_num_workers=0)
        trainer = Trainer(model=model, args=training, train_dataset=Tokens(512, args.seed),
                          eval_dataset=Tokens(256, args.seed + 1), compute_metrics=accuracy,
                          callbacks=[Pace(args.epoch_seconds, args.raise_at_epoch)])
        trainer.train()


if __name__ == "__main__":
    main()
