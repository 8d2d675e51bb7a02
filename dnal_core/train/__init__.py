"""The DNAL trainer: the three stages of Alg. 1 (and the joint variant of Fig. 5) as plain
functions over any model with SS gates and any re-iterable of (x, y) batches, plus the run
folder that chains them with checkpoints (``run_pipeline``, used by ``dnal run``).

Stage functions (``model`` is modified in place; each returns its per-epoch records, the dicts
that ``metrics.jsonl`` holds)::

    evaluate(model, data, device=None) -> {"top1", "top5", "loss"}       # top-k in percent
    train_weights(model, train_data, test_data, cfg)                       # Alg. 1 lines 1-4
    train_architecture(model, train_data, test_data, cfg, lam=1e-4,
                       search=SearchConfig())                              # lines 5-8
    net = derive_network(model, search=None).model   # lines 9-10: pruned (dnal_core.prune)
    net = hard_gated(model, search=None)             # or: the hard-gated copy, channels kept
    finetune(net, train_data, test_data, cfg)                              # line 11
    train_joint(model, train_data, test_data, cfg, lam=..., search=...)   # Fig. 5
    train_step(model, x, y, optimizer, lam=None, loss_form="paper")        # the per-step code

``cfg`` is a ``dnal_core.recipes.StageConfig`` (epochs, lr, milestones, momentum, weight decay,
batch size); ``search`` a ``SearchConfig`` (the paper's choices by default, the authors' code's
as options: ``threshold=0.9``, ``loss_form="code"``, ``delta_unit="epoch"``,
``train_linear=True``, ``bn_stats="update"``). Every stage function also takes the keywords
``device``, ``log`` (called with each epoch's record), ``on_epoch(epoch, state)`` (state: the
optimizer's and scheduler's state_dicts and the record: what a checkpoint needs), ``resume``
(such a state plus ``"epoch"``, to continue after it) and ``progress`` (tqdm bars).
``train_data`` needs ``len()`` (the delta schedule counts steps); a ``set_epoch(epoch)`` method,
when it has one, is called before every epoch (``dnal_core.data.TensorLoader`` reshuffles there).

Run folders::

    run_pipeline(recipe, data_dir, out_dir, device=None, resume=False, quiet=True,
                 stages=None, weights_from=None, workers=8) -> final.json as a dict

and in one call, for a registered model or your own ``module:function`` (``dnal_core.own``)::

    net, final = search(model, data_dir, out_dir, lam=None, target_macs=None, profile="smoke",
                        weights_from=None, changes=None) -> the finetuned pruned network, final.json

Under torchrun (``RANK``/``WORLD_SIZE`` set) ``run_pipeline`` starts the process group, each
stage wraps its model in DistributedDataParallel, the recipe's batch size is the global batch,
and rank 0 alone writes (``dnal_core.train.dist``). On CUDA the stages take the fast path
(``dnal_core.train.fast``: bf16, channels_last, one CUDA graph per stage) unless ``--eager``.
"""
from .own import search
from .pipeline import make_loaders, resolve_device, run_pipeline, stage_order
from .runfolder import stored_recipe
from .stages import (derive_network, evaluate, finetune, hard_gated, size_of, start_search, train_architecture,
                     train_joint, train_step, train_weights)

__all__ = ["evaluate", "train_weights", "train_architecture", "train_joint", "derive_network", "hard_gated",
           "finetune", "train_step", "start_search", "size_of", "run_pipeline", "stage_order",
           "stored_recipe", "resolve_device", "make_loaders", "search"]
