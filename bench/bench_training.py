"""Training overhead and queue latency (issue 3).

On one model and data set (digits, MLP, batch 32, 10 epochs), in one process:
  1. the bare PyTorch loop, no logging;
  2. our engine with full per-step logging, as a worker runs it (MLflow metrics, params, tag,
     checkpoint artifacts at epoch ends at most every RUN_CHECKPOINT_SECONDS (2 s: none within
     this 0.1 s loop), final model, Run progress, stop polling, chart series);
  3. the bare loop calling mlflow.log_metric once a step for each metric.
Overhead = training-loop time of (2) over (1); throughput = steps per second of (2), counting
the wait until every point and artifact is stored, over (1)'s (the once-a-run set-up, creating
the MLflow run and logging params, is shown on its own line; the loop's own throughput, without
that wait, is 1 / (1 + overhead) and printed too). Then, with a
redis-server and a warm `celery worker` started here (free port, temp dirs), the latency from
enqueue to the first train_loss point readable in MLflow. Targets: overhead <= 3%,
throughput >= 0.9 of bare, queue latency p95 < 1 s. The summary is the last line.
"""
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stores import ROOT, throwaway_env  # noqa: E402

TMP, REDIS_PORT = throwaway_env("runwise-bench-")

import django  # noqa: E402

django.setup()

import torch  # noqa: E402
from django.core.management import call_command  # noqa: E402

from tracking.config import validate_config  # noqa: E402
from workers.callbacks import Callback  # noqa: E402
from workers.datasets import load_dataset  # noqa: E402
from workers.engine import Training, use_threads_from_env  # noqa: E402
from workers.nets import build_model  # noqa: E402

CONFIG = validate_config({"dataset": "digits", "model": "mlp", "batch_size": 32, "epochs": 10,
                          "optimizer": "sgd", "lr": 0.05, "momentum": 0.9})
# A model a user would train (issue 15): 3.2 M parameters, ~75 ms a step on one CPU thread, 26 MB
# of model and optimizer state a checkpoint; a checkpoint at every epoch end (6 steps). Six epochs
# a run: short runs, so that the bare loops run before and after each one are seconds apart.
REALISTIC = validate_config({"dataset": "digits", "model": "mlp", "width": 1024, "depth": 4, "batch_size": 256,
                             "epochs": int(os.environ.get("BENCH_REALISTIC_EPOCHS", "6")), "optimizer": "sgd",
                             "lr": 0.05, "momentum": 0.9})
REALISTIC_REPEATS = int(os.environ.get("BENCH_REALISTIC_REPEATS", "9"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "7"))
LATENCY_RUNS = int(os.environ.get("BENCH_LATENCY_RUNS", "20"))


# ---------------------------------------------------------------- 1. and 3.: the bare loop

def bare_loop(config, log_metric=None, grad_norm=False, cpu=None):
    """A plain loop: same data, model, batching and optimizer; returns (loop seconds, steps).
    `grad_norm`: also the gradient norm each step, read back (what the engine logs); `cpu` (a
    list): gets the loop thread's CPU seconds."""
    torch.manual_seed(config["seed"])
    gen = torch.Generator().manual_seed(config["seed"])
    data = load_dataset(config)
    model = build_model(config, data.n_features, data.n_classes, data.image_shape)
    opt = torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=config["momentum"])
    loss_fn = torch.nn.CrossEntropyLoss()
    bs, step = config["batch_size"], 0
    start, cpu_start = time.perf_counter(), time.thread_time()
    for epoch in range(1, config["epochs"] + 1):
        order = torch.randperm(data.n_train, generator=gen)
        total = 0.0
        for i in range(0, data.n_train, bs):
            idx = order[i:i + bs]
            loss = loss_fn(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            if log_metric or grad_norm:
                norm = torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]).item()
            opt.step()
            value = loss.item()
            total += value
            if log_metric:
                log_metric("train_loss", value, step=step)
                log_metric("lr", opt.param_groups[0]["lr"], step=step)
                log_metric("grad_norm", norm, step=step)
            step += 1
        with torch.no_grad():
            model.eval()
            out = model(data.x_val)
            val_loss = loss_fn(out, data.y_val).item()
            val_acc = (out.argmax(1) == data.y_val).float().mean().item()
            model.train()
        if log_metric:
            log_metric("val_loss", val_loss, step=epoch)
            log_metric("val_accuracy", val_acc, step=epoch)
    if cpu is not None:
        cpu.append(time.thread_time() - cpu_start)
    return time.perf_counter() - start, step


