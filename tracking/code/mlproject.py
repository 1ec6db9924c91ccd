"""MLflow's project format, read with MLflow's own loader (no Django).

    spec = read_mlproject(directory)      # {"name", "entry_points": {name: {"command", "parameters"}}}
    values = parameters_validate(spec["entry_points"]["main"], {"lr": "0.01"})   # typed values
    command = entry_point_command(directory, "main", values, storage_dir)         # MLflow's command line

`MLprojectError(field, message)` names what is wrong: a missing or invalid MLproject at
registration, an unknown parameter or a value of the wrong type when a run is set up.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

TYPES = ("float", "int", "string", "path", "uri")
TYPE_ALIASES = {"integer": "int", "str": "string", "double": "float", "number": "float"}


class MLprojectError(ValueError):
    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")


def find_mlproject(directory) -> Path | None:
    """The MLproject file of a directory (MLflow accepts any case of the name), or None."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    for child in directory.iterdir():
        if child.name.lower() == "mlproject" and child.is_file():
            return child
    return None


def read_mlproject(directory) -> dict:
    """Entry points and typed parameters of the project in `directory`, through MLflow's loader;
    MLprojectError when the file is missing or invalid, with the reason."""
    from mlflow.projects.utils import load_project

    if find_mlproject(directory) is None:
        raise MLprojectError("MLproject", f"no MLproject file in {directory}")
    try:
        project = load_project(str(directory))
    except Exception as exc:  # YAML errors, MLflow's ExecutionException/MlflowException: all mean "invalid"
        raise MLprojectError("MLproject", f"invalid MLproject: {_first_line(exc)}") from None
    names = _entry_point_names(find_mlproject(directory))
    if not names:
        raise MLprojectError("MLproject", "the MLproject declares no entry_points")
    spec = {"name": project.name or Path(directory).name, "entry_points": {}}
    for name in names:
        entry = project.get_entry_point(name)
        if not isinstance(entry.command, str) or not entry.command.strip():
            raise MLprojectError("MLproject", f"entry point {name!r} has no command")
        params = {}
        for pname, param in entry.parameters.items():
            ptype = TYPE_ALIASES.get(str(param.type).lower(), str(param.type).lower())
            if ptype not in TYPES:
                raise MLprojectError("MLproject", f"entry point {name!r}: parameter {pname!r} has type "
                                                  f"{param.type!r}, not one of {', '.join(TYPES)}")
            default = param.default
            if default is not None:
                try:
                    default = parse_value(ptype, default)
                except ValueError as exc:
                    raise MLprojectError("MLproject", f"entry point {name!r}: default of {pname!r}: {exc}") from None
            params[pname] = {"type": ptype, "default": default}
        try:
            entry.command.format(**{p: "x" for p in params})
        except (KeyError, IndexError, ValueError) as exc:
            raise MLprojectError("MLproject", f"entry point {name!r}: its command names {exc} , "
                                              "which is not one of its parameters") from None
        spec["entry_points"][name] = {"command": entry.command.strip(), "parameters": params}
    return spec


def _entry_point_names(path: Path) -> list[str]:
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entry_points = data.get("entry_points") if isinstance(data, dict) else None
    return [str(name) for name in entry_points] if isinstance(entry_points, dict) else []


def _first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def parse_value(ptype: str, raw):
    """A parameter value of MLflow type `ptype` from a form/API/param value; ValueError if it is not one."""
    if ptype == "float":
        if isinstance(raw, bool):
            raise ValueError(f"expected a number, got {raw!r}")
        try:
            value = float(str(raw).strip()) if not isinstance(raw, (int, float)) else float(raw)
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {raw!r}")
        return value
    if ptype == "int":
        if isinstance(raw, bool):
            raise ValueError(f"expected an integer, got {raw!r}")
        if isinstance(raw, float):
            if not raw.is_integer():
                raise ValueError(f"expected an integer, got {raw!r}")
            return int(raw)
        try:
            return int(str(raw).strip())
        except ValueError:
            raise ValueError(f"expected an integer, got {raw!r}") from None
    if not isinstance(raw, (str, int, float)):
        raise ValueError(f"expected text, got {raw!r}")
    value = str(raw)
    if ptype in ("path", "uri") and not value.strip():
        raise ValueError("must not be empty")
    if "\x00" in value or len(value) > 4000:
        raise ValueError("must be at most 4,000 characters, without NUL")
    return value


def parameters_validate(entry_point: dict, values: dict) -> dict:
    """Every parameter of the entry point with its typed value (defaults filled in);
    MLprojectError naming the parameter that is unknown, missing or of the wrong type."""
    if not isinstance(values, dict):
        raise MLprojectError("parameters", "must be a JSON object of parameter values")
    declared = entry_point["parameters"]
    for name in values:
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise MLprojectError(name, f"unknown parameter (the entry point takes: {known})")
    out = {}
    for name, spec in declared.items():
        raw = values.get(name)
        if raw is None or raw == "" and spec["type"] != "string":
            if spec["default"] is None:
                raise MLprojectError(name, f"required ({spec['type']}, no default)")
            out[name] = spec["default"]
            continue
        try:
            out[name] = parse_value(spec["type"], raw)
        except ValueError as exc:
            raise MLprojectError(name, f"{exc} ({spec['type']})") from None
    return out


def as_argument(value) -> str:
    """How a typed value is passed on the command line (and logged as an MLflow param)."""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def entry_point_command(directory, entry_point: str, values: dict, storage_dir) -> str:
    """The shell command of an entry point with these values: MLflow's own substitution
    (quoting, `path` parameters resolved) from the MLproject in `directory`."""
    from mlflow.projects.utils import load_project

    project = load_project(str(directory))
    entry = project.get_entry_point(entry_point)
    os.makedirs(storage_dir, exist_ok=True)
    return entry.compute_command({k: as_argument(v) for k, v in values.items()}, str(storage_dir))
