"""Retarget a config from the command line: its data folder, weight file or input size.

An MMEngine config file is evaluated when it is read: ``train_dataloader = dict(dataset=dict(
data_root=data_root))`` copies the value of ``data_root`` into the dataloader, and a later
``--cfg-options data_root=DIR`` changes only the top-level variable, which nothing reads. So:

* :func:`retarget` (``--data-root``, ``--pretrained``, ``--img-size`` of the tools) sets the fields
  that take each value, found by their key paths, never by comparing values:

  - ``data_root``: the ``data_root`` of every ``*_dataloader``'s dataset, wrapped ones too (they
    must all read one folder);
  - ``pretrained``: ``model.backbone.pretrained`` (medtrans backbones), or
    ``model.backbone.init_cfg`` of type ``Pretrained`` (mmseg's ResNet);
  - ``img_size``: the config's input size, the first of its top-level :data:`INPUT_SIZES`
    (``img_size`` of classification and DINO, ``crop_size`` of segmentation); every size field
    follows in proportion: the ``scale`` / ``crop_size`` / ``reduce_jpeg_to`` of every
    transform (resizes, crops, reduced JPEG decoding, the views of ``MultiView``),
    ``model.data_preprocessor.size``, ``model.backbone.img_size`` and the top-level
    :data:`SIZE_VARIABLES` (the classification recipe's resize 256 for a crop of 224).

* :func:`check_overrides` refuses a ``--cfg-options`` override of a top-level variable of the
  file, which would reach nothing, and names the option or fields to set instead.
"""
import math
from typing import Any, Dict, Iterator, List, Optional, Tuple

from mmengine.config import Config
from mmengine.logging import print_log

__all__ = ['retarget', 'check_overrides', 'pretrained_field', 'data_root_fields', 'img_size_fits',
           'INPUT_SIZES', 'SIZE_VARIABLES', 'SIZE_KEYS']

#: Top-level variables that give a config's input size; the first present is the one
#: ``--img-size`` sets.
INPUT_SIZES = ('img_size', 'crop_size', 'global_crop_size')
#: Top-level size variables, all scaled by ``--img-size``.
SIZE_VARIABLES = INPUT_SIZES + ('resize', 'local_crop_size')
#: Keys of the transform fields that give a size.
SIZE_KEYS = ('scale', 'crop_size', 'reduce_jpeg_to')
#: Model fields that give a size.
MODEL_SIZE_PATHS = (('model', 'data_preprocessor', 'size'), ('model', 'backbone', 'img_size'))
#: Top-level keys that MMEngine's Runner, MedtransRunner or the study read.
READ_AT_TOP_LEVEL = ('work_dir', 'load_from', 'resume', 'launcher', 'default_scope', 'log_level',
                     'experiment_name', 'runner_type', 'data_preprocessor', 'model_wrapper_cfg',
                     'find_unused_parameters', 'sync_bn', 'compile', 'activation_checkpointing',
                     'efficient_conv_bn_eval')
#: The top-level sections the Runner builds the run from.
RUN_SECTIONS = ('model', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg',
                'val_cfg', 'test_cfg', 'val_evaluator', 'test_evaluator', 'optim_wrapper',
                'param_scheduler', 'default_hooks', 'custom_hooks', 'visualizer',
                'log_processor', 'env_cfg', 'randomness', 'auto_scale_lr')
OPTION_FOR = {'data_root': '--data-root', 'pretrained': '--pretrained',
              **{name: '--img-size' for name in SIZE_VARIABLES}}
#: What to do instead of setting other variables of the files.
HINT_FOR = {
    'batch_size': 'Use --batch-size, which sets the training batch per process (the tools '
                  'that test set their own loaders)',
    'max_epochs': 'For a short run use --iters N; to change the schedule, set the fields with '
                  'dotted keys (e.g. train_cfg.max_epochs=100)',
    'max_iters': 'Use --iters N, or set train_cfg.max_iters',
}

#: The refusal of the switch that ``--vis-backend`` replaced.
NO_TENSORBOARD_SWITCH = (
    '{where}: `tensorboard` is no longer read. Log to TensorBoard with --vis-backend tensorboard '
    "(tools/train.py), or add dict(type='TensorboardVisBackend') to visualizer.vis_backends.")

