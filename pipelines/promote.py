"""Retraining, step by step: training set -> train -> judge -> register -> promote.

Each step runs in the deployment repo (:mod:`pipelines.deployment_repo`) holding its lock: it
copies the project's dvc.yaml, params, spec and stage code in, runs its ``dvc.yaml`` stage (the
bodies are in :mod:`pipelines.stages`), commits ``dvc.lock``, pushes the outputs and returns a
typed result. The Dagster assets, ``scoreloop train`` and the demo call these functions.

The gate (:func:`pipelines.gate.decide`) is applied once per run, by :func:`judge`, and recorded
in ``gate.json`` with the shadow comparison (:mod:`pipelines.shadow`: the challenger scoring the
newest batch beside the champion, reported evidence that does not change the decision);
:func:`promote` concludes that recorded decision (registers the challenger,
logs the decision in ``decisions/``, assigns ``prod`` if it passed) and never decides again. A
refused challenger's run ends at :func:`judge`, so judge concludes a refusal itself. Each
judgement is concluded once: promoting again returns the logged conclusion.

:func:`promote_version` is the manual path: a registered version is judged afresh against
today's champion (a new decision, logged), or forced with a recorded reason.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from pipelines.deployment_repo import (
    CHAMPION_FILE,
    EVALUATION_DIR,
    GATE_FILE,
    MODEL_PATH,
    PARAMS_FILE,
    RUN_FILE,
    SELECTION_FILE,
    TRAINING_SET,
    DeploymentRepoError,
    commit,
    fetch_file,
    file_md5,
    init,
    last_commit_of,
    lock_hash,
    locked,
    push,
    read_json,
    read_optional_json,
    repro,
    sync_inputs,
    write_json,
)
from pipelines.errors import ScoreloopError
from pipelines.evaluate import PLOT_FILES, ScoredModel, evaluate_models
from pipelines.gate import GateDecision, GateParams, decide
from pipelines.gate import force as force_decision
from pipelines.model_bundle import CARD_FILE, ModelMetadata, load_bundle
from pipelines.model_card import render_card
from pipelines.params import load_params
from pipelines.registry import (
    ChampionRef,
    assign_champion,
    champion_version,
    fetch_version,
    list_versions,
    next_version,
    record_decision,
    register_version,
    version_commit,
)
from pipelines.settings import Settings
from pipelines.shadow import shadow_newest_batch
from pipelines.spec import load_spec
from pipelines.stages import STAGE_BODIES, STAGE_CODE
from pipelines.training_set import (
    Selection,
    SplitParams,
    read_training_set,
    select_batches,
    split_frame,
    summary,
)

EVALUATION_FILE = f"{EVALUATION_DIR}/evaluation.json"


class PromotionError(ScoreloopError, RuntimeError):
    """A retraining or promotion step cannot do what was asked (the message says why)."""


@dataclass(frozen=True)
class TrainingSetResult:
    """The training set a run built: its DVC md5 (the data version), selection and splits."""

    data_version: str
    selection: Selection
    #: Per split: rows, positive rate and batch ids (see :func:`pipelines.training_set.summary`).
    splits: dict[str, Any]
    rows: int
    path: Path


@dataclass(frozen=True)
class ChallengerResult:
    """The trained challenger: its DVC md5, version-to-be, model directory and card."""

    data_version: str
    version: str | None
    model_dir: Path
    metadata: ModelMetadata
    card: str


@dataclass(frozen=True)
class Registration:
    """A challenger registered as a model version (a GTO tag on the evaluated commit)."""

    version: str
    commit: str


@dataclass(frozen=True)
class Promotion:
    """The conclusion of a judgement: registered, decision logged, champion if it passed."""

    registration: Registration
    decision: GateDecision
    #: The decision's file in the deployment repo's ``decisions/`` log.
    decision_file: Path
    #: The new champion, or None when the gate refused.
    champion: ChampionRef | None
    card: str
    manual: bool = False

    @property
    def version(self) -> str:
        return self.registration.version

    @property
    def promoted(self) -> bool:
        return self.champion is not None


@dataclass(frozen=True)
class Judgement:
    """The challenger evaluated against the champion and the gate's one decision on it."""

    version: str
    #: md5 of evaluation/metrics.json (the evaluation's Dagster data version).
    data_version: str
    #: The full evaluation document (evaluation/evaluation.json).
    evaluation: dict[str, Any]
    plots: dict[str, Path]
    decision: GateDecision
    #: A refused challenger's conclusion (registered, refusal logged); None when it passed.
    refusal: Promotion | None
    #: The challenger shadow-scored beside the champion on the newest batch
    #: (:class:`pipelines.shadow.ShadowComparison` as a dict); None without a champion.
    shadow: dict[str, Any] | None = None


@dataclass(frozen=True)
class RetrainingRun:
    """The whole chain of one ``scoreloop train``."""

    training_set: TrainingSetResult
    challenger: ChallengerResult
    judgement: Judgement
    promotion: Promotion


def _sync(settings: Settings) -> Path:
    return sync_inputs(settings, STAGE_CODE, leaves=(STAGE_BODIES,))


