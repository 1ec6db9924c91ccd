"""Forms of registered code: registration, the run form generated from an entry point's
parameters, following an experiment. Validation is the services' (MLprojectError), attached to
the field it names."""
from __future__ import annotations

from django import forms

from tracking.config import QUEUES


class CodeRegisterForm(forms.Form):
    name = forms.CharField(max_length=100)
    path = forms.CharField(max_length=1000, required=False, label="Directory",
                           help_text="A directory under CODE_ROOT holding an MLproject file.")
    git_url = forms.CharField(max_length=1000, required=False, label="Git URL",
                              help_text="Or a git repository (file, git, http(s) or ssh URL).")
    git_ref = forms.CharField(max_length=200, required=False, label="Git ref",
                              help_text="A branch, tag or commit (default: the remote's HEAD).")


def parameter_field(name: str, spec: dict) -> forms.Field:
    """A form field for one MLproject parameter: its type, its default (required without one)."""
    default, ptype = spec.get("default"), spec["type"]
    common = dict(label=name, required=default is None, initial=default,
                  help_text=f"{ptype}" + (f", default {default}" if default is not None else ", required"))
    if ptype == "float":
        return forms.CharField(widget=forms.TextInput(attrs={"inputmode": "decimal"}), **common)
    if ptype == "int":
        return forms.CharField(widget=forms.TextInput(attrs={"inputmode": "numeric"}), **common)
    return forms.CharField(max_length=4000, **common)


class CodeRunForm(forms.Form):
    """Set up a run of an entry point: one field per parameter, then name, queue, tags, note.
    Values stay text here: the service parses them with the parameter's type and names the
    parameter on a bad value (the same path as the API)."""

    name = forms.CharField(max_length=200, required=False, help_text="Leave empty for a name from the parameters.")
    queue = forms.ChoiceField(choices=[(q, q) for q in QUEUES], initial="cpu")
    stop_on_diagnosis = forms.BooleanField(required=False,
                                           help_text="Stop the run on a confident divergence or overfitting diagnosis.")
    tags = forms.CharField(max_length=500, required=False, help_text="Comma-separated.")
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def __init__(self, *args, entry_point: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.parameter_names = list(entry_point["parameters"])
        for name, spec in entry_point["parameters"].items():
            self.fields[f"param_{name}"] = parameter_field(name, spec)
        order = [f"param_{n}" for n in self.parameter_names] + ["name", "queue", "stop_on_diagnosis", "tags", "note"]
        self.order_fields(order)

    def parameter_fields(self):
        return [self[f"param_{n}"] for n in self.parameter_names]

    def other_fields(self):
        return [self[n] for n in ("name", "queue", "stop_on_diagnosis", "tags", "note")]

    def parameters(self) -> dict:
        return {n: self.cleaned_data[f"param_{n}"] for n in self.parameter_names
                if self.cleaned_data.get(f"param_{n}") not in (None, "")}

    def add_parameter_error(self, field: str, message: str):
        target = f"param_{field}" if f"param_{field}" in self.fields else (field if field in self.fields else None)
        self.add_error(target, f"{field}: {message}")


class FollowForm(forms.Form):
    experiment = forms.CharField(max_length=500, help_text="The name or the id of an experiment of the "
                                                            "tracking server.")
