"""SqlStoreWriter against a real SQLite MLflow store: it leaves the store as log_batch would."""
import math
from pathlib import Path

import pytest
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from workers.mlflow_logging import SqlStoreWriter, make_client


@pytest.fixture
def store(tmp_path):
    client = make_client(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.create_experiment("bulk", artifact_location=str(tmp_path / "artifacts"))
    return client, experiment


def history(client, run_id, key):
    return sorted(((m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, key)),
                  key=lambda p: (p[0], p[1], str(p[2])))


POINTS = [("train_loss", 2.0 / (s + 1), 1_000 + s, s) for s in range(50)] + [
    ("lr", 0.1, 1_000 + s, s) for s in range(50)] + [
    ("val_loss", float("nan"), 2_000, 1), ("val_loss", float("inf"), 2_001, 2), ("val_loss", 0.5, 2_002, 3),
    ("grad_norm", -float("inf"), 3_000, 0), ("train_loss", 9.0, 5, 49),  # same step, older: not the latest
]


def test_bulk_rows_read_back_exactly_as_log_batch_rows(store):
    client, experiment = store
    bulk = SqlStoreWriter.for_client(client)
    assert bulk is not None
    by_bulk = client.create_run(experiment).info.run_id
    by_batch = client.create_run(experiment).info.run_id
    for start in range(0, len(POINTS), 40):  # several batches: latest_metrics updated across them
        bulk.write(by_bulk, POINTS[start:start + 40])
        client.log_batch(by_batch, metrics=[Metric(*p) for p in POINTS[start:start + 40]])
    for key in ("train_loss", "lr", "val_loss", "grad_norm"):
        a, b = history(client, by_bulk, key), history(client, by_batch, key)
        assert len(a) == len(b) > 0
        for (sa, ta, va), (sb, tb, vb) in zip(a, b):
            assert (sa, ta) == (sb, tb) and (va == vb or (math.isnan(va) and math.isnan(vb)))
    latest_a = client.get_run(by_bulk).data.metrics
    latest_b = client.get_run(by_batch).data.metrics
    assert latest_a.keys() == latest_b.keys() == {"train_loss", "lr", "val_loss", "grad_norm"}
    assert latest_a["train_loss"] == latest_b["train_loss"] == pytest.approx(2.0 / 50)
    assert latest_a["val_loss"] == latest_b["val_loss"] == 0.5
    assert latest_a["grad_norm"] == latest_b["grad_norm"] < -1e308


def test_a_batch_written_twice_is_stored_once(store):
    """A retried batch whose first commit did land: the duplicate rows go through log_batch,
    which keeps one of each."""
    client, experiment = store
    bulk = SqlStoreWriter.for_client(client)
    run_id = client.create_run(experiment).info.run_id
    bulk.write(run_id, POINTS[:30])
    bulk.write(run_id, POINTS[:40])
    assert [s for s, _, _ in history(client, run_id, "train_loss")] == list(range(40))


def test_a_finished_or_missing_run_takes_no_rows(store):
    client, experiment = store
    bulk = SqlStoreWriter.for_client(client)
    run_id = client.create_run(experiment).info.run_id
    client.delete_run(run_id)
    with pytest.raises(MlflowException, match="active"):
        bulk.write(run_id, POINTS[:5])
    with pytest.raises(MlflowException, match="not found"):
        bulk.write("0" * 32, POINTS[:5])
    client.restore_run(run_id)
    assert history(client, run_id, "train_loss") == []


def test_a_store_that_is_not_sql_gets_no_bulk_writer(tmp_path):
    class HttpLikeClient:  # what a client of an http:// tracking server has: no SQL engine
        class _tracking_client:
            store = object()

    assert SqlStoreWriter.for_client(HttpLikeClient()) is None


def test_the_insert_speaks_each_drivers_parameter_style():
    """SQLite's driver takes positional `?` parameters, psycopg (PostgreSQL) named ones: the same
    rows become tuples in the statement's column order or dicts."""
    import sqlalchemy as sa

    class Store:  # what SqlStoreWriter uses of a store; engines are created without connecting
        def __init__(self, url):
            self.engine = sa.create_engine(url)

    rows = [("train_loss", 0.5, 1_000, 3, False, "r1")]  # SqlStoreWriter.ROW order
    sqlite = SqlStoreWriter(None, Store("sqlite://"))
    assert "?" in sqlite._insert_sql
    columns = sqlite._insert_sql.split("(")[1].split(")")[0].replace('"', "").split(", ")
    assert dict(zip(columns, sqlite._driver_params(rows)[0])) == {
        "run_uuid": "r1", "key": "train_loss", "value": 0.5, "timestamp": 1_000, "step": 3, "is_nan": False}
    sqlite._positions = [5, 0, 1, 2, 3, 4]  # a driver whose statement lists run_uuid first
    assert sqlite._driver_params(rows) == [("r1", "train_loss", 0.5, 1_000, 3, False)]
    postgres = SqlStoreWriter(None, Store("postgresql+psycopg://u@127.0.0.1/db"))
    assert "%(key)s" in postgres._insert_sql
    assert postgres._driver_params(rows) == [
        {"run_uuid": "r1", "key": "train_loss", "value": 0.5, "timestamp": 1_000, "step": 3, "is_nan": False}]


def test_ending_a_run_leaves_it_as_set_terminated_does(store):
    client, experiment = store
    sql = SqlStoreWriter.for_client(client)
    by_sql, by_mlflow = (client.create_run(experiment).info.run_id for _ in range(2))
    sql.terminate(by_sql, "KILLED", 1_234_567)
    client.set_terminated(by_mlflow, "KILLED", 1_234_567)
    a, b = client.get_run(by_sql).info, client.get_run(by_mlflow).info
    assert (a.status, a.end_time) == (b.status, b.end_time) == ("KILLED", 1_234_567)
    with pytest.raises(Exception, match="run status"):
        sql.terminate(by_sql, "DONE", 1)  # not a RunStatus name: MLflow's own error
    client.delete_run(by_sql)
    with pytest.raises(MlflowException, match="active"):
        sql.terminate(by_sql, "FINISHED", 2)
    with pytest.raises(MlflowException, match="not found"):
        sql.terminate("0" * 32, "FINISHED", 2)
    client.restore_run(by_sql)
    assert client.get_run(by_sql).info.status == "KILLED"


def test_a_local_artifact_is_replaced_whole_and_leaves_no_staging_file(store):
    """Through a real writer process: each checkpoint is staged beside its place and renamed over
    it (a reader never sees half a file); an object that cannot be saved fails the run's writes
    and leaves the old checkpoint whole, with no staging file behind."""
    import torch

    from workers.mlflow_logging import MlflowWriter, load_checkpoint_file

    client, experiment = store
    run = client.create_run(experiment)
    uri = run.info.artifact_uri
    writer = MlflowWriter(client.tracking_uri)
    try:
        writer.log_artifact_object(run.info.run_id, "checkpoints", "last.pt", {"epoch": 1, "w": torch.ones(3)}, uri)
        writer.log_artifact_object(run.info.run_id, "checkpoints", "last.pt", {"epoch": 2, "w": torch.zeros(3)}, uri)
        writer.flush()
        saved = Path(uri) / "checkpoints"
        assert load_checkpoint_file(saved / "last.pt", "cpu")["epoch"] == 2
        writer.log_artifact_object(run.info.run_id, "checkpoints", "last.pt", {"epoch": 3, "bad": lambda: None}, uri)
        writer.flush()
        assert "lambda" in writer.error_for(run.info.run_id)  # the run's error: it cannot be pickled
        assert load_checkpoint_file(saved / "last.pt", "cpu")["epoch"] == 2  # the old one, whole
        assert [p.name for p in saved.iterdir()] == ["last.pt"]
        from workers.mlflow_logging import staging_dir

        staging = staging_dir(uri)  # outside the run's artifacts: never listed while half written
        assert staging.is_dir() and not staging.is_relative_to(Path(uri)) and list(staging.iterdir()) == []
        assert [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")] == ["checkpoints/last.pt"]
    finally:
        writer.close()


def test_artifacts_of_a_remote_style_store_are_uploaded_from_a_staged_file(store, tmp_path):
    """Without the run's artifact URI, the writer uploads the staged file with log_artifact and
    removes it."""
    import torch

    from workers.mlflow_logging import MlflowWriter, load_checkpoint_file

    client, experiment = store
    run_id = client.create_run(experiment).info.run_id
    writer = MlflowWriter(client.tracking_uri)
    try:
        writer.log_artifact_object(run_id, "model", "model.pt", {"state_dict": {"w": torch.ones(2)}})
        writer.terminate_run(run_id, "FINISHED")
        writer.flush()
        assert writer.error_for(run_id) is None
        path = client.download_artifacts(run_id, "model/model.pt", str(tmp_path))
        assert torch.equal(load_checkpoint_file(path, "cpu")["state_dict"]["w"], torch.ones(2))
        assert client.get_run(run_id).info.status == "FINISHED"
    finally:
        writer.close()


def test_point_batches_read_back_exactly_as_the_same_points_through_log_batch(store):
    """The loop's PointBatches (coalesced in the writer), with NaN and inf among their points and a
    resumed run's empty series: the same rows and latest metrics as log_batch."""
    from workers.mlflow_logging import PointBatch

    client, experiment = store
    sql = SqlStoreWriter.for_client(client)
    by_sql, by_batch = (client.create_run(experiment).info.run_id for _ in range(2))
    t0 = 1_700_000_000.0
    batches = []
    for first in (0, 20, 40):
        steps = range(first, first + 20)
        loss = [(s, 1.0 / (s + 1)) for s in steps]
        norm = [(s, float("inf") if s == 45 else float("nan") if s == 46 else 2.0) for s in steps]
        epoch = [(first // 20 + 1, 0.5 - first / 100)]
        batches.append(PointBatch([("train_loss", False, loss), ("grad_norm", False, norm),
                                   ("val_loss", True, epoch), ("lr", False, [])], first, [t0 + s * 0.01 for s in steps],
                                  {first // 20 + 1: t0 + first}, t0 + 99))
    sql.write(by_sql, [p for b in batches[:2] for p in b])  # two coalesced batches, then one
    sql.write(by_sql, list(batches[2]))
    client.log_batch(by_batch, metrics=[Metric(*p) for b in batches for p in b])
    for key in ("train_loss", "grad_norm", "val_loss"):
        a, b = history(client, by_sql, key), history(client, by_batch, key)
        assert len(a) == len(b) > 0
        for (sa, ta, va), (sb, tb, vb) in zip(a, b):
            assert (sa, ta) == (sb, tb) and (va == vb or (math.isnan(va) and math.isnan(vb)))
    assert client.get_run(by_sql).data.metrics == client.get_run(by_batch).data.metrics
