"""Unit tests of the models, the loader, the schema layer and small helpers."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from conftest import FIXTURE_TRACKS, REPO, VALID_DIR
from validator import schemas
from validator.checker import load_validated
from validator.loader import load_document
from validator.models import CurvePoint, RunAnalysis, SeedResult, Track
from validator.problems import Problem, Problems, json_path

DIGITS_TRACK = REPO / "runs" / "digits-classification" / "track.yaml"
DIGITS_RUN = REPO / "runs" / "digits-classification" / "mlp-baseline" / "speedrun_analysis.json"


@pytest.fixture
def track_data() -> dict:
    return yaml.safe_load((FIXTURE_TRACKS / "digits-mini" / "track.yaml").read_text(encoding="utf-8"))


@pytest.fixture
def run_data() -> dict:
    return json.loads((VALID_DIR / "plain" / "speedrun_analysis.json").read_text(encoding="utf-8"))


def _messages(exc: pytest.ExceptionInfo) -> str:
    return " | ".join(e["msg"] for e in exc.value.errors())


# ----------------------------------------------------------------------------------------------------------- Track


def test_real_track_and_run_validate():
    track = Track.model_validate(yaml.safe_load(DIGITS_TRACK.read_text(encoding="utf-8")))
    run = RunAnalysis.model_validate(json.loads(DIGITS_RUN.read_text(encoding="utf-8")))
    assert track.id == run.track == "digits-classification"
    assert track.checkpoint_samples() == [1024, 2048, 4096, 8192, 16384, 32768]
    assert run.evaluation.checkpoints == track.checkpoint_samples()
    assert track.metric("val_top1").direction == "higher"
    assert track.metric("nope") is None


def test_track_defaults(track_data):
    for key in ("seeds", "tolerance", "rules", "settings", "board"):
        track_data.pop(key, None)
    track = Track.model_validate(track_data)
    assert track.board == "standard"
    assert track.seeds.minimum == 1 and track.seeds.significance is None
    assert track.settings == [] and track.rules == [] and track.links == []
    assert track.budget.counts.training and track.budget.counts.forward_only and not track.budget.counts.evaluation


def test_primary_metric_must_be_a_metric(track_data):
    track_data["primary_metric"] = "val_top5"
    with pytest.raises(ValidationError) as exc:
        Track.model_validate(track_data)
    assert "primary_metric 'val_top5' is not one of the metrics" in _messages(exc)


def test_metric_min_larger_than_max(track_data):
    track_data["metrics"][0]["min"], track_data["metrics"][0]["max"] = 1, 0
    with pytest.raises(ValidationError) as exc:
        Track.model_validate(track_data)
    assert "min (1.0) is larger than max (0.0)" in _messages(exc)
    assert exc.value.errors()[0]["loc"][:2] == ("metrics", 0)


def test_metric_min_equal_max_and_open_ranges_are_fine(track_data):
    track_data["metrics"][0]["min"] = track_data["metrics"][0]["max"] = 0.5
    track_data["metrics"][1]["min"] = None
    track_data["metrics"][1].pop("max")
    Track.model_validate(track_data)


def test_metric_ids_must_be_unique(track_data):
    track_data["metrics"][1]["id"] = "val_top1"
    with pytest.raises(ValidationError) as exc:
        Track.model_validate(track_data)
    assert "metric ids must be unique" in _messages(exc)


def test_ranking_rule_names_a_known_metric(track_data):
    track_data["ranking"]["tie_breakers"] = [{"kind": "final_metric", "metric": "loss"}]
    with pytest.raises(ValidationError) as exc:
        Track.model_validate(track_data)
    assert "names unknown metric 'loss'" in _messages(exc)


def test_settings_mean_needs_settings(track_data):
    track_data["ranking"]["primary"] = {"kind": "settings_mean"}
    with pytest.raises(ValidationError) as exc:
        Track.model_validate(track_data)
    assert "needs at least one entry in 'settings'" in _messages(exc)


def test_ranking_discriminator(track_data):
    track_data["ranking"]["primary"] = {"kind": "auc", "sample_limit": 2048}
    track = Track.model_validate(track_data)
    assert track.ranking.primary.axis == "linear" and track.ranking.primary.metric is None
    track_data["ranking"]["primary"] = {"kind": "fastest"}
    with pytest.raises(ValidationError):
        Track.model_validate(track_data)


@pytest.mark.parametrize(
    "checkpoints",
    [{"samples": [256], "dataset_multiples": [1]}, {}, {"allow_extra": True}],
    ids=["both", "neither", "neither-with-allow-extra"],
)
def test_checkpoints_need_exactly_one_source(track_data, checkpoints):
    track_data["checkpoints"] = checkpoints
    with pytest.raises(ValidationError) as exc:
        Track.model_validate(track_data)
    assert "exactly one of 'samples' or 'dataset_multiples'" in _messages(exc)


def test_checkpoint_samples_resolves_dataset_multiples(track_data):
    track = Track.model_validate(track_data)
    assert track.dataset.splits.train == 256
    assert track.checkpoint_samples() == [256, 512, 1024, 2048]

    track_data["checkpoints"] = {"dataset_multiples": [0.5, 4, 1.5, 0.5]}
    assert Track.model_validate(track_data).checkpoint_samples() == [128, 384, 1024]


def test_checkpoint_samples_sorted_and_unique(track_data):
    track_data["checkpoints"] = {"samples": [2048, 256, 512, 256]}
    assert Track.model_validate(track_data).checkpoint_samples() == [256, 512, 2048]


def test_no_checkpoints(track_data):
    track_data["checkpoints"] = None
    assert Track.model_validate(track_data).checkpoint_samples() == []


def test_checkpoints_must_be_positive(track_data):
    track_data["checkpoints"] = {"samples": [0, 256]}
    with pytest.raises(ValidationError):
        Track.model_validate(track_data)


def test_track_extra_field_forbidden(track_data):
    track_data["dataset"]["licence"] = "BSD"
    with pytest.raises(ValidationError) as exc:
        Track.model_validate(track_data)
    assert exc.value.errors()[0]["type"] == "extra_forbidden"
    assert exc.value.errors()[0]["loc"] == ("dataset", "licence")


@pytest.mark.parametrize("bad_id", ["Digits", "digits mini", "-digits", "", "a" * 65])
def test_track_id_is_a_slug(track_data, bad_id):
    track_data["id"] = bad_id
    with pytest.raises(ValidationError):
        Track.model_validate(track_data)


# ------------------------------------------------------------------------------------------------------ RunAnalysis


def test_run_model_defaults(run_data):
    del run_data["files"]
    run = RunAnalysis.model_validate(run_data)
    assert run.files.script == "run.py" and run.files.logs == []
    assert run.files.all_paths() == [("$.files.script", "run.py")]
    assert run.method is None and run.baseline is None and run.source is None
    assert run.compute.forward_only_samples == 0
    assert run.training.batch.accumulation == 1 and run.training.batch.world_size == 1


@pytest.mark.parametrize(
    "where",
    [(), ("compute",), ("training", "batch"), ("results", 0), ("files",), ("authors", 0)],
    ids=lambda w: ".".join(map(str, w)) or "top",
)
def test_run_extra_fields_forbidden(run_data, where):
    target = run_data
    for key in where:
        target = target[key]
    target["surprise"] = 1
    with pytest.raises(ValidationError) as exc:
        RunAnalysis.model_validate(run_data)
    (err,) = exc.value.errors()
    assert err["type"] == "extra_forbidden"
    assert err["loc"] == (*where, "surprise")


@pytest.mark.parametrize("login, ok", [("alice", True), ("Alice-Dev-2", True), ("a" * 39, True), ("a" * 40, False),
                                       ("-alice", False), ("alice-", False), ("al--ice", False), ("@alice", False),
                                       ("al ice", False), ("", False)])
def test_author_github_login(run_data, login, ok):
    run_data["authors"][0]["github"] = login
    if ok:
        assert RunAnalysis.model_validate(run_data).authors[0].github == login
    else:
        with pytest.raises(ValidationError):
            RunAnalysis.model_validate(run_data)


def test_run_free_form_extra_is_allowed(run_data):
    run_data["extra"] = {"origin": {"anything": [1, "two", None]}}
    assert RunAnalysis.model_validate(run_data).extra["origin"]["anything"] == [1, "two", None]


def test_run_date_parsed(run_data):
    import datetime as dt

    assert RunAnalysis.model_validate(run_data).date == dt.date(2025, 6, 1)


def test_files_all_paths(run_data):
    run_data["files"].update(config="config.yaml", artifacts=["plot.png"])
    paths = RunAnalysis.model_validate(run_data).files.all_paths()
    assert paths == [
        ("$.files.script", "run.py"),
        ("$.files.readme", "README.md"),
        ("$.files.config", "config.yaml"),
        ("$.files.logs[0]", "logs/seed0.log"),
        ("$.files.logs[1]", "logs/seed1.log"),
        ("$.files.artifacts[0]", "plot.png"),
    ]


@pytest.mark.parametrize("entrypoint", ["run.py", "run.py:", "run:build", "run.py:1build", "/abs dir/run.py:f"])
def test_model_entrypoint_format(run_data, entrypoint):
    run_data["model"]["entrypoint"] = entrypoint
    with pytest.raises(ValidationError):
        RunAnalysis.model_validate(run_data)


def test_curve_point_extras_are_metric_values():
    point = CurvePoint.model_validate({"samples": 256, "val_top1": 0.5, "loss": 2})
    assert point.samples == 256
    assert point.model_extra == {"val_top1": 0.5, "loss": 2.0}
    assert all(isinstance(v, float) for v in point.model_extra.values())


@pytest.mark.parametrize("value", ["high", None, [0.5], {"v": 0.5}])
def test_curve_point_extras_must_be_numbers(value):
    with pytest.raises(ValidationError) as exc:
        CurvePoint.model_validate({"samples": 256, "val_top1": value})
    assert exc.value.errors()[0]["loc"] == ("val_top1",)


def test_curve_point_needs_samples():
    with pytest.raises(ValidationError):
        CurvePoint.model_validate({"val_top1": 0.5})
    with pytest.raises(ValidationError):
        CurvePoint.model_validate({"samples": -1})


def test_seed_result_needs_a_final_metric():
    with pytest.raises(ValidationError):
        SeedResult.model_validate({"seed": 0, "final": {}})
    assert SeedResult.model_validate({"seed": 0, "final": {"val_top1": 1}}).curve == []


def test_schema_mirrors_curve_point_extras():
    curve_point = schemas.json_schema("run")["$defs"]["CurvePoint"]
    assert curve_point["additionalProperties"] == {"type": "number"}
    assert curve_point["required"] == ["samples"]


def test_committed_schemas_match_models():
    assert schemas.drift(REPO) == []


# ----------------------------------------------------------------------------------------------------------- loader


def _load(tmp_path: Path, name: str, content: str | bytes):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    problems = Problems(name)
    return load_document(path, name, problems), problems.items


def _rules_paths(problems: list[Problem]) -> list[tuple[str, str]]:
    return [(p.rule, p.path) for p in problems]


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_json_non_finite(tmp_path, token):
    data, problems = _load(tmp_path, "a.json", '{"results": [{"final": {"val_top1": %s}}], "ok": 1.5}' % token)
    assert _rules_paths(problems) == [("non-finite", "$.results[0].final.val_top1")]
    assert token in problems[0].message
    assert data == {"results": [{"final": {"val_top1": None}}], "ok": 1.5}


def test_json_overflow_is_non_finite(tmp_path):
    _, problems = _load(tmp_path, "a.json", '{"x": [1, 1e999]}')
    assert _rules_paths(problems) == [("non-finite", "$.x[1]")]


@pytest.mark.parametrize("token", [".nan", ".NaN", ".inf", "-.inf", ".Inf"])
def test_yaml_non_finite(tmp_path, token):
    data, problems = _load(tmp_path, "a.yaml", f"results:\n  - curve:\n      - samples: 1\n        val_top1: {token}\n")
    assert _rules_paths(problems) == [("non-finite", "$.results[0].curve[0].val_top1")]
    assert data["results"][0]["curve"][0] == {"samples": 1, "val_top1": None}


def test_every_non_finite_value_is_reported(tmp_path):
    _, problems = _load(tmp_path, "a.json", '{"a": NaN, "b": {"c": [Infinity, 1, -Infinity]}}')
    assert _rules_paths(problems) == [("non-finite", "$.a"), ("non-finite", "$.b.c[0]"), ("non-finite", "$.b.c[2]")]


def test_non_finite_stops_before_the_model(tmp_path):
    """A NaN is reported once, as non-finite, not again as a type error of the null that replaced it."""
    text = (VALID_DIR / "plain" / "speedrun_analysis.json").read_text(encoding="utf-8")
    text = text.replace('"wall_time_seconds": 0.1', '"wall_time_seconds": NaN')
    path = tmp_path / "speedrun_analysis.json"
    path.write_text(text, encoding="utf-8")
    problems = Problems("speedrun_analysis.json")
    assert load_validated(path, "run", problems) is None
    assert _rules_paths(problems.items) == [("non-finite", "$.compute.wall_time_seconds")]


def test_non_finite_reported_with_other_schema_errors(tmp_path):
    data = json.loads((VALID_DIR / "plain" / "speedrun_analysis.json").read_text(encoding="utf-8"))
    del data["team"]
    text = json.dumps(data).replace('"wall_time_seconds": 0.1', '"wall_time_seconds": NaN')
    path = tmp_path / "speedrun_analysis.json"
    path.write_text(text, encoding="utf-8")
    problems = Problems("speedrun_analysis.json")
    assert load_validated(path, "run", problems) is None
    assert sorted(_rules_paths(problems.items)) == [("missing-field", "$.team"),
                                                    ("non-finite", "$.compute.wall_time_seconds")]


@pytest.mark.parametrize(
    "name, content",
    [
        ("a.json", '{"a": 1, "a": 2}'),
        ("b.json", '{"outer": {"k": 1, "k": 1}}'),
        ("a.yaml", "a: 1\nb: 2\na: 3\n"),
        ("b.yaml", "outer:\n  k: 1\n  k: 1\n"),
        ("c.yml", "{a: 1, a: 1}\n"),
    ],
)
def test_duplicate_keys(tmp_path, name, content):
    data, problems = _load(tmp_path, name, content)
    assert data is None
    assert _rules_paths(problems) == [("duplicate-key", "$")]
    assert "a" in problems[0].message or "k" in problems[0].message


def test_yaml_duplicate_key_names_the_line(tmp_path):
    _, problems = _load(tmp_path, "a.yaml", "a: 1\nb: 2\na: 3\n")
    assert "line 3" in problems[0].message


@pytest.mark.parametrize("name", ["a.json", "a.yaml"])
def test_utf8_bom_accepted(tmp_path, name):
    body = '{"team": "équipe", "n": 1}' if name.endswith(".json") else "team: équipe\nn: 1\n"
    data, problems = _load(tmp_path, name, b"\xef\xbb\xbf" + body.encode("utf-8"))
    assert problems == []
    assert data == {"team": "équipe", "n": 1}


def test_yaml_dates_normalised(tmp_path):
    data, problems = _load(
        tmp_path, "a.yaml", "date: 2025-06-01\nwhen: 2025-06-01 12:30:00\nquoted: '2025-06-01'\nlist: [2024-02-29]\n"
    )
    assert problems == []
    assert data == {"date": "2025-06-01", "when": "2025-06-01T12:30:00", "quoted": "2025-06-01",
                    "list": ["2024-02-29"]}


def test_yaml_date_then_model(tmp_path):
    """An unquoted YAML date passes the JSON Schema (which wants a string) and the model."""
    problems = Problems("speedrun_analysis.yaml")
    run = load_validated(VALID_DIR / "yaml-analysis" / "speedrun_analysis.yaml", "run", problems)
    assert "date: 2025-06-01\n" in (VALID_DIR / "yaml-analysis" / "speedrun_analysis.yaml").read_text()
    assert problems.items == []
    assert str(run.date) == "2025-06-01"


def test_yaml_non_string_keys_become_strings(tmp_path):
    data, problems = _load(tmp_path, "a.yaml", "1: one\n2.5: [x]\nnull: yes\n")
    assert problems == []
    assert data == {"1": "one", "2.5": ["x"], "None": True}


@pytest.mark.parametrize(
    "name, content, rule",
    [
        ("a.json", "", "parse-error"),
        ("a.json", '{"a": 1,}', "parse-error"),
        ("a.json", "null", "empty-document"),
        ("a.yaml", "", "empty-document"),
        ("a.yaml", "# only a comment\n", "empty-document"),
        ("a.yaml", "a: [1, 2\n", "parse-error"),
        ("a.yaml", "a: !!python/object:os.system {}\n", "yaml-tag"),
        ("a.yaml", "a: !custom 1\n", "yaml-tag"),
        ("a.yaml", "? [1, 2]\n: x\n", "parse-error"),
        ("a.yaml", "{a: 1}: x\n", "parse-error"),
        ("a.json", b'{"a": "\xff"}', "not-text"),
        ("a.yaml", b"a: 1\x00\n", "not-text"),
    ],
)
def test_unloadable_documents(tmp_path, name, content, rule):
    data, problems = _load(tmp_path, name, content)
    assert data is None
    assert [p.rule for p in problems] == [rule]
    assert problems[0].path == "$"


def test_json_parse_error_names_line_and_column(tmp_path):
    _, problems = _load(tmp_path, "a.json", '{\n  "a": 1,\n}\n')
    assert "line 3, column 1" in problems[0].message


# ------------------------------------------------------------------------------------------------------- json_path


@pytest.mark.parametrize(
    "parts, expected",
    [
        ([], "$"),
        (["team"], "$.team"),
        (["results", 0, "final", "val_top1"], "$.results[0].final.val_top1"),
        (["results", 2, "curve", 10, "samples"], "$.results[2].curve[10].samples"),
        (["a-b_c"], "$.a-b_c"),
        (["a.b"], "$['a.b']"),
        (["two words"], "$['two words']"),
        ([""], "$['']"),
        (["0"], "$.0"),
        (("x", 1), "$.x[1]"),
    ],
)
def test_json_path(parts, expected):
    assert json_path(parts) == expected


def test_problem_line_and_dict():
    p = Problem("runs/t/r/speedrun_analysis.json", "$.team", "missing-field", "required field 'team' is missing", "add it")
    assert p.line() == "runs/t/r/speedrun_analysis.json::$.team: required field 'team' is missing [missing-field]"
    assert p.to_dict() == {"file": "runs/t/r/speedrun_analysis.json", "path": "$.team", "rule": "missing-field",
                           "message": "required field 'team' is missing", "hint": "add it", "severity": "error"}


def test_problems_collect_errors_and_warnings():
    p = Problems("f")
    p.error("$.a", "wrong-type", "bad")
    p.warn("$.b", "missing-setting", "meh")
    assert [(x.severity, x.file) for x in p.items] == [("error", "f"), ("warning", "f")]


# ------------------------------------------------------------------------------------------------------- schema layer


def _schema_problems(data: dict) -> list[tuple[str, str]]:
    problems = Problems("x")
    schemas.validate("run", data, problems)
    return sorted(_rules_paths(problems.items))


def test_schema_accepts_valid_run(run_data):
    assert _schema_problems(run_data) == []


def test_schema_reports_every_problem_at_once(run_data):
    data = copy.deepcopy(run_data)
    del data["team"]
    data["colour"] = "blue"
    data["compute"]["samples_seen"] = "1024"
    data["training"]["steps"] = -1
    data["date"] = "yesterday"
    data["results"][0]["curve"][0]["val_top1"] = "high"
    assert _schema_problems(data) == sorted([
        ("missing-field", "$.team"),
        ("unknown-field", "$.colour"),
        ("wrong-type", "$.compute.samples_seen"),
        ("out-of-range", "$.training.steps"),
        ("invalid-format", "$.date"),
        ("wrong-type", "$.results[0].curve[0].val_top1"),
    ])


def test_schema_and_model_agree_on_fixture_runs():
    """Every valid fixture passes both the JSON Schema and the model."""
    for case in sorted(p for p in VALID_DIR.iterdir() if p.is_dir()):
        (analysis,) = [p for p in case.iterdir() if p.name.startswith("speedrun_analysis.")]
        problems = Problems(analysis.name)
        assert load_validated(analysis, "run", problems) is not None, (case.name, problems.items)
        assert problems.items == []


def _edit(data: dict, dotted: str, value) -> dict:
    data = copy.deepcopy(data)
    *parents, last = dotted.split(".")
    target = data
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    target[int(last) if last.isdigit() else last] = value
    return data


@pytest.mark.parametrize(
    "dotted, value, expected",
    [
        ("training.steps", -1, ("out-of-range", "$.training.steps")),
        ("training.surprise", 1, ("unknown-field", "$.training.surprise")),
        ("training", "fast", ("wrong-type", "$.training")),
        ("model.entrypoint", "run.py", ("invalid-format", "$.model.entrypoint")),
        ("compute.flops", {"claimed": -1}, ("out-of-range", "$.compute.flops.claimed")),
        ("method", {"data_selection": True}, ("missing-field", "$.method.name")),
        ("source", {"title": "x", "url": "ftp://x"}, ("invalid-format", "$.source.url")),
        ("results.0.samples_seen", -5, ("out-of-range", "$.results[0].samples_seen")),
        ("results.0.samples_seen", 1.5, ("wrong-type", "$.results[0].samples_seen")),
        ("training.optimizer.params.betas", {"a": 1}, ("wrong-type", "$.training.optimizer.params.betas")),
    ],
)
def test_schema_errors_inside_optional_fields(run_data, dotted, value, expected):
    """An error inside `X | None` is reported where it is, not as 'is not of type null' on the parent."""
    assert _schema_problems(_edit(run_data, dotted, value)) == [expected]


def test_schema_reports_every_error_inside_an_optional_field(run_data):
    data = _edit(_edit(run_data, "training.steps", -1), "training.batch.micro_batch", 0)
    assert _schema_problems(data) == [("out-of-range", "$.training.batch.micro_batch"),
                                      ("out-of-range", "$.training.steps")]


@pytest.mark.parametrize(
    "rule, expected",
    [
        ({"kind": "auc"}, ("missing-field", "$.ranking.primary.sample_limit")),
        ({"kind": "auc", "sample_limit": 5, "axis": "cubic"}, ("invalid-value", "$.ranking.primary.axis")),
        ({"kind": "fastest"}, ("invalid-value", "$.ranking.primary.kind")),
        ({"metric": "val_top1"}, ("missing-field", "$.ranking.primary.kind")),
        ({"kind": "samples_to_threshold", "threshold": 0.9, "foo": 1}, ("unknown-field", "$.ranking.primary.foo")),
        ("auc", ("wrong-type", "$.ranking.primary")),
    ],
)
def test_schema_errors_in_tagged_unions(track_data, rule, expected):
    """A ranking rule is judged against the kind it names, not against every other kind."""
    problems = Problems("track.yaml")
    track_data["ranking"]["primary"] = rule
    schemas.validate("track", track_data, problems)
    assert _rules_paths(problems.items) == [expected]


def test_every_schema_rule_is_in_the_catalog(run_data):
    from validator.rules import CATALOG

    assert {rule for rule, _hint in schemas._KEYWORD_RULES.values()} <= set(CATALOG)