def naive_mlflow_loop(config):
    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    exp = mlflow.set_experiment("bench-naive")
    with mlflow.start_run(experiment_id=exp.experiment_id):
        return bare_loop(config, log_metric=mlflow.log_metric)


# ---------------------------------------------------------------- 2.: our engine, fully logged

class LoopStart(Callback):
    order = 10_000  # after every other on_fit_start (run set-up, params)

    def on_fit_start(self, training):
        training.bench_loop_start = time.perf_counter()
        training.bench_cpu_start = time.thread_time()


class LoopEnd(Callback):
    order = -10_000  # before every other on_fit_end (final flush, model, run end)

    def on_fit_end(self, training):
        training.bench_loop_end = time.perf_counter()
        training.bench_cpu_end = time.thread_time()


class DrainEnd(Callback):
    order = 10_000  # after MlflowLogger.on_teardown, which waits until the writer has stored everything

    def on_teardown(self, training):
        training.bench_drained = time.perf_counter()


class DroppingWriter:
    """Takes the writer's messages and drops them: the engine's own cost, without MLflow's."""

    def log_metrics(self, *args): ...
    def log_artifact_object(self, *args, on_staged=None):
        if on_staged is not None:
            on_staged()
    def terminate_run(self, *args): ...
    def flush(self, *args): ...
    def error_for(self, run_id): return None


class TimedLogger:
    """MlflowLogger whose checkpoints are timed: what the loop's thread spends on each (flush
    of the points before it, the copy of what the forward pass changes, the hand-over, and later
    the wait, before the next optimizer step, for the copy of the parameters and optimizer state)."""

    @staticmethod
    def make(*args, **kwargs):
        from workers.mlflow_logging import MlflowLogger

        class Timed(MlflowLogger):
            blocked = []

            def checkpoint(self, training, flush=True):
                t0 = time.perf_counter()
                super().checkpoint(training, flush)
                self.blocked.append(time.perf_counter() - t0)

        return Timed(*args, **kwargs)


def engine_run(config, run_factory, writer=None, checkpoint_seconds=None, blocked=None, trainings=None):
    """(loop s, loop + drain s, end-to-end s, steps) of one fully logged run: the loop, then
    the wait until every point and artifact is stored, then with run set-up and the final write.
    `blocked` (a list) gets the loop's time for each checkpoint."""
    from django.conf import settings

    from workers.mlflow_logging import make_client, shared_writer
    from workers.run_callbacks import RunSync
    from workers.training import claim_run, finish_run, open_mlflow_run

    run = run_factory()
    start = time.perf_counter()
    claim_run(run.pk, worker="bench", device="cpu")
    client = make_client(settings.MLFLOW_TRACKING_URI)
    mlflow_run_id, _, artifact_uri = open_mlflow_run(client, run)
    if checkpoint_seconds is None:
        checkpoint_seconds = settings.RUN_CHECKPOINT_SECONDS
    logger = TimedLogger.make(client, mlflow_run_id, writer or shared_writer(settings.MLFLOW_TRACKING_URI),
                              artifact_uri=artifact_uri, checkpoint_seconds=checkpoint_seconds)
    logger.blocked = blocked if blocked is not None else []
    first_checkpoint = len(logger.blocked)
    callbacks = [LoopStart(), LoopEnd(), DrainEnd(), RunSync(run.pk), logger]
    training = Training(config, callbacks, device="cpu")
    if trainings is not None:
        trainings.append(training)
    result = training.fit()
    finish_run(run.pk, worker="bench", status=result.status, reason=result.reason, result=result)
    end = time.perf_counter()
    # the copy of the parameters runs beside the next step: what the loop waited for it is blocked time too
    for i, waited in enumerate(logger.copy_waits):
        logger.blocked[first_checkpoint + i] += waited
    if writer is None:
        points = len(client.get_metric_history(mlflow_run_id, "train_loss"))
        assert points == result.steps_run, (points, result.steps_run)
    loop = training.bench_loop_end - training.bench_loop_start
    return loop, training.bench_drained - training.bench_loop_start, end - start, result.steps_run