def _record(repo: Path, settings: Settings, stage: str, message: str) -> None:
    repro(repo, stage, settings)
    commit(repo, message)
    push(repo)


def _training_set(settings: Settings) -> TrainingSetResult:
    """Select batches, rebuild the training set through DVC, commit and push it."""
    repo = _sync(settings)
    split = SplitParams.from_params(load_params(repo / PARAMS_FILE))
    selection = select_batches(settings.tables, split)
    selection.save(repo / SELECTION_FILE)
    _record(
        repo,
        settings,
        "training_set",
        f"training set: batches {selection.batches[0]}..{selection.batches[-1]}",
    )
    frame = pl.read_parquet(repo / TRAINING_SET)
    return TrainingSetResult(
        data_version=lock_hash(repo, "training_set", TRAINING_SET),
        selection=selection,
        splits=summary(frame),
        rows=frame.height,
        path=repo / TRAINING_SET,
    )


def _train(settings: Settings) -> ChallengerResult:
    """Train the challenger through DVC (version-to-be in run.json), commit and push it."""
    repo = _sync(settings)
    run = {"name": settings.model_name, "version": next_version(settings)}
    current = read_optional_json(repo, RUN_FILE)
    if current.get("name") == run["name"] and not _registered(settings, current.get("version")):
        run = {"name": run["name"], "version": current["version"]}
    write_json(repo, RUN_FILE, run)
    _record(repo, settings, "train", f"challenger {run['name']} {run['version']}")
    metadata = load_bundle(repo / MODEL_PATH).metadata
    return ChallengerResult(
        data_version=lock_hash(repo, "train", MODEL_PATH),
        version=metadata.version,
        model_dir=repo / MODEL_PATH,
        metadata=metadata,
        card=(repo / MODEL_PATH / CARD_FILE).read_text(),
    )


def _registered(settings: Settings, version: object) -> bool:
    return isinstance(version, str) and any(v.version == version for v in list_versions(settings))


def _judge(settings: Settings) -> Judgement:
    """Evaluate the challenger against the current champion through DVC, then decide the gate.

    The decision is made here, once, and recorded in gate.json with the commit it judged; a
    refusal is concluded at once (registered, logged), since nothing follows it.
    """
    repo = _sync(settings)
    found = champion_version(settings)
    write_json(
        repo,
        CHAMPION_FILE,
        {"version": found[0], "commit": found[1]} if found else {"version": None, "commit": None},
    )
    _record(repo, settings, "evaluate", "evaluation")
    evaluation = json.loads((repo / EVALUATION_FILE).read_text())
    decision = decide(evaluation, GateParams.from_params(load_params(repo / PARAMS_FILE)))
    version = str(read_json(repo, RUN_FILE)["version"])
    shadow = _shadow(settings, repo, version, found)
    gate = _RecordedGate(version, last_commit_of(repo, "dvc.lock"), decision, None, shadow)
    gate.save(repo)
    refusal = None if decision.promote else _conclude(settings, gate)
    return Judgement(
        version=version,
        data_version=file_md5(repo / EVALUATION_DIR / "metrics.json"),
        evaluation=evaluation,
        plots={name: repo / EVALUATION_DIR / "plots" / name for name in PLOT_FILES},
        decision=decision,
        refusal=refusal,
        shadow=shadow,
    )


def _shadow(
    settings: Settings, repo: Path, version: str, champion: tuple[str, str] | None
) -> dict[str, Any] | None:
    """The challenger shadow-scored beside the champion on the newest accepted batch
    (:mod:`pipelines.shadow`): evidence recorded with the decision, not a gate rule."""
    if champion is None:
        return None
    spec = load_spec(settings.spec_path)
    current = load_bundle(fetch_version(settings, champion[0], commit=champion[1]))
    found = shadow_newest_batch(
        settings, spec, load_bundle(repo / MODEL_PATH), current, challenger_version=version
    )
    return None if found is None else found.to_dict()


@dataclass(frozen=True)
class _RecordedGate:
    """gate.json: the decision on the evaluation of ``commit``, and where it was logged."""

    version: str
    commit: str
    decision: GateDecision
    logged: Path | None
    #: The shadow comparison on the newest batch (None without a champion).
    shadow: dict[str, Any] | None = None

    def save(self, repo: Path) -> None:
        write_json(
            repo,
            GATE_FILE,
            {
                "version": self.version,
                "commit": self.commit,
                "decision": self.decision.to_dict(),
                "logged": None if self.logged is None else str(self.logged),
                "shadow": self.shadow,
            },
        )

    @classmethod
    def current(cls, repo: Path) -> _RecordedGate:
        """The recorded decision, refused unless it judged the repo's current run."""
        data = read_optional_json(repo, GATE_FILE)
        run = read_optional_json(repo, RUN_FILE)
        evaluated = last_commit_of(repo, "dvc.lock") if (repo / "dvc.lock").exists() else ""
        if not data or data.get("commit") != evaluated or data.get("version") != run.get("version"):
            raise PromotionError(
                f"no gate decision is recorded for the current challenger in {repo}: run "
                f"`scoreloop evaluate` (or materialise `evaluation`) first"
            )
        logged = data.get("logged")
        return cls(
            version=str(data["version"]),
            commit=str(data["commit"]),
            decision=GateDecision.from_dict(data["decision"]),
            logged=Path(logged) if logged else None,
            shadow=data.get("shadow"),
        )


