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

__all__ = ['retarget', 'check_overrides', 'INPUT_SIZES', 'SIZE_VARIABLES', 'SIZE_KEYS']

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
                     'efficient_conv_bn_eval', 'tensorboard')
#: The top-level sections the Runner builds the run from.
RUN_SECTIONS = ('model', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg',
                'val_cfg', 'test_cfg', 'val_evaluator', 'test_evaluator', 'optim_wrapper',
                'param_scheduler', 'default_hooks', 'custom_hooks', 'visualizer',
                'log_processor', 'env_cfg', 'randomness', 'auto_scale_lr')
OPTION_FOR = {'data_root': '--data-root', 'pretrained': '--pretrained',
              **{name: '--img-size' for name in SIZE_VARIABLES}}

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


def _data_root_fields(cfg: Config) -> List[Tuple[Path, Any, Any, Any]]:
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
            sets what it feeds (``--data-root``, ``--pretrained``, ``--img-size``), or asks for
            the fields themselves.
    """
    for key in cfg_options or {}:
        if '.' in key or key not in cfg or key in RUN_SECTIONS or key in READ_AT_TOP_LEVEL:
            continue
        if key == 'data_root':
            fields = _run_fields(_data_root_fields(cfg))
        elif key == 'pretrained':
            fields = ['model.backbone.pretrained or model.backbone.init_cfg']
        elif key in SIZE_VARIABLES:
            fields = _run_fields(_size_fields(cfg))
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
                'Set those fields instead, with dotted keys (e.g. train_cfg.val_interval=100)')
        raise ValueError(
            f'--cfg-options {key}=...: `{key}` is a variable of the config file: {where}'
            f'when the file was read, and changing it now would change nothing the run reads. '
            f'{hint}.')


def _retarget_data_root(cfg: Config, data_root: str) -> List[str]:
    found = _data_root_fields(cfg)
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


def _retarget_pretrained(cfg: Config, pretrained: Optional[str]) -> List[str]:
    backbone = (cfg.get('model') or {}).get('backbone')
    if isinstance(backbone, dict) and 'pretrained' in backbone:
        backbone['pretrained'] = pretrained
        field = 'model.backbone.pretrained'
    elif isinstance(backbone, dict) and 'init_cfg' in backbone and (
            backbone['init_cfg'] is None or backbone['init_cfg'].get('type') == 'Pretrained'):
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


def _retarget_img_size(cfg: Config, img_size: int) -> List[str]:
    primary = next((name for name in INPUT_SIZES if _is_size(cfg.get(name))), None)
    if primary is None:
        raise ValueError(f'--img-size: the config has none of the top-level input sizes '
                         f'{", ".join(INPUT_SIZES)}; set the sizes with --cfg-options.')
    size = cfg[primary]
    if not isinstance(size, int) and size[0] != size[1]:
        raise ValueError(f'--img-size: {primary}={tuple(size)} is not square; set the sizes '
                         'with --cfg-options.')
    factor = img_size / (size if isinstance(size, int) else size[0])
    found = _size_fields(cfg)
    for _, container, key, value in found:
        container[key] = _scaled(value, factor)
    for name in SIZE_VARIABLES:
        if _is_size(cfg.get(name)):
            cfg[name] = _scaled(cfg[name], factor)
    return _run_fields(found)


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
