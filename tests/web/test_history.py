"""The run history table: columns, sort, filters, pagination, and a constant number of queries."""
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.web.conftest import make_run
from tracking.models import Run, Tag


def names_on(response):
    return [r.name for r in response.context["page"]]


def test_the_table_shows_key_hyperparameters_and_best_metrics(member_client, team_users):
    make_run(team_users["project"], team_users["admin"], name="adam-run", optimizer="adam", lr=0.003,
             batch_size=128, epochs=7)
    body = member_client.get(f"/projects/{team_users['project'].pk}/").content.decode()
    for text in ("adam-run", "adam", "0.003", "128", "alice", "succeeded"):
        assert text in body, text


def test_it_filters_by_status_owner_optimizer_tag_and_text(member_client, team_users):
    p, alice, bob = team_users["project"], team_users["admin"], team_users["member"]
    a = make_run(p, alice, name="alpha", optimizer="adam", with_series=False)
    make_run(p, bob, name="beta", optimizer="sgd", status=Run.Status.FAILED, with_series=False)
    c = make_run(p, bob, name="gamma", optimizer="sgd", with_series=False)
    c.note = "tried the wider net"
    c.save()
    a.tags.add(Tag.objects.create(project=p, name="baseline"))
    url = f"/projects/{p.pk}/"
    assert names_on(member_client.get(url, {"status": "failed"})) == ["beta"]
    assert sorted(names_on(member_client.get(url, {"owner": bob.pk}))) == ["beta", "gamma"]
    assert names_on(member_client.get(url, {"optimizer": "adam"})) == ["alpha"]
    assert names_on(member_client.get(url, {"tag": Tag.objects.get(name="baseline").pk})) == ["alpha"]
    assert names_on(member_client.get(url, {"q": "wider"})) == ["gamma"]
    assert names_on(member_client.get(url, {"q": "ALP"})) == ["alpha"]


def test_it_sorts_by_a_column_both_ways(member_client, team_users):
    p = team_users["project"]
    for name, lr in (("mid", 0.01), ("low", 0.001), ("high", 0.5)):
        make_run(p, team_users["admin"], name=name, lr=lr, with_series=False)
    url = f"/projects/{p.pk}/"
    assert names_on(member_client.get(url, {"sort": "lr"})) == ["low", "mid", "high"]
    assert names_on(member_client.get(url, {"sort": "-lr"})) == ["high", "mid", "low"]
    assert names_on(member_client.get(url, {"sort": "best_val_loss"}))  # a summary column sorts too
    assert names_on(member_client.get(url, {"sort": "no-such-column"})) == ["high", "low", "mid"]  # newest first


def test_it_paginates(member_client, team_users):
    p = team_users["project"]
    Run.objects.bulk_create([Run(project=p, owner=team_users["admin"], name=f"r{i:03d}", config={"lr": 0.1})
                             for i in range(60)])
    first = member_client.get(f"/projects/{p.pk}/", {"size": 25})
    third = member_client.get(f"/projects/{p.pk}/", {"size": 25, "page": 3})
    assert len(names_on(first)) == 25 and len(names_on(third)) == 10
    assert first.context["page"].paginator.count == 60
    assert set(names_on(first)).isdisjoint(names_on(third))


def test_the_number_of_queries_does_not_grow_with_the_page_size(member_client, team_users):
    p = team_users["project"]
    for i in range(120):
        run = make_run(p, team_users["admin" if i % 2 else "member"], name=f"run{i}", with_series=False)
        run.tags.add(Tag.objects.get_or_create(project=p, name=f"t{i % 5}")[0])
    counts = {}
    for size in (25, 100):
        with CaptureQueriesContext(connection) as ctx:
            response = member_client.get(f"/projects/{p.pk}/", {"size": size, "sort": "-lr"})
        assert len(response.context["page"]) == size
        counts[size] = len(ctx.captured_queries)
    assert counts[25] == counts[100], counts
    assert counts[25] <= 10, counts


def test_empty_values_go_last_in_both_directions_on_every_sortable_column(member_client, team_users):
    from django.utils import timezone

    from tracking.selectors import SORTS

    p, alice = team_users["project"], team_users["admin"]
    a = make_run(p, alice, name="a", lr=0.01, with_series=False)
    b = make_run(p, alice, name="b", lr=0.1, optimizer="adam", batch_size=64, epochs=9, scheduler="cosine",
                 weight_decay=0.01, with_series=False)
    Run.objects.filter(pk=a.pk).update(best_val_loss=0.5, best_val_accuracy=0.8, started_at=timezone.now())
    Run.objects.filter(pk=b.pk).update(best_val_loss=0.7, best_val_accuracy=0.6, started_at=timezone.now())
    # An LR range test run: no val_loss, no accuracy; a run whose config lacks the keys; one not started.
    Run.objects.create(project=p, owner=alice, name="empty", kind=Run.Kind.LR_FIND, config={})
    url = f"/projects/{p.pk}/"
    for key in SORTS:
        if key in ("name", "status", "owner", "created"):
            continue  # never empty
        for sort in (key, f"-{key}"):
            assert names_on(member_client.get(url, {"sort": sort}))[-1] == "empty", sort
    assert names_on(member_client.get(url, {"sort": "best_val_loss"})) == ["a", "b", "empty"]
    assert names_on(member_client.get(url, {"sort": "-best_val_loss"})) == ["b", "a", "empty"]
