"""Forms. The run form is built from tracking.config.RunConfig (help texts, defaults, choices),
and its clean() calls the ONE validator, validate_config, attaching its message to the field."""
from __future__ import annotations

import typing

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm

from .config import DEFAULTS, FIELDS, ConfigError, validate_config
from .models import Project, Team
from .datasets import CsvError
from .datasets.uploads import csv_check
from .services import tag_names_parse

GROUPS = {
    "Data": ("dataset", "csv_file", "csv_label", "val_fraction", "train_subset", "seed"),
    "Model": ("model", "width", "depth", "activation", "batch_norm", "dropout"),
    "Optimizer": ("optimizer", "lr", "momentum", "nesterov", "weight_decay", "batch_size", "epochs", "grad_clip"),
    "Schedule": ("scheduler", "warmup_epochs", "step_size", "gamma", "restart_period", "cycle_mult", "pct_start"),
    "Regularisation": ("label_smoothing", "augment", "early_stopping_patience"),
    "Fine-tuning": ("init_from_run", "freeze_layers", "lr_layer_factor"),
    "LR range test": ("lr_min", "lr_max", "lr_find_steps"),
    "Execution": ("queue", "stop_on_diagnosis"),
}
CONFIG_KEYS = tuple(FIELDS)  # every key of the run config


class _ConfigNumber:
    """A number field of the run config. Its input is a text box (a browser's number box sends nothing
    for "abc", which the server can only call "required"), and what is not a number gets the
    validator's own message for the field: "lr: Input should be a valid number, ..."."""

    def __init__(self, *args, key, **kwargs):
        self.key = key
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        try:
            return super().to_python(value)
        except forms.ValidationError:
            try:
                validate_config({self.key: value.strip() if isinstance(value, str) else value})
            except ConfigError as exc:
                raise forms.ValidationError(f"{exc.field}: {exc.message}", code="invalid") from None
            raise


class ConfigFloatField(_ConfigNumber, forms.FloatField):
    widget = forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"})


class ConfigIntegerField(_ConfigNumber, forms.IntegerField):
    widget = forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"})


def _config_field(name, info) -> forms.Field:
    """A form field for one RunConfig field: its type, choices, default and description."""
    annotation, optional = info.annotation, False
    args = typing.get_args(annotation)
    if type(None) in args:  # Optional[X]
        optional = True
        annotation = next(a for a in args if a is not type(None))
    common = dict(label=name, help_text=info.description or "", initial=DEFAULTS[name])
    if typing.get_origin(annotation) is typing.Literal:
        return forms.ChoiceField(choices=[(c, c) for c in typing.get_args(annotation)], **common)
    if annotation is bool:
        return forms.BooleanField(required=False, **common)
    if annotation is int:
        return ConfigIntegerField(required=not optional, key=name, **common)
    if annotation is float:
        return ConfigFloatField(required=not optional, key=name, **common)
    return forms.CharField(required=not optional, empty_value=None if optional else "", **common)


class RunForm(forms.Form):
    """Set up a run: name, tags, note, and every key of the run config, grouped."""

    name = forms.CharField(max_length=200, required=False, help_text="Leave empty for a name from the config.")
    tags = forms.CharField(max_length=500, required=False, help_text="Comma-separated.")
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    csv_file = forms.FileField(required=False, label="CSV file",
                               help_text="For dataset 'csv': a header row, numeric feature columns.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for key, info in FIELDS.items():
            if key == "csv_path":
                self.fields[key] = forms.CharField(required=False, empty_value=None, widget=forms.HiddenInput)
            else:
                self.fields[key] = _config_field(key, info)

    def groups(self):
        """[(title, [bound fields])] in the order of the page; config keys no group names go last."""
        named = {name for names in GROUPS.values() for name in names}
        groups = [(title, [self[n] for n in names if n in self.fields]) for title, names in GROUPS.items()]
        rest = [self[k] for k in CONFIG_KEYS if k not in named and k != "csv_path"]
        return [(t, f) for t, f in groups if f] + ([("Other", rest)] if rest else [])

    def clean(self):
        data = super().clean()
        if self.errors:  # a field that is not even a number: its own message is clearer
            return data
        config = {key: data.get(key) for key in CONFIG_KEYS}
        upload = data.get("csv_file")
        self.csv_summary = None
        if upload:
            label = (config["csv_label"] or "").strip() or None
            try:  # the worker's own reader: what passes here trains there
                self.csv_summary = csv_check(uploaded=upload, label=label)
            except CsvError as exc:
                field = "csv_label" if label is not None and exc.column == label else "csv_file"
                self.add_error(field, f"{field}: {exc}")
                return data
            config["csv_path"] = "(uploaded)"  # the real path is set when the file is stored
        try:
            self.cleaned_config = validate_config(config)
        except ConfigError as exc:
            field = exc.field if exc.field in self.fields else None
            if exc.field == "csv_label" and not (config.get("csv_path")):
                field = "csv_file"
            self.add_error(field, f"{exc.field}: {exc.message}")
        return data

    def clean_tags(self):
        return _clean_tags(self.cleaned_data.get("tags", ""))

    def tag_names(self):
        return self.cleaned_data.get("tags") or []

    @classmethod
    def initial_from_run(cls, run):
        return {**run.config, "name": f"{run.name} (clone)", "tags": ", ".join(t.name for t in run.tags.all())}


class SignUpForm(UserCreationForm):
    """Sign-up through an invite link: username, email, password twice (Django's password validators)."""

    email = forms.EmailField(required=True, help_text="For password resets and run emails.")

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")

    def clean_email(self):
        email = self.cleaned_data["email"].strip()
        if get_user_model().objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this email exists: sign in instead, then open the link again.")
        return email


class RunNoteForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=10000)
    tags = forms.CharField(max_length=500, required=False, help_text="Comma-separated.")

    def clean_tags(self):
        return _clean_tags(self.cleaned_data.get("tags", ""))

    def tag_names(self):
        return self.cleaned_data.get("tags") or []


def _clean_tags(text):
    try:
        return tag_names_parse(text)
    except ConfigError as exc:
        raise forms.ValidationError(f"tags: {exc.message}") from None


class TeamForm(forms.ModelForm):
    class Meta:
        model = Team
        fields = ["name"]


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args, team=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.team = team

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if Project.objects.filter(team=self.team, name=name).exists():
            raise forms.ValidationError("the team already has a project with this name")
        return name