def engine_alone(config):
    """Loop seconds of our engine with no callback: the loop itself, without any logging."""
    training = Training(config, [LoopStart(), LoopEnd()], device="cpu")
    training.fit()
    return training.bench_loop_end - training.bench_loop_start


def make_run_factory():
    from django.contrib.auth import get_user_model

    from tracking.models import Project, Run, Team

    user, _ = get_user_model().objects.get_or_create(username="bench")
    team, _ = Team.objects.get_or_create(name="bench")
    project, _ = Project.objects.get_or_create(team=team, name="bench")

    def make(config=CONFIG):
        return Run.objects.create(project=project, owner=user, name="bench", config=config, queue="cpu")

    return make


# ---------------------------------------------------------------- queue latency

def queue_latency(run_factory, n):
    from django.conf import settings

    from tracking.models import Run
    from workers.dispatch import enqueue_run
    from workers.mlflow_logging import make_client

    redis = subprocess.Popen([shutil.which("redis-server"), "--port", str(REDIS_PORT), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    log_path = TMP / "worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-P", "solo", "-Q", "cpu,gpu,default",
         "-l", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"bench-{os.getpid()}@%h"],
        cwd=ROOT, env=dict(os.environ, LOG_LEVEL="INFO"), stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)
    client = make_client(settings.MLFLOW_TRACKING_URI)
    latencies = []
    try:
        deadline = time.monotonic() + 90
        while b" ready." not in log_path.read_bytes():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("worker did not start:\n" + log_path.read_text()[-2000:])
            time.sleep(0.1)
        config = validate_config({**CONFIG, "epochs": 1})
        for i in range(n + 1):  # the first run warms the worker's caches; it is not counted
            run = run_factory(config)
            t0 = time.perf_counter()
            enqueue_run(run.pk)
            first = None
            while time.perf_counter() - t0 < 120:  # a loaded machine: slow, still measured
                mlflow_run_id = Run.objects.values_list("mlflow_run_id", flat=True).get(pk=run.pk)
                if mlflow_run_id and client.get_metric_history(mlflow_run_id, "train_loss"):
                    first = time.perf_counter() - t0
                    break
                time.sleep(0.01)
            if first is None:
                raise RuntimeError("no step logged within 120 s:\n" + log_path.read_text()[-2000:])
            while Run.objects.values_list("status", flat=True).get(pk=run.pk) not in Run.FINAL:
                time.sleep(0.02)
            if i:
                latencies.append(first)
    finally:
        worker.terminate()
        worker.wait(30)
        redis.terminate()
        redis.wait(10)
    return latencies


