"""Small template helpers for the web pages (formatting and table sort links)."""
from django import template
from django.utils.html import format_html

register = template.Library()


@register.filter
def get(mapping, key):
    return (mapping or {}).get(key)


@register.filter
def duration(td):
    """A timedelta as '1h 02m', '3m 05s' or '12s'."""
    if td is None:
        return ""
    seconds = int(td.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


@register.filter
def seconds(value):
    if value is None:
        return ""
    from datetime import timedelta
    return duration(timedelta(seconds=float(value)))


@register.filter
def num(value):
    """A config or metric value, short: 0.001 -> 0.001, 1e-05 -> 1e-05, None -> —."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return value


@register.simple_tag
def sort_link(label, key, current, query):
    """A table header link that sorts by key (toggling the direction when already sorted by it)."""
    descending = current == f"-{key}"
    active = current.lstrip("-") == key
    target = key if descending else f"-{key}" if active else key
    arrow = (" ▼" if descending else " ▲") if active else ""
    sep = "&" if query else ""
    return format_html('<a href="?{}{}sort={}">{}{}</a>', query, sep, target, label, arrow)
