"""A plain PyTorch training script that logs to MLflow with mlflow.log_metric.

Digits (scikit-learn's bundled 8x8 images, no download), a small MLP, a few seconds a run.
Under `mlflow run` or Runwise, MLFLOW_RUN_ID names the run to log into; alone, it starts one.
`--epoch_seconds` slows each epoch down (to watch it live); `--raise_at_epoch N` raises in epoch N.
"""
import argparse
import time

import mlflow
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adam", "adamw"])
    p.add_argument("--momentum", type=float, default=0.0)
    p.add_argument("--weight_decay", type=float, default=0.0)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epoch_seconds", type=float, default=0.0)
    p.add_argument("--raise_at_epoch", type=int, default=0)
    args = p.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    x, y = load_digits(return_X_y=True)
    x_train, x_val, y_train, y_val = train_test_split(x / 16.0, y, test_size=0.25, random_state=args.seed,
                                                      stratify=y)
    x_train, x_val = torch.tensor(x_train, dtype=torch.float32), torch.tensor(x_val, dtype=torch.float32)
    y_train, y_val = torch.tensor(y_train), torch.tensor(y_val)
    model = nn.Sequential(nn.Linear(64, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 10))
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    elif args.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    steps_per_epoch = (len(x_train) + args.batch_size - 1) // args.batch_size

    with mlflow.start_run():
        mlflow.log_params(vars(args))
        mlflow.set_tag("steps_per_epoch", steps_per_epoch)
        step = 0
        for epoch in range(1, args.epochs + 1):
            started = time.monotonic()
            if epoch == args.raise_at_epoch:
                raise RuntimeError(f"raised on purpose in epoch {epoch} (--raise_at_epoch)")
            model.train()
            order = torch.randperm(len(x_train))
            total, correct, seen = 0.0, 0, 0
            for i in range(0, len(x_train), args.batch_size):
                idx = order[i:i + args.batch_size]
                out = model(x_train[idx])
                loss = loss_fn(out, y_train[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                mlflow.log_metrics({"train_loss": loss.item(), "lr": args.lr}, step=step)
                total += loss.item() * len(idx)
                correct += (out.argmax(1) == y_train[idx]).sum().item()
                seen += len(idx)
                step += 1
            model.eval()
            with torch.no_grad():
                out = model(x_val)
                val_loss = loss_fn(out, y_val).item()
                val_acc = (out.argmax(1) == y_val).float().mean().item()
            mlflow.log_metrics({"train_loss_epoch": total / seen, "train_accuracy": correct / seen,
                                "val_loss": val_loss, "val_accuracy": val_acc, "epoch": epoch}, step=epoch)
            print(f"epoch {epoch}/{args.epochs}: train_loss {total / seen:.4f} val_loss {val_loss:.4f} "
                  f"val_accuracy {val_acc:.3f}", flush=True)
            time.sleep(max(0.0, args.epoch_seconds - (time.monotonic() - started)))


if __name__ == "__main__":
    main()
