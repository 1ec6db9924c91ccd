"""Every number from a URL or a query string gives 400/404 (or a page that ignores it), never a 500:
every URL pattern of the URLconf, as a signed-in member, with huge, negative, unicode and other odd
values in each path parameter and in the query parameters the pages and the API read."""
import itertools
from urllib.parse import quote

import pytest
from django.core.handlers import wsgi
from django.http import HttpRequest, QueryDict
from django.test import Client
from rest_framework.authtoken.models import Token

from tests.web.test_security import PARAM, all_patterns, victim, with_ids  # noqa: F401 (victim: a fixture)

ODD_NUMBERS = ["99999999999999999999", "9223372036854775808", "9223372036854775807", "18446744073709551616",
               "0", "-1", "²", "٣", "１２", "1e3", "1.5", "0x10", " 7", "NaN", "inf", "💩", "", "%00", "1" * 400]
QUERY_KEYS = ["project", "page", "size", "status", "owner", "tag", "sort", "runs", "optimizer", "q", "search",
              "format", "page_size", "limit", "offset", "cursor", "kind", "team", "run", "next", "ordering"]


@pytest.fixture
def member(team_users):
    client = Client(raise_request_exception=False)
    client.force_login(team_users["member"])
    return client


@pytest.fixture
def api_member(team_users):
    token = Token.objects.create(user=team_users["member"])
    return Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Token {token.key}")


def client_for(route, member, api_member):
    return api_member if route.startswith("api/") else member


def routes():
    return [(route, name) for route, name in all_patterns() if name != "logout"]


def test_the_fuzz_covers_every_url_pattern():
    found = [route for route, _ in routes()]
    assert len(found) >= 40 and "teams/<id:team_id>/" in found and "api/runs/" in found, found


def substituted(route, ids, index, odd):
    """The route with its `index`-th parameter set to `odd` (URL-quoted) and the others to real ids."""
    count = itertools.count()

    def value(match):
        return quote(odd, safe="") if next(count) == index else with_ids(match.group(0), ids).lstrip("/")

    return "/" + PARAM.sub(value, route)


def test_odd_numbers_in_every_path_parameter_never_give_a_500(member, api_member, victim):
    failures, tried = [], 0
    for route, name in routes():
        for index in range(len(PARAM.findall(route))):
            for odd in ODD_NUMBERS:
                url = substituted(route, victim, index, odd)
                for method in ("get", "post"):
                    tried += 1
                    status = getattr(client_for(route, member, api_member), method)(url).status_code
                    if status >= 500:
                        failures.append((method, url[:100], status))
    assert not failures, failures[:20]
    assert tried > 1000


class QueryReads:
    """The query keys a request's code reads: `request.GET` (and DRF's `query_params`, the same
    object) records each key looked up, and `ALL` when code looked at the whole query (its length,
    keys, items, a copy, its URL-encoding, or the full path with the query string)."""

    ALL = "*"

    def __init__(self, monkeypatch):
        self.keys = set()
        reads = self

        class RecordingQueryDict(QueryDict):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.recording = True  # from here on: its own parsing above is no read

            def read(self, key):
                if getattr(self, "recording", False):
                    reads.keys.add(key)

            def __getitem__(self, key):
                self.read(key)
                return super().__getitem__(key)

            def _getlist(self, key, *args, **kwargs):
                self.read(key)
                return super()._getlist(key, *args, **kwargs)

            def __contains__(self, key):
                self.read(key)
                return super().__contains__(key)

        def whole(name):
            def method(self, *args, **kwargs):
                self.read(QueryReads.ALL)
                return getattr(QueryDict, name)(self, *args, **kwargs)
            return method

        for name in ("__iter__", "__len__", "__eq__", "__repr__", "__copy__", "__deepcopy__", "__getstate__",
                     "keys", "items", "lists", "values", "dict", "copy", "urlencode"):
            setattr(RecordingQueryDict, name, whole(name))
        full_path = HttpRequest._get_full_path

        def get_full_path(request, *args, **kwargs):
            reads.keys.add(QueryReads.ALL)
            return full_path(request, *args, **kwargs)

        monkeypatch.setattr(wsgi, "QueryDict", RecordingQueryDict)  # what WSGIRequest.GET is made of
        monkeypatch.setattr(HttpRequest, "_get_full_path", get_full_path)

    def of(self, keys):
        """Those of `keys` read so far (all of them after a whole-query read)."""
        return list(keys) if QueryReads.ALL in self.keys else [key for key in keys if key in self.keys]


def test_odd_numbers_in_query_parameters_never_give_a_500(member, api_member, victim, monkeypatch):
    reads = QueryReads(monkeypatch)
    failures, sent, read_by = [], 0, {}
    for route, name in routes():
        url = with_ids(route, victim)
        client = client_for(route, member, api_member)
        reads.keys.clear()
        if client.get(url).status_code >= 500:  # the keys the page reads on its own (recorded with those below)
            failures.append((url, client.get(url).status_code))
        for odd in ODD_NUMBERS:  # every parameter at once
            response = client.get(url, {key: odd for key in QUERY_KEYS})
            sent += 1
            if response.status_code >= 500:
                failures.append((url, odd, response.status_code))
        # One at a time, so that a 400 on one cannot hide another: each key the page reads (with
        # nothing else in the query, it takes the path of the plain request until it reads that key,
        # so a key that no request above read cannot change its answer).
        read_by[route] = reads.of(QUERY_KEYS)
        for key in read_by[route]:
            for odd in ("99999999999999999999", "²", "-1", "1e3"):
                response = client.get(url, {key: [odd, "1"]})
                sent += 1
                if response.status_code >= 500:
                    failures.append((url, key, odd, response.status_code))
    assert not failures, failures[:20]
    assert {"project", "status", "page"} <= set(read_by["api/runs/"]), read_by["api/runs/"]  # the recording works
    assert any(keys == QUERY_KEYS for keys in read_by.values())  # the history page reads its whole query
    pairs = sum(len(keys) for keys in read_by.values())
    print(f"{sent} requests over {len(read_by)} URL patterns; one key at a time: {pairs} (pattern, key) pairs "
          f"read, {len(read_by) * len(QUERY_KEYS) - pairs} never read by their page")
