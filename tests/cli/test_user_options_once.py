"""Options declared once: the CLI's defaults and ranges are the configs' (``ops/option_specs.py``),
``--help`` fits 80 columns, and usage errors are two plain lines.

* every numeric option with a Click range: its config accepts the boundary and rejects just
  outside it (and Click rejects it too); every default ``--help`` shows is the config's;
* ``bert finetune`` and ``bert pretrain`` reject ``--learning-rate 0`` with the same words;
* ``--help`` at 80 columns shows every option name whole, real metavars and examples;
* a usage error (unknown option, missing option, bad or out-of-range value) is exactly
  ``error: ...`` and ``hint: see bert COMMAND --help`` on stderr, exit 2, nothing written.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import typer

from bert_cli.cli.app import app
from bert_cli.errors import UsageError
from bert_cli.ops.extract import ExtractConfig
from bert_cli.ops.finetune import FinetuneConfig
from bert_cli.ops.finetune_squad import SquadFinetuneConfig
from bert_cli.ops.make_pretrain_data import MakePretrainDataConfig
from bert_cli.ops.predict import PredictConfig
from bert_cli.ops.pretrain import PretrainConfig, with_model_files
from bert_cli.ops.tokenize import TokenizeConfig

from conftest import error_line

COMMANDS = ("download", "extract", "finetune", "make-pretrain-data", "predict", "pretrain", "squad-threshold", "tokenize")

#: each command's configs, built from their required fields only (a value under test is added)
CONFIGS = {
    "extract": [lambda **kw: ExtractConfig(**kw)],
    "finetune": [lambda **kw: FinetuneConfig(task="mrpc", output_dir=Path("o"), **kw),
                 lambda **kw: SquadFinetuneConfig(output_dir=Path("o"), **kw)],
    "make-pretrain-data": [lambda **kw: MakePretrainDataConfig(input_files=("i",), output_files=("o",),
                                                               vocab_file=Path("v"), **kw)],
    "predict": [lambda **kw: PredictConfig(model="m", **kw)],
    "pretrain": [lambda **kw: PretrainConfig(input_file="i", output_dir=Path("o"), **kw)],
    "tokenize": [lambda **kw: TokenizeConfig(vocab_file=None, **kw)],
    "download": [],
    "squad-threshold": [],
}


def _command(name: str):
    return typer.main.get_command(app).commands[name]


def _field_for(name: str, param):
    """``(build, field)`` of the config field that ``param`` sets (by the field's flag), or None."""
    for build in CONFIGS[name]:
        sample = build()
        for f in dataclasses.fields(sample):
            spec = f.metadata.get("spec")
            if spec is not None and spec.flag in param.opts:
                return build, f
    return None


def _ranged(name: str):
    for param in _command(name).params:
        if getattr(param, "min", None) is not None or getattr(param, "max", None) is not None:
            yield param


def _just_outside(value, integer: bool, direction: int):
    return value + direction * (1 if integer else 1e-9)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_cli_range_is_the_configs(name):
    """Each numeric option with a range: the config accepts its boundary and rejects just outside."""
    checked = 0
    for param in _ranged(name):
        found = _field_for(name, param)
        assert found is not None, f"bert {name} {param.opts[0]} has a range but no config field checks it"
        build, field = found
        spec = field.metadata["spec"]
        for bound, direction in ((param.min, -1), (param.max, +1)):
            if bound is None:
                continue
            build(**{field.name: bound})  # the boundary is valid for the config too
            with pytest.raises(UsageError, match=re.escape(spec.flag)):
                build(**{field.name: _just_outside(bound, spec.integer, direction)})
            checked += 1
    if CONFIGS[name] and name != "predict":
        assert checked, f"bert {name}: no ranged option found (the walk is vacuous)"


@pytest.mark.parametrize("name", COMMANDS)
def test_defaults_in_help_are_the_configs(name):
    compared = 0
    for param in _command(name).params:
        found = _field_for(name, param)
        if found is None:
            continue
        compared += 1
        build, field = found
        default = build().__getattribute__(field.name)
        if param.default is None and default is not None:
            # a CLI default left to the config (finetune --max-seq-length: 128, squad 384): said in the help
            assert str(default) in (param.help or ""), (name, param.opts)
        else:
            assert param.default == default, (name, param.opts, param.default, default)
    assert compared or not CONFIGS[name], f"bert {name}: no option matched to its config (the walk is vacuous)"


def test_learning_rate_zero_is_refused_alike_by_finetune_and_pretrain(user):
    finetune = user.run("finetune", "mrpc", "--data-dir", "data", "-o", "ft", "--do-train", "--learning-rate", "0")
    pretrain = user.run("pretrain", "-i", "data.tfrecord", "-o", "pt", "--do-train", "--learning-rate", "0")
    for out, command in ((finetune, "finetune"), (pretrain, "pretrain")):
        assert out.returncode == 2, out.stderr
        assert out.stdout == ""
        assert out.stderr.splitlines() == [
            "error: --learning-rate must be a positive number, got 0.0",
            f"hint: see bert {command} --help",
        ]
    assert error_line(finetune.stderr) == error_line(pretrain.stderr)
    assert sorted(p.name for p in user.cwd.iterdir() if p.name != ".cache") == []


@pytest.mark.parametrize("flag, value", [("--keep-checkpoints", "0"), ("--train-batch-size", "0"),
                                         ("--save-checkpoints-steps", "-1"), ("--seed", "-1")])
def test_shared_training_options_are_refused_alike(user, flag, value):
    lines = []
    for command in (["finetune", "mrpc", "--data-dir", "data"], ["pretrain", "-i", "data.tfrecord"]):
        out = user.run(*command, "-o", "run", "--do-train", flag, value)
        assert out.returncode == 2, out.stderr
        assert flag in error_line(out.stderr)
        assert out.stderr.splitlines()[1:] == [f"hint: see bert {command[0]} --help"]
        lines.append(error_line(out.stderr))
    assert lines[0] == lines[1]
    assert not (user.cwd / "run").exists()


def test_pretrain_resolves_model_in_ops(minilm, tmp_path):
    """``bert pretrain --model DIR``: the config and weights come from the folder (ops, not the CLI)."""
    config = with_model_files(PretrainConfig(input_file="i", output_dir=tmp_path / "o", model=str(minilm),
                                             do_train=True))
    assert Path(config.bert_config_file).parent == minilm
    assert Path(config.init_checkpoint).name == "model.safetensors"
    explicit = tmp_path / "bert_config.json"
    explicit.write_text((minilm / "config.json").read_text())
    config = with_model_files(PretrainConfig(input_file="i", output_dir=tmp_path / "o", model=str(minilm),
                                             bert_config_file=explicit, do_train=True))
    assert Path(config.bert_config_file) == explicit  # explicit files win


# ----------------------------------------------------------------------------- --help at 80 columns


def _visible_names(argv: list[str]) -> list[str]:
    command = typer.main.get_command(app)
    if argv:
        command = command.commands[argv[0]]
    names = []
    for param in command.params:
        if getattr(param, "hidden", False) or getattr(param, "param_type_name", "") != "option":
            continue
        names += [o for o in [*param.opts, *param.secondary_opts] if o.startswith("--")]
    return names


@pytest.mark.parametrize("argv", [[]] + [[c] for c in COMMANDS], ids=lambda a: a[0] if a else "bert")
def test_help_at_80_columns_shows_every_option_whole(user, argv):
    out = user.run(*argv, "--help", env={"COLUMNS": "80"})
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "…" not in text, text
    assert max(len(line) for line in text.splitlines()) <= 80
    for name in _visible_names(argv):
        # in the option columns of a panel row (after the border, a required mark, the long
        # name(s) and the short one: --do-lower-case  --no-do-lower-case), whole
        row = rf"(?m)^│ (\* )?\s*(--[\w-]+,)?([-\w,]+\s+){{0,2}}{re.escape(name)}(?=[\s,]|$)"
        assert re.search(row, text), f"{name} cut or missing in:\n{text}"
    for label in ("<bool>", "<str>", "<path>", "<int>", "<float>", "<list[str]>", "<list[path]>"):
        assert label not in text, f"{label} shown as a metavar:\n{text}"
    if argv:
        assert "Examples:" in text and f"bert {argv[0]} " in text.split("Examples:")[1]


def test_options_are_grouped_into_panels(user):
    text = user.run("finetune", "--help", env={"COLUMNS": "80"}).stdout
    for panel in ("Model", "Data", "Training", "Output", "Device"):
        assert f"╭─ {panel} " in text, text


# ----------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize("argv, error", [
    (["finetune", "mrpc", "--no-such-option"], "error: no such option: --no-such-option"),
    (["pretrain", "-o", "run", "--do-train"], "error: missing option '--input-file' / '-i'"),
    (["tokenize", "--format", "xml"], "error: invalid value for '--format'"),
    (["extract", "--max-seq-length", "2"], "error: invalid value for '--max-seq-length'"),
    (["make-pretrain-data", "-o", "run/x.tfrecord", "--masked-lm-prob", "2"], "error: invalid value for '--masked-lm-prob'"),
    (["predict", "-m", "run", "--batch-size", "many"], "error: invalid value for '--batch-size'"),
    (["nosuch"], "error: no such command 'nosuch'"),
    (["finetune", "mrpc", "--do-train", "-o"], "error: option '-o' requires an argument"),
])
def test_usage_errors_are_two_plain_lines(user, argv, error):
    out = user.run(*argv, input="")
    assert out.returncode == 2, out.stderr
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 2, out.stderr
    assert lines[0].startswith(error), out.stderr
    where = "bert" if argv[0] == "nosuch" else f"bert {argv[0]}"
    assert lines[1] == f"hint: see {where} --help"
    assert "╭" not in out.stderr and "Usage:" not in out.stderr
    assert not (user.cwd / "run").exists()
