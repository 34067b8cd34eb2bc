"""Retarget a config in one place: its data folder, weight file or input size.

An MMEngine config file is evaluated when it is read: ``train_dataloader = dict(dataset=dict(
data_root=data_root))`` copies the value of ``data_root`` into the dataloader, and a later
``--cfg-options data_root=DIR`` changes only the top-level variable, which nothing reads. MMEngine
has no notion of derived fields, so medtrans offers two things:

* :func:`retarget` (``--data-root``, ``--pretrained``, ``--img-size`` of the tools) sets a value
  in every field that holds it: every ``data_root`` of the dataloaders, every ``pretrained`` of
  the model, every input size of the pipelines, data preprocessor and backbone (scaled alike,
  e.g. the classification recipe's resize 256 for a crop of 224);
* :func:`check_overrides` refuses a ``--cfg-options`` override of a top-level variable whose
  value was copied into other fields, naming those fields and the option to use instead.

A field *holds* a variable's value when it is nested in a section the Runner reads
(:data:`RUN_SECTIONS`: the model, the dataloaders, the hooks...), its value equals the
variable's, and either its key is the variable's name, or the value is a string of 4 characters
or more or a sequence (a coincidence is unlikely), or the variable is an input size
(:data:`SIZE_VARIABLES`) and the key one of :data:`SIZE_KEYS`.
"""
import math
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config

__all__ = ['retarget', 'check_overrides', 'RETARGETS', 'SIZE_VARIABLES', 'SIZE_KEYS']

# What retarget() sets.
RETARGETS = ('data_root', 'pretrained', 'img_size')

# Top-level variables that give an input size; the first present is the one --img-size sets
# (a classification crop, a segmentation crop), the others follow in proportion.
SIZE_VARIABLES = ('img_size', 'crop_size', 'resize', 'global_crop_size', 'local_crop_size')
# Keys of the fields that take a size: pipelines (Resize, crops, reduced JPEG decoding),
# SegDataPreProcessor, backbones.
SIZE_KEYS = ('scale', 'crop_size', 'size', 'img_size', 'reduce_jpeg_to')
# Top-level keys that MMEngine's Runner or medtrans read themselves.
READ_AT_TOP_LEVEL = ('work_dir', 'load_from', 'resume', 'launcher', 'default_scope', 'log_level',
                     'experiment_name', 'monitor', 'find_unused_parameters')
OPTION_FOR = {'data_root': '--data-root', 'pretrained': '--pretrained'}
# The top-level sections the Runner builds the run from; other top-level names are variables.
RUN_SECTIONS = ('model', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg',
                'val_cfg', 'test_cfg', 'val_evaluator', 'test_evaluator', 'optim_wrapper',
                'param_scheduler', 'default_hooks', 'custom_hooks', 'visualizer',
                'log_processor', 'env_cfg', 'randomness', 'auto_scale_lr', 'model_wrapper_cfg')

Path = Tuple[Any, ...]


