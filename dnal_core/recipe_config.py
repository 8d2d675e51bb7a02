"""A training recipe as data: frozen dataclasses whose defaults are the paper's choices, and
``override``, which returns a changed copy (dotted keys reach into the stages; unknown keys and
values of the wrong type raise ValueError naming the valid ones).

  ``StageConfig``   one SGD stage (epochs, lr, milestones or cosine, batch, weight decay, ...)
  ``SearchConfig``  the architecture stage's gates and sparsity loss (Section IV), the paper's
                    choices by default and the authors' code's as options
  ``Recipe``        a model and profile: its stages, search, data and width
  ``override``, ``valid_keys``, ``without_retired``  changes, the keys they take, old configs

``dnal_core.recipes`` registers the recipes of the paper's networks (and re-exports these).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from .gate import CODE_THRESHOLD, PAPER_THRESHOLD, SCHEDULE_UNITS
from .loss import LOSS_FORMS
from .models import DEFAULT_PLACEMENT, PLACEMENTS


@dataclass(frozen=True)
class StageConfig:
    """One SGD stage. Epoch counts and milestones are in epochs; lr is per step (batch mean)."""
    epochs: int
    lr: float                        # initial learning rate
    milestones: tuple[int, ...] = ()  # lr is multiplied by ``gamma`` at each of these epochs
    gamma: float = 0.1
    momentum: float = 0.9            # Section V-B
    weight_decay: float = 1e-4       # Section V-B (L2 on the weights; never on the gates' s)
    batch_size: int = 128            # Section V-B (ResNet56: 64); the GLOBAL batch under torchrun
    schedule: str = "step"           # "step": x gamma at milestones; "cosine": to 0 over the stage (V-C)

    def __post_init__(self):
        _check_keys(StageConfig, vars(self), "")  # types first: epochs=1.5, lr="abc", lr=NaN
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown lr schedule {self.schedule!r}; valid: {', '.join(SCHEDULES)}")
        for name, ok, rule in (("epochs", self.epochs >= 0, ">= 0"), ("lr", self.lr > 0, "> 0"),
                               ("batch_size", self.batch_size >= 1, ">= 1"), ("gamma", self.gamma > 0, "> 0"),
                               ("momentum", self.momentum >= 0, ">= 0"),
                               ("weight_decay", self.weight_decay >= 0, ">= 0")):
            if not ok:
                raise ValueError(f"{name} must be {rule}, got {getattr(self, name)!r}")
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        if list(self.milestones) != sorted(self.milestones) or any(m < 0 for m in self.milestones):
            raise ValueError(f"milestones must be increasing epochs >= 0, got {self.milestones}")

    def lr_at(self, epoch: int) -> float:
        if self.schedule == "cosine":  # torch's CosineAnnealingLR, eta_min 0, T_max = the stage
            return self.lr * (1 + math.cos(math.pi * epoch / max(self.epochs, 1))) / 2
        return self.lr * self.gamma ** sum(epoch >= m for m in self.milestones)


BN_STATS = ("batch", "running", "update")
SCHEDULES = ("step", "cosine")
DATASETS = ("cifar10", "imagenet")


@dataclass(frozen=True)
class SearchConfig:
    """The architecture stage (Alg. 1 lines 5-9). Defaults: the paper; options: the code."""
    delta_start: float = 1.0         # Section III-C: delta_0 = 1 ...
    delta_end: float = 1e4           # ... grows exponentially to max(delta) = 1e4
    delta_unit: str = "iteration"    # smooth growth every step; "epoch": the code's per-epoch steps
    loss_form: str = "paper"         # eq. 4, lam * sum sigmoid(delta s); "code": without delta
    threshold: float = PAPER_THRESHOLD  # keep sigmoid(delta s) > 0.5 (= binary(s), eq. 2); code 0.9
    train_linear: bool = False       # paper: only s trains; code: Linear/BN1d layers train too
    # Stage-2 BatchNorm. The paper freezes BN ("we freeze ... convolutional layers and BN layers"):
    # "batch" (default) normalises with batch statistics and changes nothing in BN (weights and
    # running statistics stay as stage 1 left them); "running" normalises with the running
    # statistics (BN in eval mode), which collapses the search (README, Training); "update" is the
    # authors' code: model.train(), running statistics keep updating.
    bn_stats: str = "batch"
    # A budget instead of lambda (dnal_core.budget): the pruned network's "macs" or "params" after
    # the stage lie in [0.90, 1.03] x target; target < 1 is a fraction of the dense count, >= 1 a
    # count. Lambda is then budget_lambda0 (units of the cost-aware term) and s is projected onto
    # the budget after every step (dnal_core.budget). None: a fixed lambda (Recipe.lam).
    target_kind: str | None = None
    target: float | None = None
    budget_lambda0: float = 1.0

    def __post_init__(self):
        # types first (explicit: CODE_SEARCH below is built before _check_keys is defined)
        for name in ("delta_start", "delta_end", "threshold"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
        if not isinstance(self.train_linear, bool):
            raise ValueError(f"train_linear must be true or false, got {self.train_linear!r}")
        if self.delta_unit not in SCHEDULE_UNITS:
            raise ValueError(f"unknown delta unit {self.delta_unit!r}; valid: {', '.join(SCHEDULE_UNITS)}")
        if self.loss_form not in LOSS_FORMS:
            raise ValueError(f"unknown loss form {self.loss_form!r}; valid: {', '.join(LOSS_FORMS)}")
        if self.bn_stats not in BN_STATS:
            raise ValueError(f"unknown stage-2 BN statistics {self.bn_stats!r}; valid: {', '.join(BN_STATS)}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must lie in (0, 1), got {self.threshold}")
        if not 0 < self.delta_start <= self.delta_end:
            raise ValueError(f"delta must grow from a positive start: {self.delta_start} -> {self.delta_end}")
        for name in ("target", "budget_lambda0"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
                raise ValueError(f"search.{name} must be a finite number, got {v!r}")
        if (self.target_kind is None) != (self.target is None):
            raise ValueError("a budget needs both search.target_kind (macs or params) and search.target")
        if self.target_kind is not None and self.target_kind not in ("macs", "params"):
            raise ValueError(f"unknown budget kind {self.target_kind!r}; valid: macs, params")
        if self.target is not None and not (self.target > 0 and (self.target < 1 or self.target >= 1000)):
            raise ValueError(f"search.target must be a fraction in (0, 1) or a count >= 1000, got {self.target!r}")
        if not self.budget_lambda0 >= 0:
            raise ValueError("search.budget_lambda0 must be >= 0")


# The authors' code in one object (notes/official-code.md), for ``--code-variant``-style runs.
CODE_SEARCH = SearchConfig(delta_unit="epoch", loss_form="code", threshold=CODE_THRESHOLD,
                           train_linear=True, bn_stats="update")


@dataclass(frozen=True)
class Recipe:
    """Everything that defines a run, except where the data and the outputs live."""
    model: str
    profile: str
    weights: StageConfig             # Alg. 1 lines 1-4: SS off, SGD + weight decay
    arch: StageConfig                # lines 5-8: only s (weight_decay applies to --train-linear layers)
    finetune: StageConfig            # lines 9-11: hard gates, finetune
    joint: StageConfig               # Fig. 5: weights and s together from scratch, same delta schedule
    search: SearchConfig = field(default_factory=SearchConfig)
    lam: float | None = None         # lambda_a of eq. 4 (None: not chosen yet, weight stage only)
    sequential: bool = True          # Alg. 1; False: the joint strategy of Fig. 5
    placement: str = DEFAULT_PLACEMENT  # Fig. 4: conv-bn-ss-relu
    width_mult: float = 1.0          # scales every default width (smoke runs, tests)
    # one width per SS gate (``model.arch()['widths']``): train that architecture as the dense
    # network of the weight stage (a learned architecture from scratch, Liu et al. 2019); None: the
    # default widths at width_mult
    widths: tuple[int, ...] | None = None
    train_per_class: int | None = None  # per-class subset of the training set (None: all)
    test_per_class: int | None = None
    test_batch_size: int = 500
    seed: int = 0
    dataset: str = "cifar10"         # which loader ``train.pipeline.make_loaders`` builds
    image_size: int = 224            # ImageNet: RandomResizedCrop / CenterCrop size (the paper's 224)
    resize_size: int = 256           # ImageNet: test images resized to this, then center-cropped
    # Precise BN (dnal_core/train/bn.py): every reported accuracy is measured after BatchNorm
    # statistics are re-estimated on this many fixed training batches (0: as the model holds them)
    precise_bn: int = 20
    # CPU training arithmetic (dnal_core/train/precision.py): fp32; bf16 (autocast of the forward
    # pass); auto (bf16 where the CPU has bf16 matrix instructions and a probe on the run's model
    # finds it faster, else fp32), resolved once per run and kept on resume
    precision: str = "fp32"
    # a "module:function" model (dnal_core.own): the constructor's keyword arguments besides
    # num_classes (--set model_args.KEY=VALUE); empty for a registered model
    model_args: dict = field(default_factory=dict)

    def __post_init__(self):
        lam = self.lam  # named as the command line names it (--lambda)
        if lam is not None and (isinstance(lam, bool) or not isinstance(lam, (int, float)) or not math.isfinite(lam)):
            raise ValueError(f"lambda must be a finite number, got {lam!r}")
        if lam is not None and lam < 0:
            raise ValueError(f"lambda must be >= 0, got {lam}")
        if lam is not None and isinstance(self.search, SearchConfig) and self.search.target is not None:
            raise ValueError("a lambda and a budget (--target-macs/--target-params) exclude each other: "
                             "with a budget, lambda is search.budget_lambda0")
        _check_keys(Recipe, vars(self), "")
        for name in ("test_batch_size", "image_size", "resize_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"unknown placement {self.placement!r}; valid: {', '.join(PLACEMENTS)}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"unknown precision {self.precision!r}; valid: auto, fp32, bf16")
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; valid: {', '.join(DATASETS)}")
        if not 0 < self.image_size <= self.resize_size:
            raise ValueError(f"need 0 < image_size <= resize_size, got {self.image_size}, {self.resize_size}")
        if self.width_mult <= 0:
            raise ValueError(f"width_mult must be > 0, got {self.width_mult}")
        if self.widths is not None:
            if not self.widths or any(w < 1 for w in self.widths):
                raise ValueError(f"widths must be a list of integers >= 1, got {list(self.widths)}")
            object.__setattr__(self, "widths", tuple(self.widths))
        for k in ("train_per_class", "test_per_class"):
            if getattr(self, k) is not None and getattr(self, k) < 1:
                raise ValueError(f"{k} must be >= 1 or None")
        if self.model_args and ":" not in self.model:
            raise ValueError(f"model_args are the keywords of a module:function network's constructor; "
                             f"{self.model} is a registered model (its keys: --width-mult, --set)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        """Inverse of ``to_dict`` (config.json); unknown keys raise ValueError (retired ones:
        ``without_retired``)."""
        d = without_retired(d)
        _check_keys(cls, d, "")
        for f in ("weights", "arch", "finetune", "joint"):
            _check_keys(StageConfig, d[f], f + ".")
            d[f] = StageConfig(**d[f])
        if "search" in d:
            _check_keys(SearchConfig, d["search"], "search.")
            d["search"] = SearchConfig(**d["search"])
        return cls(**d)


# Keys a stored config.json may hold that the recipe no longer has, and why they went. A retired
# key is dropped where it did nothing (no budget); a run that used it cannot be continued.
RETIRED_SEARCH_KEYS = {
    "budget_rate": "the dual-ascent step of the first budget controller (2026-12-02), replaced by the "
                   "projection of dnal_core.budget",
}


def without_retired(d: dict) -> dict:
    """A recipe dict as read from a config.json, without retired keys (a copy). ValueError, one
    line, for a budgeted run made with a retired key: what it ran no longer exists."""
    d = dict(d)
    search = d.get("search")
    if isinstance(search, dict) and set(search) & set(RETIRED_SEARCH_KEYS):
        key = sorted(set(search) & set(RETIRED_SEARCH_KEYS))[0]
        if search.get("target") is not None:
            raise ValueError(f"this run's budget used search.{key}, {RETIRED_SEARCH_KEYS[key]}: start it again")
        d["search"] = {k: v for k, v in search.items() if k not in RETIRED_SEARCH_KEYS}
    return d


def _check_keys(cls, d: dict, prefix: str) -> None:
    """Unknown keys, and values whose type is not the field's (read from its annotation:
    ``int``, ``float``, ``str``, ``bool``, ``tuple[int, ...]``, ``X | None``), raise ValueError
    naming ``prefix + key``. An int is a valid float; floats must be finite; a bool is neither."""
    types = {f.name: str(f.type).replace(" ", "").split("|") for f in dataclasses.fields(cls)}
    bad = sorted(set(d) - set(types))
    if bad:
        raise ValueError(f"unknown config key {prefix}{bad[0]!r}; valid: "
                         + ", ".join(prefix + n for n in sorted(types)))
    is_int = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    checks = {"int": ("an integer", is_int),
              "float": ("a finite number", lambda v: (is_int(v) or isinstance(v, float)) and math.isfinite(v)),
              "str": ("a string", lambda v: isinstance(v, str)),
              "bool": ("true or false", lambda v: isinstance(v, bool)),
              "tuple[int,...]": ("a list of integers",
                                 lambda v: isinstance(v, (tuple, list)) and all(map(is_int, v))),
              "dict": ("an object of keyword arguments",
                       lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v)),
              "None": ("null", lambda v: v is None)}
    for key, value in d.items():
        kinds = [checks[k] for k in types[key] if k in checks]  # other annotations: not checked here
        if kinds and not any(ok(value) for _, ok in kinds):
            raise ValueError(f"{prefix}{key} must be {' or '.join(w for w, _ in kinds)}, got {value!r}")


def valid_keys() -> list[str]:
    """Every key ``override`` accepts (and ``model_args.KEY`` for any KEY)."""
    keys = []
    for f in dataclasses.fields(Recipe):
        sub = {"weights": StageConfig, "arch": StageConfig, "finetune": StageConfig,
               "joint": StageConfig, "search": SearchConfig}.get(f.name)
        keys += [f"{f.name}.{g.name}" for g in dataclasses.fields(sub)] if sub else [f.name]
    return keys


def override(recipe: Recipe, changes: dict) -> Recipe:
    """A copy of ``recipe`` with ``changes`` applied; keys like ``"lam"`` or ``"arch.epochs"``."""
    top, nested = {}, {}
    for key, value in changes.items():
        if key in ("model", "profile", "dataset"):  # they name the recipe: choose another one instead
            raise ValueError(f"{key} cannot be overridden: it names the recipe (the command's MODEL "
                             "and --profile choose one)")
        if key.startswith("model_args.") and len(key) > len("model_args."):  # one constructor keyword
            top.setdefault("model_args", dict(recipe.model_args))[key.split(".", 1)[1]] = value
            continue
        if key not in valid_keys():
            raise ValueError(f"unknown config key {key!r}; valid: {', '.join(valid_keys())}")
        if key == "model_args":
            _check_keys(Recipe, {key: value}, "")
            top["model_args"] = {**top.get("model_args", {}), **value}
            continue
        if "." in key:
            part, name = key.split(".", 1)
            nested.setdefault(part, {})[name] = value
        else:
            top[key] = value
    for part, kw in nested.items():
        cls = type(getattr(recipe, part))
        _check_keys(cls, kw, part + ".")
        try:
            top[part] = dataclasses.replace(getattr(recipe, part), **kw)
        except ValueError as e:  # a range check of the stage: name the stage
            raise ValueError(f"{part}: {e}") from None
    return dataclasses.replace(recipe, **top)
