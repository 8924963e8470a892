"""The ``orchestrator skills train|eval|calibrate`` commands (Typer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from orchestrator.cli.errors import fail_command, reports_errors
from orchestrator.learning.calibrate import DEFAULT_CONFIDENCE_LEVEL
from orchestrator.learning.datasets import non_empty_column, read_csv
from orchestrator.learning.evaluate import batch_from_table, evaluate, load_version, validation_data
from orchestrator.learning.train import train_tabular_classifier, train_text_classifier

if TYPE_CHECKING:
    pass

__all__ = [
    "calibrate_command",
    "eval_command",
    "fail_command",
    "train_app",
]


# ---------------------------------------------------------------------------------------------
# Command line (registered by orchestrator.cli.commands)

train_app = typer.Typer(
    no_args_is_help=True,
    help="Train a new skill version from a labelled CSV: ONNX export, calibration, a skill folder.",
)


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=True)


def _emit(report: dict[str, Any]) -> None:
    if report.get("warning"):
        _console(stderr=True).print(f"[yellow]warning[/]: {report['warning']}", highlight=False)
    print(json.dumps(report))


SkillsDirOption = Annotated[
    Path | None, typer.Option(help="skills folder (default: ORCHESTRATOR_SKILLS_DIR or skills/)")
]
CsvOption = Annotated[Path, typer.Option("--csv", help="labelled CSV with a header row")]
VersionOption = Annotated[
    str | None, typer.Option(help="version (default 1.0.0, or the next minor of the newest)")
]
ValFractionOption = Annotated[
    float, typer.Option(help="share of rows held out (stratified) to check and calibrate")
]
TargetOption = Annotated[
    float, typer.Option(help="accuracy the kept (not escalated) answers must reach on val")
]
ConfidenceOption = Annotated[
    float | None,
    typer.Option(
        help="the threshold's one-sided Wilson lower bound must reach the target at this level "
        "(0.5: no margin)"
    ),
]
DescriptionOption = Annotated[
    str | None, typer.Option(help="what the skill does, for the planner (default: generated)")
]
ForceOption = Annotated[bool, typer.Option(help="overwrite an existing folder of that version")]
CrossFitOption = Annotated[
    bool,
    typer.Option(
        help="calibrate on every row, each answered by a copy fitted without it (1 / "
        "--val-fraction parts, at most 5), then fit on every row; --no-cross-fit: one held-out part "
        "(faster to train, wider margin)"
    ),
]


@train_app.command("text-classifier")
@reports_errors
def train_text_command(
    name: Annotated[str, typer.Option(help="skill name, lowercase snake_case")],
    csv_path: CsvOption,
    text_column: Annotated[str, typer.Option(help="column holding the text")] = "text",
    label_column: Annotated[str, typer.Option(help="column holding the label")] = "label",
    version: VersionOption = None,
    skills_dir: SkillsDirOption = None,
    val_fraction: ValFractionOption = 0.2,
    target_accuracy: TargetOption = 0.97,
    confidence_level: ConfidenceOption = DEFAULT_CONFIDENCE_LEVEL,
    description: DescriptionOption = None,
    force: ForceOption = False,
    tiers: Annotated[
        str | None,
        typer.Option(
            help="tiers to train: tfidf (NAME) and minilm (NAME_minilm, the shared sentence "
            "encoder + a head, calibrated as NAME's chain); default both"
        ),
    ] = None,
    label_share: Annotated[
        list[str] | None,
        typer.Option(
            help="LABEL=SHARE: calibrate for traffic where LABEL has this share (repeatable), "
            "e.g. oos=0.18 when out-of-scope texts are rarer in the CSV than on the line"
        ),
    ] = None,
    cross_fit: CrossFitOption = True,
) -> None:
    """A text classifier in two tiers (TF-IDF, then sentence embeddings); prints a JSON report."""
    report = train_text_classifier(
        csv_path,
        name=name,
        text_column=text_column,
        label_column=label_column,
        version=version,
        skills_dir=skills_dir,
        val_fraction=val_fraction,
        target_accuracy=target_accuracy,
        confidence_level=confidence_level,
        description=description,
        force=force,
        tiers=tiers,
        label_shares=_parse_shares(label_share),
        cross_fit=cross_fit,
    )
    _emit(report)


@train_app.command("tabular-classifier")
@reports_errors
def train_tabular_command(
    name: Annotated[str, typer.Option(help="skill name, lowercase snake_case")],
    csv_path: CsvOption,
    label_column: Annotated[str, typer.Option(help="column holding the label")] = "label",
    feature_columns: Annotated[
        str | None,
        typer.Option(help="comma-separated feature columns (default: all but the label)"),
    ] = None,
    model: Annotated[
        str, typer.Option(help="'gbm' (boosted trees) or 'logreg' (faster, many labels)")
    ] = "gbm",
    version: VersionOption = None,
    skills_dir: SkillsDirOption = None,
    val_fraction: ValFractionOption = 0.2,
    target_accuracy: TargetOption = 0.97,
    confidence_level: ConfidenceOption = DEFAULT_CONFIDENCE_LEVEL,
    description: DescriptionOption = None,
    force: ForceOption = False,
    cross_fit: CrossFitOption = True,
) -> None:
    """One-hot categoricals + numbers, boosted trees or logistic regression; prints a JSON
    report."""
    report = train_tabular_classifier(
        csv_path,
        name=name,
        label_column=label_column,
        feature_columns=feature_columns.split(",") if feature_columns else None,
        model=model,
        version=version,
        skills_dir=skills_dir,
        val_fraction=val_fraction,
        target_accuracy=target_accuracy,
        confidence_level=confidence_level,
        description=description,
        force=force,
        cross_fit=cross_fit,
    )
    _emit(report)


@reports_errors
def eval_command(
    name: Annotated[str, typer.Argument(help="skill, skill@alias or skill@version")],
    csv_path: CsvOption,
    text_column: Annotated[
        str | None, typer.Option(help="text column, for one-field skills (default: as trained)")
    ] = None,
    label_column: Annotated[str, typer.Option(help="column holding the true label")] = "label",
    threshold: Annotated[
        float | None, typer.Option(help="escalation threshold (default: the calibrated one)")
    ] = None,
    output_field: Annotated[
        str | None, typer.Option(help="output compared with the labels (default: the label)")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
    skills_dir: SkillsDirOption = None,
    chain: Annotated[
        bool,
        typer.Option(help="evaluate the skill with the tier calibrated after it, as a cascade"),
    ] = True,
) -> None:
    """Accuracy, coverage at the stored threshold and selective accuracy on a labelled CSV
    (with its chain, when the skill has one: the whole cascade and each tier)."""
    report = evaluate(
        name,
        csv_path,
        skills_dir=skills_dir,
        text_column=text_column,
        label_column=label_column,
        threshold=threshold,
        output_field=output_field,
        chain=chain,
    )
    if report.get("unseen_labels"):
        rows = ", ".join(f"{k} ({v})" for k, v in report["unseen_labels"].items())
        _console(stderr=True).print(
            f"[yellow]warning[/]: rows with labels {report['skill']} does not know count as "
            f"wrong: {rows}; retrain it with rows of those labels (`orchestrator skills train`) "
            "or leave them out of the CSV",
            highlight=False,
        )
    if not json_out:
        from rich.table import Table

        table = Table(title=f"{report['skill']} on {report['csv']}")
        for column in ("label", "rows", "correct", "kept", "kept correct", "predicted"):
            table.add_column(column, justify="left" if column == "label" else "right")
        for label, row in report["per_label"].items():
            table.add_row(label, *(str(v) for v in row.values()))
        _console().print(table)
        summary = {k: v for k, v in report.items() if k != "per_label"}
        _console().print(", ".join(f"{k}={v}" for k, v in summary.items()), highlight=False)
        return
    print(json.dumps(report))


def _parse_shares(values: list[str] | None) -> dict[str, float] | None:
    if not values:
        return None
    shares: dict[str, float] = {}
    for value in values:
        label, sep, share = value.partition("=")
        try:
            shares[label.strip()] = float(share)
        except ValueError:
            sep = ""
        if not sep or not label.strip():
            raise typer.BadParameter(f"--label-share {value!r}: write LABEL=SHARE, e.g. oos=0.18")
    return shares


@reports_errors
def calibrate_command(
    skill: Annotated[str, typer.Argument(help="skill, skill@alias or skill@version")],
    target_accuracy: Annotated[
        float, typer.Option(help="accuracy the kept answers must reach")
    ] = 0.97,
    csv_path: Annotated[
        Path | None,
        typer.Option("--csv", help="labelled validation CSV (default: the skill's own val split)"),
    ] = None,
    text_column: Annotated[
        str | None, typer.Option(help="text column, for one-field skills")
    ] = None,
    label_column: Annotated[str, typer.Option(help="column holding the true label")] = "label",
    label_share: Annotated[
        list[str] | None,
        typer.Option(help="reweight to a traffic mix: LABEL=SHARE, repeatable (e.g. oos=0.18)"),
    ] = None,
    confidence_level: Annotated[
        float | None,
        typer.Option(
            help="the threshold's one-sided Wilson lower bound must reach the target at this "
            "level (0.5: no margin) [default: 0.9; 0.975 with --after]"
        ),
    ] = None,
    min_kept: Annotated[
        int | None, typer.Option(help="fewest kept items a threshold needs to count")
    ] = None,
    output_field: Annotated[
        str | None, typer.Option(help="output compared with the labels (default: the label)")
    ] = None,
    store: Annotated[bool, typer.Option(help="write the threshold into the build record")] = True,
    after: Annotated[
        str | None,
        typer.Option(
            help="calibrate SKILL as the escalation chain's tier after this skill: both "
            "thresholds are chosen together, on the items as the chain routes them"
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the JSON line only")] = False,
    skills_dir: SkillsDirOption = None,
) -> None:
    """Choose the lowest threshold whose kept answers reach --target-accuracy on a validation
    split; store it with the skill version; print the coverage curve. With --after FIRST, choose
    FIRST's and SKILL's thresholds together for a chain FIRST -> SKILL."""
    from orchestrator.learning.calibrate import calibrate
    from orchestrator.learning.chain_calibrate import (
        DEFAULT_CHAIN_CONFIDENCE_LEVEL,
        calibrate_after,
    )

    if confidence_level is None:
        confidence_level = DEFAULT_CHAIN_CONFIDENCE_LEVEL if after else DEFAULT_CONFIDENCE_LEVEL

    version = load_version(skill, skills_dir)
    data, labels, source, shares = _calibration_data(
        version, csv_path, text_column, label_column, _parse_shares(label_share)
    )
    if after is not None:
        pair = calibrate_after(
            version,
            load_version(after, skills_dir),
            data,
            labels,
            target_accuracy,
            label_shares=shares,
            min_kept=min_kept,
            confidence_level=confidence_level,
            output_field=output_field,
            source=source,
            store=store,
            own_split=csv_path is None,
        )
        print(json.dumps({"skill": version.key, "stored": store, **pair.summary()}))
        return
    result = calibrate(
        version,
        data,
        labels,
        target_accuracy,
        label_shares=shares,
        min_kept=min_kept,
        confidence_level=confidence_level,
        output_field=output_field,
        source=source,
        store=store,
        own_split=csv_path is None,
    )
    summary = {"skill": version.key, "stored": store, **result.summary()}
    if not json_out and result.curve is not None:
        _print_curve(version.key, result, source)
    print(json.dumps(summary))


def _calibration_data(
    version: Any,
    csv_path: Path | None,
    text_column: str | None,
    label_column: str,
    shares: dict[str, float] | None,
) -> tuple[Any, list[Any], str, dict[str, float] | None]:
    """(items, labels, where they came from, traffic mix): --csv, else the skill's own
    validation split with the mix its manifest declares (unless --label-share gave one)."""
    if csv_path is not None:
        table = read_csv(csv_path)
        labels = non_empty_column(table, label_column, "label")
        return batch_from_table(version, table, text_column), labels, str(csv_path), shares
    data, labels, source, default_shares = validation_data(version)
    return data, labels, source, shares if shares is not None else default_shares


def _print_curve(key: str, result: Any, source: str) -> None:
    """The coverage curve as a table, the chosen threshold marked."""
    from rich.table import Table

    mix = (
        ", weighted to " + ", ".join(f"{k}={v:.0%}" for k, v in result.label_shares.items())
        if result.label_shares
        else ""
    )
    table_ = Table(title=f"{key}: selective accuracy vs coverage ({source}{mix})")
    for column in ("threshold", "coverage", "selective accuracy", "kept"):
        table_.add_column(column, justify="right")
    for row in result.curve.rows(result.threshold):
        mark = " ◀" if row["kept"] == result.kept and result.reachable else ""
        table_.add_row(
            f"{row['threshold']:.4f}{mark}",
            f"{row['coverage']:.1%}",
            f"{row['selective_accuracy']:.2%}",
            str(row["kept"]),
        )
    _console().print(table_)


if __name__ == "__main__":  # `python -m orchestrator.cli.skills text-classifier ...` (skills build)
    train_app()