def _fields(node: Any, path: Path = ()) -> Iterator[Tuple[Path, Any, Any, Any]]:
    """Every nested field (path, container, key, value), depth first, sections included."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in list(items):
        yield path + (key, ), node, key, value
        if isinstance(value, (dict, list)):
            yield from _fields(value, path + (key, ))


def _sections(cfg: Config, run_only: bool = True) -> Iterator[Tuple[Path, Any, Any, Any]]:
    """The fields of the sections the Runner reads (:data:`RUN_SECTIONS`), or with
    ``run_only=False`` of every top-level dict or list (``train_pipeline`` too)."""
    for name in (RUN_SECTIONS if run_only else list(cfg.keys())):
        value = cfg.get(name)
        if isinstance(value, (dict, list)):
            yield from _fields(value, (name, ))


def _dotted(path: Path) -> str:
    return '.'.join(str(part) for part in path)


def _is_size(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value > 0
    return (isinstance(value, (tuple, list)) and len(value) == 2
            and all(_is_size(v) and isinstance(v, int) for v in value))


def _is_section_list(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and any(isinstance(v, (dict, list)) for v in value)


def _same_size(old: Any, value: Any) -> bool:
    """Equal sizes, an int side matching a square pair (``img_size=512``, ``(512, 512)``)."""
    if not (_is_size(old) and _is_size(value)):
        return False
    as_pair = [(v, v) if isinstance(v, int) else tuple(v) for v in (old, value)]
    return as_pair[0] == as_pair[1]


def _holds(name: str, old: Any, key: Any, value: Any) -> bool:
    """Whether a nested field ``key: value`` holds top-level ``name = old``."""
    if isinstance(old, bool) or old is None or isinstance(value, bool) or value is None:
        return key == name and value is old
    if name in SIZE_VARIABLES and key in SIZE_KEYS + (name, ):
        return _same_size(old, value)
    if isinstance(old, (tuple, list)) != isinstance(value, (tuple, list)):
        return False
    if isinstance(old, (tuple, list)):
        if tuple(old) != tuple(value):
            return False
    elif type(old) is not type(value) or old != value:
        return False
    if key == name:
        return True
    if isinstance(old, str):
        return len(old) >= 4
    return isinstance(old, (tuple, list))


def copies_of(cfg: Config, name: str) -> List[str]:
    """The nested fields holding the value of top-level ``name`` (dotted paths)."""
    old = cfg[name]
    return [_dotted(path) for path, _, key, value in _sections(cfg)
            if not isinstance(key, int) and _holds(name, old, key, value)]


def check_overrides(cfg: Config, cfg_options: Optional[Dict[str, Any]]) -> None:
    """Refuse ``--cfg-options`` that set a top-level variable already copied into fields.

    Args:
        cfg (Config): The config as read, before the overrides.
        cfg_options (dict, optional): The overrides (``key=value``, dotted keys).

    Raises:
        ValueError: An override of a variable whose value the config copied into other fields
            when the file was read: it would change nothing the run reads. The message names
            those fields and the option to use instead.
    """
    for key in cfg_options or {}:
        if '.' in key or key not in cfg or key in READ_AT_TOP_LEVEL:
            continue
        if isinstance(cfg[key], dict) or _is_section_list(cfg[key]):
            continue
        copies = copies_of(cfg, key)
        if not copies:
            continue
        if key in OPTION_FOR:
            hint = f'use {OPTION_FOR[key]}, which sets all of them'
        elif key in SIZE_VARIABLES:
            hint = 'use --img-size, which sets every input size of the run'
        else:
            hint = 'set those fields instead'
        raise ValueError(
            f'--cfg-options {key}=...: `{key}` is a variable of the config file, whose value was '
            f'copied into {", ".join(copies)} when the file was read; changing it would change '
            f'nothing the run reads. {hint[0].upper()}{hint[1:]}.')


def _set(cfg: Config, name: str, found: Sequence[Tuple[Path, Any, Any]], value: Any) -> List[str]:
    """Set ``value`` in the ``found`` fields and the top-level variable ``name``; return the
    paths of the fields the Runner reads."""
    for _, container, key in found:
        container[key] = value
    if name in cfg:
        cfg[name] = value
    return [_dotted(path) for path, *_ in found if path[0] in RUN_SECTIONS]


def _retarget_data_root(cfg: Config, data_root: str) -> List[str]:
    found = [(path, container, key, value)
             for path, container, key, value in _sections(cfg, run_only=False)
             if key == 'data_root' and str(path[0]).endswith('_dataloader')]
    if not found:
        raise ValueError('--data-root: the config has no dataloader with a dataset data_root; '
                         'set the dataset fields with --cfg-options.')
    roots = {value for *_, value in found}
    if len(roots) > 1:
        listing = ', '.join(f'{_dotted(path)}={value!r}' for path, _, _, value in found)
        raise ValueError(f'--data-root: the dataloaders read different folders ({listing}); '
                         'set each with --cfg-options.')
    return _set(cfg, 'data_root', [(p, c, k) for p, c, k, _ in found], data_root)


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
    variables = [name for name in SIZE_VARIABLES if name in cfg and _is_size(cfg[name])]
    if not variables:
        raise ValueError(f'--img-size: the config has none of the top-level size variables '
                         f'{", ".join(SIZE_VARIABLES)}; set the sizes with --cfg-options.')
    primary = cfg[variables[0]]
    side = primary if isinstance(primary, int) else primary[0]
    if not isinstance(primary, int) and primary[0] != primary[1]:
        raise ValueError(f'--img-size: {variables[0]}={tuple(primary)} is not square; set the '
                         'sizes with --cfg-options.')
    factor = img_size / side
    new = {name: _scaled(cfg[name], factor) for name in variables}
    changes = []
    for path, container, key, value in list(_sections(cfg, run_only=False)):
        if isinstance(key, int):
            continue
        if key in SIZE_KEYS and any(_same_size(cfg[n], value) for n in variables):
            changes.append((path, container, key, _scaled(value, factor)))
    for _, container, key, value in changes:
        container[key] = value
    for name, value in new.items():
        cfg[name] = value
    return [_dotted(path) for path, *_ in changes if path[0] in RUN_SECTIONS]


def retarget(cfg: Config,
             data_root: Optional[str] = None,
             pretrained: Any = ...,
             img_size: Optional[int] = None) -> Dict[str, List[str]]:
    """Set the data folder, the backbone's weight file or the input size in every field.

    Args:
        cfg (Config): The config, changed in place.
        data_root (str, optional): The dataset folder: every dataloader's ``data_root`` (they
            must all read the same one) and the top-level variable. Defaults to None (unchanged).
        pretrained (str | None): The weight file: every ``pretrained`` of the model and the
            top-level variable; None for random init. Defaults to ``...`` (unchanged).
        img_size (int, optional): The input size (the side of the training crop): the first
            of :data:`SIZE_VARIABLES` the config has is set to it, the others scaled in
            proportion (the classification recipe's resize 256 for 224), and so is every field
            holding one of their values (pipelines, data preprocessor, backbone ``img_size``).
            Defaults to None (unchanged).

    Returns:
        dict: The fields set, by option (``'data_root'``, ``'pretrained'``, ``'img_size'``).

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
