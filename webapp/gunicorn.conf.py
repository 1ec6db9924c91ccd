"""gunicorn settings of the web app (docker-compose and the Dockerfile run
`gunicorn -c webapp/gunicorn.conf.py webapp.wsgi`; bench/bench_web.py measures the pages under it).

No garbage-collection pauses in page latency: a full collection walks every object the process
tracks, and Django, DRF and the rest of the app are ~10^5 of them, so every few requests one
request paid ~100-170 ms for it (measured with three 200,000-point metrics on the run page).
The app is loaded once in the master (`preload_app`); its objects are collected and then frozen
(`gc.freeze()`: moved to a permanent generation that collections skip) before the workers fork,
and each worker freezes once more after its first requests, which import and compile what the
pages need (templates, URL resolvers, the serializers). Collections then walk only what requests
made since, and the frozen pages stay shared between the workers (copy-on-write untouched).
"""
import gc
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
preload_app = True

FREEZE_AFTER_REQUESTS = (1, 10, 100)  # a worker's warm-up: what its first requests import and compile


def when_ready(server):
    """In the master, the app loaded: collect once and freeze what is left."""
    gc.collect()
    gc.freeze()


def post_fork(server, worker):
    worker.runwise_requests = 0


def post_request(worker, req, environ, resp):
    worker.runwise_requests = getattr(worker, "runwise_requests", 0) + 1
    if worker.runwise_requests in FREEZE_AFTER_REQUESTS:
        gc.collect()
        gc.freeze()
