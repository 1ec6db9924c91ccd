"""Template helpers of registered code (tracking/code/)."""
from django import template

register = template.Library()


@register.simple_tag
def not_applicable(rec):
    """"" when "Apply…" can change this recommendation's keys on its run, else why not."""
    from tracking.code.services import applicability

    return applicability(rec.run, rec.change)
