"""The study's configuration: one typed, frozen value from the command line to every stage.

The run folder's config.json is this value (`StudyConfig.as_json`); facts found while running
(class names, folds used, code version) go to run.json beside it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from training.train import HeadConfig


@dataclass(frozen=True)
class StudyConfig:
    data: tuple[Path, ...]  # one folder per source
    out: Path
    backbones: tuple[str, ...] = ("mobilenet_v2_035",)
    weights: str = "imagenet"  # imagenet, none, or a weights file
    weights_dir: Path | None = None  # Keras weight files, for offline machines
    input_size: int | None = None  # None: the backbone's native size
    embedding_norm: str = "none"  # "rms": the head reads the pooled embedding at unit root mean square
    folds: int = 10
    positive_class: str = "mpox"
    target_sensitivity: float = 0.95
    threshold_rule: str = "conformal"  # see training.evaluate.operating_threshold
    inconclusive_sensitivity: float = 0.99
    inconclusive_min_specificity: float = 0.85
    quantization: str = "int8"
    float_embeddings: bool = False
    served_check: bool = True  # convert each fold's model as served and score it (slow: one conversion a fold)
    export_backbone: str | None = None  # None: the first backbone that ran
    ensembles: tuple[tuple[str, ...], ...] = ()  # backbones whose probabilities are averaged (measured, not exported)
    view_averaging: str = "mirror"
    head_selection: str = "sources"  # inner folds of the head: "sources" (one held out, when several) or "groups"
    labels: str = "screening"  # several sources classed by: "screening" (mpox or not) or "conditions" (their own classes)
    balance: str = "classes"  # the head's sample weights: "classes", "sources" or "sources-first" (training.train.balance_weights)
    augmented_copies: int = 4
    fine_tune_layers: int = 0
    fine_tune_epochs: int = 10
    model_id: str = "mpox-screen"
    model_version: str = "0.1.0"
    quick: bool = False
    seed: int = 0
    command: str = ""  # the command line that made this configuration, for the model card

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("a study needs at least one data folder")
        if not self.backbones:
            raise ValueError("a study needs at least one backbone")
        for members in self.ensembles:
            if len(set(members)) < 2 or not set(members) <= set(self.backbones):
                raise ValueError(f"an ensemble needs two or more of --backbones {','.join(self.backbones)}; "
                                 f"got {'+'.join(members)}")

    @property
    def head(self) -> HeadConfig:
        return HeadConfig(view_averaging=self.view_averaging, selection=self.head_selection, balance=self.balance)

    @property
    def data_name(self) -> str:
        """The data's name in reports: the folder, or the sources joined with '+'."""
        return "+".join(folder.name for folder in self.data)

    @property
    def several_sources(self) -> bool:
        return len(self.data) > 1

    def as_json(self) -> dict:
        """JSON-ready: paths as strings, tuples as lists."""
        def plain(value):
            if isinstance(value, Path):
                return str(value)
            if isinstance(value, tuple):
                return [plain(v) for v in value]
            return value

        return {field.name: plain(getattr(self, field.name)) for field in dataclasses.fields(self)}