def p95(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def realistic(run_factory):
    """The realistic model: the bare loop, the bare loop with the gradient norm that the engine
    logs, our engine with no callback, and fully logged with a checkpoint at every epoch end and
    with none. Each repeat runs the four variants once, in an order rotated from repeat to repeat,
    with a bare loop before and after each; a variant's run is compared with the mean of those two
    bare loops (seconds apart), and the overhead is the median of those ratios: the machine's
    speed here drifts by 10-15% over tens of seconds, which a median of unpaired runs lets into
    the figure. The loop thread's CPU time is paired the same way: it leaves out time the loop
    waited for a core."""
    cfg = REALISTIC
    engine_run(cfg, run_factory, checkpoint_seconds=0)  # warm
    bare_loop(cfg)
    blocked = []

    def bare():
        cpu = []
        return bare_loop(cfg, cpu=cpu)[0], cpu[0]

    def bare_norm():
        cpu = []
        return bare_loop(cfg, grad_norm=True, cpu=cpu)[0], cpu[0]

    def alone():
        training = Training(cfg, [LoopStart(), LoopEnd()], device="cpu")
        training.fit()
        return (training.bench_loop_end - training.bench_loop_start,
                training.bench_cpu_end - training.bench_cpu_start)

    def logged(checkpoint_seconds, blocked_into=None):
        def run():
            holder = []
            engine_run(cfg, run_factory, checkpoint_seconds=checkpoint_seconds, blocked=blocked_into, trainings=holder)
            training = holder[0]
            return (training.bench_loop_end - training.bench_loop_start,
                    training.bench_cpu_end - training.bench_cpu_start)
        return run

    variants = {"norm": bare_norm, "alone": alone, "full": logged(0, blocked), "no_ckpt": logged(1e9)}
    names = ["bare"] + list(variants)
    walls = {name: [] for name in names}
    cpus = {name: [] for name in names}
    ratios_wall = {name: [] for name in variants}
    ratios_cpu = {name: [] for name in variants}
    previous = bare()
    walls["bare"].append(previous[0])
    cpus["bare"].append(previous[1])
    for r in range(REALISTIC_REPEATS):
        order = list(variants)[r % len(variants):] + list(variants)[:r % len(variants)]
        for name in order:
            wall, cpu = variants[name]()
            after = bare()
            walls[name].append(wall)
            cpus[name].append(cpu)
            walls["bare"].append(after[0])
            cpus["bare"].append(after[1])
            # against the mean of the bare loops run just before and just after it
            ratios_wall[name].append((wall / ((previous[0] + after[0]) / 2) - 1) * 100)
            ratios_cpu[name].append((cpu / ((previous[1] + after[1]) / 2) - 1) * 100)
            previous = after
    steps = bare_loop(validate_config({**cfg, "epochs": 1}))[1] * cfg["epochs"]

    def paired(ratios, name):
        return statistics.median(ratios[name])

    def spread(ratios, name):
        q = statistics.quantiles(ratios[name], n=4) if len(ratios[name]) >= 2 else ratios[name] * 3
        return f"quartiles {q[0]:+.1f}..{q[2]:+.1f}%"

    b = statistics.median(walls["bare"])
    epochs = cfg["epochs"]
    print(f"realistic: digits MLP width 1024 depth 4 (3.2 M parameters), batch 256, {epochs} epochs = {steps} steps "
          f"({b / steps * 1000:.0f} ms a step), a checkpoint (26 MB) at every epoch end; {REALISTIC_REPEATS} repeats, "
          f"order rotated, a bare loop between every two runs; each run against the mean of the bare loops just "
          f"before and after it, median of the ratios; "
          f"load average {os.getloadavg()[0]:.1f}")
    labels = {"bare": "bare PyTorch loop", "norm": "bare loop + the gradient norm each step",
              "alone": "our engine, no callback", "no_ckpt": "our engine, full logging, no checkpoint",
              "full": "our engine, full logging, a checkpoint every epoch"}
    for name in names:
        wall_ms, cpu_ms = statistics.median(walls[name]) * 1000, statistics.median(cpus[name]) * 1000
        line = f"  {labels[name] + ':':52s} {wall_ms:6.0f} ms wall, {cpu_ms:6.0f} ms CPU of the loop's thread"
        if name != "bare":
            line += (f"; vs bare: wall {paired(ratios_wall, name):+.1f}% ({spread(ratios_wall, name)}), "
                     f"CPU {paired(ratios_cpu, name):+.1f}%")
        print(line)
    overhead = paired(ratios_wall, "full")
    blocked.sort()
    print(f"  loop blocked per checkpoint (flush, copy of the buffers, hand-over, wait for the copy of the "
          f"parameters and optimizer state before the next optimizer step), {len(blocked)} checkpoints: "
          f"median {statistics.median(blocked) * 1000:.1f} ms, p95 {p95(blocked) * 1000:.1f} ms, "
          f"max {blocked[-1] * 1000:.1f} ms")
    return {"overhead": overhead, "cpu_overhead": paired(ratios_cpu, "full"),
            "blocked_median": statistics.median(blocked), "blocked_max": blocked[-1]}


def main():
    call_command("migrate", verbosity=0)
    use_threads_from_env()
    run_factory = make_run_factory()
    from workers.mlflow_logging import make_client

    make_client(os.environ["MLFLOW_TRACKING_URI"]).search_experiments()  # create the store once
    engine_run(CONFIG, run_factory)  # warm: imports, caches, the writer process
    bare_loop(CONFIG)

    bare, alone, loop, drained, total, dropped = [], [], [], [], [], []
    for _ in range(REPEATS):  # interleaved, so that machine noise hits all alike
        seconds, steps = bare_loop(CONFIG)
        bare.append(seconds)
        alone.append(engine_alone(CONFIG))
        dropped.append(engine_run(CONFIG, run_factory, writer=DroppingWriter())[0])
        loop_s, drained_s, total_s, engine_steps = engine_run(CONFIG, run_factory)
        loop.append(loop_s)
        drained.append(drained_s)
        total.append(total_s)
    assert engine_steps == steps
    b, lp, dr, tt = (statistics.median(v) for v in (bare, loop, drained, total))
    naive_s, _ = naive_mlflow_loop(CONFIG)
    overhead = (lp - b) / b * 100
    throughput = b / dr
    print(f"digits MLP, batch 32, 10 epochs = {steps} steps; median of {REPEATS}; torch threads "
          f"{torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  bare PyTorch loop:                        {b * 1000:8.1f} ms  ({steps / b:6.0f} steps/s)")
    al, dp = statistics.median(alone), statistics.median(dropped)
    print(f"  our engine, no callback (flat parameters): {al * 1000:7.1f} ms  {(al - b) / b * 100:+.1f}% vs bare")
    print(f"  our engine, every callback, MLflow writes dropped: {dp * 1000:.1f} ms  overhead {(dp - b) / b * 100:+.1f}%")
    print(f"  our engine, full logging, training loop:  {lp * 1000:8.1f} ms  overhead {overhead:+.1f}% "
          f"(loop throughput {b / lp:.2f} of bare); logging's own cost {(lp - al) / al * 100:+.1f}% "
          f"over the engine with no callback")
    print(f"  ... until every point and artifact is stored: {dr * 1000:5.1f} ms  ({steps / dr:6.0f} steps/s, "
          f"throughput {throughput:.2f} of bare)")
    print(f"  ... with run set-up and final state (once a run): {tt * 1000:.1f} ms")
    print(f"  bare loop + mlflow.log_metric per step:   {naive_s * 1000:8.1f} ms  ({naive_s / b:.1f}x bare, "
          f"throughput {b / naive_s:.3f} of bare)")

    real = realistic(run_factory)

    lat = queue_latency(run_factory, LATENCY_RUNS)
    print(f"queue latency, enqueue -> first train_loss point in MLflow, warm worker, {len(lat)} runs: "
          f"median {statistics.median(lat) * 1000:.0f} ms, p95 {p95(lat) * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms")
    ok = (overhead <= 3 and throughput >= 0.9 and p95(lat) < 1.0 and real["overhead"] <= 3
          and real["blocked_median"] <= 0.010)
    print(f"SUMMARY realistic MLP 1024x4: overhead with a checkpoint every epoch {real['overhead']:+.1f}% (target <= 3%; "
          f"CPU of the loop's thread {real['cpu_overhead']:+.1f}%), "
          f"loop blocked per checkpoint median {real['blocked_median'] * 1000:.1f} ms (target <= 10; max "
          f"{real['blocked_max'] * 1000:.1f}); tiny MLP: "
          f"overhead {overhead:+.1f}% (target <= 3%), throughput until stored {throughput:.2f}x bare "
          f"(target >= 0.9; the loop's alone {b / lp:.2f}), logging's own cost {(lp - al) / al * 100:+.1f}%, "
          f"naive log_metric {naive_s / b:.1f}x bare, queue latency p95 {p95(lat) * 1000:.0f} ms (target < 1000): "
          f"{'all targets met' if ok else 'TARGETS MISSED'}")


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
