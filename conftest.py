"""Test-session environment, set before Django's settings load (pytest.ini loads this file early
with `-p conftest`: pytest-django imports the settings before ordinary conftest files).

Every test session gets its own VAR_DIR (databases, MLflow store, artifacts,
mail) and its own Redis port, so parallel sessions never share state; so does each process of a
pytest-xdist run (`make test` runs two).
"""
import os
import socket
import tempfile


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_xdist_worker = os.environ.get("PYTEST_XDIST_WORKER")  # set by pytest-xdist before this file loads
if _xdist_worker and os.environ.get("RUNWISE_TEST_XDIST_WORKER") != _xdist_worker:
    # one of `make test`'s parallel processes: its own stores and Redis, not the controller's it inherited
    os.environ["RUNWISE_TEST_XDIST_WORKER"] = _xdist_worker
    os.environ["RUNWISE_TEST_VAR"] = tempfile.mkdtemp(prefix=f"runwise-test-{_xdist_worker}-")
    os.environ["RUNWISE_TEST_REDIS_PORT"] = str(_free_port())
elif "RUNWISE_TEST_VAR" not in os.environ:
    os.environ["RUNWISE_TEST_VAR"] = tempfile.mkdtemp(prefix="runwise-test-")
    os.environ["RUNWISE_TEST_REDIS_PORT"] = str(_free_port())
_var = os.environ["RUNWISE_TEST_VAR"]
os.environ["VAR_DIR"] = _var
os.environ["REDIS_URL"] = f"redis://127.0.0.1:{os.environ['RUNWISE_TEST_REDIS_PORT']}/0"
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_var}/mlflow.db"
os.environ["MLFLOW_ARTIFACT_ROOT"] = f"{_var}/mlartifacts"
os.environ.setdefault("OMP_NUM_THREADS", "1")
# MLflow's telemetry thread sets and unsets an environment variable while other threads read the
# environment (requests' proxy lookup): a KeyError, now and then, in a test's MLflow call.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
os.environ.setdefault("DEBUG", "True")