def recorded_decision(settings: Settings) -> GateDecision:
    """The gate's decision on the current challenger, as :func:`judge` recorded it."""
    return _RecordedGate.current(settings.registry).decision


def _register(settings: Settings, gate: _RecordedGate) -> Registration:
    """Register the judged commit as the run's version (GTO tag; idempotent)."""
    version = register_version(settings, gate.commit, version=gate.version)
    return Registration(version=version, commit=gate.commit)


def _conclude(settings: Settings, gate: _RecordedGate) -> Promotion:
    """Register the judged challenger, promote it if the recorded decision passed, log it."""
    repo = settings.registry
    if gate.logged is not None:
        record = json.loads(gate.logged.read_text())
        registration = Registration(str(record["version"]), str(record["commit"]))
        champion = None
        if gate.decision.promote:
            model_dir = fetch_version(settings, registration.version, commit=registration.commit)
            champion = ChampionRef(settings.model_name, registration.version, model_dir)
        return Promotion(registration, gate.decision, gate.logged, champion, _card(repo, record))
    registration = _register(settings, gate)
    champion = None
    if gate.decision.promote:
        champion = assign_champion(
            settings, registration.version, message="; ".join(gate.decision.reasons)[:500]
        )
    record = _decision_record(registration, gate.decision, shadow=gate.shadow)
    path = record_decision(settings, record)
    _RecordedGate(gate.version, gate.commit, gate.decision, path, gate.shadow).save(repo)
    return Promotion(registration, gate.decision, path, champion, _card(repo, record))


def _decision_record(
    registration: Registration,
    decision: GateDecision,
    *,
    manual: bool = False,
    shadow: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "action": "promote" if decision.promote else "gate",
        "version": registration.version,
        "commit": registration.commit,
        **({"manual": True} if manual else {}),
        **decision.to_dict(),
        **({"shadow": shadow} if shadow is not None else {}),
    }


def _card(repo: Path, record: dict[str, Any]) -> str:
    return render_card(
        load_bundle(repo / MODEL_PATH).metadata,
        evaluation=json.loads((repo / EVALUATION_FILE).read_text()),
        decision=record,
    )


def _promote(settings: Settings) -> Promotion:
    """Conclude the recorded judgement: register, promote if it passed, log the decision."""
    return _conclude(settings, _RecordedGate.current(settings.registry))


def _train_all(settings: Settings) -> RetrainingRun:
    """The whole chain: training set -> challenger -> judgement -> promotion (if it passed)."""
    training_set = _training_set(settings)
    challenger = _train(settings)
    judgement = _judge(settings)
    promotion = judgement.refusal or _promote(settings)
    return RetrainingRun(training_set, challenger, judgement, promotion)


def _promote_version(
    settings: Settings, version: str, *, force: bool = False, reason: str = ""
) -> Promotion:
    """Promote a registered version by hand, through the gate unless forced (with a reason).

    The version is re-evaluated against the current champion on its own holdout, so the gate
    judges it against today's champion, not the one it met when it was trained.
    """
    if force and not reason.strip():
        raise PromotionError("--force needs --reason TEXT (the reason is recorded)")
    repo = init(settings)
    registration = Registration(version, version_commit(settings, version))
    bundle = load_bundle(fetch_version(settings, version, commit=registration.commit))
    spec = load_spec(settings.spec_path)
    models = [ScoredModel("challenger", bundle.model, bundle.metadata.threshold, version)]
    found = champion_version(settings)
    if found is not None and found[0] == version:
        raise PromotionError(f"{version} is already the champion")
    if found is not None:
        champion = load_bundle(fetch_version(settings, found[0], commit=found[1]))
        models.append(
            ScoredModel("champion", champion.model, champion.metadata.threshold, found[0])
        )
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "training_set.parquet"
        try:
            fetch_file(repo, TRAINING_SET, registration.commit, data)
        except DeploymentRepoError as exc:
            raise PromotionError(f"cannot fetch the training set of {version}: {exc}") from exc
        holdout = split_frame(read_training_set(data, spec), "holdout")
    evaluation = evaluate_models(holdout, spec, models)
    decision = decide(evaluation, GateParams.from_params(load_params(settings.params_path)))
    if not decision.promote and force:
        decision = force_decision(decision, reason)
    champion_ref = None
    if decision.promote:
        champion_ref = assign_champion(settings, version, message="; ".join(decision.reasons)[:500])
    record = _decision_record(registration, decision, manual=True)
    path = record_decision(settings, record)
    card = render_card(bundle.metadata, evaluation=evaluation, decision=record)
    return Promotion(registration, decision, path, champion_ref, card, manual=True)


prepare_training_set = locked(_training_set)
train = locked(_train)
judge = locked(_judge)
promote = locked(_promote)
train_all = locked(_train_all)
promote_version = locked(_promote_version)