Path = Tuple[Any, ...]


def _fields(node: Any, path: Path = ()) -> Iterator[Tuple[Path, Any, Any, Any]]:
    """Every nested field (path, container, key, value), depth first."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in list(items):
        yield path + (key, ), node, key, value
        if isinstance(value, (dict, list, tuple)):
            yield from _fields(value, path + (key, ))


def _dotted(path: Path) -> str:
    return '.'.join(str(part) for part in path)


def _is_size(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value > 0
    return (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value))


def data_root_fields(cfg: Config) -> List[Tuple[Path, Any, Any, Any]]:
    """Every ``data_root`` of a dataset of a ``*_dataloader`` (wrapped ones too): (key path,
    the dataset's dict, ``'data_root'``, the folder)."""
    return [(path, container, key, value) for name in cfg.keys() if name.endswith('_dataloader')
            and isinstance(cfg[name], dict)
            for path, container, key, value in _fields(cfg[name], (name, ))
            if key == 'data_root' and 'dataset' in path]


def _size_fields(cfg: Config) -> List[Tuple[Path, Any, Any, Any]]:
    found = [(path, container, key, value) for name in cfg.keys()
             if isinstance(cfg[name], (dict, list, tuple))
             for path, container, key, value in _fields(cfg[name], (name, ))
             if key in SIZE_KEYS and _is_size(value)]
    for path in MODEL_SIZE_PATHS:
        container = cfg.get(path[0])
        for part in path[1:-1]:
            container = container.get(part) if isinstance(container, dict) else None
        if isinstance(container, dict) and _is_size(container.get(path[-1])):
            found.append((path, container, path[-1], container[path[-1]]))
    return found


def _run_fields(found) -> List[str]:
    return [_dotted(path) for path, *_ in found if path[0] in RUN_SECTIONS]


def check_overrides(cfg: Config, cfg_options: Optional[Dict[str, Any]]) -> None:
    """Refuse ``--cfg-options`` that set a top-level variable of the config file.

    A variable's value was copied where the file uses it when the file was read, so changing it
    afterwards reaches nothing. Sections the Runner builds from, keys it reads at the top level
    (:data:`READ_AT_TOP_LEVEL`), dotted keys and new keys pass.

    Args:
        cfg (Config): The config as read, before the overrides.
        cfg_options (dict, optional): The overrides (``key=value``, dotted keys).

    Raises:
        ValueError: An override of a variable of the file; the message names the option that
            sets what it feeds (``--data-root``, ``--pretrained``, ``--img-size``,
            ``--batch-size``, ``--iters``), or asks for the fields themselves. Also
            ``tensorboard``, which ``--vis-backend`` replaced.
    """
    for key in cfg_options or {}:
        if key == 'tensorboard':
            raise ValueError(NO_TENSORBOARD_SWITCH.format(where='--cfg-options tensorboard=...'))
        if '.' in key or key not in cfg or key in RUN_SECTIONS or key in READ_AT_TOP_LEVEL:
            continue
        if key == 'data_root':
            fields = _run_fields(data_root_fields(cfg))
        elif key == 'pretrained':
            fields = ['model.backbone.pretrained or model.backbone.init_cfg']
        elif key in SIZE_VARIABLES:
            fields = _run_fields(_size_fields(cfg))
        elif key == 'batch_size':
            fields = [f'{name}.batch_size' for name in RUN_SECTIONS
                      if isinstance(cfg.get(name), dict) and 'batch_size' in cfg[name]]
        elif key == 'monitor':
            raise ValueError(
                "--cfg-options monitor=...: `monitor` names the dataset's headline metric, which "
                'the study reports; the run monitors the first metric of each validation '
                "('auto'). To monitor another, set default_hooks.checkpoint.save_best and the "
                "plateau scheduler's monitor (param_scheduler), with dotted keys.")
        else:
            fields = []
        where = (f'it was copied into the fields that use it ({", ".join(fields)}) '
                 if fields else 'it was copied into the fields that use it ')
        hint = (f'Use {OPTION_FOR[key]}, which sets all of them' if key in OPTION_FOR else
                HINT_FOR.get(key, 'Set those fields instead, with dotted keys (e.g. '
                             'train_cfg.val_interval=100)'))
        raise ValueError(
            f'--cfg-options {key}=...: `{key}` is a variable of the config file: {where}'
            f'when the file was read, and changing it now would change nothing the run reads. '
            f'{hint}.')


def _retarget_data_root(cfg: Config, data_root: str) -> List[str]:
    found = data_root_fields(cfg)
    if not found:
        raise ValueError('--data-root: the config has no dataloader with a dataset data_root; '
                         'set the dataset fields with --cfg-options.')
    read = [(path, value) for path, _, _, value in found if path[0] in RUN_SECTIONS]
    if len({value for _, value in read}) > 1:
        listing = ', '.join(f'{_dotted(path)}={value!r}' for path, value in read)
        raise ValueError(f'--data-root: the dataloaders read different folders ({listing}); '
                         'set each with --cfg-options.')
    for _, container, key, _ in found:
        container[key] = data_root
    if 'data_root' in cfg:
        cfg['data_root'] = data_root
    return _run_fields(found)


def pretrained_field(cfg: Config) -> Tuple[Optional[str], Optional[str]]:
    """The field that names the backbone's weight file, and the file.

    Returns:
        tuple: ``('model.backbone.pretrained', file)`` (medtrans backbones),
        ``('model.backbone.init_cfg.checkpoint', file)`` (an OpenMMLab backbone initialised by
        MMEngine's ``Pretrained``; ``('model.backbone.init_cfg', None)`` without it), or
        ``(None, None)`` for a backbone that reads no weight file. The file is None for random
        init.
    """
    backbone = (cfg.get('model') or {}).get('backbone')
    if isinstance(backbone, dict) and 'pretrained' in backbone:
        return 'model.backbone.pretrained', backbone['pretrained']
    if isinstance(backbone, dict) and 'init_cfg' in backbone:
        init_cfg = backbone['init_cfg']
        if init_cfg is None:
            return 'model.backbone.init_cfg', None
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            return 'model.backbone.init_cfg.checkpoint', init_cfg.get('checkpoint')
    return None, None


def _retarget_pretrained(cfg: Config, pretrained: Optional[str]) -> List[str]:
    field, _ = pretrained_field(cfg)
    backbone = (cfg.get('model') or {}).get('backbone')
    if field == 'model.backbone.pretrained':
        backbone['pretrained'] = pretrained
    elif field is not None:
        # An OpenMMLab backbone (mmseg's ResNet) initialised by MMEngine's PretrainedInit.
        init_cfg = backbone['init_cfg'] or dict(type='Pretrained')
        backbone['init_cfg'] = None if pretrained is None else {**init_cfg,
                                                                'checkpoint': pretrained}
        field = 'model.backbone.init_cfg'
    else:
        raise ValueError("--pretrained: the config's model.backbone has neither 'pretrained' "
                         "(medtrans backbones) nor an init_cfg of type 'Pretrained'; set its "
                         'init with --cfg-options.')
    if 'pretrained' in cfg:
        cfg['pretrained'] = pretrained
    return [field]


def _scaled(value: Any, factor: float) -> Any:
    if isinstance(value, int):
        return max(1, math.floor(value * factor + 0.5))
    return type(value)(_scaled(v, factor) for v in value)


def _input_rule(cfg: Config) -> Tuple[int, int, str]:
    """``(multiple, minimum, what)``: the input sides the config's backbone takes
    (``input_sides`` of medtrans backbones, e.g. DeiT's patch size); ``(1, 1, '')`` for a
    backbone that declares none."""
    from medtrans.registry import MODELS, registered_class

    model = cfg.get('model') or {}
    backbone = model.get('backbone') if isinstance(model, dict) else None
    if not isinstance(backbone, dict):
        return 1, 1, ''
    scope = backbone.get('_scope_', model.get('_scope_', cfg.get('default_scope')))
    found = registered_class(MODELS, backbone.get('type'), scope)
    sides = getattr(found, 'input_sides', None)
    if sides is None:
        return 1, 1, ''
    multiple, minimum = sides(**{k: v for k, v in backbone.items() if k not in ('type', '_scope_')})
    return multiple, minimum, found.__name__


def _describe_rule(multiple: int, minimum: int, owner: str) -> str:
    parts = ([f'multiples of {multiple}'] if multiple > 1 else []) + (
        [f'at least {minimum} pixels'] if minimum > 1 else [])
    return f'{owner} takes input sides that are {" and ".join(parts)}'


def _fitted(side: int, multiple: int, minimum: int) -> int:
    """The multiple of ``multiple`` nearest ``side`` (ties up), at least ``minimum``."""
    nearest = max(multiple, multiple * math.floor(side / multiple + 0.5))
    return nearest if nearest >= minimum else multiple * math.ceil(minimum / multiple)


def _pipeline_end(steps: Any) -> List[Tuple[Any, Any]]:
    """The size fields of the last step of a pipeline that sets a size: what the model is
    given. A step holding sub-pipelines (``MultiView``, ``RandomChoice``: a list of them;
    ``RandomApply``: one) ends in each of theirs."""
    end: List[Tuple[Any, Any]] = []
    for step in steps if isinstance(steps, (list, tuple)) else ():
        if not isinstance(step, dict):
            continue
        sizes = [key for key in SIZE_KEYS if key != 'reduce_jpeg_to' and _is_size(step.get(key))]
        branches = step.get('transforms')
        if sizes:
            end = [(step, sizes[-1])]
        elif isinstance(branches, (list, tuple)) and branches:
            nested = (branches if all(isinstance(b, (list, tuple)) for b in branches)
                      else [branches])
            inner = [field for branch in nested for field in _pipeline_end(branch)]
            end = inner or end
    return end


def _input_fields(cfg: Config) -> set:
    """(id of the container, key) of every size field that is a model input: the end of each
    pipeline (the dataloaders', and the top-level variables that hold pipelines or steps), the
    model's size fields and the top-level input sizes (every size variable but ``resize``)."""
    pipelines = []
    for value in cfg.values():
        if isinstance(value, (list, tuple)):
            pipelines.append(value)
        elif isinstance(value, dict) and 'transforms' in value:
            pipelines.append([value])
        elif isinstance(value, dict):
            pipelines += [v for _, _, key, v in _fields(value) if key == 'pipeline']
    found = {(id(container), key) for pipeline in pipelines
             for container, key in _pipeline_end(pipeline)}
    found |= {(id(container), key) for path, container, key, _ in _size_fields(cfg)
              if path in MODEL_SIZE_PATHS}
    return found


def _img_size_plan(cfg: Config, primary: str, img_size: int
                   ) -> Tuple[List[Tuple[Path, Any, Any, Any]], List[str]]:
    """The new value of every size field for ``img_size``, and the model inputs rounded to
    what the backbone takes; a ValueError when ``img_size`` or an input would not fit."""
    multiple, minimum, owner = _input_rule(cfg)
    size = cfg[primary]
    base = size if isinstance(size, int) else size[0]
    if img_size % multiple or img_size < minimum:
        raise ValueError(f'{_describe_rule(multiple, minimum, owner)}, which '
                         f'{primary}={img_size} is not')
    factor = img_size / base
    inputs = _input_fields(cfg)
    plan, rounded = [], []
    for path, container, key, value in _size_fields(cfg):
        new = _scaled(value, factor)
        if (id(container), key) in inputs:
            sides = [new] if isinstance(new, int) else list(new)
            if min(sides) < minimum:
                raise ValueError(f'{_dotted(path)} would be {new}, and '
                                 f'{_describe_rule(multiple, minimum, owner)}')
            fitted = [_fitted(side, multiple, minimum) for side in sides]
            fitted = fitted[0] if isinstance(new, int) else type(new)(fitted)
            if fitted != new and path[0] in RUN_SECTIONS:
                rounded.append(f'{_dotted(path)} {new} -> {fitted}')
            new = fitted
        plan.append((path, container, key, new))
    for name in SIZE_VARIABLES:
        if _is_size(cfg.get(name)):
            new = _scaled(cfg[name], factor)
            if name != 'resize':
                new = (_fitted(new, multiple, minimum) if isinstance(new, int) else
                       type(new)(_fitted(side, multiple, minimum) for side in new))
            plan.append(((name, ), cfg, name, new))
    if rounded:
        rounded.insert(0, f'{_describe_rule(multiple, minimum, owner)}: rounded')
    return plan, rounded


def img_size_fits(cfg: Config, img_size: int) -> bool:
    """Whether ``--img-size img_size`` fits the config: its top-level input size is square and
    every size the model sees, rounded as ``--img-size`` rounds it, is one its backbone takes."""
    try:
        primary = _square_input_size(cfg)
    except ValueError:
        return False
    return _fits(cfg, primary, img_size)


def _square_input_size(cfg: Config) -> str:
    """The name of the config's top-level input size; refused unless it has one, square."""
    primary = next((name for name in INPUT_SIZES if _is_size(cfg.get(name))), None)
    if primary is None:
        raise ValueError(f'--img-size: the config has none of the top-level input sizes '
                         f'{", ".join(INPUT_SIZES)}; set the sizes with --cfg-options.')
    size = cfg[primary]
    if not isinstance(size, int) and size[0] != size[1]:
        raise ValueError(f'--img-size: {primary}={tuple(size)} is not square; set the sizes '
                         'with --cfg-options.')
    return primary


def _fits(cfg: Config, primary: str, img_size: int) -> bool:
    try:
        _img_size_plan(cfg, primary, img_size)
    except ValueError:
        return False
    return True


def _img_sizes_that_fit(cfg: Config, primary: str, img_size: int) -> List[int]:
    """The nearest input sizes below and above ``img_size`` that ``--img-size`` accepts."""
    nearest = (next((size for size in sizes if _fits(cfg, primary, size)), None)
               for sizes in (range(img_size - 1, 0, -1), range(img_size + 1, 8 * img_size + 1)))
    return [size for size in nearest if size is not None]


def _retarget_img_size(cfg: Config, img_size: int) -> List[str]:
    primary = _square_input_size(cfg)
    try:
        plan, rounded = _img_size_plan(cfg, primary, img_size)
    except ValueError as err:
        fits = _img_sizes_that_fit(cfg, primary, img_size)
        would = (f' --img-size {" or ".join(map(str, fits))} would fit' if fits else '')
        raise ValueError(f'--img-size {img_size}: {err}.{would}') from None
    for _, container, key, value in plan:
        container[key] = value
    if rounded:
        print_log(f'--img-size {img_size}: {rounded[0]} ' + ', '.join(rounded[1:]),
                  logger='current')
    return [_dotted(path) for path, *_ in plan if path[0] in RUN_SECTIONS]


def retarget(cfg: Config,
             data_root: Optional[str] = None,
             pretrained: Any = ...,
             img_size: Optional[int] = None) -> Dict[str, List[str]]:
    """Set the data folder, the backbone's weight file or the input size in every field.

    Args:
        cfg (Config): The config, changed in place.
        data_root (str, optional): The dataset folder. Defaults to None (unchanged).
        pretrained (str | None): The weight file; None for random init. Defaults to ``...``
            (unchanged).
        img_size (int, optional): The input size (the side of the training crop); every size
            follows in proportion. Defaults to None (unchanged).

    Returns:
        dict: The fields the Runner reads that were set, by option (``'data_root'``,
        ``'pretrained'``, ``'img_size'``).

    Raises:
        ValueError: The config has no field to set, or dataloaders that read different folders.
    """
    changed = {}
    if data_root is not None:
        changed['data_root'] = _retarget_data_root(cfg, data_root)
    if pretrained is not ...:
        changed['pretrained'] = _retarget_pretrained(cfg, pretrained)
    if img_size is not None:
        if isinstance(img_size, bool) or not isinstance(img_size, int) or img_size < 1:
            raise ValueError(f'--img-size must be a positive integer, got {img_size!r}')
        changed['img_size'] = _retarget_img_size(cfg, img_size)
    return changed
